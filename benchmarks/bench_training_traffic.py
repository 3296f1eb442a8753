"""The bytes a training step's bandwidth-bound kernels move, against the activations its layers keep.

A decoder layer's training step is more than its matrix products: its norms, rotary embedding, activation function,
residual adds, dtype casts, dropout masks, peft's adapters (a rank-r product reads its input and writes its output
at the memory's speed, not the tensor cores') and the backward of each move bytes at the memory's bandwidth. Their
time grows with the hidden size where the matrix products' grows with its square, so a small model spends a larger
share of its step on them: on the Qwen README's A100 runs a 1.8B model's step had come out 0.8x of the measured
time, a 14B one's 1.07x, with the FLOP rate fitted on the 7B.

This traces one layer's step (forward, the recomputed forward under activation checkpointing, backward) under a
TorchDispatchMode and sums the bytes each operator reads and writes, views excluded, for every operator but the
compute-bound ones (the matrix products of the layer's own weights and the attention kernel, which the FLOP count
prices); a product with a dimension of the adapters' rank is bandwidth-bound and counted. The layer's traffic (a
two-layer model's less a one-layer model's, at two token counts: its slope a token, and what moves whatever the
tokens, a weight's) is printed beside what the training model counts the layer keeping
(`training_activations`), both in bytes a token and hidden unit, with their ratio:
`training_traffic.TRAFFIC_PER_KEPT_BYTE` holds the median ratio measured here for each recipe; what a LoRA layer
moves beyond its bf16 base's, a unit of the widths its adapters read and write, is `ADAPTER_BYTES_PER_WIDTH`.
Dropout runs as CUDA runs it (one fused kernel writing a byte mask: torch's `native_dropout`, where a CPU
decomposes it into a Bernoulli draw, a division and a product).

    python benchmarks/bench_training_traffic.py [--tokens 128 512]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from bench_activation_memory import (  # noqa: E402
    HIDDEN,
    LORA_RANK,
    NO_SPECIAL_TOKENS,
    layer_config,
    predicted_spec,
    rendered_script,
)
from optiplan.planner.plan.training_traffic import TRAFFIC_PER_WEIGHT  # noqa: E402

# (label, config class, overrides): dense layers of the families the training model prices, at the bench's width
LAYERS = (
    ("llama, gated MLP at 4 x hidden", "LlamaConfig", dict(intermediate_size=4 * HIDDEN)),
    ("qwen2, gated MLP at 2.7 x hidden, query-key-value biases", "Qwen2Config",
     dict(intermediate_size=688, **NO_SPECIAL_TOKENS)),
    ("mistral, gated MLP at 3.5 x hidden", "MistralConfig", dict(intermediate_size=896)),
    ("qwen3, query and key norms, gated MLP at 3 x hidden", "Qwen3Config", dict(intermediate_size=3 * HIDDEN)),
    ("gemma3, four norms, fp32-weight norms, gated MLP at 8 x hidden", "Gemma3TextConfig",
     dict(intermediate_size=8 * HIDDEN, layer_types=["full_attention"], **NO_SPECIAL_TOKENS)),
    ("phi3, fused projections, gated MLP at 2.7 x hidden", "Phi3Config",
     dict(intermediate_size=688, **NO_SPECIAL_TOKENS)),
)
# The recipes the rendered script runs (`measured_units`' names): LoRA over a bf16 base (fp32 adapters under bf16
# autocast, dropout 0), the same with the adapters' dropout at 0.05, fp32 weights under bf16 autocast (a full
# fine-tune), a bf16 model without autocast (a full fine-tune under FSDP's mixed-precision policy), an fp32 model
RECIPES = ("lora", "lora-dropout", "autocast", "bf16", "fp32")
# Operators priced by the FLOP count: the layer's own matrix products and attention's kernels
COMPUTE_OPS = frozenset({"mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "_grouped_mm"})
ATTENTION_PREFIX = "_scaled_dot_product"
VIEW_OPS = frozenset({"view", "_unsafe_view", "t", "transpose", "expand", "slice", "select", "as_strided", "detach",
                      "unsqueeze", "squeeze", "permute", "alias", "reshape", "split", "split_with_sizes", "unbind",
                      "chunk", "_reshape_alias", "empty", "empty_like", "lift_fresh", "new_empty", "empty_strided",
                      "scalar_tensor", "_local_scalar_dense", "unsafe_view", "view_as_real", "view_as_complex"})


def cuda_dropout(x, p: float = 0.5, training: bool = True, inplace: bool = False):
    """`torch.nn.functional.dropout` as CUDA runs it: the fused kernel, one pass writing the output and a byte mask."""
    import torch

    if not training or p == 0.0:
        return x
    return torch.native_dropout(x, p, True)[0]


def traffic_bytes(config, tokens: int, recipe: str, checkpointed: bool) -> float:
    """Bytes the bandwidth-bound operators of one training step (forward and backward, the forward twice under
    activation checkpointing) of the config's model read and write: every operator but views and the compute-bound
    products (`COMPUTE_OPS` whose every dimension exceeds the adapters' rank, and attention's kernels)."""
    import torch
    import torch.nn.functional as F
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves
    from transformers import AutoModelForCausalLM

    def nbytes(tree) -> int:
        return sum(t.numel() * t.element_size() for t in tree_leaves(tree) if isinstance(t, torch.Tensor))

    class Traffic(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            name = func.overloadpacket.__name__
            if name in VIEW_OPS or name.startswith(ATTENTION_PREFIX):
                return out
            if name in COMPUTE_OPS:
                dims = [d for t in tree_leaves(args) if isinstance(t, torch.Tensor) for d in t.shape[-2:]]
                if min(dims) > LORA_RANK:
                    return out
            Traffic.total += nbytes((args, kwargs)) + nbytes(out)
            return out

    torch.manual_seed(0)
    autocast = recipe not in ("bf16", "fp32")
    dtype = torch.float32 if recipe in ("autocast", "fp32") else torch.bfloat16
    model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa").train()
    if recipe.startswith("lora"):
        from peft import LoraConfig, get_peft_model

        targets, parameters = rendered_script()[0].adapter_targets(
            model, {"target_modules": "all-linear", "target_parameters": hasattr(config, "num_experts_per_tok")})
        model = get_peft_model(model, LoraConfig(r=LORA_RANK, lora_dropout=0.05 if recipe == "lora-dropout" else 0.0,
                                                 target_modules=targets, target_parameters=parameters))
    if checkpointed:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    ids = torch.randint(0, config.vocab_size, (1, tokens))
    dropout = F.dropout
    F.dropout = cuda_dropout
    try:
        with Traffic(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        with Traffic():
            loss.backward()
    finally:
        F.dropout = dropout
    return Traffic.total


def with_layers(config, layers: int):
    """A copy of the config with `layers` decoder layers, each of its first layer's type."""
    import copy

    model = copy.deepcopy(config)
    model.num_hidden_layers = layers
    if isinstance(getattr(model, "layer_types", None), list):
        model.layer_types = model.layer_types[:1] * layers
    return model


