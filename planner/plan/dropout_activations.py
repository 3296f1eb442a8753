"""What a residual dropout keeps for its backward in a training step's layer (`dropout_units`), in units (bytes per
token and hidden unit at 16 bits) as `training_activations` counts a layer's other tensors."""

from __future__ import annotations

from ..schema import ModelSpec

# A dropout on each block's output before the residual add (`ModelSpec.residual_dropout`: GPT-2's and StarCoder 2's
# configs set 0.1, and the script leaves the model's dropout as it is) keeps its mask for the backward: on CUDA and
# ROCm F.dropout runs torch.native_dropout, whose mask is a bool, a byte an element whatever the activations' dtype;
# elsewhere (this CPU, MPS) it multiplies by a mask of the input's dtype, 2 bytes at 16 bits (measured on GPT-2's
# layer: 2.0 units a dropout, two a layer). One dropout a block, but Falcon's one (its MLP's, or its parallel
# layer's: "output = dropout_add(mlp_output, residual, ...)"; a sequential layer's attention output takes
# attention_dropout) and StableLM's one (its MLP's). Attention's own dropout keeps nothing on CUDA (FlashAttention
# regenerates its mask from the RNG state) and is not counted; on a CPU it sends SDPA to its math path, which keeps
# the scores.
DROPOUT_MASK_BYTES = {True: 1.0, False: 2.0}  # by whether the device runs the fused dropout kernel; at 16 bits
RESIDUAL_DROPOUT_SITES = {"falcon": 1, "stablelm": 1}


def dropout_units(spec: ModelSpec, layer: int, fused_dropout: bool, act_bytes: int = 2) -> float:
    """The residual dropouts' masks `layer` keeps, in units at `act_bytes` a value (DROPOUT_MASK_BYTES: the fused
    kernel's bool mask is a byte whatever they are); none where the model sets no dropout."""
    if not spec.residual_dropout:
        return 0.0
    sites = RESIDUAL_DROPOUT_SITES.get(spec.model_type, (spec.mixer(layer) != "none") + spec.has_mlp(layer))
    return DROPOUT_MASK_BYTES[fused_dropout] * sites * (2 / act_bytes if fused_dropout else 1.0)
