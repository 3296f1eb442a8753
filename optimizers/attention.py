"""Attention kernel swap: eager to PyTorch SDPA (its flash and memory-efficient kernels, on CPU too),
FlashAttention 2 where the package and a GPU are present, flex attention, or optiplan's own registered
implementation.

The registered implementation (`optiplan`) is a plain PyTorch attention plugged in through transformers'
`AttentionInterface`, with its mask function registered in `AttentionMaskInterface` (transformers builds
masks per implementation name, and refuses a name without one). `optiplan_triton` is the same interface over
optiplan's Triton kernels (`optiplan.kernels.flash_attention` for prefill, `flash_decoding` for one-token decode):
on CUDA, or on CPU only in triton's interpreter (TRITON_INTERPRET=1, for tests).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from .workspace import AlreadyInPlace, NotSupportedHere, Workspace, device_kind

OPTIPLAN_ATTENTION = "optiplan"
TRITON_ATTENTION = "optiplan_triton"
IMPLEMENTATIONS = ("eager", "sdpa", "flex_attention", "flash_attention_2", OPTIPLAN_ATTENTION, TRITON_ATTENTION)
# what the manifest's step says runs, beyond the implementation's name
KERNELS = {TRITON_ATTENTION: "Triton kernels optiplan.kernels.flash_attention (prefill) and flash_decoding "
                             "(split-K decode)"}


def _without_unwritten_keys(query, key, value, attention_mask):
    """Keys and values a maskless call attends over. transformers skips the mask where sdpa's `is_causal` (aligned to
    the top left) gives the same: one query, as many queries as keys, or a prompt into an empty static cache, whose
    keys past the prompt's are slots not yet written (masking_utils._ignore_causal_mask_sdpa). The last is the only
    one with fewer queries than keys: there the prompt attends to its own keys only, causally, not to the empty slots
    (aligned to the end of the keys, every prompt token had seen the whole prompt)."""
    q_len, k_len = query.shape[-2], key.shape[-2]
    if attention_mask is None and 1 < q_len < k_len:
        return key[:, :, :q_len], value[:, :, :q_len]
    return key, value


def reference_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                        scaling: float | None = None, **kwargs):
    """Attention in plain PyTorch, softmax in fp32. query (b, h, q, d), key/value (b, kv_h, k, d);
    attention_mask boolean (b, 1, q, k) with True = attend, or None. Returns (b, q, h, d) and no weights."""
    import torch

    key, value = _without_unwritten_keys(query, key, value, attention_mask)
    heads, kv_heads = query.shape[1], key.shape[1]
    if heads != kv_heads:  # grouped-query attention: each key/value head serves heads // kv_heads query heads
        key = key.repeat_interleave(heads // kv_heads, dim=1)
        value = value.repeat_interleave(heads // kv_heads, dim=1)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scale  # (b, h, q, k)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, float("-inf"))
        else:
            scores = scores + attention_mask[..., : key.shape[-2]].float()
    elif query.shape[-2] > 1:  # no mask given: causal, aligned to the end of the keys
        q_len, k_len = query.shape[-2], key.shape[-2]
        causal = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril(k_len - q_len)
        scores = scores.masked_fill(~causal, float("-inf"))
    # a query row masked whole (a left-padded prompt's padding) attends to nothing: zeros, not softmax's NaN, which
    # would spread through every later layer
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0).to(value.dtype)
    out = torch.matmul(probs, value)  # (b, h, q, d)
    return out.transpose(1, 2).contiguous(), None


def triton_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                     sliding_window: int | None = None, softcap: float | None = None, s_aux=None, **kwargs):
    """transformers' attention call on optiplan's Triton kernels: one query token goes to split-K flash decoding,
    more to the prefill kernel. With no mask (transformers skips it when attention is plainly causal) the kernels
    apply causality and the layer's window themselves; with sdpa's boolean mask (padding, static caches, windows
    already in it) they follow the mask. Returns (b, q, h, d) and no weights."""
    import torch

    from ..kernels.flash_attention import flash_attention
    from ..kernels.flash_decoding import flash_decode

    if torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value)):
        # the kernels have no backward pass: a training step through them would leave the projections before them
        # without gradients, silently
        raise RuntimeError("optiplan's Triton attention kernels are inference-only (no backward pass): train with "
                           "sdpa, or run the model under torch.no_grad()")
    key, value = _without_unwritten_keys(query, key, value, attention_mask)
    mask = attention_mask
    if mask is not None:
        mask = mask[..., : key.shape[-2]]
        if mask.dtype != torch.bool:  # an additive mask: 0 where attended, a large negative number elsewhere
            mask = mask > torch.finfo(mask.dtype).min / 2
    window = sliding_window if mask is None else None
    width = value.shape[-1]
    if width > query.shape[-1]:
        raise NotSupportedHere(f"value heads of {width} are wider than the query heads of {query.shape[-1]}: "
                               "optiplan's Triton attention takes them as wide or narrower")
    if width < query.shape[-1]:  # MLA (DeepSeek-V2/V3): values narrower than queries and keys, padded with zeros as
        # transformers pads them for FlashAttention-2; the zero columns are sliced off the output
        value = torch.nn.functional.pad(value, (0, query.shape[-1] - width))
    if query.shape[2] == 1:
        out = flash_decode(query, key, value, scale=scaling, window=window, sink_logits=s_aux, softcap=softcap,
                           key_mask=mask[:, 0, 0, :] if mask is not None else None)
    else:
        out = flash_attention(query, key, value, causal=mask is None and getattr(module, "is_causal", True),
                              scale=scaling, window=window, sink_logits=s_aux, softcap=softcap, mask=mask)
    return out[..., :width].transpose(1, 2), None


def register_optiplan_attention(name: str = OPTIPLAN_ATTENTION) -> str:
    """Register the `optiplan` (or `optiplan_triton`) attention and its mask with transformers; idempotent."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(name, triton_attention if name == TRITON_ATTENTION else reference_attention)
    AttentionMaskInterface.register(name, sdpa_mask)
    return name