def layer_traffic(config, tokens: int, recipe: str, checkpointed: bool) -> float:
    """One decoder layer's traffic in bytes at `tokens` tokens: a two-layer model's less a one-layer model's."""
    two, one = (traffic_bytes(with_layers(config, n), tokens, recipe, checkpointed) for n in (2, 1))
    return two - one


def split_traffic(config, recipe: str, checkpointed: bool, tokens: tuple[int, int]) -> tuple[float, float]:
    """A layer's traffic as (bytes a token and hidden unit, bytes a weight of the layer's linear layers): the slope
    and the intercept of its traffic over two token counts. What moves once a step whatever the tokens (autocast's
    casts of fp32 weights, each forward's; a weight gradient's accumulation) is the weights', not the tokens'."""
    first, second = (layer_traffic(config, t, recipe, checkpointed) for t in tokens)
    slope = (second - first) / (tokens[1] - tokens[0])
    return slope / config.hidden_size, (first - slope * tokens[0]) / layer_weights(config)


def layer_weights(config) -> int:
    """The weights of a layer's linear layers (a two-layer model's less a one-layer model's)."""
    import torch
    from transformers import AutoModelForCausalLM

    def linear_weights(layers: int) -> int:
        with torch.device("meta"):
            built = AutoModelForCausalLM.from_config(with_layers(config, layers))
        return sum(m.weight.numel() for m in built.modules() if isinstance(m, torch.nn.Linear))

    return linear_weights(2) - linear_weights(1)


