"""The goal's objective: the one figure a plan is ranked by (`search.rank`), and the share a step must move it by
to earn its place. The search ranks whole stacks by it; a step that chooses among layouts of its own (the
data-parallel replicas' size) weighs them by it too."""

from __future__ import annotations

from ..schema.advice import Prediction

# A step must move the goal's figure by more than this share to stay in a plan: a stack within this of the same stack
# without it is read as that stack (SGLang's mixed chunk had been planned for throughput at +1.7% for
# 60% more time to first token; nothing this close is told apart by the model, nor by a benchmark on a shared host)
STEP_GAIN = 0.03


def score(p: Prediction, goal: str, output_tokens: int, needed: int | None = None) -> float:
    """The goal's objective, lower is better; `needed`: the sequences the workload serves at once."""
    if goal == "latency":
        # a whole request's latency; where the plan holds fewer sequences than the workload runs at once, the others
        # wait for a slot, the `needed` sharing the `batch` slots in turn (a plan that holds 3 of 8 agents at 37 ms a
        # token had won over one that holds all 8 at 57 ms)
        return (p.ttft_ms + p.tpot_ms * output_tokens) * max(1.0, (needed or 1) / max(p.batch, 1))
    if goal == "memory":
        return float(p.memory_per_device_bytes)
    if goal == "context":
        # the long sequences the workload needs at once, then speed: room beyond the need is no gain (a plan that
        # offloads weights to hold more sequences than asked for serves them slower)
        return -min(p.max_concurrency, needed or 1 << 30) * 1e6 + p.tpot_ms
    if goal == "cost" and p.cost_per_million_tokens_usd is not None:
        return p.cost_per_million_tokens_usd
    if goal == "training":
        return p.training_step_s or 0.0
    return -p.throughput_tokens_per_s


def slo_tier(p: Prediction) -> int:
    """0 a plan that fits and meets every SLO, 1 one that fits, 2 one that does not: ranked before the score."""
    return 0 if p.meets_slo else 1 if p.fits else 2
