"""How `advise --hardware auto` explains its ranking: each option's cost per million output tokens over its device's
catalog price range, and why the cheapest won (a tie within the predictions' error, or within the price ranges)."""

from __future__ import annotations

from ..numbers import rate, usd
from ..schema import HardwareSpec
from ..schema.advice import HardwareOption


def cost_range(cost: float | None, hw: HardwareSpec) -> tuple[float, float] | None:
    """The cost per million tokens at the low and high end of the device's catalog price range (the cost is at its
    middle), or None where the catalog gives no range."""
    span = hw.price.usd_per_hour_range if hw.price else None
    if not cost or span is None:
        return None
    return round(cost * span[0] / hw.price.usd_per_hour, 4), round(cost * span[1] / hw.price.usd_per_hour, 4)


# two devices' costs per token this close are a tie: the throughput they come from is predicted within about 5-10%
# median (profiles/accuracy.yaml)
NEAR_TIE = 0.05


def explain_ranking(ranking: list[HardwareOption], unit: str = "output tokens") -> str:
    """Why the first of the hardware options won: its cost and throughput, the next one's, and whether the two are
    a tie within the predictions' error or within the catalog's price ranges; `unit`: what the cost counts
    (`workloads.priced_tokens`)."""
    win = ranking[0]
    priced = sum(h.cost_per_million_tokens_usd is not None for h in ranking)
    unpriced = len(ranking) - priced
    served = f"{rate(win.throughput_tokens_per_s)} tokens/s with {win.note}"
    if not priced:
        text = (f"{win.count} x {win.id} serves most of the {len(ranking)} catalog options that meet the workload, "
                f"none of them priced ({served})")
    else:
        cost = (f"{usd(win.cost_per_million_tokens_usd)} per million {unit}"
                if win.cost_per_million_tokens_usd is not None else "no catalog price; ranked by throughput")
        text = (f"{win.count} x {win.id} is the cheapest of {priced} priced catalog options that meet the workload "
                + (f"({unpriced} more meet it without a catalog price) " if unpriced else "") + f"({cost}, {served})")
    if len(ranking) > 1:
        nxt = ranking[1]
        nxt_cost = (usd(nxt.cost_per_million_tokens_usd) if nxt.cost_per_million_tokens_usd is not None
                    else "unpriced")
        text += f"; next: {nxt.count} x {nxt.id} at {nxt_cost}"
        a, b = win.cost_per_million_tokens_usd, nxt.cost_per_million_tokens_usd
        if a and b and b - a <= NEAR_TIE * a:  # closer than the throughput predictions are accurate
            text += f" ({(b / a - 1):.0%} more: as cheap within the prediction's error)"
        elif win.cost_range_usd and nxt.cost_range_usd and nxt.cost_range_usd[0] <= win.cost_range_usd[1]:
            # ranked at the middles of the catalog's price ranges, which overlap: the provider's rate decides
            (lo_a, hi_a), (lo_b, hi_b) = win.cost_range_usd, nxt.cost_range_usd
            text += (f" (ranked at the middle of each price range; over the ranges {usd(lo_a)}-{usd(hi_a)} against "
                     f"{usd(lo_b)}-{usd(hi_b)} per million, which is cheaper depends on the provider's rate)")
    return text + low_end_note(ranking, unit) + QUICK_SEARCH_NOTE


# the ranking's figures are its quick search's; the plan's are the whole search's on the first device
QUICK_SEARCH_NOTE = (". Each device is ranked by a quick search (weight and KV-cache formats, parallelism, the "
                     "engine's defaults); the plan is the whole search on the first device, so its figures can be "
                     "better")


def low_end_note(ranking: list[HardwareOption], unit: str) -> str:
    """Where another option at the low end of its device's price range costs less than the winner at the low end of
    its own (a wide range ranked at its middle), which one and by how much: the provider's rate decides."""
    win = ranking[0]
    if not win.cost_range_usd:
        return ""
    lowest = min((h for h in ranking[1:] if h.cost_range_usd), key=lambda h: h.cost_range_usd[0], default=None)
    # a low end within NEAR_TIE of the winner's is a tie, as between the middles (it read "$0.11 against $0.11")
    if lowest is None or lowest.cost_range_usd[0] >= win.cost_range_usd[0] * (1 - NEAR_TIE) \
            or usd(lowest.cost_range_usd[0]) == usd(win.cost_range_usd[0]):
        return ""
    return (f"; at the low ends of the catalog's price ranges {lowest.count} x {lowest.id} costs less "
            f"({usd(lowest.cost_range_usd[0])} against {usd(win.cost_range_usd[0])} per million {unit}): at rates near "
            "those, the provider's price decides")
