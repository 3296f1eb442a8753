"""The profile options that set a serving engine's own knobs (its step budget, front-end processes, running cap,
CUDA-graph padding, prompt chunks in the decode steps and weights streamed from host memory), and why a request may
not give one: the engine it names has no such knob."""

from __future__ import annotations

from ..catalog.engines import engine_api_servers_option, engine_fact, engine_mixes_prefill
from ..schema import HardwareSpec, ProfileRequest
from .speculation import speculation_refusal


def serving_option_refusal(request: ProfileRequest, runtime: str, hw: HardwareSpec) -> str | None:
    """Why `request` sets a knob its engine (running `runtime` on `hw`) does not have, or its speculative decoding
    cannot be profiled as given (`speculation_refusal`), or None."""
    if refusal := speculation_refusal(request):
        return refusal
    if request.prefill_chunk_tokens and runtime != "serving":
        return f"--prefill-chunk sets a serving engine's step budget; {request.engine} prefills whole prompts"
    if request.api_servers and not engine_api_servers_option(request.engine):
        return (f"--api-servers sets a serving engine's front-end processes (vLLM --api-server-count); "
                f"{request.engine or runtime} has no such option")
    if request.max_running and runtime != "serving":
        return (f"--max-running sets a serving engine's running cap; {request.engine} runs the batch it is given "
                "(--batch)")
    if request.mixed_chunk and engine_mixes_prefill(request.engine):
        return (f"--mixed-chunk puts prompt chunks in the decode steps of an engine that runs prompts in steps of "
                f"their own (SGLang --enable-mixed-chunk); {request.engine or runtime} mixes them already")
    if request.cpu_offload_gb and (not engine_fact(request.engine, "cpu_offload_option") or hw.kind != "gpu"):
        return (f"--cpu-offload-gb streams weights from host memory to a GPU each pass (vLLM's and SGLang's option); "
                f"{request.engine or runtime} on {hw.id} has no such option"
                + (" (llama.cpp keeps layers on the host with --gpu-layers)" if request.engine == "llama.cpp" else ""))
    if request.graph_padding and (runtime != "serving" or hw.kind != "gpu"):
        return (f"--graph-padding pads a serving engine's CUDA-graph decode steps on a GPU; {request.engine} on "
                f"{hw.id} runs none")
    return None
