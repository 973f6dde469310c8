"""`describe MODEL`: workload parameters with meaning, default and allowed values, stages, family, reference;
`describe MODEL --graph out.graphml|out.dot` exports the op graph."""
import json
import re

import networkx as nx
import pytest

from conftest import run_cli
from simulator import catalog
from simulator.export import op_graph, to_dot
from simulator.graph import build_model
from simulator.library import resolve
from simulator.loader import Node


def _model(model_id="sd15"):
    return build_model(resolve("models", model_id), {}, "flash", model_id)


def test_describe_json_lists_batch_with_its_default_and_every_stage():
    code, out, err = run_cli("describe", "sd15", "--format", "json")
    assert code == 0, err
    d = json.loads(out)
    params = {p["name"]: p for p in d["params"]}
    assert params["batch"]["default"] == 1 and params["steps"]["default"] == 50
    assert params["batch"]["help"] and params["batch"]["allowed"]
    assert "fp16" in params["dtype"]["allowed"] and "bf16" in params["dtype"]["allowed"]
    assert [s["name"] for s in d["stages"]] == [s.name for s in _model().stages]
    denoiser = next(s for s in d["stages"] if s["name"] == "denoiser")
    assert denoiser["repeat"] == 50 and denoiser["repeat_expr"] == "steps"
    assert d["family"] == "diffusion-tti" and "Rombach" in d["reference"]


def test_describe_table_fits_120_characters_and_names_every_parameter():
    code, out, err = run_cli("describe", "llama2-7b")
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= catalog.WIDTH
    for name in ("batch", "prompt_tokens", "output_tokens", "dtype", "prefill", "decode"):
        assert re.search(rf"^{name}\s", out, re.MULTILINE), name
    # the options every model takes without declaring them, each with its values
    for option in ("weight_dtype", "act_dtype", "kv_dtype", "offload", "vae_tiling", "vae_slicing",
                   "text_encoder_device"):
        assert option in out, option
    assert "quantisation options every model takes" in out and "fp4|int4|int8|fp8|fp16|bf16|fp32" in out


def _node(mapping: dict, lines: dict) -> Node:
    node = Node(mapping)
    node.file, node.line, node.key_lines = "m.yaml", 1, lines
    return node


def test_parameters_read_plain_and_mapping_forms():
    text = ["params:", "  batch: 1   # images per prompt", "  steps: {default: 30, min: 1, max: 200, help: 'steps'}",
            "  dtype: bf16", "  mode: {default: fast, choices: [fast, slow]}"]
    params = _node({"batch": 1, "steps": {"default": 30, "min": 1, "max": 200, "help": "steps"}, "dtype": "bf16",
                    "mode": {"default": "fast", "choices": ["fast", "slow"]}},
                   {"batch": 2, "steps": 3, "dtype": 4, "mode": 5})
    recs = {r["name"]: r for r in catalog.parameters(params, text)}
    assert recs["batch"] == {**recs["batch"], "default": 1, "type": "int", "min": 0, "help": "images per prompt"}
    assert recs["steps"]["default"] == 30 and recs["steps"]["allowed"] == "1 .. 200" and recs["steps"]["help"] == "steps"
    assert recs["dtype"]["choices"][0] == "fp32" and recs["dtype"]["help"]  # common meaning as a fallback
    assert recs["mode"]["allowed"] == "fast | slow" and recs["mode"]["type"] == "str"


def test_comment_ignores_hash_inside_quotes():
    assert catalog._comment("  name: 'a # b'  # real") == "real"
    assert catalog._comment("  batch: 1") == ""


def test_describe_unknown_model_is_one_line():
    code, _, err = run_cli("describe", "sd-15")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "sd15" in err


def test_graphml_round_trips_with_as_many_nodes_as_ops(tmp_path):
    out = tmp_path / "sd15.graphml"
    code, _, err = run_cli("describe", "sd15", "--graph", out)
    assert code == 0, err
    g = nx.read_graphml(out)
    model = _model()
    assert g.number_of_nodes() == sum(len(s.ops) for s in model.stages)
    assert g.number_of_edges() == sum(s.graph.number_of_edges() for s in model.stages)
    assert nx.is_directed_acyclic_graph(g)
    attrs = g.nodes["denoiser/conv_in"]
    assert attrs["kind"] == "conv2d" and attrs["stage"] == "denoiser" and attrs["flops"] > 0
    assert sum(d["params"] for _, d in g.nodes(data=True)) == sum(s.params for s in model.stages)


def test_dot_has_a_node_line_per_op_and_an_edge_line_per_edge(tmp_path):
    out = tmp_path / "llama.dot"
    code, _, err = run_cli("describe", "llama2-7b", "--graph", out)
    assert code == 0, err
    text = out.read_text()
    g = op_graph(_model("llama2-7b"))
    assert text.startswith('digraph "llama2-7b" {') and text.rstrip().endswith("}")
    assert text.count("{") == text.count("}")
    assert len(re.findall(r"^\s+\".*\" \[label=", text, re.MULTILINE)) == g.number_of_nodes()
    assert len(re.findall(r"^\s+\".*\" -> \".*\";$", text, re.MULTILINE)) == g.number_of_edges()
    assert text.count("subgraph") == 2  # prefill, decode


def test_dot_escapes_quotes_and_backslashes():
    g = nx.DiGraph(name='a"b')
    g.add_node('s/x"\\y', stage="s", name='x"\\y', kind="add", shape="1", count=1)
    text = to_dot(g)
    assert '"s/x\\"\\\\y"' in text and 'digraph "a\\"b"' in text


@pytest.mark.parametrize("name", ["out.png", "out"])
def test_graph_needs_graphml_or_dot(tmp_path, name):
    code, _, err = run_cli("describe", "sd15", "--graph", tmp_path / name)
    assert code == 2 and ".graphml" in err and not (tmp_path / name).exists()


def test_describe_reads_the_plain_form_too():
    """tests/data/tiny_llm.yaml declares `batch: 1` (plain); the built-ins use {default:, min:, help:} mappings."""
    from conftest import DATA
    code, out, err = run_cli("describe", DATA / "tiny_llm.yaml", "--format", "json")
    assert code == 0, err
    params = {p["name"]: p for p in json.loads(out)["params"]}
    assert params["batch"]["default"] == 1 and params["batch"]["min"] == 0 and ">= 0" in params["batch"]["allowed"]
    assert params["batch"]["help"]  # the conventional meaning when the file gives none
