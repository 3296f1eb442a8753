"""Speculative decoding in transformers' assisted generation: a draft model (`assistant_model`) or prompt
lookup (`prompt_lookup_num_tokens`). Greedy output is identical to the target's by construction; the gain
depends on how many drafted tokens the target accepts, which is measured here by counting the target's
forward passes, and on the draft's cost per token.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .kv_cache import layer_types
from .quantize import QUANTO_WEIGHTS_FILE
from .workspace import NotSupportedHere, Workspace

DRAFT_TOKEN_CHOICES = (2, 3, 4, 6, 8)  # drafted tokens per step tried when tuning
TUNE_PROMPT = "The for statement is used to iterate over the elements of a sequence"
TUNE_TOKENS = 48


def count_forwards(model):
    """A context manager counting `model`'s forward passes: yields a one-element list with the count."""
    from contextlib import contextmanager

    @contextmanager
    def counting():
        count = [0]
        handle = model.register_forward_pre_hook(lambda *a: count.__setitem__(0, count[0] + 1))
        try:
            yield count
        finally:
            handle.remove()

    return counting()


def acceptance(new_tokens: int, target_passes: int, drafted_per_pass: int) -> dict[str, float]:
    """Acceptance rate from counts. In assisted generation every target pass (the first one included: it
    runs the prompt and the first candidates together) verifies `drafted_per_pass` tokens and yields the
    accepted ones plus one of its own."""
    passes = max(target_passes, 1)
    accepted = max(new_tokens - passes, 0)
    rate = min(accepted / (passes * drafted_per_pass), 1.0) if drafted_per_pass else 0.0
    return {"acceptance_rate": rate, "tokens_per_target_pass": new_tokens / passes,
            "drafted_per_pass": float(drafted_per_pass)}


def configure_draft(draft, num_tokens: int) -> None:
    """Assisted generation reads the drafting settings from the draft's own generation config."""
    config = draft.generation_config
    config.num_assistant_tokens = num_tokens
    config.num_assistant_tokens_schedule = "constant"  # the heuristic schedule drifts; we tuned the number
    config.assistant_confidence_threshold = 0.0  # draft every token asked for


def measure_acceptance(ws_model, tokenizer, generate_kwargs: dict[str, Any], device: str, drafted: int,
                       prompt: str = TUNE_PROMPT, new_tokens: int = TUNE_TOKENS) -> dict[str, float]:
    """Generate greedily with speculation and count the target's forward passes."""
    import torch

    ids = tokenizer([prompt], return_tensors="pt").input_ids.to(device)
    with torch.no_grad(), count_forwards(ws_model) as passes:
        start = time.perf_counter()
        ws_model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                          pad_token_id=tokenizer.pad_token_id or 0, **generate_kwargs)
        seconds = time.perf_counter() - start
    return {**acceptance(new_tokens, passes[0], drafted), "seconds": seconds}


def refuse_stateful(ws: Workspace) -> None:
    """transformers' assisted generation cannot roll a recurrent state back to the accepted tokens, and refuses a
    stateful model (Jamba's, Qwen3-Next's: generation/utils.py, "assisted generation is not supported with stateful
    models")."""
    # (LFM2's short convolutions keep state too, which transformers does not mark: its assisted generation diverged
    # silently, transformers PR #46937)
    state = set(layer_types(ws.model.config)) - {"full_attention", "sliding_attention", "chunked_attention"}
    if getattr(ws.model, "_is_stateful", False) or state:
        raise NotSupportedHere(f"assisted generation is not supported with stateful models: transformers cannot roll "
                               f"{type(ws.model).__name__}'s recurrent state back to the accepted tokens")


def draft_model(ws: Workspace, params: dict[str, Any]) -> str:
    """Speculative decoding with a smaller draft model of the same tokenizer; drafted tokens per step tuned here."""
    from transformers import AutoModelForCausalLM

    from ..planner.measure.runtime import torch_dtype

    refuse_stateful(ws)

    path = params.get("draft")
    if not path:
        raise NotSupportedHere("spec-draft needs a draft model: pass --draft PATH (a smaller model of the same "
                               "tokenizer)")
    path = Path(path)
    if not (path / "config.json").is_file():
        raise NotSupportedHere(f"draft model {path}: no config.json there")
    if (path / QUANTO_WEIGHTS_FILE).is_file():
        raise NotSupportedHere(f"draft model {path} is an optiplan folder of quanto weights, which transformers does "
                               "not load: give the draft's own checkpoint (a draft is small; its weights stay 16-bit)")
    try:
        draft = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(ws.runtime.dtype),
                                                     trust_remote_code=False,
                                                     attn_implementation=ws.runtime.attn_implementation)
    except (OSError, ValueError) as exc:
        raise NotSupportedHere(f"draft model {path} does not load: {str(exc).strip().splitlines()[0]}") from exc
    draft = draft.to(ws.device).eval()
    if draft.config.vocab_size != ws.model.config.vocab_size:
        raise NotSupportedHere(f"draft model {path} has vocabulary {draft.config.vocab_size}, the target "
                               f"{ws.model.config.vocab_size}: speculative decoding needs the same tokenizer")
    ws.draft = draft
    choices = [int(params["num_assistant_tokens"])] if params.get("num_assistant_tokens") else DRAFT_TOKEN_CHOICES
    trials = {}
    for k in choices:
        configure_draft(draft, k)
        kwargs = {"assistant_model": draft}
        measure_acceptance(ws.model, ws.tokenizer, kwargs, ws.device, k, new_tokens=8)  # warm-up
        trials[k] = measure_acceptance(ws.model, ws.tokenizer, kwargs, ws.device, k)
    best = min(trials, key=lambda k: trials[k]["seconds"])
    configure_draft(draft, best)
    ws.runtime.speculative = {"kind": "draft", "path": "draft", "num_assistant_tokens": best,
                              "acceptance_rate": round(trials[best]["acceptance_rate"], 4)}
    tried = ", ".join(f"{k}: {t['seconds'] * 1e3:.0f} ms" for k, t in trials.items())
    return (f"draft {path.name}, {best} drafted tokens per step (tried {tried}), "
            f"acceptance {trials[best]['acceptance_rate']:.0%}")


def prompt_lookup(ws: Workspace, params: dict[str, Any]) -> str:
    """Prompt-lookup speculation: draft tokens copied from earlier n-grams of the context, no draft model."""
    refuse_stateful(ws)
    tokens = int(params.get("prompt_lookup_num_tokens", 10))
    ws.runtime.speculative = {"kind": "ngram", "prompt_lookup_num_tokens": tokens,
                              "max_matching_ngram_size": int(params.get("max_matching_ngram_size", 2))}
    return f"prompt lookup: up to {tokens} tokens copied from matching n-grams of the context"
