"""The optimized-model artifact: a Hugging Face model folder plus `optiplan.json`, written all or nothing;
and `optiplan.load`, which rebuilds the model with every runtime setting the plan chose.

A folder holds the weights (safetensors), tokenizer, config, `generation_config.json` carrying the runtime
settings transformers understands (quantized or static cache, prompt lookup, drafted tokens), the draft model
in `draft/` when the plan has one, and `optiplan.json` (plan, steps, library versions, checksums, predicted
and measured figures). Where the format allows, plain `AutoModelForCausalLM.from_pretrained` loads it too.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from contextlib import nullcontext
from pathlib import Path

from ..planner.errors import ArtifactError, OptiplanError
from ..planner.fsutil import atomic_folder
from ..planner.measure.runtime import check_model_folder, quiet_libraries, torch_dtype
from ..planner.schema.optimize import ArtifactManifest, Runtime
from .runtime import LoadedModel, check_device, default_device, generation_settings
from .workspace import Workspace, device_kind

MANIFEST = "optiplan.json"
LIBRARIES = ("torch", "transformers", "torchao", "optimum-quanto", "hqq", "safetensors", "accelerate", "triton")


def check_folder(path: Path, allow_pickle: bool = False) -> None:
    """A loadable model folder (see `check_model_folder`), or ArtifactError."""
    check_model_folder(path, allow_pickle, ArtifactError)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


STORED_DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def stored_dtype(path: str | Path) -> str:
    """The dtype a model folder's weights are stored in (config.json's `dtype`, `torch_dtype` before transformers 5),
    in optiplan's names; fp32 where the config names none (transformers' own default)."""
    import json

    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return "fp32"
    name = config.get("dtype") or config.get("torch_dtype") if isinstance(config, dict) else None
    return STORED_DTYPES.get(str(name).removeprefix("torch."), "fp32")


def load(path: str | Path, device: str | None = None, *, dtype: str | None = None, allow_pickle: bool = False,
         attn_implementation: str | None = None, tokenizer: str | Path | None = None) -> LoadedModel:
    """Load a model folder (an optiplan artifact or any Hugging Face causal LM) with its runtime settings;
    `tokenizer` is a folder to take the tokenizer from when the model's folder has none."""
    quiet_libraries()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from .attention import set_attention
    from .packed_weights import PACKED_LIBRARY, PACKED_WEIGHTS_FILE, load_packed
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
    device = check_device(device or default_device())
    if dtype:
        runtime.dtype = dtype
    elif not manifest:  # as stored: an fp32 checkpoint runs in bf16 on a GPU
        stored = stored_dtype(path)
        runtime.dtype = "bf16" if stored == "fp32" and device_kind(device) == "cuda" else stored
    quanto = (runtime.weights or {}).get("library") == "quanto"
    packed = (runtime.weights or {}).get("library") == PACKED_LIBRARY  # optiplan's Triton weight-only GEMM
    if not quanto and not packed:
        check_folder(path, allow_pickle)
    elif quanto and not (path / QUANTO_WEIGHTS_FILE).is_file():
        raise ArtifactError(f"{path}: the manifest names quanto weights but {QUANTO_WEIGHTS_FILE} is missing")
    elif packed and not (path / PACKED_WEIGHTS_FILE).is_file():
        raise ArtifactError(f"{path}: the manifest names packed int weights but {PACKED_WEIGHTS_FILE} is missing")
    tokenizer_folder = Path(tokenizer) if tokenizer else path
    if not any((tokenizer_folder / name).is_file() for name in TOKENIZER_FILES):
        raise ArtifactError(f"{tokenizer_folder}: no tokenizer ({', '.join(TOKENIZER_FILES)}); "
                            + ("pass --tokenizer with the folder of the model's tokenizer" if not tokenizer
                               else "--tokenizer must name a folder that holds one"))
    try:
        if quanto or packed:
            config = AutoConfig.from_pretrained(path, trust_remote_code=False)
            model = (load_quanto if quanto else load_packed)(path, config, device, torch_dtype(runtime.dtype))
            if (path / "generation_config.json").is_file():  # from_config builds its own from config.json
                model.generation_config = GenerationConfig.from_pretrained(path)
        else:
            quantized = "quantization_config" in AutoConfig.from_pretrained(path).to_dict()
            # transformers' default attention: SDPA where it has it for the model, else eager (Gemma 2, gpt-oss),
            # where asking for SDPA by name would refuse the model
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=torch_dtype(runtime.dtype), trust_remote_code=False, use_safetensors=not allow_pickle,
                device_map=device if quantized and device_kind(device) == "cuda" else None)
            model = model.to(device) if not (quantized and device_kind(device) == "cuda") else model
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder, trust_remote_code=False)
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
                                                     trust_remote_code=False)
        draft = draft.to(device).eval()
        if implementation:  # the target's attention, as apply ran the two (`attention.swap_attention` sets both)
            set_attention(draft, implementation)
        from .speculative import configure_draft

        configure_draft(draft, runtime.speculative["num_assistant_tokens"])
    if (runtime.cache or {}).get("kind") == "sinks":
        from .kv_cache import install_position_hook

        install_position_hook(model)
    return LoadedModel(model=model, tokenizer=tokenizer, device=device, runtime=runtime, draft=draft, path=path,
                       manifest=manifest)


def library_versions() -> dict[str, str]:
    """Installed versions of optiplan and of the libraries an artifact or a benchmark result depends on."""
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    out = {"optiplan": __version__}
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
    """The model's generation config with the runtime settings transformers reads from it, so a plain
    `from_pretrained` + `generate` of the folder runs them too."""
    config = ws.model.generation_config
    for key, value in generation_settings(ws.runtime).items():
        setattr(config, key, value)
    return config


def write_artifact(ws: Workspace, out: Path, manifest: ArtifactManifest, force: bool = False,
                   staged: bool = False) -> ArtifactManifest:
    """Write the artifact to a temporary sibling folder, then rename it into place: all or nothing. `staged`: `out`
    is itself a temporary folder of the caller's (apply's staging folder, renamed into place once verified), written
    in place: a sibling of it would be a temporary name nobody removes after a kill."""
    from .packed_weights import PACKED_LIBRARY, save_packed
    from .quantize import save_quanto

    out = Path(out)
    if out.exists() and not force and not staged:
        raise ArtifactError(f"{out} exists; pass --force to replace it")
    if staged:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
    with (nullcontext(out) if staged else atomic_folder(out)) as tmp:
        if (ws.runtime.weights or {}).get("library") == "quanto":
            ws.model.config.save_pretrained(tmp)
            save_quanto(ws.model, tmp)
        elif (ws.runtime.weights or {}).get("library") == PACKED_LIBRARY:
            ws.model.config.save_pretrained(tmp)
            save_packed(ws.model, tmp)
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
