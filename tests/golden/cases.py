"""Golden `profile` and `advise` runs across model families, devices and goals.

Saved before the planner was reorganised into subpackages (issue 12), so a refactor that changes a
figure shows up as a failing test; a difference that is a deliberate fix is regenerated with
`python tests/golden/cases.py --update` and named in the commit message.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "assets" / "golden"

PROFILES = {
    "profile-llama-3.1-8b-h100": dict(model="llama-3.1-8b", hardware="h100-sxm", context=8192, batch=16),
    "profile-llama-3.1-70b-tp4": dict(model="llama-3.1-70b", hardware="h100-sxm", num_devices=4, context=4096,
                                      batch=8),
    "profile-mixtral-int4-l40s": dict(model="mixtral-8x7b", hardware="l40s", num_devices=2, dtype="int4",
                                      group_size=128, context=2048, batch=4),
    "profile-deepseek-v3-fp8": dict(model="deepseek-v3", hardware="h200-sxm", num_devices=8, dtype="fp8",
                                    context=4096, batch=4),
    "profile-gemma-3-27b-transformers": dict(model="gemma-3-27b", hardware="a100-80gb-sxm", context=8192,
                                             engine="transformers"),
    "profile-qwen2.5-0.5b-epyc-fp32": dict(model="qwen2.5-0.5b", hardware="epyc-9004", dtype="fp32", context=1024),
}

ADVICE = {
    "advise-llama-3.1-8b-l4-chat": dict(model="llama-3.1-8b", hardware="l4", workload="chat"),
    "advise-llama-3.1-70b-h100-throughput": dict(model="llama-3.1-70b", hardware="h100-sxm", num_devices=4,
                                                 workload="chat", goal="throughput"),
    "advise-mixtral-h100-latency": dict(model="mixtral-8x7b", hardware="h100-sxm", num_devices=2,
                                        workload="chat", goal="latency"),
    "advise-qwen2.5-7b-transformers-memory": dict(model="qwen2.5-7b", hardware="h100-sxm", workload="chat",
                                                  goal="memory", engine="transformers"),
    "advise-gemma-3-27b-rag-context": dict(model="gemma-3-27b", hardware="a100-80gb-sxm", workload="rag-long-context",
                                          goal="context"),
    "advise-deepseek-v2-lite-sglang": dict(model="deepseek-v2-lite", hardware="h100-sxm", workload="agent",
                                           engine="sglang"),
    "advise-llama-3.2-1b-finetune": dict(model="llama-3.2-1b", hardware="a10g", workload="fine-tune",
                                         goal="training"),
    "advise-qwen2.5-7b-auto-cost": dict(model="qwen2.5-7b", hardware="auto", workload="code-completion",
                                        goal="cost"),
}


def run(name: str) -> dict:
    """The JSON document of one golden case, as `--format json` / `--json` prints it."""
    import optiplan
    from optiplan.planner.errors import ImpossibleError

    if name in PROFILES:
        return json.loads(optiplan.profile(**PROFILES[name]).model_dump_json())
    try:
        return json.loads(optiplan.advise(**ADVICE[name]).model_dump_json())
    except ImpossibleError as exc:  # `--format json` prints the infeasible advice (exit code 3)
        return json.loads(exc.document.model_dump_json())


def names() -> list[str]:
    return [*PROFILES, *ADVICE]


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/golden/cases.py --update")
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for case in names():
        (GOLDEN_DIR / f"{case}.json").write_text(json.dumps(run(case), indent=1, sort_keys=True) + "\n")
        print("wrote", case)
