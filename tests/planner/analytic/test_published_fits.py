"""The factors profiles/efficiency.yaml records as fitted to published points are what the fit finds on them
(`benchmarks/bench_published.py --fit-kernel`, benchmarks/published_fits.py), and a fit leaves the table as it found it.

The default suite checks that each kernel's documented factors are a minimum of the fitted points' median error among
their neighbours on the fit's grids (a model change that moves the fit fails it); the full search over every point of
the grids (minutes per kernel) is marked slow."""

from __future__ import annotations

import contextlib
import io
import itertools

import pytest
from optiplan import profiles
from optiplan.planner.catalog.engines import engine_table
from script_loader import load_script

KERNELS = ("ggml-mmvq", "ggml-mmvf", "torchao-int8", "tinygemm", "exllama")
# the candidate each kernel's table entry took: the one its held-out third favoured
ADOPTED = {"ggml-mmvq": "both", "ggml-mmvf": "both", "torchao-int8": "per-layer", "tinygemm": "documented",
           "exllama": "share"}
# the points a kernel's fit stands on, at least (exllamav2's README holds four that the catalog can express)
MIN_POINTS = {"exllama": 4}


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/published_fits.py")


@pytest.fixture(scope="module")
def moe_fits():
    return load_script("benchmarks/published_moe_fits.py")


@pytest.fixture(scope="module")
def published():
    return load_script("benchmarks/published_points.py")


def neighbours(bench, factors):
    """The grid points one step from `factors` along each axis the kernel uses (a factor at 0 stays 0: the
    candidate without it is another fit)."""
    grids = (bench.SHARE_GRID, bench.KERNEL_LAYER_GRID, bench.UNIT_GBPS_GRID)
    axes = []
    for value, grid in zip(factors, grids):
        if value == 0.0 and grid is not bench.SHARE_GRID:
            axes.append((0.0,))
            continue
        i = min(range(len(grid)), key=lambda j: abs(grid[j] - value))
        axes.append(tuple(grid[j] for j in (i - 1, i, i + 1) if 0 <= j < len(grid)))
    return [x for x in itertools.product(*axes) if x != tuple(factors)]


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_weight_kernels_documented_factors_are_a_minimum_of_its_fitted_points(bench, kernel, published):
    points = bench.kernel_points(published.published_points(), kernel)
    documented = bench.documented_kernel_factors(kernel)
    entry = profiles.efficiency_table()["weight_kernels"][kernel]
    before = dict(entry)

    def key(x):
        e = bench.rounded_stats(bench.kernel_errors(points, kernel, x, "fitted"))
        return e["median_pct"], e["p90_pct"]

    here = key(documented)
    assert entry == before  # each evaluation leaves the table as it found it
    if ADOPTED[kernel] == "documented":
        # kept from its source (tinygemm: the gpt-fast README's figure): where a neighbour fits the fitted points
        # closer, the documented figure holds the held-out ones at least as close
        best = min(neighbours(bench, documented), key=key)
        if key(best) < here:
            def held(x):
                return bench.rounded_stats(bench.kernel_errors(points, kernel, x, "held-out"))["median_pct"]
            assert held(documented) <= held(best), (best, held(best), held(documented))
        return
    for x in neighbours(bench, documented):
        assert key(x) >= here, (x, key(x), here)
    assert len(points) >= MIN_POINTS.get(kernel, 5) and bench.kernel_errors(points, kernel, documented, "held-out")


