"""The prefill flash-attention kernel against its PyTorch reference, in triton's interpreter: maximum error by
dtype, grouped and multi-query heads, head dims, windows with sinks, sink logits, soft-capping, ragged and packed
batches, masks with holes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from optiplan.kernels import flash_attention as flash_attention_module  # noqa: E402
from optiplan.kernels.flash_attention import flash_attention, flash_attention_varlen, reference_attention  # noqa: E402

# the largest error against the fp32 reference each dtype may show (the reference is rounded to the dtype too)
TOLERANCE = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def _qkv(batch=2, heads=4, kv_heads=2, q_len=33, k_len=41, head_dim=32, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, q_len, head_dim, generator=g).to(dtype)
    k = torch.randn(batch, kv_heads, k_len, head_dim, generator=g).to(dtype)
    v = torch.randn(batch, kv_heads, k_len, head_dim, generator=g).to(dtype)
    return q, k, v


def _err(out, ref):
    assert not torch.isnan(out).any()
    return (out.float() - ref.float()).abs().max().item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_causal_gqa_max_error_by_dtype(dtype):
    q, k, v = _qkv(dtype=dtype)
    out = flash_attention(q, k, v)
    assert out.shape == q.shape and out.dtype == dtype
    assert _err(out, reference_attention(q, k, v)) < TOLERANCE[dtype]


@pytest.mark.parametrize("case", [
    {"window": 7, "num_sinks": 3},
    {"window": 16},
    {"softcap": 4.0},
    {"sink_logits": "random"},
    {"causal": False},
])
def test_features_match_the_reference(case):
    q, k, v = _qkv(dtype=torch.bfloat16, q_len=29, k_len=45)
    if case.get("sink_logits") == "random":
        case = {"sink_logits": torch.randn(q.shape[1], generator=torch.Generator().manual_seed(1))}
    out = flash_attention(q, k, v, **case)
    assert _err(out, reference_attention(q, k, v, **case)) < TOLERANCE[torch.bfloat16]


@pytest.mark.parametrize("whole_tiles", [True, False])
@pytest.mark.parametrize("case", [{}, {"window": 70, "num_sinks": 3}, {"causal": False}, {"softcap": 4.0}])
def test_whole_tiles_read_without_masks_agree_with_the_reference(case, whole_tiles, monkeypatch):
    # a short block of queries over many earlier keys (a chunk of a long prefill): with the interpreter's 32-wide
    # tiles most key tiles lie wholly before every query and after every window edge, and are folded unmasked
    # (WHOLE_TILES; the autotuner also tries every tile masked); 203 keys leave a ragged last tile, and the
    # window's edge and the sinks are masked tiles of their own
    monkeypatch.setitem(flash_attention_module.INTERPRETER_TILE, "WHOLE_TILES", whole_tiles)
    q, k, v = _qkv(batch=2, q_len=40, k_len=203, dtype=torch.float16)
    out = flash_attention(q, k, v, **case)
    assert _err(out, reference_attention(q, k, v, **case)) < TOLERANCE[torch.float16]
    lens = dict(q_lens=torch.tensor([40, 9]), k_lens=torch.tensor([203, 150]))  # ragged: each its own split
    out = flash_attention(q, k, v, **lens, **case)
    alone = reference_attention(q[1:, :, :9], k[1:, :, :150], v[1:, :, :150], **case)
    assert _err(out[1:, :, :9], alone) < TOLERANCE[torch.float16]


def test_window_changes_the_result_where_it_should():
    q, k, v = _qkv(batch=1, q_len=20, k_len=40)
    full, windowed = flash_attention(q, k, v), flash_attention(q, k, v, window=8)
    # the first query sits at position 20: a window of 8 hides keys 0..12 from it
    assert (full - windowed).abs().amax() > 1e-3


@pytest.mark.parametrize("head_dim, heads, kv_heads", [(64, 4, 1), (128, 2, 2), (256, 2, 1), (80, 3, 1)])
def test_head_dims_and_multi_query(head_dim, heads, kv_heads):
    q, k, v = _qkv(batch=1, heads=heads, kv_heads=kv_heads, q_len=18, k_len=18, head_dim=head_dim,
                   dtype=torch.float16)
    assert _err(flash_attention(q, k, v), reference_attention(q, k, v)) < TOLERANCE[torch.float16]


def test_ragged_lengths_padded_and_packed_agree_with_each_sequence_alone():
    q, k, v = _qkv(batch=3, q_len=24, k_len=35)
    q_lens, k_lens = torch.tensor([24, 5, 1]), torch.tensor([35, 17, 9])
    out = flash_attention(q, k, v, q_lens=q_lens, k_lens=k_lens, window=12, num_sinks=2)
    for b in range(3):
        ql, kl = int(q_lens[b]), int(k_lens[b])
        alone = reference_attention(q[b:b + 1, :, :ql], k[b:b + 1, :, :kl], v[b:b + 1, :, :kl], window=12,
                                    num_sinks=2)
        assert _err(out[b:b + 1, :, :ql], alone) < 2e-5
        assert out[b, :, ql:].abs().sum() == 0  # rows past a sequence's length stay zero
    # the same sequences packed back to back (FlashAttention's varlen layout)
    packed_q = torch.cat([q[b, :, :int(q_lens[b])].transpose(0, 1) for b in range(3)])  # (total, h, d)
    packed_k = torch.cat([k[b, :, :int(k_lens[b])].transpose(0, 1) for b in range(3)])
    packed_v = torch.cat([v[b, :, :int(k_lens[b])].transpose(0, 1) for b in range(3)])
    cu_q = torch.tensor([0, 24, 29, 30], dtype=torch.int32)
    cu_k = torch.tensor([0, 35, 52, 61], dtype=torch.int32)
    varlen = flash_attention_varlen(packed_q, packed_k, packed_v, cu_q, cu_k, 24, 35, window=12, num_sinks=2)
    expected = torch.cat([out[b, :, :int(q_lens[b])].transpose(0, 1) for b in range(3)])
    assert _err(varlen, expected) < 2e-5
    # a query whose head dimension is not contiguous (a transposed view) is read as such, not as if it were
    strided = packed_q.transpose(1, 2).contiguous().transpose(1, 2)
    assert strided.stride(-1) != 1
    again = flash_attention_varlen(strided, packed_k, packed_v, cu_q, cu_k, 24, 35, window=12, num_sinks=2)
    assert _err(again, expected) < 2e-5 and again.is_contiguous()


def test_dense_mask_with_holes_and_rows_that_see_nothing():
    q, k, v = _qkv(batch=2, q_len=17, k_len=23)
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(2, 1, 17, 23, generator=g) > 0.4
    mask[1, 0, 5] = False  # one query row sees no key at all: zeros, never NaN
    out = flash_attention(q, k, v, causal=False, mask=mask)
    assert _err(out, reference_attention(q, k, v, causal=False, mask=mask)) < 2e-5
    assert out[1, :, 5].abs().max() == 0


def test_kernel_files_import_without_triton():
    import subprocess
    import sys

    code = ("import sys; sys.modules['triton'] = None\n"
            "import torch\n"
            "from optiplan.kernels import common, flash_attention, flash_decoding, weight_only_gemm\n"
            "assert not common.triton_installed()\n"
            "print(common.unavailable_reason('cpu'))\n"
            "q = torch.randn(1, 2, 3, 16)\n"
            "print(flash_attention.reference_attention(q, q, q).shape)\n"
            "try:\n    flash_attention.flash_attention(q, q, q)\n"
            "except common.KernelUnavailable as exc:\n    print('refused:', exc)\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pip install 'optiplan[kernels]'" in done.stdout
    assert "torch.Size([1, 2, 3, 16])" in done.stdout and "refused:" in done.stdout


def test_lengths_past_the_tensors_rows_stay_inside_their_sequence():
    """A q_len or k_len longer than the padded rows is cut to them in the kernel (no host sync): the first sequence's
    extra rows are not written into the second's output, nor its keys read as the first's."""
    q, k, v = _qkv(batch=2, q_len=8, k_len=12)
    out = flash_attention(q, k, v, q_lens=torch.tensor([12, 0]), k_lens=torch.tensor([30, 12]))
    assert out[1].abs().max() == 0  # the second sequence has no query rows
    assert _err(out[:1], reference_attention(q[:1], k[:1], v[:1])) < 2e-5


def test_inputs_the_kernel_would_misread_are_refused_in_one_sentence():
    q, k, v = _qkv(heads=4, kv_heads=2)
    for bad, words in ((dict(v=v[:, :1]), "must have one shape"), (dict(q=q[..., :16]), "do not match key heads"),
                       (dict(k=k.half(), v=v.half()), "share one dtype"),
                       (dict(mask=torch.zeros(2, 1, q.shape[2], k.shape[2])), "must be boolean"),
                       (dict(sink_logits=torch.zeros(3)), "one per query head")):
        args = {"q": q, "k": k, "v": v} | bad
        with pytest.raises(ValueError, match=words):
            flash_attention(args.pop("q"), args.pop("k"), args.pop("v"), **args)
    # a strided sink-logit view is read by value, not as if it were contiguous
    sinks = torch.randn(8, generator=torch.Generator().manual_seed(2))[::2]
    assert _err(flash_attention(q, k, v, sink_logits=sinks), reference_attention(q, k, v, sink_logits=sinks)) < 2e-5


def test_packed_offsets_that_disagree_with_the_tensors_are_refused():
    q, k, v = _qkv(batch=1, q_len=70, k_len=70)
    packed = [t[0].transpose(0, 1).contiguous() for t in (q, k, v)]
    cu = torch.tensor([0, 70], dtype=torch.int32)
    with pytest.raises(ValueError, match="each sequence at most max_q=10"):
        flash_attention_varlen(*packed, cu, cu, 10, 70)  # a grid of 10 rows would leave 60 unwritten
    with pytest.raises(ValueError, match="must rise from 0 to the 70 rows"):
        flash_attention_varlen(*packed, torch.tensor([0, 60], dtype=torch.int32), cu, 70, 70)
    with pytest.raises(ValueError, match="batch \\+ 1 offsets"):
        flash_attention_varlen(*packed, cu, torch.tensor([0, 35, 70], dtype=torch.int32), 70, 70)
