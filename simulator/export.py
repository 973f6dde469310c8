"""A model's op graph as a file: GraphML (networkx) or Graphviz DOT (written here, no pydot needed).

One node per op of every stage (`stage/op path`), with its kind, category, layer, role, dtype, run count, output
shape and totals (FLOPs, bytes, parameters over all its runs in one pass of the stage); one edge per tensor an op
reads from another op. The graph is each stage's own networkx graph from the builder, joined stage after stage.
"""
from __future__ import annotations

from pathlib import Path

from .errors import SpecError

FORMATS = (".graphml", ".dot")


def op_graph(model):
    """One networkx DiGraph for a built Model: the stages' graphs, nodes prefixed by the stage name."""
    import networkx as nx
    g = nx.DiGraph(name=model.id, model=model.name, family=model.family)
    for s in model.stages:
        for op in s.ops:
            r = op.result
            shape = r.outputs[0] if r.outputs else ()
            g.add_node(f"{s.name}/{op.name}", stage=s.name, name=op.name, layer=op.layer, kind=op.kind,
                       category=op.category, role=op.role or "", dtype=op.dtype, count=int(op.count),
                       shape="x".join(str(d) for d in shape),
                       flops=float(sum(k.flops for k in r.kernels) * op.count),
                       bytes=float(sum(k.bytes for k in r.kernels) * op.count), params=int(r.params * op.count))
        for a, b, data in s.graph.edges(data=True):
            g.add_edge(f"{s.name}/{a}", f"{s.name}/{b}", tensor=str(data.get("tensor", "")))
    return g


def _quote(text) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(g) -> str:
    """DOT text: a cluster per stage, boxes labelled with op name, kind and output shape."""
    lines = [f"digraph {_quote(g.graph.get('name', 'model'))} {{", "  rankdir=TB;",
             '  node [shape=box, fontname="Helvetica", fontsize=9];', '  edge [fontsize=7];']
    stages: dict = {}
    for n, d in g.nodes(data=True):
        stages.setdefault(d["stage"], []).append((n, d))
    for i, (stage, nodes) in enumerate(stages.items()):
        lines.append(f"  subgraph {_quote(f'cluster_{i}')} {{")
        lines.append(f"    label={_quote(stage)};")
        for n, d in nodes:
            label = f"{d['name']}\n{d['kind']} [{d['shape']}]" + (f" x{d['count']}" if d["count"] > 1 else "")
            lines.append(f"    {_quote(n)} [label={_quote(label)}];")
        lines.append("  }")
    for a, b, d in g.edges(data=True):
        lines.append(f"  {_quote(a)} -> {_quote(b)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_graph(model: str, out: str, overrides: dict | None = None) -> str:
    """Build `model` (an id or a YAML path) at its default workload and write its op graph to `out`."""
    from .graph import build_model
    from .library import resolve
    from .writers import write_atomic
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise SpecError(f"--graph {out}: the op graph is written as .graphml or .dot")
    path = resolve("models", model)
    g = op_graph(build_model(path, overrides or {}, "flash", path.stem))
    if suffix == ".graphml":
        import networkx as nx
        text = "\n".join(nx.generate_graphml(g))
    else:
        text = to_dot(g)
    write_atomic(out, text)
    return out
