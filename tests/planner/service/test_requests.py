"""Each job turns into the arguments of the very function its command calls, every name resolved inside the
server's folders: the arguments are ones those functions take, and the job models hold the commands' options."""

from __future__ import annotations

import inspect

import pytest
from optiplan.planner.errors import ServiceRefused
from optiplan.planner.service.paths import Roots
from optiplan.planner.service.requests import BenchJob, job_arguments, parse_job


@pytest.fixture()
def roots(tmp_path, models_dir) -> Roots:
    return Roots.create(tmp_path / "work", [models_dir])


def test_apply_and_verify_jobs_become_the_arguments_of_apply_and_verify(roots, models_dir):
    pytest.importorskip("torch")
    from optiplan.optimizers.apply import apply
    from optiplan.optimizers.verify import verify

    job = parse_job({"kind": "apply", "model": "tiny", "techniques": ["weight-int8"], "output": "out/int8",
                     "max_quality_loss_pct": 1, "repeats": 3})
    arguments = job_arguments(job, roots, allow_pickle=False)
    assert arguments["source"] == models_dir / "tiny" and arguments["out"] == roots.workdir / "out" / "int8"
    assert arguments["techniques"] == ["weight-int8"] and arguments["verify_options"] == {"repeats": 3, "eval_text": None}
    assert set(arguments) - {"source", "out"} <= set(inspect.signature(apply).parameters)
    (roots.workdir / "int8").mkdir()  # an apply output is a model verify may name, like a models-dir folder
    job = parse_job({"kind": "verify", "baseline": "tiny", "optimized": "int8", "repeats": 2, "memory": False})
    arguments = job_arguments(job, roots, allow_pickle=False)
    assert arguments["optimized"] == roots.workdir / "int8"
    assert set(arguments) <= set(inspect.signature(verify).parameters)


# the CLI option -> the job field where the names differ; presentation options (format, output file) have none
RENAMED = {"out": "output", "no_verify": "verify", "quality": "max_quality_loss_pct", "no_memory": "memory"}
# how the CLI shows a result, and its exit status (verify --fail-on-worse): a job's caller reads the result itself
PRESENTATION = {"debug", "fmt", "output", "as_json", "fail_on_worse"}


@pytest.mark.parametrize("command", ["apply", "verify"])
def test_apply_and_verify_jobs_take_every_option_of_their_command(command):
    from optiplan.planner.cli.main import main
    from optiplan.planner.service.requests import JOB_MODELS

    options = {p.name for p in main.commands[command].params} - PRESENTATION
    fields = set(JOB_MODELS[command].model_fields)
    missing = {o for o in options if RENAMED.get(o, o) not in fields}
    assert not missing, f"{command} options the job cannot take: {missing}"


def test_calibrate_and_bench_jobs_hold_their_commands_options(roots, models_dir):
    from click.testing import CliRunner
    from optiplan.planner.cli.main import main

    calibrate = parse_job({"kind": "calibrate", "models": ["tiny"], "repeats": 4, "effects": False})
    assert job_arguments(calibrate, roots, allow_pickle=False) == {
        "models": [models_dir / "tiny"], "repeats": 4, "device": "auto", "effects": False, "only_effects": False,
        "techniques": None}
    # the device the job names is the one calibrate fits (a GPU worker asked for the CPU's factors gives those)
    assert job_arguments(parse_job({"kind": "calibrate", "device": "cpu"}), roots, allow_pickle=False)["device"] == "cpu"
    options = {p.name for p in main.commands["calibrate"].params} - {"as_json", "debug"}
    assert options <= set(type(calibrate).model_fields), "a calibrate option the job cannot take"
    bench = parse_job({"kind": "bench", "models": ["tiny"], "repeats": 2, "quality": False})
    assert isinstance(bench, BenchJob)
    request = job_arguments(bench, roots, allow_pickle=False)["request"]
    assert request.models == [str(models_dir / "tiny")] and request.repeats == 2 and not request.quality
    assert CliRunner().invoke(main, ["calibrate", "--help"]).exit_code == 0


