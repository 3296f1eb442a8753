"""Paged decode attention against the PyTorch reference, in triton's interpreter: block tables with holes
(shuffled pages, unused pages full of NaN, table entries past a sequence's end), page sizes that are and are not
powers of two, GQA, windows with sinks, and appending the new token as flash_attn_with_kvcache does."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from optiplan.kernels.paged_attention import gather_pages, paged_decode, reference_paged_decode  # noqa: E402


def _paged(page_size, lens, kv_heads=2, head_dim=32, dtype=torch.float32, seed=0):
    """A page pool with every sequence's pages scattered through it, the free pages poisoned with NaN."""
    g = torch.Generator().manual_seed(seed)
    need = [-(-(n + 1) // page_size) for n in lens]  # room for one appended token
    num_pages = 2 * sum(need) + 3
    k_cache = torch.full((num_pages, page_size, kv_heads, head_dim), float("nan"), dtype=dtype)
    v_cache = torch.full_like(k_cache, float("nan"))
    order = torch.randperm(num_pages, generator=g)
    table = torch.full((len(lens), max(need) + 2), -1, dtype=torch.int32)  # -1: never read
    used = 0
    for b, pages in enumerate(need):
        chosen = order[used:used + pages]
        used += pages + 1  # leave a hole after each sequence's pages
        table[b, :pages] = chosen.to(torch.int32)
        for p in chosen:
            k_cache[p] = torch.randn(page_size, kv_heads, head_dim, generator=g).to(dtype)
            v_cache[p] = torch.randn(page_size, kv_heads, head_dim, generator=g).to(dtype)
    return k_cache, v_cache, table, torch.tensor(lens, dtype=torch.int32), g


@pytest.mark.parametrize("page_size, dtype", [(16, torch.float32), (5, torch.float16), (32, torch.bfloat16)])
def test_matches_the_reference_over_a_table_with_holes(page_size, dtype):
    k_cache, v_cache, table, lens, g = _paged(page_size, [45, 3, 70], dtype=dtype)
    q = torch.randn(3, 8, 32, generator=g).to(dtype)
    out = paged_decode(q, k_cache, v_cache, table, lens, num_splits=3)
    ref = reference_paged_decode(q, k_cache, v_cache, table, lens)
    assert not torch.isnan(out).any()
    assert (out.float() - ref.float()).abs().max() < {torch.float32: 2e-5, torch.float16: 2e-3,
                                                      torch.bfloat16: 2e-2}[dtype]


def test_appends_the_new_token_and_attends_to_it_with_a_window_and_sinks():
    k_cache, v_cache, table, lens, g = _paged(16, [31, 16, 1])
    q = torch.randn(3, 4, 32, generator=g)
    k_new, v_new = torch.randn(3, 2, 32, generator=g), torch.randn(3, 2, 32, generator=g)
    kc, vc = k_cache.clone(), v_cache.clone()
    out = paged_decode(q, k_cache, v_cache, table, lens, k_new=k_new, v_new=v_new, window=10, num_sinks=2)
    ref = reference_paged_decode(q, kc, vc, table, lens, k_new=k_new, v_new=v_new, window=10, num_sinks=2)
    assert (out - ref).abs().max() < 2e-5
    gathered = gather_pages(k_cache, table, lens + 1)
    for b in range(3):  # the new key sits right after each sequence's cached tokens
        assert torch.equal(gathered[b, :, int(lens[b])], k_new[b])


def test_paged_and_contiguous_caches_give_the_same_result():
    from optiplan.kernels.flash_decoding import flash_decode

    k_cache, v_cache, table, lens, g = _paged(8, [40, 40])
    q = torch.randn(2, 4, 32, generator=g)
    contiguous = flash_decode(q, gather_pages(k_cache, table, lens), gather_pages(v_cache, table, lens))
    assert (paged_decode(q, k_cache, v_cache, table, lens) - contiguous).abs().max() < 1e-5


def test_a_length_past_the_table_or_an_unallocated_page_reads_no_other_sequences_keys():
    """A cache length longer than its table row stops at the row (it had run into the next row's pages), a -1 entry
    holds no key (the pool's free pages are NaN: reading one would show), and an append that would land past the row
    or in a -1 page is refused (a negative index had written into the pool's last page)."""
    k_cache, v_cache, table, lens, g = _paged(4, [7, 8])
    q = torch.randn(2, 4, 32, generator=g)
    whole_row = table.shape[1] * 4
    too_long = paged_decode(q, k_cache, v_cache, table, torch.tensor([whole_row + 8, 8], dtype=torch.int32))
    assert not torch.isnan(too_long).any()  # the row's -1 entries past the sequence's pages were not read
    kept = paged_decode(q, k_cache, v_cache, table, torch.tensor([8, 8], dtype=torch.int32))
    assert (too_long - kept).abs().max() < 1e-5  # and no key of the second row's pages joined the first
    new = torch.randn(2, 2, 32, generator=g)
    for lengths, words in (([whole_row, 0], "inside its block-table row"), ([8, 8], "not all allocated pages")):
        with pytest.raises(ValueError, match=words):
            paged_decode(q, k_cache, v_cache, table, torch.tensor(lengths, dtype=torch.int32), k_new=new, v_new=new)
