"""What a Kubernetes Deployment of a config needs beyond the engine's options: the GPU resource to ask for, a name
Kubernetes takes, the command line a container of the engine's image runs, and the files the user copies onto the
weights volume, which a pod waits for before its server starts."""

from __future__ import annotations

import re
import shlex

from ..schema import HardwareSpec
from .config import CONTAINER_EXECUTABLES, EngineConfig


def gpu_resource(hw: HardwareSpec) -> str:
    return "amd.com/gpu" if hw.features.backend == "rocm" else "nvidia.com/gpu"


def k8s_name(name: str) -> str:
    """A DNS-1035 label (a Service's name): lowercase ASCII letters, digits and '-', a letter first, none last."""
    out = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"
    out = out if out[0].isalpha() else f"m-{out}"
    return out[:50].rstrip("-")


def wait_command(cfg: EngineConfig) -> str:
    """The init container's shell loop: until every file the user copies onto the volume is there."""
    present = " && ".join(f"[ -e {shlex.quote(path)} ]" for path in cfg.local_files)
    folders = " ".join(sorted({shlex.quote(path.rsplit("/", 1)[0]) for path in cfg.local_files}))
    return (f"mkdir -p {folders}; until {present}; do echo 'waiting for {' '.join(cfg.local_files)} (see the "
            "README)'; sleep 10; done")


def container_argv(cfg: EngineConfig) -> list[str]:
    """The command line a container of the engine's image runs: the engine's options file where the image mounts it,
    the executable by its path in the image where that is off the image's PATH (llama.cpp's /app/llama-server)."""
    argv = cfg.argv("/config/extra-llm-api-options.yaml" if cfg.extra else None)
    return [CONTAINER_EXECUTABLES.get(cfg.engine, argv[0]), *argv[1:]]


# the init container a Deployment's pod waits in until the files the user copies onto its volume are there
WAIT_CONTAINER = "wait-for-files"


def on_volume(cfg: EngineConfig, path: str, volume: str, waits: bool) -> str:
    """Where the pods read a file or folder the user makes or downloads under models/ (`path`, ./models/... or
    models/...): local/ on the weights volume, mounted at /models; a note says to copy it there. `waits`: the pod
    waits for it in an init container (a Deployment's), into which it is copied; otherwise the server would start
    without it, fail, and restart until it is there."""
    name = path.removeprefix("./").removeprefix("models/")
    where = f"/models/local/{name}"
    if waits:  # copied under a name of its own, then renamed: the server starts on the whole of it
        cfg.local_files.append(where)
        cfg.notes.append(f"copy {path} onto the {volume} volume as local/{name}: the pod waits in its init container "
                         f"until it is there (kubectl cp {path} <pod>:{where}.partial -c {WAIT_CONTAINER} && kubectl "
                         f"exec <pod> -c {WAIT_CONTAINER} -- mv {where}.partial {where})")
    else:
        cfg.notes.append(f"copy {path} onto the {volume} volume as local/{name} (kubectl cp into a pod that mounts it "
                         "at /models)")
    return where
