"""The compatibility graph, built from the technique declarations only: `requires`, `conflicts`
(explicit, or two techniques of one group) and `order` edges, exported as JSON, DOT or Mermaid."""

from __future__ import annotations

import json
from functools import lru_cache
from itertools import combinations

import networkx as nx

from .techniques import Technique, all_techniques

# Default order of families in a plan, where no declared edge decides: change the model, then its
# formats, then how it is laid out and served, then speculation on top.
FAMILY_ORDER = ("compression", "weight quantization", "kv-cache quantization", "attention", "parallelism", "memory",
                "serving", "compilation", "speculative decoding", "training")


@lru_cache(maxsize=1)
def technique_graph() -> nx.MultiDiGraph:
    techniques = all_techniques()
    g = nx.MultiDiGraph()
    for t in techniques.values():
        g.add_node(t.id, name=t.name, family=t.family, group=t.group, phase=t.phase, risk=t.quality_risk,
                   always_on=t.always_on)
    for t in techniques.values():
        for dep in t.requires:
            g.add_edge(t.id, dep, key="requires", kind="requires")
        for before in t.after:
            if before in techniques:
                g.add_edge(before, t.id, key="order", kind="order")
        for other in t.conflicts:
            g.add_edge(t.id, other, key="conflicts", kind="conflicts")
    by_group: dict[str, list[str]] = {}
    for t in techniques.values():
        if t.group:
            by_group.setdefault(t.group, []).append(t.id)
    for members in by_group.values():
        for a, b in combinations(sorted(members), 2):
            g.add_edge(a, b, key="conflicts", kind="conflicts", reason="same group")
    return g


def conflicting(a: str, b: str) -> bool:
    g = technique_graph()
    return g.has_edge(a, b, key="conflicts") or g.has_edge(b, a, key="conflicts")


def plan_order(ids: list[str]) -> list[str]:
    """Order techniques for a plan: requirements and declared order first, then family order."""
    g = technique_graph()
    order_graph = nx.DiGraph()
    order_graph.add_nodes_from(ids)
    for u, v, kind in g.subgraph(ids).edges(keys=True):
        if kind == "requires":
            order_graph.add_edge(v, u)
        elif kind == "order":
            order_graph.add_edge(u, v)
    rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    techniques = all_techniques()
    return list(nx.lexicographical_topological_sort(
        order_graph, key=lambda n: (rank.get(techniques[n].family, len(rank)), n)))


def export(fmt: str) -> str:
    """The graph as JSON (node-link), DOT or Mermaid."""
    g = technique_graph()
    if fmt == "json":
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
            "quality_source": t.quality_source, "always_on": t.always_on}
