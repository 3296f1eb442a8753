"""An option the chosen library cannot honour is refused in one sentence that names what would, never taken and
ignored (a 4-bit cache labelled 8-bit, a group size quanto does not take) nor left to crash as an internal error."""

from __future__ import annotations

import pytest
from optiplan.optimizers.apply import apply
from optiplan.optimizers.artifact import load
from optiplan.optimizers.workspace import NotSupportedHere


@pytest.mark.parametrize(("technique", "message"), [
    ("kv-int8:backend=quanto", "quanto cache backend stores int4, not int8; use backend=hqq"),
    ("kv-fp8:backend=quanto", "stores int4, not fp8; use backend=fp8"),
    ("kv-int4:backend=fp8", "stores fp8, not int4"),
    ("weight-int4:group_size=32", "quanto packs int4 in groups of its own"),
    ("weight-int4:backend=torchao", "needs its CUDA kernels"),
    ("flash-attention:implementation=flex", "does not build on CPU"),
])
def test_an_option_the_library_cannot_honour_is_refused(target_path, tmp_path, technique, message):
    with pytest.raises(NotSupportedHere, match=message):
        apply(target_path, tmp_path / "opt", techniques=[technique], verify=False)
    assert not (tmp_path / "opt").exists()


def test_a_cache_group_that_does_not_divide_the_keys_is_refused_before_it_runs(target_path, tmp_path):
    # quanto takes the group at set-up and had refused it only at the first generation ("must be a divisor"): the
    # step now refuses it before it runs, the model untouched
    with pytest.raises(NotSupportedHere, match="kv-int4: a token's cached values in a layer .64. do not divide into "
                                               "groups of 128"):
        apply(target_path, tmp_path / "opt", techniques=["kv-int4:group_size=128"], verify=False)


def test_quanto_quantizes_lm_head_when_asked(target_path, tmp_path):
    manifest = apply(target_path, tmp_path / "opt", techniques=["weight-int8:backend=quanto,keep_lm_head=false"],
                     verify=False)
    assert "except lm_head" not in manifest.steps[0].detail
    assert type(load(tmp_path / "opt", "cpu").model.lm_head).__name__ == "QLinear"


def test_a_draft_folder_transformers_cannot_load_is_named_as_the_draft(target_path, tmp_path):
    apply(target_path, tmp_path / "int4", techniques=["weight-int4"], verify=False)
    with pytest.raises(NotSupportedHere, match="draft model .*int4 is an optiplan folder of quanto weights"):
        apply(target_path, tmp_path / "opt", techniques=["spec-draft"], draft=tmp_path / "int4", verify=False)