def test_the_gemm_behind_vllms_skinny_fp8_gemv_reads_at_the_share_its_fitted_points_favour(bench, published):
    kernel = "rocm-skinny-fp8"
    points = bench.kernel_points(published.published_points(), kernel)
    documented = profiles.efficiency_table()["weight_kernels"][kernel]["gemm_bandwidth_efficiency"]
    assert {p["hardware"] for p in points} == {"mi300x"} and {p["engine"] for p in points} == {"vllm"}

    def key(x):
        e = bench.rounded_stats(bench.gemm_share_errors(points, kernel, x, "fitted"))
        return e["median_pct"], e["p90_pct"]

    here = key(documented)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # the whole search: one share, a few seconds
        report = bench.fit_kernel_gemm_share(published.published_points(), kernel)
    assert report["fitted"]["gemm_share"] == documented and kernel in printed.getvalue()
    # the GEMM at the GEMV's own share (no switch) misses the fitted points and the held-out ones by more
    gemv = profiles.efficiency_table()["weight_kernels"][kernel]["bandwidth_efficiency"]
    held = {x: bench.rounded_stats(bench.gemm_share_errors(points, kernel, x, "held-out"))["median_pct"]
            for x in (documented, gemv)}
    assert key(gemv) > here and held[gemv] > held[documented]
    assert profiles.efficiency_table()["weight_kernels"][kernel]["gemm_bandwidth_efficiency"] == documented


def measured_paged_share() -> float:
    """The paged decode attention's share optiplan's paged kernel measured on the H200: its row in
    profiles/kernels/h200-sxm.json over the H200's measured bandwidth factor."""
    import json

    from optiplan.planner.analytic.efficiency import measured_factors
    from optiplan.planner.catalog.hardware import resolve_hardware

    run = json.loads((profiles.ROOT / "kernels" / "h200-sxm.json").read_text())
    paged = next(r for r in run["rows"] if r["section"] == "paged" and r["batch"] == 64 and r["context"] == 32768)
    return round(paged["hbm_share"] / measured_factors(resolve_hardware("h200-sxm"), "bf16")[0], 2)


def test_paged_serving_engines_read_the_cache_at_the_share_their_kernel_measured():
    """The serving runtime's paged-cache share is the measured one (the search that bears it out against the
    published points is the slow test below)."""
    assert profiles.efficiency_table()["runtimes"]["serving"]["gpu"]["paged_kv_bandwidth_efficiency"] == (
        measured_paged_share())


@pytest.mark.slow
def test_the_published_points_bear_out_the_measured_paged_share(bench, published):
    """Against the cache formats' shares the measured paged share fits the two thirds as well and the held-out third
    no worse (the search over every served point: some four minutes on two cores, hence slow)."""
    costs = profiles.efficiency_table()["runtimes"]["serving"]["gpu"]
    documented = costs["paged_kv_bandwidth_efficiency"]
    assert documented == measured_paged_share()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # the whole search: one share over the grid
        report = bench.fit_kv_share(published.published_points())
    assert "serving KV share" in printed.getvalue()
    formats, measured = report["formats"], report["documented"]
    # the two thirds: the measured share within a tenth of a point of the formats' at worst (8.8% / 8.7% since the
    # MXFP4 experts' compute shares, 2026-12-02; better by 0.3 before), the held-out third below
    assert formats["fitted"]["median_pct"] >= measured["fitted"]["median_pct"] - 0.15
    # the held-out third: its median within half a point (7.3% / 7.6% since SGLang's data-parallel-attention runs),
    # its p90 within 5 points (30.0% / 34.3%: one point sits at it, TensorRT-LLM's Qwen3-235B-A22B on 8 H100, too
    # fast either way, 1.27x with the formats' shares and 1.38x with the measured one; within half a point before)
    assert formats["held-out"]["median_pct"] >= measured["held-out"]["median_pct"] - 0.5
    assert formats["held-out"]["p90_pct"] >= measured["held-out"]["p90_pct"] - 5
    # where the search's own optimum lies beyond the grid step next to the measured share, the held-out third favours
    # it by no more than a point (so the measurement stands: since the 104 points of 2026-12-01 the optimum is 0.79,
    # held out 10.9% against 11.2%; since the cookbook's runs are predicted as runs, 0.80, fitted 10.2% against 10.3%
    # and held out 10.9% against 11.6%); the table is as it was after the search
    if abs(report["fitted"]["kv_share"] - documented) > 0.0101:
        assert report["fitted"]["held-out"]["median_pct"] >= measured["held-out"]["median_pct"] - 1.0
        assert report["fitted"]["fitted"]["median_pct"] <= measured["fitted"]["median_pct"]
    assert costs["paged_kv_bandwidth_efficiency"] == documented


