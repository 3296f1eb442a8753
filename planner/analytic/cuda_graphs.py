"""The CUDA-graph padding of decode-only steps (`profile --graph-padding`): an engine that pads rounds a decode-only
batch up to the next batch size it captured a graph for, and its dummy sequences run the step's linear layers and
experts beside the real ones (`steps.decode_step`). TensorRT-LLM's rule (NVIDIA/TensorRT-LLM
tensorrt_llm/_torch/pyexecutor/model_engine.py, `_filter_cuda_graph_batch_sizes`, stored copies of the 1.x series): it
captures only the sizes up to its largest decode batch, `max_batch_size`, and, padding on, that batch itself in place of
the sizes above it ("if the user is OK padding to a batch size B, they should also be OK with padding to some size
B' < B"). The padding repeats one dummy request (cuda_graph_runner.py `_get_padded_batch`: "[self.padding_dummy_request]
* padding_size"), one token at one position: its rows run the linear layers, but reach no more experts than one token
does, and every data-parallel attention group pads to the same size."""

from __future__ import annotations

import math

from .setup import Setup


def graph_sizes(s: Setup) -> list[int]:
    """The batch sizes, per data-parallel attention group, the engine pads a decode-only step to: the deployment's
    (`Setup.graph_padding`) up to its running cap, and the cap itself where a size lay above it."""
    cap = s.max_running // s.attention_dp if s.max_running else None
    sizes = [size for size in sorted(s.graph_padding) if cap is None or size <= cap]
    return sizes + [cap] if cap and len(sizes) < len(s.graph_padding) and cap not in sizes else sizes


def graph_rows(s: Setup, batch: int) -> int:
    """The sequences a decode-only step of `batch` runs: up to the next size where the engine pads (each group its
    own share), else, as above the largest, `batch`."""
    size = next((size for size in graph_sizes(s) if size >= math.ceil(batch / s.attention_dp)), None)
    return max(batch, size * s.attention_dp) if size else batch
