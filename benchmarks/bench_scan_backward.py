"""How a training step's backward through transformers' token-by-token scans grows with the sequence: one Mamba layer
(its PyTorch path, mamba_selective_scan, which the rendered training script runs: it installs no mamba-ssm) and one
RecurrentGemma RG-LRU block, at tiny widths on this CPU, forward and backward timed at 64 to 512 tokens. Each
token's slice of the scan's inputs (`discrete_A[:, :, index]`, `recurrent_gate[:, t]`) gets its gradient
materialised at the whole sequence's size, so the backward grows with the square of the tokens where the forward
grows with the tokens (Mamba's by 4.4x at the last doubling; RG-LRU's, whose slices are smaller, by 2.4x there): the
plan prices these layers' step time as fused kernels would run, and the advice says so
(`plan.training.token_scan_caveat`). Figures are this machine's; the growth, not the times, is the claim.

    python benchmarks/bench_scan_backward.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from bench_activation_memory import NO_SPECIAL_TOKENS, layer_config  # noqa: E402

TOKENS = (64, 128, 256, 512)
LAYERS = {
    "mamba, inner width 2 x hidden, 16 states": ("MambaConfig", dict(state_size=16, expand=2, **NO_SPECIAL_TOKENS)),
    "recurrentgemma, RG-LRU of 256 channels": ("RecurrentGemmaConfig", dict(
        lru_width=256, num_key_value_heads=1, intermediate_size=768, block_types=["recurrent"], **NO_SPECIAL_TOKENS)),
}


def forward_backward_s(cls_name: str, overrides: dict, tokens: int, repeats: int) -> tuple[float, float]:
    """The one-layer model's forward and backward, in seconds (the best of `repeats`), in bf16."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(layer_config(cls_name, **overrides), dtype=torch.bfloat16).train()
    ids = torch.randint(0, 128, (1, tokens))
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        start = time.perf_counter()
        loss = model(input_ids=ids, use_cache=False).logits.float().sum()
        middle = time.perf_counter()
        loss.backward()
        best = min(best[0], middle - start), min(best[1], time.perf_counter() - middle)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    results = {}
    for label, (cls_name, overrides) in LAYERS.items():
        rows = []
        for tokens in TOKENS:
            forward, backward = forward_backward_s(cls_name, overrides, tokens, args.repeats)
            rows.append({"tokens": tokens, "forward_ms": round(forward * 1e3, 1),
                         "backward_ms": round(backward * 1e3, 1)})
        growth = rows[-1]["backward_ms"] / rows[-2]["backward_ms"]
        print(f"{label}: " + ", ".join(f"{r['tokens']} tokens {r['forward_ms']:.1f} / {r['backward_ms']:.1f} ms"
                                      for r in rows) + f" (forward / backward; backward x{growth:.1f} at the last "
              "doubling)", flush=True)
        results[label] = {"rows": rows, "last_doubling_backward_growth": round(growth, 2)}
    write_results("scan_backward", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
