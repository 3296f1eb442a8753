"""Every technique is declared once, and its declaration is what its optimizer does: the packages a real apply
(and a generation with the result) imports are the declared ones, it runs on the declared devices, and it is
resolved from the declaration's import path, not from a second table."""

from __future__ import annotations

import builtins
import importlib.util
import sys

import pytest
from optiplan.optimizers.registry import check_supported, missing_packages, registry
from optiplan.optimizers.workspace import NotSupportedHere
from optiplan.planner.plan.techniques import PACKAGE_IMPORTS, all_techniques

# optional packages an optimizer may pull in (torch and transformers are the torch extra itself)
OPTIONAL = {import_name.split(".")[0]: pip for pip, import_name in PACKAGE_IMPORTS.items()
            if pip not in ("torch",)}
OPTIONAL["optimum"] = "optimum-quanto"  # optimum-quanto installs the `optimum` namespace


def _audited_imports(monkeypatch) -> set[str]:
    """Record every optional package imported from here on (even when already loaded: a function-level import
    runs `__import__` each time), and those optiplan looks up with `find_spec`."""
    seen: set[str] = set()
    real_import, real_find_spec = builtins.__import__, importlib.util.find_spec

    def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] in OPTIONAL:
            seen.add(OPTIONAL[name.split(".")[0]])
        return real_import(name, globals, locals, fromlist, level)

    def recording_find_spec(name, package=None):
        # optiplan's own availability checks count; a library probing what is installed does not
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith("optiplan.") and name.split(".")[0] in OPTIONAL:
            seen.add(OPTIONAL[name.split(".")[0]])
        return real_find_spec(name, package)

    monkeypatch.setattr(builtins, "__import__", recording_import)
    monkeypatch.setattr(importlib.util, "find_spec", recording_find_spec)
    return seen


CPU_TECHNIQUES = sorted(t for t, opt in registry().items() if "cpu" in opt.declared.devices)


@pytest.mark.parametrize("technique", CPU_TECHNIQUES)
def test_applying_a_technique_imports_exactly_its_declared_packages(technique, workspace, draft_path, monkeypatch):
    from optiplan.optimizers.runtime import LoadedModel

    declared = all_techniques()[technique]
    if missing_packages(declared):
        pytest.skip(f"{', '.join(missing_packages(declared))} not installed")
    params = {"draft": str(draft_path), "num_assistant_tokens": 2} if technique == "spec-draft" else {}
    if technique == "flash-attention":  # its default here, SDPA, is the kernel the model loads with: ask for another
        params = {"implementation": "custom"}
    seen = _audited_imports(monkeypatch)
    check_supported(technique, "cpu").apply(workspace, params)
    if technique != "torch-compile":  # compiling the tiny model takes a minute and imports nothing optional
        loaded = LoadedModel(workspace.model, workspace.tokenizer, "cpu", workspace.runtime, workspace.draft)
        loaded.generate_text("The for statement is", 4) if not workspace.runtime.continuous_batching else \
            loaded.generate_many(["The for statement is"], 4)
    monkeypatch.undo()
    assert seen == {p for p in declared.packages if p in OPTIONAL.values()}, \
        f"{technique} declares {declared.packages} but applying it used {sorted(seen)}"


def test_every_declared_optimizer_resolves_and_every_optimizer_is_declared():
    import optiplan.optimizers as pkg

    declared = {opt.declared.optimizer for opt in registry().values()}
    for technique, opt in registry().items():
        assert callable(opt.apply), technique
        assert set(opt.declared.devices) <= {"cpu", "cuda"}
        assert opt.aim[0] in ("tpot_ms", "weights_bytes", "cache_bytes", "batched_tokens_per_s")
        assert opt.aim[1] in ("lower", "higher")
    # no function in an optimizer family module that looks like an optimizer goes undeclared
    import inspect
    from pathlib import Path

    for path in Path(pkg.__file__).parent.glob("*.py"):
        module = importlib.import_module(f"optiplan.optimizers.{path.stem}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            params = list(inspect.signature(fn).parameters)
            if fn.__module__ == module.__name__ and params[:2] == ["ws", "params"]:
                assert f"{path.stem}:{name}" in declared, f"{path.stem}:{name} applies no declared technique"


def test_a_missing_declared_package_is_refused_with_its_install_hint(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None if name == "hqq" else
                        real(name, package))
    with pytest.raises(NotSupportedHere, match="hqq"):
        check_supported("kv-int8", "cpu")


def test_every_technique_names_its_engines_and_a_quality_source():
    from optiplan.planner.catalog.engines import engine_table
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.catalog.models import resolve_model
    from optiplan.planner.plan.techniques import Context
    from optiplan.planner.schema import Workload

    engines = set(engine_table())
    for t in all_techniques().values():
        assert t.engines and set(t.engines) <= engines, t.id
        # a fixed source, or one per model (published figures by family and size): judged on a catalog model
        ctx = Context(spec=resolve_model("llama-3.1-8b"), hw=resolve_hardware("h100-sxm"), devices=1,
                      workload=Workload(engine=t.engines[0]))
        assert t.source(ctx).strip() and t.loss(ctx) >= 0, t.id
        assert set(t.packages) <= set(PACKAGE_IMPORTS), f"{t.id}: add {t.packages} to PACKAGE_IMPORTS"
        if t.apply is not None:
            assert "transformers" in t.engines or t.phase == "training", \
                f"{t.id} has a transformers optimizer but does not declare the transformers engine"


def test_no_optimizer_module_is_imported_by_listing_them():
    before = {m for m in sys.modules if m.startswith("optiplan.optimizers.")}
    registry()
    after = {m for m in sys.modules if m.startswith("optiplan.optimizers.")}
    assert after == before  # the registry reads declarations; functions import only when they run
