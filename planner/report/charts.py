"""Charts for the HTML report as inline SVG: self-contained, no script, no network."""

from __future__ import annotations

import math
from html import escape

from ..plan.graph import FAMILY_ORDER, technique_graph
from ..schema.advice import Advice, Prediction

COLORS = {"weights": "#4e79a7", "gradients": "#76b7b2", "optimizer": "#edc948", "kv": "#f28e2b",
          "activations": "#59a14f", "gathered": "#b07aa1", "overhead": "#bab0ac",
          "before": "#e15759", "after": "#4e79a7", "grid": "#dddddd", "text": "#333333"}
GB = 1e9


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
            f'font-family="sans-serif" font-size="12">' + "".join(body) + "</svg>")


def _text(x: float, y: float, s: str, anchor: str = "start", size: int = 12, weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" font-weight="{weight}" '
            f'fill="{COLORS["text"]}">{escape(s)}</text>')


def memory_chart(before: Prediction, after: Prediction) -> str:
    """Stacked bars of memory per device, before and after, against the device's memory."""
    width, height, left, right = 640, 170, 90, 80  # room right of the longest bar for its "833.7 GB"
    rows = [("baseline", before), ("plan", after)]
    scale_max = max(max(p.memory_per_device_bytes for _, p in rows), before.device_memory_bytes) * 1.05
    span = width - left - right

    def x(v: float) -> float:
        return left + span * v / scale_max

    body = [_text(left, 16, "Memory per device (GB)", weight="bold")]
    for i, (label, p) in enumerate(rows):
        y = 34 + i * 44
        body.append(_text(left - 8, y + 20, label, anchor="end"))
        parts = (("weights", p.weights_per_device_bytes), ("gradients", p.gradient_bytes),
                 ("optimizer", p.optimizer_state_bytes), ("kv", p.kv_cache_per_device_bytes),
                 ("activations", p.activation_bytes), ("gathered", p.gathered_bytes))
        overhead = p.memory_per_device_bytes - sum(value for _, value in parts)
        start = 0.0
        for key, value in (*parts, ("overhead", max(overhead, 0))):
            w = x(start + value) - x(start)
            body.append(f'<rect x="{x(start):.1f}" y="{y}" width="{max(w, 0):.1f}" height="28" fill="{COLORS[key]}">'
                        f'<title>{key}: {value / GB:,.2f} GB</title></rect>')
            start += value
        loading = " while it loads" if p.load_peak_bytes else ""  # the bar's runtime share then holds the load's rest
        body.append(_text(x(start) + 4, y + 19, f"{p.memory_per_device_bytes / GB:,.1f} GB{loading}"))
    cap = x(before.device_memory_bytes)
    body.append(f'<line x1="{cap:.1f}" y1="26" x2="{cap:.1f}" y2="128" stroke="#000" stroke-dasharray="4 3"/>')
    body.append(_text(cap, 142, f"device {before.device_memory_bytes / GB:,.0f} GB", anchor="middle"))
    legend_x = left
    training = any(p.gradient_bytes or p.optimizer_state_bytes for _, p in rows)
    for key, label in (("weights", "weights"), *((("gradients", "gradients"), ("optimizer", "optimizer"))
                                                 if training else (("kv", "KV cache"),)),
                       ("activations", "activations"),
                       *((("gathered", "FSDP gathered"),) if any(p.gathered_bytes for _, p in rows) else ()),
                       ("overhead", "runtime")):
        body.append(f'<rect x="{legend_x}" y="152" width="10" height="10" fill="{COLORS[key]}"/>')
        body.append(_text(legend_x + 14, 161, label))
        legend_x += 100
    return _svg(width, height, body, "memory per device before and after")


