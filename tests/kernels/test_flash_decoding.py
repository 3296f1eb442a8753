"""Split-K flash decoding against the PyTorch reference, in triton's interpreter: dtypes, grouped heads, ragged
cache lengths, padding masks with holes, windows with sinks, sink logits, and any number of splits."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from optiplan.kernels.flash_decoding import flash_decode, reference_decode  # noqa: E402

TOLERANCE = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


def _qkv(batch=3, heads=8, kv_heads=2, k_len=70, head_dim=32, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, head_dim, generator=g).to(dtype)
    k = torch.randn(batch, kv_heads, k_len, head_dim, generator=g).to(dtype)
    v = torch.randn(batch, kv_heads, k_len, head_dim, generator=g).to(dtype)
    return q, k, v


def _err(out, ref):
    assert not torch.isnan(out).any()
    return (out.float() - ref.float()).abs().max().item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_max_error_by_dtype_with_ragged_cache_lengths(dtype):
    q, k, v = _qkv(dtype=dtype)
    k_lens = torch.tensor([70, 33, 1])
    out = flash_decode(q, k, v, k_lens=k_lens, num_splits=3)
    assert out.shape == q.shape
    assert _err(out, reference_decode(q, k, v, k_lens=k_lens)) < TOLERANCE[dtype]


@pytest.mark.parametrize("case", [
    {"window": 20, "num_sinks": 4},
    {"softcap": 3.0},
    {"sink_logits": "random"},
    {"key_mask": "holes"},
])
def test_features_match_the_reference(case):
    q, k, v = _qkv(dtype=torch.float16, heads=4, kv_heads=1)  # multi-query
    g = torch.Generator().manual_seed(2)
    if case.get("sink_logits") == "random":
        case = {"sink_logits": torch.randn(4, generator=g)}
    if case.get("key_mask") == "holes":
        case = {"key_mask": torch.rand(3, 70, generator=g) > 0.5}
    out = flash_decode(q, k, v, num_splits=4, **case)
    assert _err(out, reference_decode(q, k, v, **case)) < TOLERANCE[torch.float16]


def test_the_split_count_does_not_change_the_result():
    q, k, v = _qkv(batch=1)
    one = flash_decode(q, k, v, num_splits=1, window=30, num_sinks=2)
    many = flash_decode(q, k, v, num_splits=5, window=30, num_sinks=2)
    assert _err(one, many) < 1e-5
    assert _err(many, reference_decode(q, k, v, window=30, num_sinks=2)) < 2e-5


def test_four_dim_query_and_prefill_kernel_agree():
    from optiplan.kernels.flash_attention import flash_attention

    q, k, v = _qkv(batch=2, k_len=40)
    q4 = q[:, :, None]  # (b, h, 1, d): transformers' shape at decode
    assert flash_decode(q4, k, v).shape == q4.shape
    assert _err(flash_decode(q4, k, v), flash_attention(q4, k, v)) < 2e-5


def test_a_query_of_several_rows_and_cache_lengths_past_the_cache_are_handled():
    """Decode takes one query row (more go to flash_attention); a k_len past the cache's rows is cut to them."""
    q, k, v = _qkv(batch=2, heads=4, kv_heads=2, k_len=20)
    with pytest.raises(ValueError, match="one query per sequence"):
        flash_decode(q[:, :, None].expand(-1, -1, 3, -1), k, v)
    out = flash_decode(q, k, v, k_lens=torch.tensor([50, 20]))
    assert (out.float() - reference_decode(q, k, v).float()).abs().max() < 2e-5
