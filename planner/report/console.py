"""Terminal output with rich: the profile table and the catalog listings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ... import profiles
from ..analytic.accuracy import band_text, bands_note, decode_band
from ..analytic.memory import NO_DEVICE_LIMIT
from ..numbers import rate
from ..schema import Profile


def fmt_bytes(n: float) -> str:
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{sign}{n / size:.2f} {unit}"
    return f"{sign}{n:.0f} B"


def fmt_count(n: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def fmt_flops(n: float) -> str:
    for unit, size in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6), ("KFLOP", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} FLOP"


def _section(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column(style="cyan", no_wrap=True)
    table.add_column()
    for k, v in rows:
        table.add_row(k, v)
    return table


# What a step's bound means (step_cost.StepCost.bound): the kind of kernel that takes most of its time, not its FLOPs
# over all its bytes against the ridge (a batch's GEMMs at the compute roof beside attention reading the caches)
BOUND_WHY = {"compute": "most of its time is in kernels at the compute roof",
             "memory": "most of its time is in kernels at the memory roof",
             "launch": "launching its kernels takes longer than running them"}


def _usable_text(mem, engine: str) -> str:
    """Where the engine holds itself to a share of the device (vLLM's --gpu-memory-utilization), the share the
    headroom is counted in."""
    usable = mem.per_device_bytes + mem.headroom_bytes
    if abs(usable - mem.device_memory_bytes) < 0.01 * mem.device_memory_bytes:
        return ""
    return f" within the {fmt_bytes(usable)} {engine} uses of it ({usable / mem.device_memory_bytes:.0%})"


def print_profile(p: Profile, console: Console | None = None) -> None:
    console = console or Console(width=110)
    r, m, hw, mem, c, lat, tp = p.request, p.model, p.hardware, p.memory, p.compute, p.latency, p.throughput
    kind = m.attention + (f", {m.moe}" if m.moe else "") + (f", {m.sliding_layers} sliding-window layers"
                                                            if m.sliding_layers else "")
    console.print(f"[bold]{m.name}[/] on [bold]{hw.num_devices} x {hw.name}[/]  "
                  f"(tp {hw.tensor_parallel}, pp {hw.pipeline_parallel}"
                  + "".join(f", {name} {n}" for name, n in (
                      ("attention dp", r.attention_data_parallel), ("ep", r.expert_parallel),
                      ("prefill instances", r.prefill_instances)) if (n or 1) > 1)
                  + f", weights {r.dtype}"
                  f"{f' in GGUF {r.gguf_type}' if r.gguf_type else ''}, compute {hw.compute_dtype}, "
                  f"batch {r.batch}, context {r.context}, engine {r.engine})")
    console.print(_section("Model", [
        ("parameters", f"{fmt_count(m.params_total)} total, {fmt_count(m.params_active)} active per token, "
                       f"{fmt_count(m.embedding_params)} embedding"),
        ("architecture", f"{m.model_type}: {m.num_layers} layers, hidden {m.hidden_size}, " + (
            f"{m.layer_mix}" if m.layer_mix and "attention" not in m.layer_mix else
            f"{m.num_heads} heads / {m.num_kv_heads} KV heads x {m.head_dim} ({kind})"
            + (f"; layers: {m.layer_mix}" if m.layer_mix else ""))),
    ]))
    fit = "[green]fits[/]" if p.fits else "[red]does not fit[/]"
    console.print(_section("Memory per device", [
        ("weights", f"{fmt_bytes(mem.weights_bytes)} in all ({mem.weights_bits_per_param:.2f} bits/param)" + (
            f"; {fmt_bytes(mem.host_weights_bytes)} of a device's share in host memory, off the device"
            if mem.host_weights_bytes else "")),
        ("KV cache", f"{fmt_bytes(mem.kv_cache_bytes)} per sequence at {r.context} tokens (whole model), "
                     f"{fmt_bytes(mem.kv_cache_batch_bytes)} for the batch "
                     f"({fmt_bytes(mem.kv_cache_bytes_per_token)}/token before windows)" + (
                         f"; of it attention {fmt_bytes(mem.attention_kv_bytes)}, recurrent and convolution state "
                         f"{fmt_bytes(mem.state_bytes)} (fixed)" if mem.state_bytes is not None else "") + (
                         f"; {r.engine}'s window pools set aside {fmt_bytes(mem.kv_cache_pool_bytes)} a sequence, "
                         f"{fmt_bytes(mem.kv_cache_pool_bytes * r.batch)} for the batch"
                         if mem.kv_cache_pool_bytes else "")),
        ("activations", f"{fmt_bytes(mem.activation_peak_bytes)} peak (prefill or decode step, {r.attention} "
                        f"attention)"),
    ] + ([
        ("draft", f"{fmt_bytes(mem.draft_bytes)} of weights per device ({r.draft_model or 'an EAGLE-3 head'}), its "
                  "cache beside each sequence's, in the total"),
    ] if mem.draft_bytes else []) + ([
        ("cache size", f"{mem.kv_cache_capacity_tokens:,} tokens{band_text(p.accuracy, 'kv_cache_tokens')} in "
                       f"{r.engine}'s cache as it sizes it at start-up, on all the devices (about "
                       f"{mem.kv_cache_capacity_tokens // max(r.context, 1):,} sequences of {r.context:,})"),
    ] if mem.kv_cache_capacity_tokens is not None else []) + [
        ("total", f"{fmt_bytes(mem.per_device_bytes)}{band_text(p.accuracy, 'memory_bytes')} of "
                  f"{fmt_bytes(mem.device_memory_bytes)} "
                  + (f"(the GPU's default share of {fmt_bytes(hw.unified_memory_bytes)} unified memory) "
                     if hw.unified_memory_bytes else "")
                  + f"(runtime {fmt_bytes(mem.runtime_overhead_bytes)}"
                  + (f", {fmt_bytes(mem.workspace_bytes)} of it {r.engine}'s all-reduce workspace and buffers"
                     if mem.workspace_bytes else "") + f"): {fit}, "
                  f"headroom {fmt_bytes(mem.headroom_bytes)}" + _usable_text(mem, r.engine)),
    ]))
    # the token mixers' FLOPs beside the matmuls: a state-space layer's scan counts there with attention's
    mixing = "attention" if not m.layer_mix else "attention and state scans" if "attention" in m.layer_mix \
        else "state scans"
    console.print(_section("Compute", [
        ("prefill / token", f"{fmt_flops(c.prefill_matmul_flops_per_token)} matmul + "
                            f"{fmt_flops(c.prefill_attention_flops_per_token)} {mixing}"),
        ("decode / token", f"{fmt_flops(c.decode_matmul_flops_per_token)} matmul + "
                           f"{fmt_flops(c.decode_attention_flops_per_token)} {mixing}"),
        ("decode step", f"{fmt_bytes(c.decode_bytes_per_step)} moved " + (
            "per device" if hw.pipeline_parallel == 1 else
            f"through {hw.pipeline_parallel} pipeline stages in turn (about "
            f"{fmt_bytes(c.decode_bytes_per_step / hw.pipeline_parallel)} on each device)") + ", intensity "
                        f"{c.decode_arithmetic_intensity:.1f} FLOP/B (ridge {c.ridge_flops_per_byte:.0f}); "
                        f"{c.decode_bound}-bound: {BOUND_WHY[c.decode_bound]}"),
        ("prefill", f"intensity {c.prefill_arithmetic_intensity:.0f} FLOP/B; {c.prefill_bound}-bound: "
                    f"{BOUND_WHY[c.prefill_bound]}"),
    ]))
    comm = (f", all-reduce {lat.allreduce_ms_per_layer * 1e3:.0f} us/layer "
            f"({lat.communication_share:.0%} of a decode step)") if hw.tensor_parallel > 1 else ""
    # a setup that does not fit is priced as if it did: its profile carries no band for its speeds (profile_setup)
    step_band = band_text(p.accuracy, decode_band(r.batch, p.accuracy))  # the decode step's, TPOT and rate alike
    hypothetical = "" if p.fits else " [red](as if it fit: it does not; no ± bands)[/]"
    console.print(_section("Latency and throughput" + hypothetical, [
        ("TTFT", f"{lat.ttft_ms:,.1f} ms{band_text(p.accuracy, 'ttft_ms')} (prefill of {r.batch} x "
                 f"{lat.prefill_tokens} tokens" + (f", then the {lat.first_token_step_ms:,.1f} ms"
                                                   f"{band_text(p.accuracy, 'tpot_ms')} decode step that computes "
                                                   "the first token)" if lat.first_token_step_ms else ")")),
        ("TPOT", f"{lat.tpot_ms:,.2f} ms{step_band} " + (
            f"per token, speculating ({r.speculative}: {r.spec_tokens} proposed a step at acceptance {r.acceptance:g})"
            if r.speculative else "per decode step") + comm),
        ("step rates", f"{rate(tp.tokens_per_s)} tokens/s{step_band} per decode step, "
                       f"{rate(tp.prefill_tokens_per_s)} tokens/s{band_text(p.accuracy, 'ttft_ms')} prefill (single "
                       "steps, no scheduling: not a serving throughput)"),
        ("limits", (f"largest batch of {r.context}-token caches: {tp.max_batch}" if tp.max_batch < NO_DEVICE_LIMIT
                    else "no cache on the device (the host's memory, which holds it, is not modelled)")
         + f"; longest context at batch {r.batch}: {tp.max_context}"),
    ]))
    if p.requests is not None:
        q = p.requests
        rq = p.accuracy if q.max_concurrency else {}  # not one request's cache fits: figures as if one did, no band
        slo = [f"TTFT <= {q.ttft_slo_ms:,.0f} ms" for _ in [0] if q.ttft_slo_ms is not None] + \
            [f"ITL <= {q.itl_slo_ms:,.1f} ms" for _ in [0] if q.itl_slo_ms is not None]
        rate_band = band_text(rq, "throughput_tokens_per_s")
        steady = " in steady state" if q.at_once or q.num_requests else ""
        goodput = "none: not one request's cache fits" if slo and not q.max_concurrency else \
            (f"{q.goodput_requests_per_s:,.2f} requests/s{rate_band} within {' and '.join(slo)}; the SLOs hold "
             f"up to {q.slo_concurrency:,} at once{steady} ({q.slo_goodput_requests_per_s:,.2f} requests/s"
             f"{rate_band})") if slo else "no SLOs given (--slo-ttft-ms, --slo-itl-ms)"
        how = "sent at once, once (the burst's means)" if q.at_once else \
            f"at a time, a run of {q.num_requests:,} (its means)" if q.num_requests else "at a time"
        if not q.max_concurrency:
            whose = f"{q.running:,} running as if they did" if q.running > 1 else "one request's as if it did"
            how += f" [red](not one fits: the figures are {whose})[/]"
        console.print(_section(f"Requests: {q.input_tokens:,} tokens in, {q.output_tokens:,} out, {q.concurrency:,} "
                               + how, [
            ("scheduling", q.scheduling),
            ("TTFT", f"{q.ttft_ms:,.1f} ms{band_text(rq, 'ttft_ms')}"
                     + (f" (mean; the median request's {q.ttft_median_ms:,.1f} ms)"
                        if q.ttft_median_ms and abs(q.ttft_median_ms - q.ttft_ms) > 0.01 * q.ttft_ms else "")),
            # one at a time it is the batch-1 decode step; under load it is validated with the request latencies
            ("inter-token", f"{q.itl_ms:,.2f} ms"
                            f"{band_text(rq, decode_band(q.concurrency, rq))} "
                            + ("(prefill chunks that share the steps counted)" if q.scheduling.startswith("continuous")
                               else "(the batch's decode steps; its prefill is in the TTFT)")),
            ("request", f"{q.request_latency_ms / 1e3:,.2f} s{band_text(rq, 'request_latency_ms')} from "
                        "arrival to last token"
                        + (f"; the {'burst' if q.at_once else 'run'} ends after {q.duration_ms / 1e3:,.2f} s"
                           if q.at_once or q.num_requests else "")),
            ("output tokens/s", f"{rate(q.output_tokens_per_s)}{band_text(rq, 'throughput_tokens_per_s')} of "
                                "all requests together, prefill included; "
                                f"{q.requests_per_s:,.2f} requests/s{band_text(rq, 'throughput_tokens_per_s')}"),
            ("fits", (f"yes in memory; the engine runs {q.max_concurrency:,} at once and the others wait"
                      if q.fits and q.concurrency > q.max_concurrency else
                      f"yes: up to {q.max_concurrency:,} requests at once" if q.fits else
                      f"[red]no[/]: not all {q.concurrency:,} caches fit at once; the engine runs up to "
                      f"{q.max_concurrency:,} and the others wait" if q.max_concurrency >= 1 else
                      "[red]no[/]: not one request's cache fits")
             + (" (a paged cache grows as a request decodes: each holds its prompt and half its output on average)"
                if q.max_concurrency > tp.max_batch and r.context == q.input_tokens + q.output_tokens else "")),
            ("goodput", goodput),
        ]))
    one, loaded = (band_text(p.accuracy, decode_band(b, p.accuracy)) for b in (1, 2))
    bands = f"; TPOT{one} at batch 1, {loaded.strip() or 'unvalidated'} above" if one else ""
    curve = Table(title=f"Decode-step rate against batch (no prefill{bands})", title_justify="left")
    for col in ("batch", "TPOT ms", "tokens/s", "fits"):
        curve.add_column(col, justify="right")
    for pt in tp.curve:
        curve.add_row(str(pt.batch), f"{pt.tpot_ms:,.2f}", rate(pt.tokens_per_s), "yes" if pt.fits else "[red]no[/]")
    console.print(curve)
    if p.accuracy:
        console.print(f"[dim]{bands_note(p.accuracy)}[/]")
    peak = f"{hw.peak_tflops:,.0f} TFLOP/s" if hw.peak_tflops >= 1 else f"{hw.peak_tflops * 1e3:,.0f} GFLOP/s"
    origin = ("calibrated on this machine" if p.efficiency.source.startswith("calibrated") else "documented defaults")
    console.print(f"[dim]efficiency: {p.efficiency.flop_efficiency:.0%} of {peak} peak, "
                  f"{p.efficiency.bandwidth_efficiency:.0%} of peak bandwidth, "
                  f"{p.efficiency.step_overhead_s * 1e3:.2f} ms/step + {p.efficiency.layer_overhead_s * 1e6:.0f} us/layer "
                  f"overhead" + (f", the weight kernel {p.efficiency.weight_kernel_layer_s * 1e6:.0f} us/layer"
                                 if p.efficiency.weight_kernel_layer_s else "")
                  + (f", routed experts {p.efficiency.moe_layer_overhead_s * 1e6:.0f} us/MoE layer"
                     if p.efficiency.moe_layer_overhead_s and p.model.moe else "")
                  + (f", latent attention {p.efficiency.mla_layer_overhead_s * 1e6:.0f} us/layer"
                     if p.efficiency.mla_layer_overhead_s and p.model.attention == "MLA" else "")
                  + (f", routed experts' GEMM at {p.efficiency.expert_flop_efficiency:.0%} of peak"
                     if p.efficiency.expert_flop_efficiency else "")
                  + (f", routed experts read at {p.efficiency.expert_bandwidth_efficiency:.0%} of peak bandwidth"
                     if p.efficiency.expert_bandwidth_efficiency else "")
                  + (f", {p.efficiency.state_layer_overhead_s * 1e6:.0f} us/state layer"
                     if p.efficiency.state_layer_overhead_s else "")
                  + f" ({origin}; `--json` gives their sources)[/]")
    if p.measured is not None:
        m = p.measured
        table = Table(title=f"Measured here ({m.engine}, {m.device}, {m.dtype}, median of {m.repeats}) against predicted",
                      title_justify="left")
        for col in ("step", "batch", "tokens", "measured", "spread", "predicted", "error"):
            table.add_column(col, justify="left" if col == "step" else "right")
        for pt in m.points:
            if pt.kind == "peak":
                table.add_row("peak memory", str(pt.batch), str(pt.tokens), fmt_bytes(pt.measured), "", "", "")
            else:
                table.add_row(pt.kind, str(pt.batch), str(pt.tokens), f"{pt.measured * 1e3:,.2f} ms",
                              f"{pt.spread * 1e3:,.2f} ms", f"{pt.predicted * 1e3:,.2f} ms", f"{pt.error_pct:+.1f}%")
        console.print(table)
        console.print(f"measured: TTFT {m.ttft_ms:,.1f} ms, TPOT {m.tpot_ms:,.2f} ms, {rate(m.tokens_per_s)} tokens/s, "
                      f"peak {fmt_bytes(m.peak_memory_bytes)}, loaded in {m.load_s:.2f} s")
    for w in p.warnings:
        console.print(f"[yellow]warning:[/] {w}")


def print_calibration(data: dict[str, Any], path) -> None:
    console = Console(width=110)
    if "peak_tflops" not in data:
        return
    peaks = ", ".join(f"{k} {v * 1e3:,.0f} GFLOP/s" for k, v in data["peak_tflops"].items())
    where = (f"{data['machine']['gpu']} (host {data['machine']['cpu']})" if data["machine"].get("gpu") else
             f"{data['machine']['cpu']} ({data['machine']['cores']} cores, {data['machine']['threads']} threads)")
    console.print(f"[bold]Calibrated[/] {where}: matmul {peaks}; copy bandwidth "
                  f"{data['bandwidth_bytes_per_s'] / 1e9:,.1f} GB/s; runtime {fmt_bytes(data['runtime_overhead_bytes'])}")
    for runtime, by_dtype in data["runtimes"].items():
        for dtype, fitted in by_dtype.items():
            f = fitted["factors"]
            costs = (f"{f['step_overhead_s'] * 1e3:.2f} ms/step + {f['layer_overhead_s'] * 1e6:.0f} us/layer"
                     + (" launching kernels, overlapped with them (fitted; efficiencies: the device's defaults)"
                        if f.get("host_overlap") else ""))
            console.print(f"{runtime} ({dtype}): flop efficiency {f['flop_efficiency']:.0%}, bandwidth efficiency "
                          f"{f['bandwidth_efficiency']:.0%}, {costs}; a matmul reaches half its rate at "
                          f"{f.get('matmul_half_tokens', 0):.0f} rows" + ("" if f.get("host_overlap") else " (measured)"))
            table = Table(title="Predicted against measured", title_justify="left")
            for col in ("model", "step", "batch", "tokens", "measured ms", "predicted ms", "error"):
                table.add_column(col, justify="right" if col not in ("model", "step") else "left")
            for p in fitted["points"]:
                table.add_row(Path(p["model"]).name, p["kind"], str(p["batch"]), str(p["tokens"]),
                              f"{p['measured_s'] * 1e3:,.2f}", f"{p['predicted_s'] * 1e3:,.2f}", f"{p['error_pct']:+.1f}%")
            console.print(table)
            console.print(f"median absolute error {fitted['median_abs_error_pct']:.1f}%")
            if fitted.get("at_grid_edge"):  # the data want a larger cost than the fit's grid holds
                console.print("[yellow]warning:[/] the fitted launch cost lies at the largest its grid holds: the "
                              "measured steps are slower than any cost it tried; check the models ran on the GPU and "
                              "nothing else loaded it, then calibrate again")
    for skipped in data.get("skipped") or []:
        console.print(f"[yellow]not fitted on[/] {skipped}")
    print_effects(console, data.get("effects"))
    console.print(f"[dim]written to {path}[/]")


def print_effects(console: Console, effects: dict[str, Any] | None) -> None:
    """The technique effects measured here: ratios after / before, per model width."""
    if not effects:
        return
    table = Table(title=f"Technique effects measured here ({effects['models']}, {effects.get('dtype', 'fp32')}; "
                        "after / before, median of rounds)",
                  title_justify="left")
    for col in ("technique", "width", "time/token", "TTFT", "batched tokens/s", "weights", "cache"):
        table.add_column(col, justify="left" if col == "technique" else "right")
    for tid, entry in effects["techniques"].items():
        for shape in entry["shapes"]:
            table.add_row(tid, str(shape["hidden"]), *(f"{shape[k]:.2f}x" if k in shape else "-" for k in (
                "tpot_ms", "ttft_ms", "batched_tokens_per_s", "weights_bytes", "cache_bytes")))
    console.print(table)
    from ..plan.effects import MIN_ROUNDS

    shapes = [shape for entry in effects["techniques"].values() for shape in entry["shapes"]]
    if any(shape.get("rounds", MIN_ROUNDS) < MIN_ROUNDS for shape in shapes):
        console.print("[dim]one round each: the planner reads the timings as no effect (no spread to judge them by; "
                      "calibrate with --repeats 3 or more); the sizes stand[/]")
    for tid, reason in effects.get("skipped", {}).items():
        console.print(f"[dim]{tid}: not measured: {reason}[/]")


def print_techniques(declared: list[dict[str, Any]]) -> None:
    console = Console(width=140)
    table = Table(title="optiplan techniques", title_justify="left")
    for col in ("id", "family", "group", "needs", "quality risk", "summary"):
        table.add_column(col, overflow="fold")
    for t in declared:
        needs = ", ".join([*t["hardware"], *t["model"], *(f"data:{t['data']}" for _ in [0] if t["data"]),
                           *(f"requires {r}" for r in t["requires"])])
        loss = t["quality_loss_pct"]
        risk = t["quality_risk"] + (f" ({loss:g}%)" if loss else "" if loss is not None else " (depends)")
        table.add_row(t["id"], t["family"], t["group"] or "-", needs or "-", risk, t["summary"])
    console.print(table)


def catalog_rows(what: str) -> list[dict[str, Any]]:
    if what == "engines":
        from ..catalog.engine_versions import release_boundaries, release_ranges
        from ..catalog.engines import engine_defaults, engine_table

        def priced(e) -> str:  # the release plans are priced at (its CUDA image's, else its one backend's)
            deployed = e.get("deployed_release") or {}
            release = deployed.get("cuda") or next(iter(deployed.values()), None)
            return f"{e['name']}=={release}" if release else e["name"]

        # `releases`: the ranges its rules describe apart (`--engine sglang==0.5.6`); `deployed`: per backend,
        # the release its configs' image runs and its plans are priced at
        return [{"name": e["name"], "version": e["version"], "releases": release_ranges(e),
                 "boundaries": release_boundaries(e),
                 "deployed": e.get("deployed_release") or {},
                 "runtime": e["runtime"], "scheduling": e["scheduling"],
                 "planned": e.get("plans", True), "backends": e["backends"],
                 # what its plans' baseline runs: the defaults of the release they are priced at (TensorRT-LLM 1.0's
                 # CUDA graphs), as advise marks them
                 "defaults": list(engine_defaults(priced(e))),
                 # per weight format: the file it is stored in (GGUF), the kernel whose share the model uses, or
                 # the kernel's name
                 "kernels": {fmt: k.get("storage", {}).get("format") or k.get("efficiency")
                             or k["kernel"].split(";")[0].split(" (")[0] for fmt, k in (e.get("kernels") or {}).items()},
                 "model_types": e.get("model_types")} for e in engine_table().values()]
    if what == "workloads":
        from ..catalog.workloads import load_workload, preset_names

        return [load_workload(n).model_dump(mode="json") for n in preset_names()]
    if what == "hardware":
        from ..catalog.hardware import catalog_hardware

        rows = []
        for hw_id in profiles.hardware_ids():
            hw = catalog_hardware(hw_id)
            rows.append({"id": hw.id, "name": hw.name, "memory_gb": round(hw.memory_bytes / 1e9, 1),
                         "bandwidth_tbps": hw.bandwidth_tbps, "peak_tflops": hw.peak_tflops,
                         "interconnect": hw.interconnect.name if hw.interconnect else None,
                         "price_usd_per_hour": ([hw.price.low_usd_per_hour, hw.price.high_usd_per_hour]
                                                if hw.price and hw.price.low_usd_per_hour else None),
                         "aliases": hw.aliases})
        return rows
    from ..analytic.params import param_counts
    from ..catalog.models import resolve_model

    rows = []
    for name in profiles.model_names():
        entry = profiles.load_model(name)
        spec = resolve_model(name)
        counts = param_counts(spec)
        rows.append({"name": name, "display_name": entry.get("display_name", name), "model_type": spec.model_type,
                     "params_total": counts.total, "params_active": counts.active, "layers": spec.num_layers,
                     "attention": spec.attention_kind, "max_context": spec.max_position_embeddings,
                     "hub_id": entry.get("hub_id"), "aliases": entry.get("aliases", [])})
    return rows


def print_catalog(what: str, rows: list[dict[str, Any]]) -> None:
    console = Console(width=140)
    table = Table(title=f"optiplan catalog: {what}", title_justify="left")
    if what == "workloads":
        for col in ("name", "prompt mean/p95", "output mean/p95", "concurrency", "goal", "quality budget", "SLO",
                    "description"):
            table.add_column(col, overflow="fold")
        for r in rows:
            slo = ", ".join(f"{k.replace('_p95_ms', '')} {v:g} ms" for k, v in r["slo"].items() if v and k.endswith("ms"))
            table.add_row(r["name"], f"{r['prompt_tokens_mean']}/{r['prompt_tokens_p95']}",
                          f"{r['output_tokens_mean']}/{r['output_tokens_p95']}", str(r["concurrency"]), r["goal"],
                          f"{r['max_quality_loss_pct']:g}%", slo or "-", r["description"])
    elif what == "engines":
        for col in ("name", "version", "runtime", "scheduling", "planned", "backends", "on by default",
                    "weight kernels / files"):
            table.add_column(col, overflow="fold")
        for r in rows:
            version = r["version"] + (f" (facts change at {', '.join(r['boundaries'])})" if r["boundaries"] else "")
            deployed = ", ".join(f"{release} on {backend}" for backend, release in r["deployed"].items())
            planned = ("yes" + (f" (at {deployed})" if deployed else "")) if r["planned"] else "profile only"
            table.add_row(r["name"], version, r["runtime"], r["scheduling"], planned,
                          ", ".join(r["backends"]), ", ".join(r["defaults"]) or "-",
                          ", ".join(f"{fmt}: {k}" for fmt, k in r["kernels"].items()) or "-")
    elif what == "hardware":
        for col in ("id", "name", "memory", "TB/s", "bf16/fp16 TFLOPS", "fp8", "interconnect", "$/h", "aliases"):
            table.add_column(col)
        for r in rows:
            peaks = r["peak_tflops"]
            price = r["price_usd_per_hour"]
            table.add_row(r["id"], r["name"], f"{r['memory_gb']:.0f} GB", f"{r['bandwidth_tbps']:.2f}",
                          f"{peaks.get('bf16', peaks.get('fp16', 0)):g}", f"{peaks['fp8']:g}" if "fp8" in peaks else "-",
                          r["interconnect"] or "-", f"{price[0]:.2f}-{price[1]:.2f}" if price else "-",
                          ", ".join(r["aliases"]))
    else:
        for col in ("name", "type", "params", "active", "layers", "attention", "context", "hub id"):
            table.add_column(col)
        for r in rows:
            active = fmt_count(r["params_active"]) if r["params_active"] != r["params_total"] else "="
            table.add_row(r["name"], r["model_type"], fmt_count(r["params_total"]), active, str(r["layers"]),
                          r["attention"], str(r["max_context"]), r["hub_id"] or "-")
    console.print(table)