def test_every_name_in_a_job_is_confined(roots):
    cases = [({"kind": "verify", "baseline": "tiny", "optimized": "../../etc"}, "'..' is refused"),
             ({"kind": "calibrate", "models": ["/etc"]}, "absolute paths"),
             ({"kind": "bench", "models": ["tiny"], "prompts_file": "/etc/passwd"}, "absolute paths"),
             ({"kind": "bench", "models": ["tiny"], "save_reference": "../x.json"}, "'..' is refused"),
             ({"kind": "apply", "model": "tiny", "output": "o", "draft": "missing"}, "no such file or folder"),
             ({"kind": "apply", "model": "tiny", "output": "o", "workload": "/tmp/w.yaml"}, "takes a preset"),
             ({"kind": "apply", "model": "tiny", "output": "o", "hardware": "./hw.yaml"}, "catalog device")]
    for body, words in cases:
        with pytest.raises(ServiceRefused, match=words):
            job_arguments(parse_job(body), roots, allow_pickle=False)


def test_a_technique_option_naming_a_folder_is_refused(roots):
    # spec-draft's draft=PATH would load any folder on the server: the job's confined draft field names it instead
    body = {"kind": "apply", "model": "tiny", "output": "o", "techniques": ["spec-draft:draft=/abs/elsewhere"]}
    with pytest.raises(ServiceRefused, match="job's 'draft' field") as err:
        job_arguments(parse_job(body), roots, allow_pickle=False)
    assert err.value.status == 400
    body["techniques"] = ["spec-draft:num_assistant_tokens=4"]
    assert job_arguments(parse_job(body), roots, allow_pickle=False)["techniques"] == body["techniques"]


def test_a_bench_job_replaces_an_existing_reference_only_when_forced(roots):
    (roots.workdir / "kept").mkdir(parents=True)
    (roots.workdir / "kept" / "config.json").write_text("{}")
    body = {"kind": "bench", "models": ["tiny"], "save_reference": "kept/config.json"}
    with pytest.raises(ServiceRefused, match="exists in the workdir") as err:
        job_arguments(parse_job(body), roots, allow_pickle=False)
    assert err.value.status == 409
    request = job_arguments(parse_job(body | {"force": True}), roots, allow_pickle=False)["request"]
    assert request.save_reference == str(roots.workdir / "kept" / "config.json")


def test_a_bench_job_the_runner_would_refuse_is_refused_at_submission(roots):
    """An unknown workload or device had been accepted (202) and failed in the worker."""
    for body, match in (({"workload": "nope"}, "nope"), ({"device": "tpu"}, "cpu or cuda"),
                        ({"quality": False, "save_reference": "ref.json"}, "--save-reference")):
        with pytest.raises(ServiceRefused, match=match) as err:
            job_arguments(parse_job({"kind": "bench", "models": ["tiny"], **body}), roots, allow_pickle=False)
        assert err.value.status == 400


def test_a_job_naming_an_unknown_technique_is_refused_at_submission(roots, models_dir):
    # not queued to fail when it runs: a 400 that points at the service's own catalog, with a close name
    from optiplan.planner.service.requests import ApplyJob, CalibrateJob

    for job in (ApplyJob(model="tiny", output="out", techniques=["weight-int9"]),
                CalibrateJob(techniques=["weight-int9"])):
        with pytest.raises(ServiceRefused) as err:
            job_arguments(job, roots, allow_pickle=False)
        assert err.value.status == 400 and "unknown technique 'weight-int9'" in str(err.value)
        assert "did you mean: weight-int8" in str(err.value) and "/v1/catalog/techniques" in str(err.value)
    ok = job_arguments(ApplyJob(model="tiny", output="out", techniques=["sliding-window-sinks:window=256"]), roots,
                       allow_pickle=False)
    assert ok["techniques"] == ["sliding-window-sinks:window=256"]
