"""One job in its own process (`python -m optiplan.planner.service.runner`): it reads the job from stdin, calls the
library function the CLI calls, and writes events on stdout as lines `@@optiplan@@ {json}` (log, progress, result,
error); anything else a library prints is a log line too. A process per job is what makes a job cancellable (the
group is killed), keeps torch out of the API process, and lets a crash fail one job instead of the server.
The process dies with its parent (PR_SET_PDEATHSIG), so a killed server or worker leaves no job running."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from . import TEST_JOBS_ENV

MARK = "@@optiplan@@ "

# fractions for the progress messages verify reports (optimizers/verify.py), in order
VERIFY_PHASES = (("timing", 0.2), ("batched throughput", 0.5), ("quality", 0.7), ("peak memory", 0.85))


def _emit(event: str, **fields: Any) -> None:
    sys.__stdout__.write(MARK + json.dumps({"event": event, **fields}, default=str) + "\n")
    sys.__stdout__.flush()


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the runner's monitor still kills it on cancel
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def apply_progress(techniques: list[str] | None, verify: bool) -> Callable[[str], None]:
    """apply's log lines as progress: each 'applying X' moves through the steps, verify's phases after them."""
    total = len(techniques) if techniques else 3  # a planner-chosen plan: steps not known up front
    share = 0.7 if verify else 0.9
    seen = {"steps": 0}

    def log(line: str) -> None:
        _emit("log", line=line)
        if line.startswith("applying "):
            seen["steps"] += 1
            _emit("progress", fraction=0.1 + share * min(seen["steps"] - 1, total) / total, step=line)
        for phase, fraction in VERIFY_PHASES:
            if line.startswith(phase):
                _emit("progress", fraction=0.8 + 0.2 * fraction * 0.9, step=f"verify: {line}")

    return log


def verify_progress(line: str) -> None:
    _emit("log", line=line)
    for phase, fraction in VERIFY_PHASES:
        if line.startswith(phase):
            _emit("progress", fraction=fraction, step=line)


def scripted_apply(arguments: dict[str, Any]) -> dict[str, Any]:
    """Tests only (OPTIPLAN_SERVICE_TEST_JOBS=1 in the server's environment, never set for users): an apply that
    writes its output the way apply does (fsutil.atomic_folder, named by this attempt's tag), in a second, with its
    `techniques` as the script: 'test-write' writes a part, 'test-fail' fails in one line, 'test-hang' writes a part
    and waits to be killed or cancelled mid-write."""
    import tempfile
    import time

    from ..errors import OptiplanError
    from ..fsutil import atomic_folder

    script = arguments.get("techniques") or ["test-write"]
    with atomic_folder(arguments["out"]) as tmp:
        for i, step in enumerate(script):
            _emit("log", line=f"applying {step}")
            _emit("progress", fraction=0.1 + 0.8 * i / len(script), step=f"applying {step}")
            (tmp / f"part-{i}.bin").write_bytes(bytes(4096))
            # a library's temporary file (calibrate's random-weight models), which a killed process leaves behind
            tempfile.NamedTemporaryFile(prefix="scripted-", delete=False).close()
            if step == "test-fail":
                raise OptiplanError(f"{step}: the scripted step failed after writing part {i}")
            if step == "test-hang":
                _emit("progress", fraction=0.5, step="writing (test-hang)")
                time.sleep(3600)
        steps = [{"technique": step} for step in script]
        (tmp / "optiplan.json").write_text(json.dumps({"steps": steps}))
    return {"steps": steps, "source": str(arguments["source"]), "out": str(arguments["out"])}


def execute(kind: str, arguments: dict[str, Any]) -> Any:
    """Run the job's library function (the one the CLI calls) and return its result as JSON-ready data."""
    if kind == "apply" and os.environ.get(TEST_JOBS_ENV) == "1":
        return scripted_apply(arguments)
    if kind == "apply":
        from ...optimizers.apply import apply

        log = apply_progress(arguments.get("techniques"), arguments.get("verify", True))
        arguments["verify_options"] = {**arguments.get("verify_options", {}), "progress": log}
        manifest = apply(arguments.pop("source"), arguments.pop("out"), log=log, **arguments)
        return manifest.model_dump(mode="json")
    if kind == "verify":
        from ...optimizers.verify import verify

        return verify(arguments.pop("baseline"), arguments.pop("optimized"), progress=verify_progress,
                      **arguments).model_dump(mode="json")
    if kind == "calibrate":  # as the command: the machine's fit, then the techniques' measured effects
        from ..machine.calibration import load_calibration

        models, repeats = arguments["models"], arguments["repeats"]
        # what named techniques keep of the effects once a new fit replaces them (the command's `earlier`)
        earlier = (load_calibration() or {}).get("effects")
        if not arguments["only_effects"]:
            from ..measure.calibrate_gpu import calibrate_machine

            _emit("progress", fraction=0.1, step="calibrate: microbenchmarks and the engine's fit")
            data, path = calibrate_machine(models, repeats=repeats, device=arguments.get("device", "auto"),
                                           show_progress=False)
        from ...optimizers.effects import EFFECTS_ON_CPU_ONLY, effects_measurable

        if arguments["effects"] and not arguments["only_effects"] and not effects_measurable(data):
            _emit("progress", fraction=0.9, step=f"calibrate: {EFFECTS_ON_CPU_ONLY}")
        elif arguments["effects"] or arguments["only_effects"]:
            from ...optimizers.effects import calibrate_effects

            _emit("progress", fraction=0.5, step="calibrate: each technique's effect here")
            data, path = calibrate_effects(models, rounds=max(repeats - 1, 1), show_progress=False,
                                           techniques=arguments.get("techniques"), earlier=earlier)
        return {"calibration": data, "path": str(path)}
    if kind == "bench":
        from ..ci.bench import run_bench

        return [r.model_dump(mode="json") for r in run_bench(arguments["request"], show_progress=False)]
    raise ValueError(f"unknown job kind {kind}")


def main() -> int:
    spec = json.loads(sys.stdin.read())
    _die_with_parent(spec["parent"])
    from ..fsutil import TAG_ENV

    os.environ[TAG_ENV] = spec.get("tag", "")  # every atomic write of this attempt carries its job id and attempt
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"  # a job reads folders, never the hub
    from ..errors import error_line
    from .paths import Roots
    from .requests import job_arguments, parse_job

    sys.stdout = sys.stderr  # a library's prints become log lines; events go to the real stdout only
    try:
        roots = Roots.create(spec["workdir"], spec["models"])
        job = parse_job(spec["request"])
        _emit("progress", fraction=0.02, step=f"{job.kind}: loading libraries")
        result = execute(job.kind, job_arguments(job, roots, spec["allow_pickle"]))
    except Exception as exc:  # noqa: BLE001  the job's boundary: one line, as the CLI shows it
        from .paths import ServiceRefused

        line = str(exc) if isinstance(exc, ServiceRefused) else error_line(exc)[0]
        _emit("error", message=line)
        return 1
    _emit("result", result=result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