@pytest.mark.slow
def test_the_full_search_finds_the_documented_factors_and_held_out_points_chose_them(bench, published):
    for kernel in KERNELS:
        entry = profiles.efficiency_table()["weight_kernels"][kernel]
        before, printed = dict(entry), io.StringIO()
        with contextlib.redirect_stdout(printed):
            report = bench.fit_kernel_factors(published.published_points(), kernel)
        assert entry == before and kernel in printed.getvalue()
        # no fit holds the held-out third closer than the documented factors on both its median and its p90:
        # llama.cpp's mat-vecs took the share with a time per layer and a bound per SM, gpt-fast's int8 GEMV the
        # share with a time per layer, tinygemm kept the README's figure (the fits helped only the points they were
        # fitted on). Since gpt-oss-20b's three MXFP4 points joined llama.cpp's (2026-12-01), its share alone holds
        # the three held out closer by the median (4.3% / 6.1%) and four times farther by the p90 (41.3% / 9.3%)
        held_out = {name: (r["held-out"]["median_pct"], r["held-out"]["p90_pct"]) for name, r in report.items()}
        assert not any(m < held_out["documented"][0] - 1e-9 and p90 < held_out["documented"][1] - 1e-9
                       for m, p90 in held_out.values()), (kernel, held_out)
        fit = report[ADOPTED[kernel]]
        assert fit["share"] == pytest.approx(entry["bandwidth_efficiency"], abs=0.005)
        assert fit["layer_device_s"] == pytest.approx(entry.get("layer_device_s", 0.0), abs=1e-7)
        assert fit["unit_bandwidth_gbps"] == pytest.approx(entry.get("unit_bandwidth_gbps", 0.0), abs=1e-9)


def test_only_the_points_read_by_the_kernel_are_fitted(bench, published):
    points = published.published_points()
    read = bench.kernel_points(points, "ggml-mmvq")
    assert read and {p["engine"] for p in read} == {"llama.cpp"} and {p["dtype"] for p in read} == {"gguf-q4_k_m"}
    assert {p["dtype"] for p in bench.kernel_points(points, "ggml-mmvf")} == {"fp16"}
    assert {p["id"] for p in bench.kernel_points(points, "torchao-int8")} == {
        p["id"] for p in points if p["engine"] == "gpt-fast" and p["dtype"] == "int8"}
    # exllamav2's own runs state the kernel they ran; ExLlama v1's point (MLC's table, an older kernel) does not
    exllama = {p["id"] for p in bench.kernel_points(points, "exllama")}
    assert exllama == {p["id"] for p in points if p.get("weight_kernel") == "exllama"} and len(exllama) == 4
    assert "exllama-llama2-7b-int4-rtx4090" not in exllama
    # gpt-fast's int4 reads its weights with tinygemm, not llama.cpp's kernel: its points move with tinygemm's share
    gpt_fast = next(p for p in points if p["engine"] == "gpt-fast" and p["dtype"] == "int4")
    (other, _), (own, _) = published.predict(gpt_fast), published.predict(read[0])
    with bench.kernel_factors("ggml-mmvq", 0.5):
        assert published.predict(gpt_fast)[0] == pytest.approx(other)
        assert published.predict(read[0])[0] < 0.9 * own  # tokens/s: a smaller share reads the weights later


