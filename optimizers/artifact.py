"""The optimized-model artifact: a Hugging Face model folder plus `optiplan.json`, written all or nothing;
and `optiplan.load`, which rebuilds the model with every runtime setting the plan chose.

A folder holds the weights (safetensors), tokenizer, config, `generation_config.json` carrying the runtime
settings transformers understands (quantized or static cache, prompt lookup, drafted tokens), the draft model
in `draft/` when the plan has one, and `optiplan.json` (plan, steps, library versions, checksums, predicted
and measured figures). Where the format allows, plain `AutoModelForCausalLM.from_pretrained` loads it too.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..planner.errors import OptiplanError
from ..planner.fsutil import atomic_folder
from ..planner.measure.runtime import torch_dtype
from ..planner.schema.optimize import ArtifactManifest, Runtime
from .base import Workspace, device_kind, quiet_libraries

MANIFEST = "optiplan.json"
LIBRARIES = ("torch", "transformers", "torchao", "optimum-quanto", "hqq", "safetensors", "accelerate")


class ArtifactError(OptiplanError):
    """A folder that cannot be written or loaded as a model."""


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_folder(path: Path, allow_pickle: bool = False) -> None:
    """A loadable model folder: config and safetensors weights (pickle weights only when allowed)."""
    if not path.is_dir():
        raise ArtifactError(f"{path}: not a folder")
    if not (path / "config.json").is_file():
        raise ArtifactError(f"{path}: no config.json; expected a Hugging Face model folder")
    if not list(path.glob("*.safetensors")):
        if list(path.glob("*.bin")) or list(path.glob("*.pt")):
            if not allow_pickle:
                raise ArtifactError(f"{path}: weights are pickle files (*.bin), which can run code when loaded; "
                                    f"convert them to safetensors or pass --allow-pickle if you trust the source")
        else:
            raise ArtifactError(f"{path}: no weights (*.safetensors)")


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

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else (self.model.config.eos_token_id or 0)

    def encode(self, prompts: list[str]):
        """Token ids of `prompts` on the model's device, left-padded when there are several."""
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        batch = self.tokenizer(prompts, return_tensors="pt", padding=len(prompts) > 1)
        return batch.input_ids.to(self.device)

    def generate_kwargs(self) -> dict[str, Any]:
        """`generate` arguments for the runtime settings: cache, speculation, compile."""
        rt, kw = self.runtime, {"do_sample": False, "pad_token_id": self.pad_token_id}
        cache = rt.cache or {}
        if cache.get("kind") == "quantized":
            kw["cache_implementation"] = "quantized"
            kw["cache_config"] = {k: v for k, v in cache.items() if k != "kind"}
        elif cache.get("kind") == "static":
            kw["cache_implementation"] = "static"
        elif cache.get("kind") == "sinks":
            from .kv_cache import make_sink_cache

            kw["cache"] = make_sink_cache(self.model, cache["num_sinks"], cache["window"])
        if rt.compile:
            from transformers import CompileConfig

            config = CompileConfig(fullgraph=rt.compile.get("fullgraph", True), mode=rt.compile.get("mode", "default"),
                                   dynamic=rt.compile.get("dynamic", False))
            # generate auto-compiles on accelerators only; this flag is transformers' own switch for other devices
            config._compile_all_devices = device_kind(self.device) == "cpu"
            kw["compile_config"] = config
        spec = rt.speculative or {}
        if spec.get("kind") == "draft" and self.draft is not None:
            kw["assistant_model"] = self.draft  # its generation config carries the drafting settings
        elif spec.get("kind") == "ngram":
            kw.update(prompt_lookup_num_tokens=spec["prompt_lookup_num_tokens"],
                      max_matching_ngram_size=spec.get("max_matching_ngram_size", 2))
        return kw

    def generate(self, input_ids, **kwargs):
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

    def generate_many(self, prompts: list[str], max_new_tokens: int) -> int:
        """Serve every prompt (continuous batching, one padded batch, or one at a time for speculation);
        returns the number of tokens generated."""
        import torch

        if self.runtime.continuous_batching:
            from transformers import GenerationConfig
            from transformers.generation.configuration_utils import ContinuousBatchingConfig

            cb = {k: v for k, v in self.runtime.continuous_batching.items() if k != "cache_bytes"}
            config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=-1,
                                      pad_token_id=self.pad_token_id)
            inputs = [self.tokenizer(p).input_ids for p in prompts]
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


