"""The fits of issue 14's validation set that concern a MoE or hybrid model's own layers (`python
benchmarks/bench_published.py --fit-moe-overheads | --fit-backend-layers | --fit-expert-bandwidth |
--fit-routing-skew | --fit-allreduce-fusion | --fit-state-layers | --fit-mxfp4-experts | --fit-mxfp4-reads`): the
serving runtime's fixed kernel time per MoE and latent-attention layer, ROCm's multiple of it with SGLang's routed
experts' compute share there, the share of the weights' bandwidth the routed experts are read at, their popularity's
skew, what a fused all-reduce saves, the fixed kernel time per state layer, and the compute and
bandwidth shares of the engines' kernels over MXFP4 experts (gpt-oss). Each searches on two thirds of the published points
and reports the errors on both parts, the fixed third held out (`published_points.held_out`); a fit tries its
candidates on the loaded tables in place and leaves them as it found them."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from optiplan import profiles  # noqa: E402
from optiplan.planner.analytic.efficiency import weight_kernel_refusal  # noqa: E402
from optiplan.planner.catalog.engines import (  # noqa: E402
    engine_flop_share,
    engine_kernel_efficiency,
    engine_moe_flop_share,
    engine_runtime,
    engine_table,
)
from optiplan.planner.catalog.hardware import resolve_hardware  # noqa: E402
from published_points import (  # noqa: E402
    MEMORY_CATEGORIES,
    best_fit,
    part_errors,
    parts_text,
    point_engine,
    point_kind,
    predict,
    rounded_stats,
    table_overrides,
)


def serving_points(points: list[dict]) -> list[dict]:
    """The points of the engines that run the serving runtime (vLLM, SGLang, TensorRT-LLM and the generic ones)."""
    return [p for p in points if engine_runtime(point_engine(p)) == "serving"]


# the fixed kernel time a MoE layer's routed experts and a latent-attention layer add to a serving step: 0-100 us
LAYER_OVERHEAD_GRID = tuple(round(i * 1e-5, 6) for i in range(11))


def fit_moe_overheads(points: list[dict]) -> dict:
    """The serving runtime's fixed kernel time per MoE layer (its routed experts: routing, top-k, token alignment, the
    grouped GEMMs' launches) and per latent-attention layer (MLA's extra projections, norms and batched matmuls beyond
    a GQA layer's), minimising the median, then the p90, error of the serving engines' latency and throughput points
    in the fitted two thirds (a dense model's do not move, as in use); errors on both parts without them, with the
    documented ones and with the fitted ones, and on the MoE points alone."""
    points = serving_points(points)
    moe = [p for p in points if point_kind(p) == "moe"]
    costs = profiles.efficiency_table()["runtimes"]["serving"]["gpu"]
    documented = (costs.get("moe_layer_overhead_s", 0.0), costs.get("mla_layer_overhead_s", 0.0))

    def errors(x, part, among=points):
        with table_overrides(costs, {"moe_layer_overhead_s": x[0], "mla_layer_overhead_s": x[1]}):
            return part_errors(among, part)

    best = best_fit(list(itertools.product(LAYER_OVERHEAD_GRID, repeat=2)), errors,
                    lambda x: abs(x[0] - documented[0]) + abs(x[1] - documented[1]))
    report = {name: {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")}
              | {f"moe {part}": rounded_stats(errors(x, part, moe)) for part in ("fitted", "held-out")}
              | {"moe_layer_overhead_s": x[0], "mla_layer_overhead_s": x[1]}
              for name, x in (("none", (0.0, 0.0)), ("documented", documented), ("fitted", best))}
    for name, r in report.items():
        print(f"{name:10s} MoE layer {r['moe_layer_overhead_s'] * 1e6:3.0f} us, MLA layer "
              f"{r['mla_layer_overhead_s'] * 1e6:3.0f} us: "
              + parts_text(r, ("fitted", "held-out", "moe fitted", "moe held-out")))
    return report


# how many times the CUDA GPUs' fixed kernel time per MoE layer, and per latent-attention layer, a backend's kernels
# take: each its own multiple (Llama 4's runs on ROCm have MoE layers without latent attention, DeepSeek's both)
BACKEND_MOE_LAYER_GRID = tuple(1 + 0.5 * i for i in range(5))
BACKEND_MLA_LAYER_GRID = tuple(1.5 + 0.5 * i for i in range(8))
LAYER_COSTS = ("moe_layer_overhead_s", "mla_layer_overhead_s")
# the share of the device's documented compute rate SGLang's grouped GEMM over the routed experts reaches on a backend
# (None: the dense layers' share)
BACKEND_MOE_SHARE_GRID = (None, *(round(0.04 + 0.02 * i, 2) for i in range(6)))
BACKEND_MOE_ENGINE = "sglang"  # the engine whose points on the backend the experts' share is fitted on


def backend_moe_rule(backend: str) -> dict:
    """SGLang's `device_defaults` rule for the backend's GPUs that sets its experts' share (`moe_flop_share`)."""
    rule = next((r for r in engine_table()[BACKEND_MOE_ENGINE]["device_defaults"]
                 if r["when"].get("backend") == backend and "moe_flop_share" in r), None)
    if rule is None:
        raise SystemExit(f"profiles/engines/{BACKEND_MOE_ENGINE}.yaml has no device rule for the {backend} backend "
                         "with a moe_flop_share: add one (when: {kind: gpu, backend: ...}) for the fit to search")
    return rule


def backend_layer_costs(table: dict, moe: float, mla: float) -> dict:
    """The backend's entry of the serving runtime's costs for `moe` and `mla` times the CUDA GPUs' per-layer costs."""
    gpu = table["gpu"]
    return {LAYER_COSTS[0]: gpu[LAYER_COSTS[0]] * moe, LAYER_COSTS[1]: gpu[LAYER_COSTS[1]] * mla}


def fit_backend_layer_costs(points: list[dict], backend: str = "rocm") -> dict:
    """On one GPU backend, the serving runtime's fixed kernel time per MoE layer and per latent-attention layer, each
    a multiple of the CUDA GPUs' (the backend's MoE models tell them apart where one has MoE layers without latent
    attention: Llama 4 beside DeepSeek on ROCm), searched together with the share of the device's compute rate
    SGLang's grouped GEMM over the routed experts reaches there (a step's fixed costs set decode at a few sequences,
    the experts' rate a long prompt's prefill), minimising the median, then the p90, error of the backend's MoE points
    in the fitted two thirds; errors on both parts, on them and on all the serving points, for the GPUs' costs at the
    dense layers' share, the documented triple, the documented multiples at the dense layers' share and the fitted
    triple."""
    points = serving_points(points)
    own = [p for p in points if resolve_hardware(p["hardware"]).features.backend == backend and point_kind(p) == "moe"]
    table = profiles.efficiency_table()["runtimes"]["serving"]
    gpu = table["gpu"]
    rule = backend_moe_rule(backend)
    kept = table.get(backend, {})
    documented = tuple(round(kept.get(key, gpu[key]) / gpu[key], 2) for key in LAYER_COSTS) + (rule["moe_flop_share"],)

    def errors(x, part, among=own):
        with table_overrides(table, {backend: backend_layer_costs(table, x[0], x[1])}), \
                table_overrides(rule, {"moe_flop_share": x[2]}):
            return part_errors(among, part)

    grid = list(itertools.product(BACKEND_MOE_LAYER_GRID, BACKEND_MLA_LAYER_GRID, BACKEND_MOE_SHARE_GRID))
    print(f"searching {len(grid)} candidates on {len(own)} points", file=sys.stderr, flush=True)
    best = best_fit(grid, errors, lambda x: (abs(x[0] - documented[0]) + abs(x[1] - documented[1]),
                                             abs((x[2] or 1.0) - documented[2])))
    report = {name: {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")}
              | {f"all {part}": rounded_stats(errors(x, part, points)) for part in ("fitted", "held-out")}
              | {"moe_multiple": x[0], "mla_multiple": x[1], "moe_flop_share": x[2]}
              for name, x in (("gpu", (1.0, 1.0, None)), ("documented", documented),
                              ("multiples", documented[:2] + (None,)), ("fitted", best))}
    for name, r in report.items():
        share = "the dense layers'" if r["moe_flop_share"] is None else f"{r['moe_flop_share']:.2f}"
        print(f"{name:10s} {backend} MoE layers x{r['moe_multiple']:g} and MLA layers x{r['mla_multiple']:g} the GPUs', "
              f"{BACKEND_MOE_ENGINE}'s experts at {share} share: {backend} MoE "
              + parts_text(r, ("fitted", "held-out", "all fitted", "all held-out")))
    return report


# the share of the weights' bandwidth the routed experts are read at: 0.6-1 by 0.05
EXPERT_BANDWIDTH_GRID = tuple(round(0.6 + 0.05 * i, 2) for i in range(9))


def fit_serving_gpu_cost(points: list[dict], kind: str, key: str, grid: tuple, baseline: tuple[str, float],
                         label: Callable[[float], str], moved: bool = False) -> dict:
    """One of the serving runtime's GPU costs (`key` in profiles/efficiency.yaml runtimes.serving.gpu), minimising the
    median, then the p90, error of the serving engines' points of one `kind` of model (moe, hybrid; with `moved`, the
    points the cost moves between the grid's ends, named `kind`) in the fitted two thirds (the others do not move);
    errors on both parts, on them and on all the serving points, for the `baseline` (its name and value), the
    documented value and the fitted one, each printed after `label(value)`."""
    points = serving_points(points)
    costs = profiles.efficiency_table()["runtimes"]["serving"]["gpu"]
    own = moved_points(points, costs, key, (grid[0], grid[-1])) if moved else \
        [p for p in points if point_kind(p) == kind]
    documented = costs.get(key, baseline[1])

    def errors(x, part, among=own):
        with table_overrides(costs, {key: x}):
            return part_errors(among, part)

    best = best_fit(list(grid), errors, lambda x: abs(x - documented))
    report = {name: {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")}
              | {f"all {part}": rounded_stats(errors(x, part, points)) for part in ("fitted", "held-out")}
              | {key: x}
              for name, x in (baseline, ("documented", documented), ("fitted", best))}
    for name, r in report.items():
        print(f"{name:10s} {label(r[key])}: {kind} " + parts_text(r, ("fitted", "held-out", "all fitted", "all held-out")))
    return report


def moved_points(points: list[dict], costs: dict, key: str, ends: tuple[float, float]) -> list[dict]:
    """The points whose prediction differs with `costs[key]` at either end of its grid."""
    def predicted(x):
        with table_overrides(costs, {key: x}):
            return [predict(p)[0] for p in points]
    return [p for p, a, b in zip(points, *map(predicted, ends), strict=True) if a != b]


def fit_expert_bandwidth(points: list[dict]) -> dict:
    """The share of the weights' bandwidth at which the serving engines' grouped MoE GEMM reads a MoE layer's routed
    experts (`expert_bandwidth_ratio`), fitted on the serving engines' MoE points (`fit_serving_gpu_cost`), against
    the dense layers' share (1)."""
    return fit_serving_gpu_cost(points, "moe", "expert_bandwidth_ratio", EXPERT_BANDWIDTH_GRID, ("dense", 1.0),
                                lambda x: f"routed experts at {x:.2f} of the weights' share")


# the Zipf exponent of the routed experts' popularity under served traffic: 0-1 by 0.05
ROUTING_SKEW_GRID = tuple(round(0.05 * i, 2) for i in range(21))


def fit_routing_skew(points: list[dict]) -> dict:
    """The skew of the routed experts' popularity (`routing_skew`: how many distinct experts a few decode tokens
    reach), fitted on the serving engines' MoE points (`fit_serving_gpu_cost`), against a uniform router (0)."""
    return fit_serving_gpu_cost(points, "moe", "routing_skew", ROUTING_SKEW_GRID, ("uniform", 0.0),
                                lambda x: f"routing skew {x:.2f}")


# what an all-reduce fused with the residual add and RMSNorm after it saves over the two kernels: 0-20 us by 1
ALLREDUCE_FUSION_GRID = tuple(round(i * 1e-6, 6) for i in range(21))


def fit_allreduce_fusion(points: list[dict]) -> dict:
    """The fixed time an engine's fused all-reduce saves (`allreduce_fusion_saving_s`), fitted on the serving points
    whose deployment fuses them (the engine's `allreduce_fusion` rule: SGLang's DeepSeek-R1 and gpt-oss-120b on 8
    B200; `fit_serving_gpu_cost`), against no saving."""
    return fit_serving_gpu_cost(points, "fused", "allreduce_fusion_saving_s", ALLREDUCE_FUSION_GRID, ("none", 0.0),
                                lambda x: f"fused all-reduce saves {x * 1e6:2.0f} us", moved=True)


# the fixed kernel time a state layer adds to a serving step: 0-100 us by 5
STATE_LAYER_GRID = tuple(round(i * 5e-6, 6) for i in range(21))


def fit_state_layer_costs(points: list[dict]) -> dict:
    """The serving runtime's fixed kernel time per state layer (a linear attention's convolution update, gating and
    recurrent state update beside its projections), fitted on the serving engines' hybrid points
    (`fit_serving_gpu_cost`), against none."""
    return fit_serving_gpu_cost(points, "hybrid", "state_layer_overhead_s", STATE_LAYER_GRID, ("none", 0.0),
                                lambda x: f"state layer {x * 1e6:3.0f} us")


# an eager prefill step's host time per layer (`eager_prefill` in an engine's profile) and the fixed first-token
# latency beside it: the grids a fit searches, one after the other. The medians alone barely tell a fixed latency
# from a time per layer (a 40 or 50 ms latency with 0.3-0.4 ms a layer fits SGLang's two thirds as well), so the
# latency is bounded by a measurement: gpt-oss-120b's whole one-request TTFT on SGLang 0.5.6 and 8 B200 is 31.8 ms
# (benchmarks/published/sglang-cookbook-gpt-oss-120b-b200.yaml), its device work about 8 ms and its 36 layers' launches
# more: a latency above 20 ms leaves them no room.
EAGER_LAYER_GRID = tuple(round(i * 1e-4, 5) for i in range(1, 10))
EAGER_MLA_GRID = tuple(round(i * 2e-4, 5) for i in range(0, 9))
EAGER_STATE_GRID = tuple(round(i * 2.5e-4, 6) for i in range(0, 11))
EAGER_LATENCY_GRID = (0.0, 0.005, 0.01, 0.015, 0.02)


def fit_eager_prefill(points: list[dict], engine: str = "sglang") -> dict:
    """The host time an engine that runs its prefill steps eagerly spends per layer (`eager_prefill.layer_s`, with the
    fixed first-token latency beside it), then per latent-attention layer beyond it (`mla_layer_s`) and per state
    layer (`state_layer_s`), one after the other, each minimising the median, then the p90, error of the fitted two
    thirds of its points; errors on both parts, on them and on all the serving points, for the documented factors, for
    the engine without an eager prefill (its fixed first-token latency alone, `first_token_latency_s` as documented
    before it) and for the fitted ones."""
    own = [p for p in points if p["engine"] == engine and p["category"] not in MEMORY_CATEGORIES]
    serving = serving_points(points)
    entry = engine_table()[engine]
    documented = {"eager_prefill": entry.get("eager_prefill"), "first_token_latency_s": entry.get("first_token_latency_s")}

    def facts(layer, mla, state, latency):
        return {"eager_prefill": {"layer_s": layer, "mla_layer_s": mla, "state_layer_s": state},
                "first_token_latency_s": {"one_device": latency, "several_devices": latency}}

    def errors(f, part, among=own):
        with table_overrides(entry, f):
            return part_errors(among, part)

    def best(grid, candidate):  # the grid's first candidate of the lowest fitted median, then p90 (`best_fit`)
        return best_fit(list(grid), lambda x, part: errors(candidate(x), part), lambda x: 0)

    was = documented["eager_prefill"] or {}
    mla_was, state_was = was.get("mla_layer_s", 0.0), was.get("state_layer_s", 0.0)
    layer, latency = best([(x, t) for x in EAGER_LAYER_GRID for t in EAGER_LATENCY_GRID],
                          lambda c: facts(c[0], mla_was, state_was, c[1]))
    mla = best(EAGER_MLA_GRID, lambda x: facts(layer, x, state_was, latency))
    state = best(EAGER_STATE_GRID, lambda x: facts(layer, mla, x, latency))
    without = {"eager_prefill": None, "first_token_latency_s": {"one_device": 0.01, "several_devices": 0.11}}
    report = {}
    for name, f in (("documented", documented), ("without", without), ("fitted", facts(layer, mla, state, latency))):
        report[name] = {part: rounded_stats(errors(f, part)) for part in ("fitted", "held-out")} | f \
            | {f"all {part}": rounded_stats(errors(f, part, serving)) for part in ("fitted", "held-out")}
        print(f"{name:10s} {engine} {f}: " + parts_text(report[name], ("fitted", "held-out", "all fitted",
                                                                        "all held-out")), flush=True)
    return report



# the share of the device's documented compute rate the grouped GEMM over MXFP4 experts reaches: 0.1-1 by 0.05
MXFP4_EXPERT_GRID = tuple(round(0.1 + 0.05 * i, 2) for i in range(19))
MXFP4_KEY = "moe_flop_share_mxfp4"


def fit_mxfp4_experts(points: list[dict]) -> dict:
    """Each engine device rule's share of the documented compute rate its grouped GEMM over MXFP4 experts reaches
    (`moe_flop_share_mxfp4`: vLLM's Marlin on the A100 and Triton on Hopper, TensorRT-LLM's TRITON backend on Hopper
    and CUTLASS on Blackwell), searched rule by rule on the gpt-oss points that rule sets (the rules' points do not
    overlap), minimising the median, then the p90, error of their fitted two thirds; errors on both parts for the
    rule at the engine's dense share (the share before it), the documented share and the fitted one."""
    report = {}
    for engine in ("vllm", "trtllm"):
        for rule in engine_table()[engine].get("device_defaults") or []:
            if MXFP4_KEY not in rule:
                continue
            documented = rule[MXFP4_KEY]
            with table_overrides(rule, {MXFP4_KEY: -1.0}):  # a mark: the points whose device takes this rule
                own = [p for p in points if p["engine"] == engine and p.get("dtype") == "mxfp4"
                       and p["category"] not in MEMORY_CATEGORIES
                       and engine_moe_flop_share(engine, resolve_hardware(p["hardware"]), "mxfp4") == -1.0]
            if not own:
                continue
            hw = resolve_hardware(own[0]["hardware"])
            before = engine_moe_flop_share(engine, hw) or engine_flop_share(engine, hw)  # the experts' share without it

            def errors(x, part, rule=rule, own=own):
                with table_overrides(rule, {MXFP4_KEY: x}):
                    return part_errors(own, part)

            best = best_fit(list(MXFP4_EXPERT_GRID), errors, lambda x, d=documented: abs(x - d))
            name = f"{engine} {rule['when']}"
            report[name] = {label: {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")}
                            | {"share": x}
                            for label, x in (("before", before), ("documented", documented), ("fitted", best))}
            for label, r in report[name].items():
                print(f"{name} {label:10s} MXFP4 experts at {r['share']:.2f}: " + parts_text(r, ("fitted", "held-out")),
                      flush=True)
    return report


# the share of the peak bandwidth at which an engine's MXFP4 MoE kernel reads gpt-oss's experts: 0.30-0.95 by 0.05
MXFP4_READ_GRID = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))


def fit_mxfp4_reads(points: list[dict], kernel: str = "triton-mxfp4-moe") -> dict:
    """The share of the peak bandwidth at which `kernel` (profiles/efficiency.yaml weight_kernels) reads MXFP4
    experts, searched on the gpt-oss points whose engine reads them with it on their device (vLLM's Triton MoE on
    Hopper), minimising the median, then the p90, error of their fitted two thirds; errors on both parts for the
    devices' MXFP4 share before the kernel had one of its own (0.42), the documented share and the fitted one."""
    entry = profiles.efficiency_table()["weight_kernels"][kernel]
    own = []
    for p in points:
        hw = resolve_hardware(p["hardware"])
        runs = engine_kernel_efficiency(point_engine(p), "mxfp4", hw.features.backend, hw)
        if p.get("dtype") == "mxfp4" and p["category"] not in MEMORY_CATEGORIES and runs == kernel \
                and weight_kernel_refusal(hw, kernel, "mxfp4") is None:
            own.append(p)
    before = profiles.efficiency_table()["device_kinds"]["gpu"]["bandwidth_efficiency"]["mxfp4"]

    def errors(x, part):
        with table_overrides(entry, {"bandwidth_efficiency": x}):
            return part_errors(own, part)

    documented = entry["bandwidth_efficiency"]
    best = best_fit(list(MXFP4_READ_GRID), errors, lambda x: abs(x - documented))
    report = {label: {part: rounded_stats(errors(x, part)) for part in ("fitted", "held-out")} | {"share": x}
              for label, x in (("before", before), ("documented", documented), ("fitted", best))}
    for label, r in report.items():
        print(f"{kernel} {label:10s} MXFP4 experts read at {r['share']:.2f}: " + parts_text(r, ("fitted", "held-out")),
              flush=True)
    return report