def triton_unavailable(device: str) -> str | None:
    """Why the Triton attention cannot run on `device` in this process, or None."""
    from ..kernels.common import unavailable_reason

    return unavailable_reason(device)


def resolve(implementation: str | None, device: str, model=None) -> str:
    """The attention implementation to use: the one asked for, else the fastest this device has for `model`. A model
    transformers has no SDPA attention for (Gemma 2, gpt-oss: `_supports_sdpa` False, which transformers then runs
    eagerly) takes flex attention on CUDA, and nothing fused on CPU."""
    sdpa = model is None or getattr(model, "_supports_sdpa", True)
    name = type(model).__name__ if model is not None else "the model"
    if implementation in (None, "", "auto"):
        if not sdpa:
            # flex attention takes Gemma 2's softcapping and gpt-oss's sinks (transformers' flex_attention_forward);
            # FlashAttention-2 would drop the sinks, and transformers swaps gpt-oss's for a hub kernel
            if device_kind(device) == "cuda":
                return "flex_attention"
            raise NotSupportedHere(f"transformers has no SDPA attention for {name}, and flex attention's kernel does "
                                   "not build on CPU here: the model keeps eager attention")
        if device_kind(device) == "cuda" and importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
        return "sdpa"
    if implementation == "sdpa" and not sdpa:
        raise NotSupportedHere(f"transformers has no SDPA attention for {name}; on CUDA use flex_attention")
    aliases = {"flex": "flex_attention", "flash": "flash_attention_2", "custom": OPTIPLAN_ATTENTION,
               "triton": TRITON_ATTENTION}
    implementation = aliases.get(implementation, implementation)
    if implementation not in IMPLEMENTATIONS:
        raise NotSupportedHere(f"unknown attention implementation {implementation!r}; "
                               f"choose one of {', '.join(IMPLEMENTATIONS)}")
    if implementation == "flash_attention_2":
        if device_kind(device) != "cuda":
            raise NotSupportedHere("flash_attention_2 needs a CUDA GPU; on CPU use sdpa (PyTorch's flash kernel)")
        if importlib.util.find_spec("flash_attn") is None:
            raise NotSupportedHere("flash_attention_2 needs the flash-attn package: pip install flash-attn")
    if implementation == TRITON_ATTENTION and (reason := triton_unavailable(device)):
        raise NotSupportedHere(f"implementation=triton: {reason}")
    return implementation


def set_attention(model, implementation: str) -> None:
    """Switch a loaded model (and its sub-configs) to `implementation`."""
    if implementation == TRITON_ATTENTION and (reason := triton_unavailable(str(model.device))):
        raise NotSupportedHere(f"this model runs optiplan's Triton attention, and {reason}; "
                               f"load it with attn_implementation='sdpa' instead")
    if implementation in (OPTIPLAN_ATTENTION, TRITON_ATTENTION):
        register_optiplan_attention(implementation)
    model.set_attn_implementation(implementation)


def swap_attention(ws: Workspace, params: dict[str, Any]) -> str:
    """Swap eager attention for a fused kernel: SDPA (flash on CPU), FlashAttention 2, flex, or optiplan's own."""
    before = getattr(ws.model.config, "_attn_implementation", None) or "eager"
    implementation = resolve(params.get("implementation"), ws.device, ws.model)
    if implementation == "flex_attention" and device_kind(ws.device) == "cpu":
        # torch 2.13's inductor fails to build flex attention's C++ kernel for the models' masks here (a sliding
        # window, and the padded batches apply and verify time: "InductorError: CppCompileError")
        raise NotSupportedHere("flex attention's compiled kernel does not build on CPU here (torch inductor's "
                               "CppCompileError for the masked, padded batches generate runs); use sdpa")
    if implementation == before:
        raise AlreadyInPlace(f"the model already runs {implementation} attention here (transformers' default on "
                             f"{device_kind(ws.device)}): nothing to swap")
    set_attention(ws.model, implementation)
    ws.runtime.attn_implementation = implementation
    if ws.draft is not None and (implementation != "sdpa" or getattr(ws.draft, "_supports_sdpa", True)):
        set_attention(ws.draft, implementation)  # (a draft transformers has no SDPA for keeps its eager attention)
    kernel = f" ({KERNELS[implementation]})" if implementation in KERNELS else ""
    return f"attention {before} -> {implementation}{kernel}"