def kept_bytes(config, recipe: str, tokens: int) -> float:
    """What the training model counts a layer keeping for its backward on CUDA (no flash output copy, fused dropout),
    in bytes a token and hidden unit, with the recipe's terms (`training.training_prediction`'s composition)."""
    from optiplan.planner.plan.dropout_activations import dropout_units
    from optiplan.planner.plan.fp32_activations import fixed_units
    from optiplan.planner.plan.training_activations import autocast_units, layer_activation_units, lora_units

    spec = predicted_spec(config)
    act_bytes = 4 if recipe == "fp32" else 2
    units = layer_activation_units(spec, 0) + dropout_units(spec, 0, True, act_bytes)
    if recipe.startswith("lora"):
        units += lora_units(spec, 0, LORA_RANK, autocast=True)
    elif recipe == "autocast":
        units += autocast_units(spec, 0)
    elif recipe == "fp32":
        units -= fixed_units(spec, 0, tokens) / 2
    return units * act_bytes / 2


def adapted_width(config) -> float:
    """The widths a layer's adapters read and write, in hidden units (`training.lora_params` at rank 1)."""
    from optiplan.planner.catalog.hardware import resolve_hardware
    from optiplan.planner.plan.state import PlanState
    from optiplan.planner.plan.training import lora_params

    spec = predicted_spec(config)
    state = PlanState(spec=spec, hw=resolve_hardware("a100-80gb-sxm"), devices=1, weight_dtype="bf16",
                      training=frozenset({"mixed-precision", "lora"}))
    return lora_params(state, 1, per_token=True) / spec.num_layers / config.hidden_size


# Mixtures of experts under the script's LoRA: peft's ParamWrapper merges each layer's experts with their adapters
# (W + B A) in every forward, a new tensor of every expert's weights, and the backward computes its full-size gradient
# (`training.recipe_memory`): bytes that go with the experts' weights, not the tokens
MOE_LAYERS = (
    ("mixtral, top-2 of 8 experts at 1 x hidden", "MixtralConfig",
     dict(intermediate_size=HIDDEN, num_local_experts=8, num_experts_per_tok=2, **NO_SPECIAL_TOKENS)),
    ("qwen3-moe, top-8 of 32 experts at 0.375 x hidden", "Qwen3MoeConfig",
     dict(moe_intermediate_size=96, intermediate_size=3 * HIDDEN, num_experts=32, num_experts_per_tok=8,
          decoder_sparse_step=1, mlp_only_layers=[], **NO_SPECIAL_TOKENS)),
)


def expert_weights(config) -> int:
    """The routed experts' weights of a layer: transformers 5's fused 3-D expert parameters."""
    import torch
    from transformers import AutoModelForCausalLM

    def count(layers: int) -> int:
        with torch.device("meta"):
            built = AutoModelForCausalLM.from_config(with_layers(config, layers))
        return sum(p.numel() for p in built.parameters() if p.ndim == 3)

    return count(2) - count(1)


