"""Chunked local attention (Llama 4's `attention_chunk_size`, 8,192 tokens on three layers of four): a token attends
to the keys of its own chunk only, from the chunk's first position up to itself, where the layer's neighbours without
rotary positions attend to the whole context. The serving engines' kernels skip the other chunks' keys (vLLM's
FlashAttention over its "local attention" virtual batches, SGLang's FlashAttention-3 backend, TensorRT-LLM's attention
op given `attention_chunk_size`), so a long sequence's chunked layers cost a chunk's FLOPs and reads, not the whole
context's. The cache keeps every key of every layer (`analytic.kvcache`): TensorRT-LLM keeps a chunked layer's whole
window (its resource manager's `max_attention_window_vec = [max_seq_len]`); SGLang splits its cache into a global and a
local part only where --hybrid-kvcache-ratio is given (server_args: `hybrid_kvcache_ratio: Optional[float] = None`);
vLLM frees the other chunks only with its hybrid cache manager, which it turns off for chunked attention by default
from vllm-project/vllm#21761 ("There is a latency regression when using chunked local attention with the hybrid KV
cache manager. Disabling it, by default.") until a later release's #29627 turned it back on: the releases optiplan
deploys (0.10.2, 0.11.0) keep the whole cache. An eager
runtime (transformers' sdpa over a chunked mask) computes every score and masks the rest: its chunks are not honoured
here.

TensorRT-LLM before Blackwell decodes a chunked layer with its generic masked multi-head attention kernel (XQA's
support check refuses a chunk: "chunked attention is not supported yet"), which runs one thread block per query head
and so reads each KV head once for every query head that shares it (`chunk_decode_rereads`); where the deployment's
longest sequence is shorter than a chunk it drops the chunking and runs XQA (its Llama 4 attention: "if
attention_chunk_size and model_config.max_seq_len and model_config.max_seq_len < attention_chunk_size:
attention_chunk_size = None")."""

from __future__ import annotations

from dataclasses import replace

from ..catalog.engines import device_fact
from ..schema import HardwareSpec, ModelSpec
from .setup import Setup


def attention_chunks(spec: ModelSpec, layout: str = "serving") -> list[int | None]:
    """The chunk of each layer that attends (a hybrid's attention layers), as the runtime's kernels honour it: a
    serving engine's skip the other chunks' keys; an eager or static cache's attend over all of them."""
    chunks = list(spec.layer_chunks) or [None] * spec.num_layers
    if spec.layer_mixers:
        chunks = [c for i, c in enumerate(chunks) if "attention" in spec.mixer(i)]
    return chunks if layout == "serving" else [None] * len(chunks)


def chunk_keys(position: int, chunk: int) -> int:
    """Keys a token at `position` (1-based: the sequence's length with it) attends to in a layer of `chunk`-token
    chunks: its own chunk's, up to itself."""
    return (position - 1) % chunk + 1


def chunk_pairs(prompt: int, chunk: int) -> float:
    """Causal query-key pairs a layer of `chunk`-token chunks computes over the first `prompt` tokens."""
    whole, rest = divmod(prompt, chunk)
    return whole * chunk * (chunk + 1) / 2 + rest * (rest + 1) / 2


def chunk_decode_rereads(engine: str | None, hw: HardwareSpec, spec: ModelSpec, longest: int) -> float:
    """Times a decode step reads a chunked layer's keys: once, or once per query head of a KV head where the engine's
    decode kernel for a chunk runs a block per query head (`chunk_decode_per_query_head`: TensorRT-LLM before
    Blackwell) and the deployment's longest sequence (`longest`: its max_seq_len) reaches a chunk, which keeps the
    chunking on."""
    chunks = [c for c in spec.layer_chunks if c]
    if not chunks or longest < min(chunks) or not device_fact(engine, hw, "chunk_decode_per_query_head"):
        return 1.0
    return spec.num_heads / spec.num_kv_heads


def with_chunked_decode(s: Setup, engine: str | None, longest: int | None) -> Setup:
    """The setup with its decode's reads of chunked layers as `engine` makes them for a deployment whose longest
    sequence is `longest` (`chunk_decode_rereads`; none given: once); `profile` and the plan search alike."""
    return replace(s, chunk_rereads=chunk_decode_rereads(engine, s.hw, s.spec, longest or 0))
