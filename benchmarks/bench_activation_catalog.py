"""Whole decoder layers at catalog models' own widths, measured against the training model's count as
bench_activation_memory.py measures its small layers (transformers' eager layers in bf16, SDPA, autograd's saved-tensor
hooks, this CPU), at 128 tokens: about a minute.

    python benchmarks/bench_activation_catalog.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from bench_activation_memory import measured_units, predicted_units  # noqa: E402

TOKENS = 128
# The constants were read at a head width of 32 and a hidden size of 256 (bench_activation_memory.py's layers); these
# layers check them where the heads, the rotary tables, the kernel's statistics and the router's and the dispatch's
# per-token bytes weigh what they do in the models planned for. Qwen3-Next's attention layer takes 8 experts, not 512,
# to fit this machine's time. Layers with attention dropout run SDPA's math path here, as a CPU training step would
# (`math_attention_units`; before it was counted they came out 0.60-0.69 of what they keep at 128 tokens). Left out
# are the layers this CPU runs on its math path where a CUDA kernel would run and keep no scores: latent attention
# (DeepSeek's query and key heads, 192 wide, differ from its values', 128) and Falcon-7B's one key-value head
# expanded to 71 query heads (0.77).
CATALOG = (
    ("llama-3.1-8b", {}),
    ("qwen2.5-7b", {}),
    ("mistral-7b-v0.1", {}),
    ("olmo-2-7b", {}),
    ("gpt-j-6b", {}),
    ("gemma-3-1b", {}),
    ("phi-3-mini-4k", {}),
    ("stablelm-2-1.6b", {}),
    ("qwen3-next-80b-a3b", dict(layer_types=["full_attention"], num_experts=8, num_experts_per_tok=2)),
    ("mixtral-8x7b", {}),
    ("qwen3-30b-a3b", {}),
    ("qwen1.5-moe-a2.7b", {}),
    ("gpt-oss-20b", dict(layer_types=["full_attention"])),  # eager attention, its whole score matrix
    # attention dropout (their configs' 0.1): SDPA's math path on this CPU, its scores kept
    ("gpt2", {}),
    ("starcoder2-7b", {}),
    ("granite-3.1-8b", {}),
)


def catalog_layer_config(name: str, **overrides):
    """A one-layer config of the catalog model's own widths (its stored config), with `overrides`; its vocabulary cut
    to 128 tokens (a layer's units leave the embedding and the head out), so that it builds in seconds."""
    import transformers
    from optiplan.planner.catalog.models import catalog_entry

    fields = {k: v for k, v in catalog_entry(name)["config"].items() if k not in ("architectures", "auto_map")}
    cls = transformers.CONFIG_MAPPING[fields.pop("model_type")]
    layers = "n_layer" if "n_layer" in fields else "num_hidden_layers"
    small = dict(vocab_size=128, pad_token_id=0, bos_token_id=0, eos_token_id=0)
    return cls(**{**fields, layers: 1, **small, **overrides})


def catalog_rows(tokens: int) -> list[dict]:
    """Each CATALOG layer, measured and counted (bench_activation_memory's `predicted_units`)."""
    rows = []
    for name, overrides in CATALOG:
        config = catalog_layer_config(name, **overrides)
        measured, predicted = measured_units(config, tokens), predicted_units(config, tokens)
        rows.append({"model": name, "measured_units": round(measured, 3), "predicted_units": round(predicted, 3),
                     "ratio": round(predicted / measured, 4)})
        print(f"  {name:<24} measured {measured:6.2f}  predicted {predicted:6.2f}  ratio {predicted / measured:.3f}")
    return rows


def main() -> int:
    print(f"whole layers at catalog models' widths, {TOKENS} tokens (bytes per token and hidden unit at 16 bits):")
    rows = catalog_rows(TOKENS)
    worst = max(rows, key=lambda r: abs(r["ratio"] - 1))
    print(f"  largest error {abs(worst['ratio'] - 1):.1%} ({worst['model']}) over {len(rows)} layers")
    write_results("activation_catalog", {"tokens": TOKENS, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
