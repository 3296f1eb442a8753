"""The weight-only GEMM against its PyTorch reference, in triton's interpreter: int4 groups 32/64/128 and int8,
the decode path (M <= 16, split K) and the large-M path, a K that is not a multiple of the group, a bias; and the
packed format's round trip."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from optiplan.kernels.weight_only_gemm import (  # noqa: E402
    dequantize,
    pack_int4,
    pack_int8,
    reference_matmul,
    weight_only_matmul,
)

# largest error relative to the output's largest magnitude, by dtype (rounding of x, W and y to the dtype)
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def _pack(w, bits, group):
    if bits == 4:
        return (*pack_int4(w, group), group)
    q, s = pack_int8(w)
    return q, s, None, None


@pytest.mark.parametrize("bits, group, dtype, m", [
    (4, 32, torch.float32, 1), (4, 64, torch.bfloat16, 5), (4, 128, torch.float16, 16),
    (4, 128, torch.bfloat16, 70), (4, 32, torch.float32, 70),
    (8, None, torch.bfloat16, 1), (8, None, torch.float16, 70), (8, None, torch.float32, 3),
])
def test_matches_the_reference(bits, group, dtype, m):
    g = torch.Generator().manual_seed(bits + m)
    n, k = 300, 200  # several N tiles, the last one partial; K not a multiple of 128 (padded groups)
    w = torch.randn(n, k, generator=g).to(dtype)
    x = torch.randn(m, k, generator=g).to(dtype)
    bias = torch.randn(n, generator=g).to(dtype)
    qweight, scales, zeros, group = _pack(w, bits, group)
    y = weight_only_matmul(x, qweight, scales, zeros, bias, bits=bits, group_size=group, out_features=n)
    ref = reference_matmul(x, qweight, scales, zeros, bias, bits=bits, in_features=k)
    assert y.shape == (m, n) and y.dtype == dtype
    assert (y.float() - ref.float()).abs().max() / ref.float().abs().max() < TOLERANCE[dtype]


@pytest.mark.parametrize("bits, group, dtype, m", [
    (4, 128, torch.bfloat16, 1), (4, 64, torch.float16, 2), (4, 32, torch.bfloat16, 3), (4, 128, torch.float32, 4),
    (8, None, torch.float16, 2), (8, None, torch.bfloat16, 4),
])
def test_the_matrix_vector_tiles_match_the_reference(bits, group, dtype, m):
    """M <= 4 runs the decode path's multiply-and-sum tiles (REDUCE) in the interpreter: BLOCK_M the next power of 2
    of M (3 rows in a 4-row tile, the last masked), the products and sums in fp32 whatever x's dtype."""
    from optiplan.kernels import weight_only_gemm

    assert m <= weight_only_gemm.REDUCE_M
    g = torch.Generator().manual_seed(10 * bits + m)
    n, k = 300, 200
    w = torch.randn(n, k, generator=g).to(dtype)
    x = torch.randn(m, k, generator=g).to(dtype)
    qweight, scales, zeros, group = _pack(w, bits, group)
    y = weight_only_matmul(x, qweight, scales, zeros, bits=bits, group_size=group, out_features=n)
    ref = reference_matmul(x, qweight, scales, zeros, bits=bits, in_features=k)
    assert (y.float() - ref.float()).abs().max() / ref.float().abs().max() < TOLERANCE[dtype]


