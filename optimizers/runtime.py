"""A loaded model with its runtime settings (`LoadedModel`): what `optiplan.load` returns and how a user runs what
`optiplan apply` wrote. `generation_settings` is the one mapping of a plan's runtime settings to `generate`'s
arguments; the artifact writes the same ones into the folder's generation config."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..planner.errors import RequestError
from ..planner.schema.optimize import ArtifactManifest, Runtime
from .workspace import Workspace, device_kind

Prompt = str | list[int]  # text, or token ids
RECOMPILE_LIMIT = 64


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(device: str) -> str:
    """`device`, or a RequestError where this machine has no such device (before any model is blamed for it)."""
    import torch

    if device_kind(device) == "cuda" and not torch.cuda.is_available():
        raise RequestError(f"--device {device}: this machine has no CUDA device torch can use "
                           f"(torch {torch.__version__}{'' if torch.version.cuda else ', a CPU-only build'})")
    return device


def dtype_hint(dtype: str, device: str) -> str:
    """A word where the dtype is slow on this machine: 16-bit on a CPU without native bf16 (--dtype fp32 trades the
    weights' size for speed)."""
    from ..planner.machine.probe import cpu_has_bf16

    if dtype in ("bf16", "fp16") and device_kind(device) != "cuda" and not cpu_has_bf16():
        return f"; this CPU has no native {dtype} matmul: --dtype fp32 runs faster, in twice the memory"
    return ""


def generation_settings(runtime: Runtime) -> dict[str, Any]:
    """The plain (serializable) `generate` settings of a runtime: a quantized or static cache, prompt lookup."""
    out: dict[str, Any] = {}
    cache = runtime.cache or {}
    if cache.get("kind") == "quantized":
        out["cache_implementation"] = "quantized"
        out["cache_config"] = {k: v for k, v in cache.items() if k != "kind"}
    elif cache.get("kind") == "static":
        out["cache_implementation"] = "static"
    spec = runtime.speculative or {}
    if spec.get("kind") == "ngram":
        out["prompt_lookup_num_tokens"] = spec["prompt_lookup_num_tokens"]
        out["max_matching_ngram_size"] = spec.get("max_matching_ngram_size", 2)
    return out


@dataclass
class LoadedModel:
    """A model with its runtime settings: `generate` applies them, so callers need not know the plan."""

    model: Any
    tokenizer: Any
    device: str
    runtime: Runtime = field(default_factory=Runtime)
    draft: Any = None
    path: Path | None = None
    manifest: ArtifactManifest | None = None

    @classmethod
    def of(cls, ws: Workspace) -> LoadedModel:
        """The model a workspace holds as it stands: its runtime settings and draft so far."""
        return cls(ws.model, ws.tokenizer, ws.device, ws.runtime, ws.draft)

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id if self.tokenizer is not None else None
        eos = self.model.config.eos_token_id
        return pad if pad is not None else (eos[0] if isinstance(eos, list) else eos) or 0

    def token_ids(self, prompt: Prompt) -> list[int]:
        """A prompt's token ids: text goes through the tokenizer, a list of ids is taken as it is (a model saved
        without a tokenizer, e.g. the random-weight models calibration measures, is prompted with ids)."""
        return list(prompt) if not isinstance(prompt, str) else self.tokenizer(prompt).input_ids

    def encode(self, prompts: list[Prompt]):
        """Token ids of `prompts` on the model's device, (batch, tokens), left-padded when there are several."""
        import torch

        rows = [self.token_ids(p) for p in prompts]
        width = max(len(r) for r in rows)
        return torch.tensor([[self.pad_token_id] * (width - len(r)) + r for r in rows]).to(self.device)

    def generate_kwargs(self) -> dict[str, Any]:
        """`generate` arguments for the runtime settings: cache, speculation, compile."""
        rt = self.runtime
        kw = {"do_sample": False, "pad_token_id": self.pad_token_id, **generation_settings(rt)}
        if (rt.cache or {}).get("kind") == "sinks":
            from .kv_cache import make_sink_cache

            kw["cache"] = make_sink_cache(self.model, rt.cache["num_sinks"], rt.cache["window"])
        if rt.compile:
            import torch._dynamo
            from transformers import CompileConfig

            # every model instance, batch size and cache length is a recompile of the same forward; with fullgraph
            # hitting dynamo's default limit of 8 is a hard failure (a process that loads a model twice and serves
            # batch 1 and batch 4 is already near it), so leave room
            cfg = torch._dynamo.config
            cfg.recompile_limit = max(cfg.recompile_limit, RECOMPILE_LIMIT)
            cfg.accumulated_recompile_limit = max(cfg.accumulated_recompile_limit, RECOMPILE_LIMIT * 16)

            config = CompileConfig(fullgraph=rt.compile.get("fullgraph", True), mode=rt.compile.get("mode", "default"),
                                   dynamic=rt.compile.get("dynamic", False))
            # generate auto-compiles on accelerators only; this flag is transformers' own switch for other devices
            config._compile_all_devices = device_kind(self.device) == "cpu"
            kw["compile_config"] = config
        if (rt.speculative or {}).get("kind") == "draft" and self.draft is not None:
            kw["assistant_model"] = self.draft  # its generation config carries the drafting settings
        return kw

    def generate(self, input_ids, **kwargs):
        """`model.generate` with the runtime settings the plan chose (cache, speculation, compile), greedy by
        default; `kwargs` override them (e.g. `max_new_tokens`). `input_ids` (batch, tokens) on the model's device,
        left-padded when batch > 1 (`encode` makes them). Returns the ids, prompt included."""
        import torch

        attention_mask = kwargs.pop("attention_mask", None)
        if attention_mask is None:
            attention_mask = (input_ids != self.pad_token_id).long() if input_ids.shape[0] > 1 else \
                torch.ones_like(input_ids)
        with torch.no_grad():
            return self.model.generate(input_ids, attention_mask=attention_mask,
                                       **{**self.generate_kwargs(), **kwargs})

    def generate_text(self, prompt: str, max_new_tokens: int = 32) -> str:
        """Greedy continuation of `prompt`, as text."""
        ids = self.encode([prompt])
        out = self.generate(ids, max_new_tokens=max_new_tokens)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    def generate_many(self, prompts: list[Prompt], max_new_tokens: int) -> int:
        """Serve every prompt the way the plan serves a batch: continuous batching (`generate_batch`) where it
        was applied, one padded batch otherwise, one at a time where the runtime serves batch 1 only (assisted
        generation, the sink cache); returns the number of tokens generated."""
        import torch

        if self.runtime.continuous_batching:
            from transformers import GenerationConfig
            from transformers.generation.configuration_utils import ContinuousBatchingConfig

            cb = {k: v for k, v in self.runtime.continuous_batching.items() if k != "cache_bytes"}
            config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=-1,
                                      pad_token_id=self.pad_token_id)
            inputs = [self.token_ids(p) for p in prompts]
            with torch.no_grad():
                out = self.model.generate_batch(inputs, generation_config=config,
                                                continuous_batching_config=ContinuousBatchingConfig(**cb))
            return sum(len(r.generated_tokens) for r in out.values())
        if self.runtime.speculative or (self.runtime.cache or {}).get("kind") == "sinks":
            total = 0  # assisted generation and the sink cache serve batch 1
            for p in prompts:
                ids = self.encode([p])
                total += self.generate(ids, max_new_tokens=max_new_tokens,
                                       min_new_tokens=max_new_tokens).shape[1] - ids.shape[1]
            return total
        ids = self.encode(list(prompts))
        out = self.generate(ids, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens)
        return (out.shape[1] - ids.shape[1]) * len(prompts)