@pytest.mark.slow  # 19 s on two cores: the default run was near CI's limit; bench_published.py lists what it skips
def test_profile_refuses_no_published_point(bench, published):
    """Every point the validation set can express is predicted: a refusal is the bench asking what profile cannot
    answer (it once set a batch-1 decode point's scheduling without request lengths, and three LMDeploy points
    dropped out of the accuracy card)."""
    refused = [(p["id"], why) for p in published.published_points()
               for value, why in [published.predict(p)] if value is None and why.startswith("profile refuses")]
    assert not refused


def test_a_burst_that_stopped_early_is_predicted_with_requests_of_the_length_it_made(published):
    """A burst run without --ignore-eos made fewer tokens than it asked for (GPUStack's 32K-token runs of Qwen3-32B
    made 7,699 of 10,000 on an A100): a request that stopped early left its slot to the next, so each figure of the
    run, its TTFT and TPOT too, is predicted with requests of the mean length made (77 tokens here, not 100)."""
    points = {p["id"]: p for p in published.published_points()}
    run = "gpustack-qwen3-32b-a100-vllm011-32000-100"
    for point in (points[run], points[run + "-ttft"], points[run + "-tpot"]):
        assert point["generated_tokens"] == 7699 and "Total generated tokens:                  7699" in point["quote"]
        asked = {k: v for k, v in point.items() if k != "generated_tokens"}
        made = asked | {"output_tokens": 77}
        assert published.predict(point)[0] == pytest.approx(published.predict(made)[0])
        assert published.predict(point)[0] != pytest.approx(published.predict(asked)[0])
    made = [p for p in published.published_points() if p.get("generated_tokens")]
    assert all(p.get("num_requests") and p["generated_tokens"] < p["num_requests"] * p["output_tokens"] for p in made)


def test_a_run_whose_requests_cannot_fit_as_modelled_is_skipped_with_its_reason(published):
    """GPUStack's Qwen3-32B on one H100 SXM served 32K-token prompts, which stock vLLM 0.11 has no cache for (its
    sampler's profiling peak leaves 4.45 GiB, llm-d's logs): read as stated, the point is skipped with that reason,
    not scored as a figure of a deployment that cannot run; its 2K run, which fits, is predicted."""
    points = {p["id"]: p for p in published.published_points()}
    as_stated = {k: v for k, v in points["gpustack-qwen3-32b-h100-vllm011-32000-100-tpot"].items()
                 if k != "memory_setup"}
    value, why = published.predict(as_stated)
    assert value is None and "not one request of 32,077 tokens fits" in why  # 77 tokens made on average
    fits = {k: v for k, v in points["gpustack-qwen3-32b-h100-vllm011-2000-100-tpot"].items() if k != "memory_setup"}
    assert published.predict(fits)[0] is not None


def test_a_server_whose_cache_was_not_the_stated_one_is_skipped_whole(published):
    """That page's runs came from one server with more cache than stock (`memory_setup: not-as-stated`): every one of
    them is skipped with that reason, the 2K runs too; the A100 page, whose runs fit the stated setup, is predicted;
    a value the set does not define is refused, not read as unmarked."""
    points = published.published_points()
    marked = {p["id"] for p in points if p.get("memory_setup")}
    assert marked == {p["id"] for p in points if p["id"].startswith("gpustack-qwen3-32b-h100-")}
    assert len(marked) == 11
    for p in points:
        if p["id"] in marked:
            value, why = published.predict(p)
            assert value is None and "memory setup is not the stated one" in why
    a100 = next(p for p in points if p["id"] == "gpustack-qwen3-32b-a100-vllm011-2000-100-tpot")
    assert published.predict(a100)[0] is not None
    with pytest.raises(ValueError, match="memory_setup 'not-stated' is none of not-as-stated"):
        published.predict({**a100, "memory_setup": "not-stated"})


@pytest.mark.parametrize("engine, key", [("vllm", None), ("sglang", "one_device"),
                                         pytest.param("sglang", "several_devices", marks=pytest.mark.slow),  # 12 s
                                         ("trtllm", None)])