def roofline_chart(advice: Advice, peaks: dict[str, float], bandwidth_tbps: float) -> str:
    """Log-log roofline of the device (datasheet peak and bandwidth), with prefill and decode placed
    by arithmetic intensity, before and after the plan, each under the roof of the dtype its matmuls run in (an fp8
    plan's under the fp8 peak, dashed where it differs from the baseline's)."""
    width, height, left, bottom, top, right = 640, 320, 60, 40, 24, 40

    def peak_of(p: Prediction) -> float:
        return peaks.get(p.compute_dtype) or peaks.get("bf16") or next(iter(peaks.values()))

    roofs = {"baseline": peak_of(advice.baseline), "plan": peak_of(advice.plan.predicted)}
    peak_tflops = roofs["baseline"]
    x_lo, x_hi = -1.0, 5.0  # log10 FLOP/B
    ridge = peak_tflops / bandwidth_tbps  # datasheet ridge point
    y_hi = math.log10(max(roofs.values()) * 1.5)
    y_lo = y_hi - 5

    def px(intensity: float) -> float:
        span = width - left - right
        return left + span * (min(max(math.log10(max(intensity, 1e-3)), x_lo), x_hi) - x_lo) / (x_hi - x_lo)

    def py(tflops: float) -> float:
        return height - bottom - (height - bottom - top) * (min(max(math.log10(max(tflops, 1e-9)), y_lo), y_hi) - y_lo) / (y_hi - y_lo)

    def roof(intensity: float, peak: float = peak_tflops) -> float:
        return min(peak, intensity * bandwidth_tbps)

    body = [_text(left, 16, "Roofline: attainable TFLOP/s against arithmetic intensity (FLOP/byte)", weight="bold")]
    for e in range(int(x_lo), int(x_hi) + 1):
        body.append(f'<line x1="{px(10 ** e):.1f}" y1="{top}" x2="{px(10 ** e):.1f}" y2="{height - bottom}" '
                    f'stroke="{COLORS["grid"]}"/>')
        body.append(_text(px(10 ** e), height - bottom + 16, f"{10 ** e:g}", anchor="middle"))
    for e in range(math.ceil(y_lo), math.floor(y_hi) + 1):
        body.append(f'<line x1="{left}" y1="{py(10 ** e):.1f}" x2="{width - right}" y2="{py(10 ** e):.1f}" '
                    f'stroke="{COLORS["grid"]}"/>')
        body.append(_text(left - 6, py(10 ** e) + 4, f"{10 ** e:g}", anchor="end"))
    for label, peak in roofs.items():
        if label == "plan" and peak == peak_tflops:
            continue
        points = [f"{px(10 ** (x_lo + i * (x_hi - x_lo) / 60)):.1f},"
                  f"{py(roof(10 ** (x_lo + i * (x_hi - x_lo) / 60), peak)):.1f}" for i in range(61)]
        style = ' stroke-dasharray="6 3"' if label == "plan" else ""
        body.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#000" stroke-width="2"{style}/>')
    body.append(_text(px(ridge), py(peak_tflops) - 6, f"datasheet ridge {ridge:,.0f}", anchor="middle"))
    reached = advice.baseline.ridge_flops_per_byte  # at the rates the engine's kernels reach: the text's ridge
    if reached:
        body.append(f'<line x1="{px(reached):.1f}" y1="{top}" x2="{px(reached):.1f}" y2="{height - bottom}" '
                    f'stroke="#000" stroke-dasharray="4 3"/>')
        # at the foot of its line: the datasheet ridge's label sits at the roof, above
        body.append(_text(px(reached) + 4, height - bottom - 6, f"ridge {reached:,.0f} at the rates reached"))
    for label, p, color in (("baseline", advice.baseline, COLORS["before"]), ("plan", advice.plan.predicted, COLORS["after"])):
        for phase, intensity, marker in (("prefill", p.prefill_intensity, "square"), ("decode", p.decode_intensity, "circle")):
            cx, cy = px(intensity), py(roof(intensity, roofs[label]))
            shape = (f'<rect x="{cx - 5:.1f}" y="{cy - 5:.1f}" width="10" height="10" fill="{color}"/>' if marker == "square"
                     else f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="{color}"/>')
            body.append(shape.replace("/>", f"><title>{label} {phase}: {intensity:,.1f} FLOP/B</title></{'rect' if marker == 'square' else 'circle'}>"))
    dtypes = {label: p.compute_dtype for label, p in (("baseline", advice.baseline), ("plan", advice.plan.predicted))}
    two = roofs["plan"] != peak_tflops
    body.append(_text(left, height - 6, "squares: prefill, circles: decode; red: baseline" + (
        f" ({dtypes['baseline']} roof), blue: plan ({dtypes['plan']} roof, dashed)" if two else ", blue: plan")))
    return _svg(width, height, body, "roofline")


def steps_chart(advice: Advice) -> str:
    """Predicted TTFT, TPOT and throughput after each step of the plan (step time, throughput and MFU in training)."""
    rows = [("baseline", advice.baseline)] + [(s.technique + (" (default)" if s.engine_default else ""), s.predicted)
                                              for s in advice.plan.steps]
    metrics = (("TTFT ms", "ttft_ms"), ("TPOT ms", "tpot_ms"), ("tokens/s", "throughput_tokens_per_s"))
    if advice.workload.goal == "training":
        metrics = (("step s", "training_step_s"), ("tokens/s", "throughput_tokens_per_s"), ("MFU %", "training_mfu"))
        rows = [(label, p.model_copy(update={"training_mfu": (p.training_mfu or 0.0) * 100})) for label, p in rows]
    col_w, row_h, label_w = 170, 20, 200  # room for "chunked-prefill (default)"
    width, height = label_w + col_w * len(metrics) + 20, 40 + row_h * len(rows)
    body = [_text(4, 16, "Predicted after each step", weight="bold")]
    for j, (title, _) in enumerate(metrics):
        body.append(_text(label_w + j * col_w + 4, 34, title, weight="bold"))
    for j, (_, attr) in enumerate(metrics):
        top_value = max(getattr(p, attr) or 0.0 for _, p in rows) or 1.0
        for i, (label, p) in enumerate(rows):
            y = 40 + i * row_h
            if j == 0:
                body.append(_text(label_w - 6, y + 14, label, anchor="end"))
            value = getattr(p, attr) or 0.0
            w = (col_w - 60) * value / top_value
            body.append(f'<rect x="{label_w + j * col_w:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                        f'fill="{COLORS["before"] if i == 0 else COLORS["after"]}"/>')
            body.append(_text(label_w + j * col_w + w + 4, y + 14, f"{value:,.1f}" if value < 100 else f"{value:,.0f}"))
    return _svg(width, height, body, "predictions step by step")


def graph_chart(advice: Advice) -> str:
    """The technique graph in columns by family; the plan's techniques filled, requires and order edges
    drawn (techniques of one group are mutually exclusive, marked by a shared group label)."""
    g = technique_graph()
    families = [f for f in FAMILY_ORDER if any(d["family"] == f for _, d in g.nodes(data=True))]
    columns = {f: sorted(n for n, d in g.nodes(data=True) if d["family"] == f) for f in families}
    col_w, row_h, top = 150, 26, 40
    width = col_w * len(families) + 20
    height = top + row_h * max(len(c) for c in columns.values()) + 20
    pos = {}
    for i, f in enumerate(families):
        for j, n in enumerate(columns[f]):
            pos[n] = (10 + i * col_w, top + j * row_h)
    chosen = {s.technique for s in advice.plan.steps}
    body = ['<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="6" markerHeight="6" '
            'orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="#777"/></marker></defs>',
            _text(10, 16, "Techniques (filled: in the plan; arrows from and to the plan's: requires (solid), runs "
                          "before (dashed))", weight="bold")]
    for i, f in enumerate(families):
        body.append(_text(10 + i * col_w + 4, top - 8, f, size=11, weight="bold"))
    for u, v, k in g.edges(keys=True):
        if k == "conflicts" or not {u, v} & chosen:  # every edge at once is a thicket nobody reads
            continue
        (x1, y1), (x2, y2) = pos[u], pos[v]
        dash = ' stroke-dasharray="3 2"' if k == "order" else ""
        body.append(f'<line x1="{x1 + col_w - 14:.0f}" y1="{y1 + 9}" x2="{x2:.0f}" y2="{y2 + 9}" stroke="#777"{dash} '
                    'marker-end="url(#arrow)"/>')
    for n, (x, y) in pos.items():
        fill = COLORS["after"] if n in chosen else "#ffffff"
        color = "#ffffff" if n in chosen else COLORS["text"]
        group = g.nodes[n]["group"]
        body.append(f'<rect x="{x}" y="{y}" width="{col_w - 14}" height="18" rx="4" fill="{fill}" stroke="#666">'
                    f'<title>{escape(g.nodes[n]["name"])}{" (group: " + group + ")" if group else ""}</title></rect>')
        body.append(f'<text x="{x + 4}" y="{y + 13}" font-size="10" fill="{color}">{escape(n)}</text>')
    return _svg(width, height, body, "technique graph")