def test_the_autotuner_offers_matrix_vector_tiles_for_a_few_rows_only():
    """On a GPU the decode path's candidates are the 16-row tensor-core tiles and, for M <= 4, the multiply-and-sum
    tiles with BLOCK_M the next power of 2 of M, none holding more of the broadcast product per thread than the
    limit; the int4 group still bounds BLOCK_K."""
    from optiplan.kernels import weight_only_gemm as wo

    configs = wo._configs(True)
    reduce = [c for c in configs if c.kwargs["REDUCE"]]
    assert reduce and {c.kwargs["BLOCK_M"] for c in reduce} == {1, 2, 4}
    assert not any(c.kwargs["REDUCE"] for c in wo._configs(False))
    for bucket, group in ((1, 128), (2, 64), (4, 32), (8, 128), (16, 128)):
        kept = wo._prune(configs, {"M_BUCKET": bucket, "group_size": group}, BITS=4)
        mv = [c for c in kept if c.kwargs["REDUCE"]]
        assert all(c.kwargs["BLOCK_M"] == bucket for c in mv) and all(group % c.kwargs["BLOCK_K"] == 0 for c in kept)
        assert bool(mv) == (bucket <= wo.REDUCE_M)
        assert any(not c.kwargs["REDUCE"] for c in kept)  # the tensor-core tiles stay in the race
    # an int8 tile multiplies all of its columns at once, twice an int4 tile's product per thread: from two rows on,
    # fewer fit
    for bucket in (2, 4):
        as_int4 = wo._prune(configs, {"M_BUCKET": bucket, "group_size": 8192}, BITS=4)
        as_int8 = wo._prune(configs, {"M_BUCKET": bucket, "group_size": 8192}, BITS=8)
        int4_tiles = {(c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"], c.num_warps) for c in as_int4 if c.kwargs["REDUCE"]}
        int8_tiles = {(c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"], c.num_warps) for c in as_int8 if c.kwargs["REDUCE"]}
        assert int8_tiles < int4_tiles
        assert all(bucket * k * n <= 64 * 32 * w for n, k, w in int8_tiles)
    assert wo.tuned_config(1) is None  # the interpreter runs fixed tiles: nothing was tuned


def test_leading_dims_and_no_bias():
    w = torch.randn(64, 96)
    qweight, scales, zeros = pack_int4(w, 32)
    x = torch.randn(2, 3, 96)
    y = weight_only_matmul(x, qweight, scales, zeros, bits=4, group_size=32, out_features=64)
    assert y.shape == (2, 3, 64)
    ref = reference_matmul(x.reshape(6, 96), qweight, scales, zeros, bits=4, in_features=96)
    assert (y.reshape(6, 64) - ref).abs().max() < 1e-4


@pytest.mark.parametrize("group", [32, 64, 128])
def test_int4_packing_round_trips_within_half_a_step(group):
    w = torch.randn(10, 150, generator=torch.Generator().manual_seed(group))
    qweight, scales, zeros = pack_int4(w, group)
    assert qweight.dtype == torch.uint8 and qweight.shape == (-(-150 // group) * group, 5)
    back = dequantize(qweight, scales, zeros, bits=4, in_features=150, dtype=torch.float32)
    step = scales.float().repeat_interleave(group, dim=0)[:150].t()  # (N, K)
    assert back.shape == w.shape
    assert ((back - w).abs() <= step / 2 + 1e-6).all()


def test_int4_groups_of_one_sign_or_one_value_round_trip_too():
    # the range holds zero, as GPTQ's and AWQ's do: a group of positive weights (or a constant one) had its zero point
    # clamped to the end of the range and its values saturated (1.01 off in [1.0, 1.1], a constant 0.5 read as 0)
    g = torch.Generator().manual_seed(3)
    w = torch.cat([1.0 + 0.1 * torch.rand(2, 32, generator=g), torch.full((2, 32), 0.5),
                   -(1.0 + 0.1 * torch.rand(2, 32, generator=g)), torch.randn(2, 32, generator=g) + 3.0])
    qweight, scales, zeros = pack_int4(w, 32)
    back = dequantize(qweight, scales, zeros, bits=4, in_features=32, dtype=torch.float32)
    step = scales.float().t()  # (N, 1): one group per row here
    assert ((back - w).abs() <= step / 2 + 1e-6).all()


def test_int8_packing_round_trips_within_half_a_step():
    w = torch.randn(12, 40, generator=torch.Generator().manual_seed(0))
    qweight, scales = pack_int8(w)
    assert qweight.dtype == torch.int8 and qweight.shape == (40, 12)
    back = dequantize(qweight, scales, bits=8, in_features=40, dtype=torch.float32)
    assert ((back - w).abs() <= scales[:, None] / 2 + 1e-6).all()


def test_unsupported_groups_are_refused():
    with pytest.raises(ValueError, match="group size"):
        pack_int4(torch.randn(4, 64), 256)


def test_tensors_on_two_devices_are_refused_in_one_sentence():
    """The kernels launch on their tensors' device (made current for Triton); two devices are refused, not run on
    one with pointers into the other's memory."""
    from optiplan.kernels.common import on_device

    q, s, _, group = _pack(torch.randn(64, 64), 8, None)
    with pytest.raises(ValueError, match="on cpu, meta: move them to one device"):
        weight_only_matmul(torch.randn(2, 64), q, s.to("meta"), bits=8, out_features=64)
    with on_device(torch.randn(2), None):  # CPU (the interpreter): nothing to make current
        pass


def test_packed_tensors_that_disagree_are_refused_in_one_sentence():
    """What pack_int4 and pack_int8 return always agrees; a direct caller's mix-up is refused before the kernel
    would read past a tensor's end (a group of 64 over weights packed at 128 had given NaN)."""
    w = torch.randn(16, 256, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, 256)
    qweight, scales, zeros = pack_int4(w, 128)
    for kwargs, words in ((dict(bits=4, group_size=64), "scales"), (dict(bits=3, group_size=128), "int4 or int8"),
                          (dict(bits=4, group_size=128, out_features=40), "holds 16 output columns")):
        with pytest.raises(ValueError, match=words):
            weight_only_matmul(x, qweight, scales, zeros, **kwargs)
    with pytest.raises(ValueError, match="x's K=384"):
        weight_only_matmul(torch.randn(3, 384), qweight, scales, zeros, bits=4, group_size=128)
    q8, s8 = pack_int8(w)
    with pytest.raises(ValueError, match="pack_int8 gives"):
        weight_only_matmul(torch.randn(3, 200), q8, s8, bits=8)