def load(path: str | Path, device: str | None = None, *, dtype: str | None = None, allow_pickle: bool = False,
         attn_implementation: str | None = None) -> LoadedModel:
    """Load a model folder (an optiplan artifact or any Hugging Face causal LM) with its runtime settings."""
    quiet_libraries()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from .attention import set_attention
    from .quantize import QUANTO_WEIGHTS_FILE, load_quanto

    path = Path(path)
    manifest = None
    if (path / MANIFEST).is_file():
        try:
            manifest = ArtifactManifest.model_validate_json((path / MANIFEST).read_text())
        except ValueError as exc:
            raise ArtifactError(f"{path / MANIFEST}: not an optiplan manifest this version reads: "
                                f"{str(exc).splitlines()[0]}") from exc
    runtime = manifest.runtime.model_copy(deep=True) if manifest else Runtime()
    device = device or default_device()
    if dtype:
        runtime.dtype = dtype
    elif not manifest and device_kind(device) == "cuda":
        runtime.dtype = "bf16"
    quanto = (runtime.weights or {}).get("library") == "quanto"
    if not quanto:
        check_folder(path, allow_pickle)
    elif not (path / QUANTO_WEIGHTS_FILE).is_file():
        raise ArtifactError(f"{path}: the manifest names quanto weights but {QUANTO_WEIGHTS_FILE} is missing")
    try:
        if quanto:
            config = AutoConfig.from_pretrained(path, trust_remote_code=False)
            model = load_quanto(path, config, device, torch_dtype(runtime.dtype))
        else:
            quantized = "quantization_config" in AutoConfig.from_pretrained(path).to_dict()
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=torch_dtype(runtime.dtype), trust_remote_code=False, use_safetensors=not allow_pickle,
                attn_implementation="sdpa", device_map=device if quantized and device_kind(device) == "cuda" else None)
            model = model.to(device) if not (quantized and device_kind(device) == "cuda") else model
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except OptiplanError:
        raise
    except Exception as exc:
        raise ArtifactError(f"{path}: transformers cannot load it: {str(exc).strip().splitlines()[0]}") from exc
    model.eval()
    implementation = attn_implementation or runtime.attn_implementation
    if implementation:
        set_attention(model, implementation)
    draft = None
    if (runtime.speculative or {}).get("kind") == "draft":
        draft_path = path / runtime.speculative["path"]
        if not (draft_path / "config.json").is_file():
            raise ArtifactError(f"{path}: the plan uses a draft model but {draft_path} is missing")
        draft = AutoModelForCausalLM.from_pretrained(draft_path, dtype=torch_dtype(runtime.dtype),
                                                     trust_remote_code=False, attn_implementation="sdpa")
        draft = draft.to(device).eval()
        from .speculative import configure_draft

        configure_draft(draft, runtime.speculative["num_assistant_tokens"])
    if (runtime.cache or {}).get("kind") == "sinks":
        from .kv_cache import install_position_hook

        install_position_hook(model)
    return LoadedModel(model=model, tokenizer=tokenizer, device=device, runtime=runtime, draft=draft, path=path,
                       manifest=manifest)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries an artifact or a benchmark result depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def sha256_files(folder: Path) -> dict[str, str]:
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != MANIFEST:
            digest = hashlib.sha256()
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            out[f.relative_to(folder).as_posix()] = digest.hexdigest()
    return out


def _generation_config(ws: Workspace):
    """The model's generation config with the runtime settings transformers reads from it."""
    config = ws.model.generation_config
    rt = ws.runtime
    cache = rt.cache or {}
    if cache.get("kind") == "quantized":
        config.cache_implementation = "quantized"
        config.cache_config = {k: v for k, v in cache.items() if k != "kind"}
    elif cache.get("kind") == "static":
        config.cache_implementation = "static"
    spec = rt.speculative or {}
    if spec.get("kind") == "ngram":
        config.prompt_lookup_num_tokens = spec["prompt_lookup_num_tokens"]
        config.max_matching_ngram_size = spec.get("max_matching_ngram_size", 2)
    return config


def write_artifact(ws: Workspace, out: Path, manifest: ArtifactManifest, force: bool = False) -> ArtifactManifest:
    """Write the artifact to a temporary sibling folder, then rename it into place: all or nothing."""
    from .quantize import save_quanto

    out = Path(out)
    if out.exists() and not force:
        raise ArtifactError(f"{out} exists; pass --force to replace it")
    with atomic_folder(out) as tmp:
        if (ws.runtime.weights or {}).get("library") == "quanto":
            ws.model.config.save_pretrained(tmp)
            save_quanto(ws.model, tmp)
        else:
            ws.model.save_pretrained(tmp)
        _generation_config(ws).save_pretrained(tmp)
        ws.tokenizer.save_pretrained(tmp)
        if ws.draft is not None:  # its generation config carries the tuned drafting settings
            ws.draft.save_pretrained(tmp / "draft")
            ws.tokenizer.save_pretrained(tmp / "draft")
        final = manifest.model_copy(update={"sha256": sha256_files(tmp), "libraries": library_versions(),
                                            "runtime": ws.runtime,
                                            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        (tmp / MANIFEST).write_text(final.model_dump_json(indent=2))
    return final


def verify_checksums(path: Path) -> list[str]:
    """Files whose checksum no longer matches the manifest (empty when the artifact is intact)."""
    manifest = ArtifactManifest.model_validate_json((Path(path) / MANIFEST).read_text())
    now = sha256_files(Path(path))
    return sorted(f for f, digest in manifest.sha256.items() if now.get(f) != digest)
