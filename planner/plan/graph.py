"""The compatibility graph, built from the technique declarations only: `requires`, `conflicts`
(explicit, or two techniques of one group) and `order` edges, exported as JSON, DOT or Mermaid."""

from __future__ import annotations

import heapq
import json
from functools import lru_cache
from itertools import combinations

from .techniques import Technique, all_techniques

# Default order of families in a plan, where no declared edge decides: change the model, then its
# formats, then how it is laid out and served, then speculation on top.
FAMILY_ORDER = ("compression", "weight quantization", "kv-cache quantization", "attention", "parallelism", "memory",
                "serving", "compilation", "speculative decoding", "front end", "training")


@lru_cache(maxsize=1)
def edges() -> tuple[tuple[str, str, str], ...]:
    """Every edge the declarations imply, as (from, to, kind): `requires` (A needs B), `order`
    (A runs before B) and `conflicts` (declared, or two techniques of one group)."""
    techniques = all_techniques()
    out = set()
    for t in techniques.values():
        out |= {(t.id, dep, "requires") for dep in t.requires}
        out |= {(before, t.id, "order") for before in t.after if before in techniques}
        out |= {(t.id, other, "conflicts") for other in t.conflicts}
    by_group: dict[str, list[str]] = {}
    for t in techniques.values():
        if t.group:
            by_group.setdefault(t.group, []).append(t.id)
    for members in by_group.values():
        out |= {(a, b, "conflicts") for a, b in combinations(sorted(members), 2)}
    return tuple(sorted(out))


@lru_cache(maxsize=1)
def technique_graph():
    """The compatibility graph as a networkx MultiDiGraph (edge keys are the kinds)."""
    import networkx as nx  # imported here: the search needs only `edges()`, and networkx costs ~0.25 s

    g = nx.MultiDiGraph()
    for t in all_techniques().values():
        g.add_node(t.id, name=t.name, family=t.family, group=t.group, phase=t.phase, risk=t.quality_risk,
                   always_on=t.always_on)
    for u, v, kind in edges():
        g.add_edge(u, v, key=kind, kind=kind)
    return g


@lru_cache(maxsize=1)
def _conflict_pairs() -> frozenset[frozenset[str]]:
    return frozenset(frozenset((u, v)) for u, v, kind in edges() if kind == "conflicts")


def conflicting(a: str, b: str) -> bool:
    return frozenset((a, b)) in _conflict_pairs()


def plan_order(ids: list[str]) -> list[str]:
    """Order techniques for a plan: requirements and declared order first, then family order, then
    id (a lexicographic topological sort, so the order is deterministic)."""
    chosen = set(ids)
    successors: dict[str, set[str]] = {i: set() for i in chosen}
    indegree = dict.fromkeys(chosen, 0)
    for u, v, kind in edges():
        if kind == "conflicts" or u not in chosen or v not in chosen:
            continue
        first, then = (v, u) if kind == "requires" else (u, v)
        if then not in successors[first]:
            successors[first].add(then)
            indegree[then] += 1
    rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    techniques = all_techniques()

    def key(n: str) -> tuple[int, str]:
        return rank.get(techniques[n].family, len(rank)), n

    ready = [key(n) for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for m in successors[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                heapq.heappush(ready, key(m))
    if len(order) != len(chosen):
        raise ValueError(f"technique order has a cycle among {sorted(chosen - set(order))}")
    return order


def export(fmt: str) -> str:
    """The graph as JSON (node-link), DOT or Mermaid."""
    g = technique_graph()
    if fmt == "json":
        import networkx as nx

        return json.dumps(nx.node_link_data(g, edges="edges"), indent=2, default=str)
    edges = sorted({(u, v, k) for u, v, k in g.edges(keys=True)})
    if fmt == "dot":
        lines = ["digraph techniques {", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
        for n, d in sorted(g.nodes(data=True)):
            lines.append(f'  "{n}" [label="{n}\\n({d["family"]})"];')
        style = {"requires": "", "order": " [style=bold, label=before]", "conflicts": " [style=dashed, dir=none, color=red]"}
        for u, v, k in edges:
            extra = style[k] if k != "requires" else " [label=requires]"
            lines.append(f'  "{u}" -> "{v}"{extra};')
        lines.append("}")
        return "\n".join(lines)
    if fmt == "mermaid":
        def node(n: str) -> str:
            return n.replace("-", "_").replace(".", "_")
        lines = ["graph LR"]
        for n in sorted(g.nodes):
            lines.append(f'  {node(n)}["{n}"]')
        arrow = {"requires": "-->|requires|", "order": "==>|before|", "conflicts": "-.-|conflicts|"}
        for u, v, k in edges:
            lines.append(f"  {node(u)} {arrow[k]} {node(v)}")
        return "\n".join(lines)
    raise ValueError(f"unknown graph format '{fmt}'; known: json, dot, mermaid")


def describe(t: Technique) -> dict:
    """A technique's declaration as plain data (for `optiplan techniques --json`)."""
    return {"id": t.id, "name": t.name, "family": t.family, "group": t.group, "phase": t.phase, "summary": t.summary,
            "hardware": list(t.hardware), "model": list(t.model), "packages": list(t.packages), "data": t.data,
            "requires": list(t.requires), "conflicts": list(t.conflicts), "after": list(t.after),
            "quality_risk": t.quality_risk,
            "quality_loss_pct": None if callable(t.quality_loss_pct) else t.quality_loss_pct,
            "quality_source": t.quality_source if isinstance(t.quality_source, str) else
            "published by model family and size (profiles/quality.yaml)", "always_on": t.always_on, "engines": list(t.engines),
            "runtime": {engine: {"cache": c.uses(), "cache_needs": list(c.cache_needs), "batch_one": c.batch_one}
                        for engine, c in t.combines.items()},
            "apply": None if t.apply is None else {
                "optimizer": t.apply.optimizer, "devices": list(t.apply.devices), "aim": list(t.apply.aim),
                "options": {name: {"type": o.kind.__name__, "help": o.help, "choices": list(o.choices) or None,
                                   "low": o.low, "high": o.high} for name, o in t.apply.options}}}
