"""Weights kept in host memory (CPU offload): which share, where it is computed, and what a step pays for it.

Engines that stream offloaded weights to the GPU (vLLM's and SGLang's --cpu-offload-gb, accelerate's offload under
transformers) pay their bytes over the host link in every forward pass. llama.cpp computes the layers it keeps in
host memory (--n-gpu-layers below all of them) on the CPU, which reads their weights at the host memory's bandwidth;
only steps of many rows (a prompt's) send those weights to the GPU to run there (its op offload), once per physical
batch (its ubatch), the copies in the GPU's stream before the products that need them. Either way the host's layers
run in series with the device's: a decode step of a partly offloaded model is the device's share at the device's
bandwidth plus the host's share at the host's, the harmonic mean that makes a model that barely spills many times
slower than one that fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Host memory assumed where neither the request nor anything else gives one: a desktop's two channels of DDR5-4800
# (2 x 8 bytes x 4,800 MT/s = 76.8 GB/s peak; JEDEC DDR5-4800 is the lowest DDR5 speed grade desktop boards run).
DEFAULT_HOST_MEMORY_GBPS = 76.8


@dataclass(frozen=True)
class HostLayers:
    """How an engine runs the layers it keeps in host memory (its profile's `host_layers`)."""

    bandwidth_efficiency: float  # the share of the host memory's peak at which its CPU kernels read the weights
    device_min_rows: int  # steps of at least this many rows run the host's layers on the device instead...
    ubatch_rows: int  # ...their weights sent over the link once per physical batch of this many rows
    head_first: bool = True  # the output head takes the first of the GPU's layer slots (llama.cpp since PR #18148)


def host_weight_bytes(s) -> float:
    """Bytes of weights one device's share keeps in host memory (`offload_fraction` of what it would hold)."""
    return max(s.whole_stage_weights) * s.offload_fraction if s.offload_fraction else 0.0


def streamed_offload_fraction(s, gib: float) -> float:
    """The share of a device's weights that `gib` GiB of them in host memory is (vLLM's and SGLang's --cpu-offload-gb,
    per device), of the fullest pipeline stage's; more than its weights is all of them."""
    held = max(s.whole_stage_weights)
    return min(gib * 2**30 / held, 1.0) if held > 0 else 0.0


def streamed_weights_s(s) -> float:
    """The time to read the weights in host memory over the host link during a pass, where the engine streams them to
    the device (vLLM's and SGLang's --cpu-offload-gb): part of the pass's weight traffic. 0 where the engine computes
    them on the host instead (`host_layers_s`)."""
    return host_weight_bytes(s) / s.host_link_bytes_per_s if s.host_layers is None else 0.0


def host_layers_s(s, rows: int, cache_bytes: float = 0.0, read_share: float = 1.0) -> float:
    """The time a step of `rows` rows spends on the layers the engine keeps in host memory and computes there
    (llama.cpp), in series with the device's layers: the `read_share` of their weights the step reads (a mixture of
    experts' layers: their attention and the experts its tokens are routed to, as on the device) and `cache_bytes`
    of their caches, read by the CPU at the host memory's bandwidth, or, for a step of at least `device_min_rows`
    rows, the weights sent to the GPU over the host link once per physical batch, whole tensors. 0 for other engines
    (`streamed_weights_s`)."""
    layers, host = s.host_layers, host_weight_bytes(s)
    if layers is None or not host:
        return 0.0
    if rows < layers.device_min_rows:
        return (host * read_share + cache_bytes) / (s.host_memory_bytes_per_s * layers.bandwidth_efficiency)
    return math.ceil(rows / layers.ubatch_rows) * host / s.host_link_bytes_per_s


def host_repeating_layers(num_layers: int, gpu_layers: int, head_first: bool = True) -> tuple[int, bool]:
    """(repeating layers on the host, whether the output head is too) at llama.cpp's --n-gpu-layers `gpu_layers`: the
    layers and the output head are num_layers + 1 slots, of which the last `gpu_layers` go to the GPU, so the head
    leaves the host first and layer 0 last (`head_first`, builds since PR #18148); before, the repeating layers took
    the slots first, from the last one down, and the head only the last slot (more than num_layers)."""
    if not head_first:
        return max(num_layers - gpu_layers, 0), gpu_layers <= num_layers
    start = max(num_layers + 1 - gpu_layers, 0)  # the first slot on the GPU
    return min(start, num_layers), start > num_layers


def places_head_first(s) -> bool:
    """Whether the engine's build gives the output head the first of the GPU's layer slots (`HostLayers.head_first`)."""
    return s.host_layers is None or s.host_layers.head_first


def host_layer_share(s, gpu_layers: int) -> float:
    """The share of the repeating layers, and of their caches, llama.cpp keeps on the host at --n-gpu-layers."""
    return host_repeating_layers(s.spec.num_layers, gpu_layers, places_head_first(s))[0] / s.spec.num_layers


def gpu_layers_fraction(s, gpu_layers: int) -> float:
    """The share of a single device's weights (`s` without offload) that llama.cpp keeps in host memory at
    --n-gpu-layers `gpu_layers`: its repeating layers at their mean size, and the output head where it has no slot on
    the GPU (`host_repeating_layers`, as the engine's build places it)."""
    layers, head_on_host = host_repeating_layers(s.spec.num_layers, gpu_layers, places_head_first(s))
    held = max(s.whole_stage_weights)
    c = s.counts
    head = (c.lm_head or c.vocab_hidden) * s.output_bytes / s.tp
    per_layer = (held - head) / s.spec.num_layers
    host = layers * per_layer + (head if head_on_host else 0.0)
    return min(host / held, 1.0) if held else 0.0


def gpu_layers_within(s, device_bytes: float) -> int:
    """The most of llama.cpp's layer slots (--n-gpu-layers) whose weights fit in `device_bytes` of a single device
    (`s` without offload), as the engine's build places them (`host_repeating_layers`): a share of the weights is not
    that share of the layers."""
    held = max(s.whole_stage_weights)
    fits = (n for n in range(s.spec.num_layers + 1, -1, -1)
            if held * (1.0 - gpu_layers_fraction(s, n)) <= device_bytes + 1e-6)
    return next(fits, 0)