def test_an_engines_first_token_latency_is_the_one_its_served_points_favour(bench, published, engine, key):
    # each engine profile's fixed first-token latency over HTTP (`bench_published.py --fit-first-token`; SGLang's per
    # server on one GPU and over several, each on its own points) beats one grid step either side on the median error,
    # then p90, of its fitted two thirds, or where a neighbour beats it there, that neighbour does worse held out (the
    # rule the value was taken by); its in-process points are not among them
    entry = engine_table()[engine]
    documented = entry["first_token_latency_s"]
    was = documented[key] if key else documented
    several = key == "several_devices"
    own = [p for p in published.published_points() if p["engine"] == engine and p.get("harness") != "in-process"
           and (key is None or ((p.get("num_devices") or 1) > 1) == several)]
    assert len(own) >= 20

    def key_of(x, part):
        value = {**documented, key: x} if key else (x or None)
        with published.table_overrides(entry, {"first_token_latency_s": value}):
            e = published.rounded_stats(published.part_errors(own, part))
        return e["median_pct"], e["p90_pct"]
    assert was in bench.FIRST_TOKEN_GRID
    i = bench.FIRST_TOKEN_GRID.index(was)
    for j in (i - 1, i + 1):
        if 0 <= j < len(bench.FIRST_TOKEN_GRID):
            x = bench.FIRST_TOKEN_GRID[j]
            if key_of(x, "fitted") < key_of(was, "fitted"):
                assert key_of(x, "held-out") >= key_of(was, "held-out"), (engine, key, x)
    assert entry["first_token_latency_s"] == documented  # the table as it was


@pytest.mark.slow  # half a minute on two cores: every ROCm MoE point, six neighbours over
def test_rocms_layer_costs_and_sglangs_experts_share_there_are_the_triple_its_points_favour(moe_fits, published):
    # the ROCm costs per MoE layer and per latent-attention layer are each a multiple of the GPUs' and SGLang's routed
    # experts there have a share of their own (`bench_published.py --fit-backend-layers rocm`, a joint search on the
    # ROCm MoE points, DeepSeek's and Llama 4's): the triple beats one grid step either side in each factor on the
    # median error, then p90, of their fitted two thirds (or that neighbour does worse held out), and it moves both
    # parts well closer than the GPUs' costs with the experts at the dense layers' share did (21.5% -> 5.2% fitted,
    # 39.1% -> 12.5% held out)
    table = profiles.efficiency_table()["runtimes"]["serving"]
    multiples = tuple(round(table["rocm"][key] / table["gpu"][key], 2) for key in moe_fits.LAYER_COSTS)
    rule = moe_fits.backend_moe_rule("rocm")
    share = rule["moe_flop_share"]
    points = moe_fits.serving_points(published.published_points())
    rocm_moe = [p for p in points if p["hardware"] in ("mi300x", "mi325x") and published.point_kind(p) == "moe"]
    assert len(rocm_moe) >= 40 and any("llama-4" in p["model"].lower() for p in rocm_moe)

    def key_of(moe, mla, x, part):
        with published.table_overrides(table, {"rocm": moe_fits.backend_layer_costs(table, moe, mla)}), \
                published.table_overrides(rule, {"moe_flop_share": x}):
            e = published.rounded_stats(published.part_errors(rocm_moe, part))
        return e["median_pct"], e["p90_pct"]
    grids = (moe_fits.BACKEND_MOE_LAYER_GRID, moe_fits.BACKEND_MLA_LAYER_GRID, moe_fits.BACKEND_MOE_SHARE_GRID)
    best = (*multiples, share)
    for axis, grid in enumerate(grids):
        i = grid.index(best[axis])
        for j in (i - 1, i + 1):
            if not 0 <= j < len(grid):
                continue
            other = tuple(grid[j] if a == axis else best[a] for a in range(3))
            # no neighbour fits its two thirds much better, and one that fits them better does worse held out
            assert key_of(*other, "fitted")[0] > key_of(*best, "fitted")[0] - 1, other
            if key_of(*other, "fitted") < key_of(*best, "fitted"):
                assert key_of(*other, "held-out") >= key_of(*best, "held-out"), other
    for part in ("fitted", "held-out"):
        assert key_of(*best, part)[0] < key_of(1.0, 1.0, None, part)[0] - 10
    assert rule["moe_flop_share"] == share and table["rocm"]["moe_layer_overhead_s"] == pytest.approx(
        multiples[0] * table["gpu"]["moe_layer_overhead_s"])  # the tables as they were


