"""KV-cache bytes equal those of a real transformers cache, filled by a forward pass of a
reduced-width copy of every catalog model, at a context inside and one beyond its sliding window."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from optiplan import profiles  # noqa: E402
from optiplan.planner.analytic.kvcache import kv_cache_bytes  # noqa: E402
from optiplan.planner.catalog.model_spec import model_spec_from_config  # noqa: E402
from transformers_oracle import real_cache_bytes, reduced_config  # noqa: E402


@pytest.mark.parametrize("name", profiles.model_names())
def test_kv_cache_bytes_match_real_cache(name, catalog_entries):
    fields = reduced_config(catalog_entries[name]["config"])
    spec = model_spec_from_config(fields, name, "reduced copy")
    for tokens in (6, 20):  # windows are shrunk to 8 tokens: below and beyond them
        real = real_cache_bytes(fields, tokens)
        predicted = kv_cache_bytes(spec, tokens, "fp32", layout="transformers")
        assert predicted == pytest.approx(real, rel=0.01), f"{name} at {tokens} tokens: {predicted} vs {real}"


def test_reduced_copies_keep_windows_and_latents(catalog_entries):
    """The reduction keeps what the comparison is about: windows where the model has them, MLA."""
    windowed = [n for n, e in catalog_entries.items()
                if any(model_spec_from_config(reduced_config(e["config"]), n, "r").layer_windows)]
    assert {"gemma-2-9b", "gemma-3-1b", "mistral-7b-v0.1", "phi-3-mini-4k"} <= set(windowed)
    mla = [n for n, e in catalog_entries.items()
           if model_spec_from_config(reduced_config(e["config"]), n, "r").mla is not None]
    assert {"deepseek-v3", "deepseek-v2-lite"} <= set(mla)
