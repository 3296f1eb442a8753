"""Memory a training step's loss holds per logit: a one-layer Llama with a 32,000-token vocabulary in bf16 runs
transformers' causal-LM loss and its backward at two sequence lengths, each in a fresh process, on the CPU; the
growth of the peak resident memory over the growth in logits is the bytes each logit holds at the loss's peak (the
model's other activations, at hidden size 64, are a rounding error beside them). `planner/plan/training.py`
(LOGIT_BYTES) counts it. The same is measured for a model whose own loss does not upcast its 16-bit logits (Qwen's
modeling file: "shift_logits = lm_logits[..., :-1, :].contiguous()" into CrossEntropyLoss), run without autocast as
DeepSpeed's fp16 runs it: the `logit_bytes` of a published run's `training.Recipe`; and for an fp32 model (a full
fine-tune without mixed precision), whose logits need no copy but whose gradients are fp32.

    python benchmarks/bench_loss_memory.py [--short 1024] [--long 8192]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

VOCAB = 32000
CHILD = """
import resource, sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
torch.set_num_threads(1)
config = LlamaConfig(vocab_size={vocab}, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                     num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=65536,
                     tie_word_embeddings=False)
model = LlamaForCausalLM(config).to({dtype})
ids = torch.randint(0, {vocab}, (1, {tokens}))
def own_loss(ids):  # the shifted copy is the forward's local, freed before the backward, as in Qwen's model
    shift = model(input_ids=ids).logits[..., :-1, :].contiguous()
    return torch.nn.functional.cross_entropy(shift.view(-1, {vocab}), ids[..., 1:].reshape(-1))
(model(input_ids=ids, labels=ids).loss if {upcast} else own_loss(ids)).backward()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def peak_bytes(tokens: int, upcast: bool = True, dtype: str = "torch.bfloat16") -> int:
    """Peak resident bytes of a fresh process running the loss and its backward over `tokens` tokens (Linux reports
    ru_maxrss in KiB): transformers' loss (`upcast`), or a 16-bit cross-entropy of the shifted logits; the model in
    `dtype`."""
    child = CHILD.format(vocab=VOCAB, tokens=tokens, upcast=upcast, dtype=dtype)
    out = subprocess.run([sys.executable, "-c", child], check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=1024)
    parser.add_argument("--long", type=int, default=8192)
    args = parser.parse_args()
    import torch
    import transformers

    results = {"vocab": VOCAB, "tokens": [args.short, args.long], "transformers": transformers.__version__,
               "torch": torch.__version__}
    for name, upcast, dtype in (("transformers_loss", True, "torch.bfloat16"), ("16bit_loss", False, "torch.bfloat16"),
                                ("fp32_model_loss", True, "torch.float32")):
        short, long = peak_bytes(args.short, upcast, dtype), peak_bytes(args.long, upcast, dtype)
        per_logit = (long - short) / ((args.long - args.short) * VOCAB)
        print(f"{name}: peak resident memory {short / 1e6:,.0f} MB at {args.short:,} tokens, {long / 1e6:,.0f} MB "
              f"at {args.long:,}: {per_logit:.1f} bytes per logit (transformers {transformers.__version__}, torch "
              f"{torch.__version__})")
        results[name] = {"peak_bytes": [short, long], "bytes_per_logit": round(per_logit, 2)}
    write_results("loss_memory", results)


if __name__ == "__main__":
    main()