def _serving_cost_errors(moe_fits, published, kind, key, grid=None):
    """The documented value of one of the serving runtime's GPU costs (`key`) and a function of a candidate and a part
    giving the (median, p90) error of the serving engines' points of one `kind` of model with it (with `grid`, of the
    points the cost moves between the grid's ends)."""
    costs = profiles.efficiency_table()["runtimes"]["serving"]["gpu"]
    points = moe_fits.serving_points(published.published_points())
    own = moe_fits.moved_points(points, costs, key, (grid[0], grid[-1])) if grid else \
        [p for p in points if published.point_kind(p) == kind]

    def key_of(x, part):
        with published.table_overrides(costs, {key: x}):
            e = published.rounded_stats(published.part_errors(own, part))
        return e["median_pct"], e["p90_pct"]
    return costs[key], key_of, len(own)


def _assert_best_of_neighbours_and_above(key_of, grid, documented, baseline, margins):
    """No grid neighbour of the documented value fits the two thirds better (median, then p90) without holding the
    third out worse (the rule the factors are taken by), and each part's median beats the `baseline` value's by more
    than its margin (`margins`: part -> points)."""
    i = grid.index(documented)
    for j in (i - 1, i + 1):
        if key_of(grid[j], "fitted") < key_of(documented, "fitted"):
            assert key_of(grid[j], "held-out") > key_of(documented, "held-out"), grid[j]
    for part, margin in margins.items():
        assert key_of(documented, part)[0] < key_of(baseline, part)[0] - margin, part


def test_a_state_layers_fixed_cost_is_the_one_the_hybrid_points_favour(moe_fits, published):
    # the serving runtime's fixed kernel time per state layer (`bench_published.py --fit-state-layers`): no grid
    # neighbour fits the hybrid points' two thirds much better, one that fits them better does worse held out, and it
    # brings the held-out third closer than no such cost did (28.9% -> 20.1%)
    documented, key_of, points = _serving_cost_errors(moe_fits, published, "hybrid", "state_layer_overhead_s")
    assert points >= 9
    grid = moe_fits.STATE_LAYER_GRID
    i = grid.index(documented)
    for j in (i - 1, i + 1):
        assert key_of(grid[j], "fitted")[0] > key_of(documented, "fitted")[0] - 1, grid[j]
        if key_of(grid[j], "fitted") < key_of(documented, "fitted"):
            assert key_of(grid[j], "held-out") >= key_of(documented, "held-out"), grid[j]
    assert key_of(documented, "held-out")[0] < key_of(0.0, "held-out")[0] - 5


