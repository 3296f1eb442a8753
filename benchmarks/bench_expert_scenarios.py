"""Thirty deployment scenarios, from a laptop to two nodes, dense and mixture-of-experts, every goal and several
engines, with the plan `optiplan advise` gives each, side by side for a reviewer to read (issue 15: "plans an
inference engineer would sign"). Prints one block per scenario (steps, layout, predicted figures, the checkpoint the
first engine's config serves) and writes benchmarks/results/expert_scenarios.json.

    python benchmarks/bench_expert_scenarios.py [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_results  # noqa: E402
from optiplan.planner.deploy.render import render_all  # noqa: E402
from optiplan.planner.errors import OptiplanError  # noqa: E402
from optiplan.planner.plan.advise import advise  # noqa: E402
from optiplan.planner.schema import AdviseRequest  # noqa: E402

# (label, request): consumer and workstation, one datacenter GPU, one node, two nodes; dense, MoE, MLA, hybrid
SCENARIOS: list[tuple[str, dict]] = [
    ("laptop: 8B chat on an M3 Max", dict(model="llama-3.1-8b", hardware="m3-max", workload="chat")),
    ("laptop: 3B code completion on an M3 Max", dict(model="llama-3.2-3b", hardware="m3-max",
                                                     workload="code-completion", goal="latency")),
    ("desktop: 8B chat on an RTX 4090", dict(model="llama-3.1-8b", hardware="rtx-4090", workload="chat")),
    ("desktop: 32B chat on an RTX 4090 (memory)", dict(model="qwen2.5-32b", hardware="rtx-4090", workload="chat",
                                                       goal="memory")),
    ("desktop: Mixtral on two RTX 3090", dict(model="mixtral-8x7b", hardware="rtx-3090", num_devices=2,
                                              workload="chat", engine="llama.cpp")),
    ("8B chat on one L4", dict(model="llama-3.1-8b", hardware="l4", workload="chat")),
    ("8B long-context RAG on one L4, 2 users", dict(model="llama-3.1-8b", hardware="l4", workload="rag-long-context",
                                                    concurrency=2)),
    ("8B batch throughput on one H100", dict(model="llama-3.1-8b", hardware="h100-sxm", workload="batch-offline")),
    ("8B latency on one H100 (vLLM)", dict(model="llama-3.1-8b", hardware="h100-sxm", workload="chat",
                                          goal="latency", engine="vllm")),
    ("Qwen3-8B chat on one A100 (TGI)", dict(model="qwen3-8b", hardware="a100-80gb-sxm", workload="chat",
                                             engine="tgi")),
    ("Gemma-3-27B RAG on one A100 (context)", dict(model="gemma-3-27b", hardware="a100-80gb-sxm",
                                                   workload="rag-long-context")),
    ("Qwen2.5-32B chat on one H100 (cost)", dict(model="qwen2.5-32b", hardware="h100-sxm", workload="chat",
                                                 goal="cost")),
    ("70B chat on one H100", dict(model="llama-3.1-70b", hardware="h100-sxm", workload="chat")),
    ("70B chat on two H100 (TensorRT-LLM)", dict(model="llama-3.1-70b", hardware="h100-sxm", num_devices=2,
                                                 workload="chat", engine="trtllm")),
    ("70B latency on 8 H100", dict(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8, workload="chat",
                                   goal="latency")),
    ("70B throughput on 8 H100", dict(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8,
                                      workload="batch-offline")),
    ("70B long-context RAG on 8 H100 (SGLang)", dict(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8,
                                                     workload="rag-long-context", engine="sglang")),
    ("70B, 12k-token prompts under a 25 ms TPOT SLO, 8 H100 (SGLang)",
     dict(model="llama-3.1-70b", hardware="h100-sxm", num_devices=8, engine="sglang",
          workload=str(Path(__file__).resolve().parents[1] / "examples" / "workloads" / "long-prompts-tight-tpot.yaml"))),
    ("70B on 8 MI300X", dict(model="llama-3.1-70b", hardware="mi300x", num_devices=8, workload="chat")),
    ("405B chat on 8 H200", dict(model="llama-3.1-405b", hardware="h200-sxm", num_devices=8, workload="chat")),
    ("405B throughput on 16 H100", dict(model="llama-3.1-405b", hardware="h100-sxm", num_devices=16,
                                        workload="batch-offline")),
    ("Mixtral latency on 2 H100", dict(model="mixtral-8x7b", hardware="h100-sxm", num_devices=2, workload="chat",
                                       goal="latency")),
    ("Mixtral throughput on 8 H100", dict(model="mixtral-8x7b", hardware="h100-sxm", num_devices=8,
                                          workload="batch-offline")),
    ("Qwen3-30B-A3B chat on 4 H100", dict(model="qwen3-30b-a3b", hardware="h100-sxm", num_devices=4,
                                          workload="chat")),
    ("Qwen3-Next-80B chat on 8 H100 (vLLM)", dict(model="qwen3-next-80b-a3b", hardware="h100-sxm", num_devices=8,
                                                  workload="chat", engine="vllm")),
    ("DeepSeek-V3 chat on 8 H200", dict(model="deepseek-v3", hardware="h200-sxm", num_devices=8, workload="chat")),
    ("DeepSeek-V3 throughput on 8 H200 (SGLang)", dict(model="deepseek-v3", hardware="h200-sxm", num_devices=8,
                                                       workload="batch-offline", engine="sglang")),
    ("DeepSeek-V3 chat on 16 H100 (two nodes)", dict(model="deepseek-v3", hardware="h100-sxm", num_devices=16,
                                                     workload="chat")),
    ("Jamba-1.5-mini chat on one H100 (vLLM)", dict(model="jamba-1.5-mini", hardware="h100-sxm", workload="chat",
                                                    engine="vllm")),
    ("Llama-3.2-1B LoRA fine-tune on one A10G", dict(model="llama-3.2-1b", hardware="a10g", workload="fine-tune")),
]


def describe(label: str, request: dict) -> dict:
    started = time.perf_counter()
    try:
        a = advise(AdviseRequest(**request))
    except OptiplanError as exc:
        return {"scenario": label, "request": request, "error": str(exc)}
    p = a.plan.predicted
    engine = a.workload.engine if a.workload.engine != "transformers" else None
    files, skipped, _ = render_all(a, [engine]) if engine else ({}, [], [])
    script = next((text for path, text in files.items() if path.endswith("serve.sh")), "")
    serves = next((line.split()[-2] if line.rstrip().endswith("\\") else line.split()[-1]
                   for line in script.splitlines() if line.lstrip().startswith(("exec ", "--model-path", "--model-id"))
                   and "/" in line), None)
    return {
        "scenario": label, "request": request, "feasible": a.feasible, "engine": a.workload.engine,
        "hardware": f"{a.hardware.count} x {a.hardware.id}", "steps": [s.technique for s in a.plan.steps],
        "layout": {"tp": p.tensor_parallel, "pp": p.pipeline_parallel, "ep": p.expert_parallel,
                   "attention_dp": p.attention_data_parallel, "replicas": p.data_parallel,
                   "prefill_instances": p.prefill_instances},
        "ttft_ms": p.ttft_ms, "tpot_ms": p.tpot_ms, "tokens_per_s": p.throughput_tokens_per_s, "batch": p.batch,
        "memory_gb": p.memory_per_device_bytes / 1e9, "quality_loss_pct": p.quality_loss_pct,
        "usd_per_mtok": p.cost_per_million_tokens_usd, "training_step_s": p.training_step_s,
        "slo_violations": p.slo_violations, "serves": serves, "config_skipped": skipped,
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="scenarios whose label contains this text")
    args = parser.parse_args()
    rows = [describe(label, req) for label, req in SCENARIOS if not args.only or args.only.lower() in label.lower()]
    for r in rows:
        print(f"\n## {r['scenario']}")
        if "error" in r:
            print(f"   no plan: {r['error']}")
            continue
        lay = r["layout"]
        layout = " ".join(f"{k}{v}" for k, v in lay.items()
                          if k == "tp" or (v > 0 if k == "prefill_instances" else v != 1))
        print(f"   {r['hardware']} with {r['engine']}: {' > '.join(r['steps']) or '(baseline)'}")
        if r["training_step_s"]:
            print(f"   step {r['training_step_s']:.2f} s, {r['memory_gb']:.1f} GB per device")
        else:
            cost = f", ${r['usd_per_mtok']:.2f}/Mtok" if r["usd_per_mtok"] else ""
            print(f"   {layout}; TTFT {r['ttft_ms']:,.0f} ms, TPOT {r['tpot_ms']:.1f} ms, {r['tokens_per_s']:,.0f} "
                  f"tokens/s at {r['batch']} sequences, {r['memory_gb']:.1f} GB per device, quality loss "
                  f"{r['quality_loss_pct']:.1f}%{cost}")
        if r["serves"]:
            print(f"   serves {r['serves']}")
        for v in r["slo_violations"]:
            print(f"   SLO: {v}")
        for s in r["config_skipped"]:
            print(f"   config: {s}")
    print(f"\n{len(rows)} scenarios, {sum(r.get('seconds', 0) for r in rows):.1f} s")
    write_results("expert_scenarios", rows)


if __name__ == "__main__":
    main()