def moe_rows(tokens: tuple[int, int]) -> list[dict]:
    """What a LoRA step moves a routed expert's weight beyond a dense LoRA layer's bytes a weight (the merge of each
    expert with its adapters, its gradient), each MoE layer with and without checkpointing."""
    rows = []
    for label, cls_name, overrides in MOE_LAYERS:
        config = layer_config(cls_name, **overrides)
        experts, weights = expert_weights(config), layer_weights(config) + expert_weights(config)
        for checkpointed in (True, False):
            first, second = (layer_traffic(config, t, "lora", checkpointed) for t in tokens)
            intercept = first - (second - first) / (tokens[1] - tokens[0]) * tokens[0]
            dense = TRAFFIC_PER_WEIGHT[("lora", checkpointed)]  # a dense LoRA layer's bytes a weight
            rows.append({"layer": label, "checkpointed": checkpointed, "expert_weights": experts,
                         "bytes_per_expert_weight": round((intercept - dense * weights) / experts, 2)})
            print(f"{label:<58} lora {'yes' if checkpointed else 'no':>4}  merged experts: "
                  f"{rows[-1]['bytes_per_expert_weight']:.2f} bytes an expert weight")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs=2, default=(128, 512),
                        help="the two token counts whose traffic gives a layer's slope and intercept")
    args = parser.parse_args(argv)
    tokens = tuple(args.tokens)
    rows = []
    print(f"{'layer':<58} {'recipe':<13} {'ckpt':>4} {'traffic':>8} {'kept':>6} {'ratio':>6} {'per weight':>10}")
    for label, cls_name, overrides in LAYERS:
        config = layer_config(cls_name, **overrides)
        width = adapted_width(config)
        for recipe in RECIPES:
            kept = kept_bytes(config, recipe, tokens[0])
            for checkpointed in (True, False):
                traffic, per_weight = split_traffic(config, recipe, checkpointed, tokens)
                row = {"layer": label, "recipe": recipe, "checkpointed": checkpointed,
                       "traffic_bytes": round(traffic, 1), "kept_bytes": round(kept, 2),
                       "ratio": round(traffic / kept, 2), "bytes_per_weight": round(per_weight, 2)}
                rows.append(row)
                print(f"{label:<58} {recipe:<13} {'yes' if checkpointed else 'no':>4} {traffic:>8.1f} {kept:>6.1f} "
                      f"{traffic / kept:>6.2f} {per_weight:>10.2f}")
        # a LoRA layer's traffic beside its bf16 base's, a unit of the widths its adapters read and write
        for row in (r for r in rows if r["layer"] == label and r["recipe"].startswith("lora")):
            base = next(r for r in rows if r["layer"] == label and r["recipe"] == "bf16"
                        and r["checkpointed"] == row["checkpointed"])
            row["adapted_width"] = round(width, 3)
            row["adapter_bytes_per_width"] = round((row["traffic_bytes"] - base["traffic_bytes"]) / width, 2)
    summary = {}
    for recipe in RECIPES:
        for checkpointed in (True, False):
            part = [r for r in rows if r["recipe"] == recipe and r["checkpointed"] == checkpointed]
            key = f"{recipe}{' checkpointed' if checkpointed else ''}"
            if recipe.startswith("lora"):
                values = [r["adapter_bytes_per_width"] for r in part]
                what = "adapters' bytes a unit of width"
            else:
                values = [r["ratio"] for r in part]
                what = "traffic / kept"
            weights = [r["bytes_per_weight"] for r in part]
            summary[key] = {"what": what, "median": round(statistics.median(values), 2), "min": min(values),
                            "max": max(values), "median_bytes_per_weight": round(statistics.median(weights), 2)}
            print(f"{key:<26} {what}: median {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}); "
                  f"bytes a weight: median {statistics.median(weights):.2f} ({min(weights):.2f}-{max(weights):.2f})")
    moe = moe_rows(tokens)
    write_results("training_traffic", {"tokens": list(tokens), "hidden": HIDDEN, "rows": rows, "summary": summary,
                                       "moe_lora": moe})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