@pytest.mark.slow
def test_a_state_layers_fixed_cost_is_the_searchs_own_optimum(moe_fits, published):
    # the whole search over the grid (the default suite checks the documented cost against its neighbours above)
    documented = profiles.efficiency_table()["runtimes"]["serving"]["gpu"]["state_layer_overhead_s"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert moe_fits.fit_state_layer_costs(published.published_points())["fitted"]["state_layer_overhead_s"] == \
            documented  # the search's own optimum
    assert profiles.efficiency_table()["runtimes"]["serving"]["gpu"]["state_layer_overhead_s"] == documented


@pytest.mark.slow  # some forty seconds on two cores: the fused points at four savings
def test_the_fused_all_reduces_saving_is_the_one_their_points_favour(moe_fits, published):
    # what SGLang's fused all-reduce saves (`bench_published.py --fit-allreduce-fusion`) on the points it moves
    # (SGLang 0.5.6 on 8 B200: DeepSeek-R1, gpt-oss-120b): taken by the fits' rule (since the engines' prefill
    # attention got its measured share, 7 us fits them closer, 2.9% against 3.4%, and holds them out further, 14.4%
    # against 13.9%), and both parts closer than with no saving (7.7% -> 3.4% fitted, 17.9% -> 13.9% held out)
    grid = moe_fits.ALLREDUCE_FUSION_GRID
    documented, key_of, points = _serving_cost_errors(moe_fits, published, "fused", "allreduce_fusion_saving_s", grid)
    assert points >= 25
    _assert_best_of_neighbours_and_above(key_of, grid, documented, 0.0, {"fitted": 3, "held-out": 2})


@pytest.mark.slow  # some minute on two cores: every MoE point of the serving engines, four times over
def test_the_routing_skew_is_the_one_the_moe_points_favour(moe_fits, published):
    # the routed experts' popularity (`bench_published.py --fit-routing-skew`): no grid neighbour fits the serving
    # engines' MoE points' two thirds better, and both parts come closer than with a uniform router (the fitted part
    # by less since SGLang's fused all-reduces took over part of what the skew explained: profiles/efficiency.yaml;
    # the held-out third by 2.0 points since the engines' prefill attention has its own measured share)
    documented, key_of, points = _serving_cost_errors(moe_fits, published, "moe", "routing_skew")
    assert points >= 300
    _assert_best_of_neighbours_and_above(key_of, moe_fits.ROUTING_SKEW_GRID, documented, 0.0,
                                         {"fitted": 0.5, "held-out": 1.5})
    assert profiles.efficiency_table()["runtimes"]["serving"]["gpu"]["routing_skew"] == documented  # as it was


@pytest.mark.slow
def test_sglangs_eager_prefill_is_the_one_its_points_favour(moe_fits, published):
    # SGLang's host time per layer of an eager prompt step (`bench_published.py --fit-eager-prefill`): the documented
    # factors are the search's own optimum, and they bring the held-out third closer than the fixed first-token
    # latency they replace (110 ms over several GPUs), whose one-request TTFT exceeded gpt-oss-120b's whole one
    # (or, where the search has moved, its optimum holds the third out worse: the fits' rule keeps the documented ones)
    with contextlib.redirect_stdout(io.StringIO()):
        report = moe_fits.fit_eager_prefill(published.published_points())
    entry = engine_table()["sglang"]
    fitted, documented = report["fitted"], report["documented"]
    if (fitted["eager_prefill"], fitted["first_token_latency_s"]) != (entry["eager_prefill"],
                                                                       entry["first_token_latency_s"]):
        # a held-out median within the printed rounding (0.1 point) of the documented one is a tie, which the p90
        # breaks (2026-12-02 and 2026-12-04: the optimum held the third out as well, or 0.1 point closer, with a
        # worse p90); and an optimum that holds SGLang's third out closer but every serving engine's held-out third
        # further (its points near the typical error worse, a few far ones better: later on 2026-12-04, 9.3% -> 9.9%)
        # is not taken either
        f, d = fitted["held-out"], documented["held-out"]
        assert f["median_pct"] > d["median_pct"] + 0.1 + 1e-9 or (
            abs(f["median_pct"] - d["median_pct"]) <= 0.1 + 1e-9 and f["p90_pct"] > d["p90_pct"]) or \
            fitted["all held-out"]["median_pct"] > documented["all held-out"]["median_pct"] + 0.1 + 1e-9, \
            (fitted, documented)
    assert documented["held-out"]["median_pct"] < report["without"]["held-out"]["median_pct"] - 1


def _mxfp4_rules(engine):
    return [r for r in engine_table()[engine]["device_defaults"] if "moe_flop_share_mxfp4" in r]


def test_mxfp4_experts_shares_are_minima_of_their_points(moe_fits, published):
    # TensorRT-LLM's grouped GEMMs over gpt-oss's MXFP4 experts (`bench_published.py --fit-mxfp4-experts`): on Hopper
    # and on Blackwell, no grid neighbour of the documented share fits the rule's fitted two thirds better
    from optiplan.planner.catalog.engines import engine_moe_flop_share
    from optiplan.planner.catalog.hardware import resolve_hardware

    points = [p for p in published.published_points() if p["engine"] == "trtllm" and p.get("dtype") == "mxfp4"]
    for rule in _mxfp4_rules("trtllm"):
        documented = rule["moe_flop_share_mxfp4"]
        own = [p for p in points
               if engine_moe_flop_share("trtllm", resolve_hardware(p["hardware"]), "mxfp4") == documented]
        assert len(own) >= 15, rule["when"]

        def key_of(x, part, rule=rule, own=own):
            with published.table_overrides(rule, {"moe_flop_share_mxfp4": x}):
                e = published.rounded_stats(published.part_errors(own, part))
            return e["median_pct"], e["p90_pct"]
        for other in (round(documented - 0.05, 2), round(documented + 0.05, 2)):
            assert key_of(other, "fitted") >= key_of(documented, "fitted"), (rule["when"], other)
        # the experts at the dense layers' documented rate came out up to 2.4x as fast as measured; since the cache
        # holds as many sequences as TensorRT-LLM's window pools do, Hopper's held-out third gains 2 points, not 40
        assert key_of(documented, "held-out")[0] < key_of(1.0, "held-out")[0]
        assert rule["moe_flop_share_mxfp4"] == documented  # the table as it was


@pytest.mark.slow
def test_vllms_hopper_mxfp4_reads_are_the_fit_and_hold_out(moe_fits, published):
    # the share its kernel reads gpt-oss's experts at is the search's optimum, and the held-out third agrees against
    # the devices' MXFP4 share it was read at before
    with contextlib.redirect_stdout(io.StringIO()):
        report = moe_fits.fit_mxfp4_reads(published.published_points())
    assert report["documented"]["share"] == report["fitted"]["share"] != report["before"]["share"]
    assert report["fitted"]["held-out"]["median_pct"] < report["before"]["held-out"]["median_pct"]
    assert report["fitted"]["fitted"]["points"] >= 8 and report["fitted"]["held-out"]["points"] >= 8


@pytest.mark.slow
def test_mxfp4_experts_shares_are_the_fits_where_the_held_out_third_agrees(moe_fits, published):
    # every rule's documented share is the search's optimum, but the A100's: its optimum (0.30) takes both its parts
    # down, but by trading its 32K bursts (1.04-1.08x -> 1.32-1.36x) for its 2K and 4K ones, which stay at 0.60-0.74x:
    # not the experts' compute rate (vllm.yaml moe_flop_mxfp4_source), so the rule keeps the A100's MoE share
    with contextlib.redirect_stdout(io.StringIO()):
        report = moe_fits.fit_mxfp4_experts(published.published_points())
    assert len(report) == 4
    for name, r in report.items():
        if "below_compute_capability': 9.0" in name:
            assert r["documented"]["share"] == r["before"]["share"] != r["fitted"]["share"]
        else:
            assert r["fitted"]["share"] == r["documented"]["share"], name
            assert r["fitted"]["held-out"]["median_pct"] <= r["before"]["held-out"]["median_pct"], name


def test_every_fit_flag_runs_a_search_of_its_own():
    # bench_published.py dispatches its fits from one table: a flag without an entry would fall through to the card
    script = load_script("benchmarks/bench_published.py")
    flags = {a.dest for a in script.arguments()._actions if a.dest.startswith("fit_")} - {"fit_kernel"}
    assert flags == set(script.FITS)
    assert len({name for name, _ in script.FITS.values()}) == len(script.FITS)  # each writes its own results
