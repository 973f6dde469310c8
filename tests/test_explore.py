"""The explorer's answers are the CLI's answers: same JSON, same CSV, same one-line errors; its server bounds
what it accepts and answers a class of concurrent what-ifs correctly. (The page itself: test_explore_browser.py.)

The `api` tests need no web framework; the server tests are skipped without the `explore` extra."""
import importlib.util
import json
import shlex
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import run_cli
from simulator.errors import SpecError
from simulator.explore import api

HAVE_SERVER = all(importlib.util.find_spec(m) is not None for m in ("starlette", "uvicorn", "plotly"))
needs_server = pytest.mark.skipif(not HAVE_SERVER, reason='the explore extra is not installed (pip install -e ".[explore]")')


def cli_json(view_cli: str) -> dict:
    """Run the command line the page shows (`python -m simulator run ...`) with --format json."""
    args = shlex.split(view_cli)[3:]
    code, out, err = run_cli(*args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("state", [
    {"model": "sd15", "hardware": "a100"},
    {"model": "llama2-7b", "hardware": "h100", "set": {"output_tokens": "64", "batch": "4"},
     "hw_set": {"memory.bandwidth": "4.2e12", "efficiency.launch_overhead_s": "3e-06"}, "stack": "compile"},
    {"model": "dit-xl-2", "hardware": "l4", "attention": "math", "fusion": "full", "disable": ["wave", "tile"]},
    {"model": "cogvideox-2b", "hardware": "mi300x", "roofline": True},
    {"model": "llama2-70b", "hardware": "h100", "devices": "4"},
    {"model": "cogvideox-5b", "hardware": "h100", "devices": 4, "parallel": "sp=2,cfg=2"},
])
def test_the_view_is_run_format_json(state):
    view = api.run_view(state)
    assert json.loads(json.dumps(view["result"])) == cli_json(view["cli"])
    assert view["summary"] == {k: view["result"][k] for k in view["summary"]}  # the table's head of it


CACHED_STATES = [
    {"model": "sd15", "hardware": "a100", "hw_set": {"memory.bandwidth": "3e12"}},
    {"model": "sd15", "hardware": "a100", "attention": "math", "set": {"offload": "model", "vae_tiling": "true"}},
    {"model": "llama2-7b", "hardware": "h100", "set": {"weight_dtype": "int4", "kv_dtype": "fp8"},
     "stack": "compile-cudagraphs"},
    {"model": "llama2-70b", "hardware": "h100", "devices": "4"},
    {"model": "cogvideox-5b", "hardware": "h100", "devices": 4, "parallel": "sp=2,cfg=2"},
]


def fingerprint(model) -> bytes:
    """The model's pickle, less the per-iteration results it evaluates on first read (a memo, not a change)."""
    import io
    import pickle

    from simulator.graph import _Iterations

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, _Iterations):
                return object.__new__, (_Iterations,), {k: v for k, v in vars(obj).items() if k != "cache"}
            return NotImplemented
    out = io.BytesIO()
    Pickler(out).dump(model)
    return out.getvalue()


@pytest.mark.parametrize("state", CACHED_STATES)
def test_a_cached_model_answers_as_a_fresh_build(state, monkeypatch):
    """What-ifs reuse the built model (api.MODELS): a hardware-only change does not build it again, and after
    every view, an export, a compare and other devices, plans and sliders have run on the shared model, it is
    unchanged (byte for byte) and answers exactly as a model built afresh does."""
    from simulator.simulate import run
    monkeypatch.setattr(api, "MODELS", api.BuiltModels())
    inputs = api.Inputs(state)
    shared = inputs.built()
    before = fingerprint(shared)
    view = api.run_view(state)
    api.export(state, "csv", "op")
    for bandwidth in ("1e12", "5e12"):
        api.run_view({**state, "hw_set": {**state.get("hw_set", {}), "memory.bandwidth": bandwidth}},
                     views=["groups", "roofline"])
    api.run_view({**state, "hardware": "mi300x"}, views=["roofline", "attention"])
    api.run_view({**state, "stack": "compile", "devices": "2", "parallel": None} if not shared.memory.active
                 else {**state, "fusion": "full"}, views=["groups"])
    assert api.MODELS.built == 1 and api.MODELS.reused >= 5
    assert inputs.built() is shared and fingerprint(shared) == before
    several = {k: inputs.__dict__[k] for k in ("devices", "parallel") if inputs.__dict__[k] is not None}
    fresh = run(inputs.model, inputs.hardware, inputs.overrides, inputs.hw_overrides, inputs.attention,
                inputs.terms, inputs.fusion, inputs.stack, **several)
    assert json.loads(json.dumps(fresh.to_dict())) == json.loads(json.dumps(view["result"]))
    # another workload, attention or file content is another model
    other = api.Inputs({**state, "attention": "math" if inputs.attention == "flash" else "flash"}).built()
    assert other is not shared and api.MODELS.built == 2


def test_threads_share_a_built_model_safely():
    """Threads costing one built LLM at once (its decode iterations evaluated on first read) answer as one
    thread does: the explorer's server runs its requests in a thread pool over the shared models."""
    import sys
    import threading

    from simulator.simulate import load_model, run
    bandwidths = [{"memory.bandwidth": 1e12 + 1e11 * i} for i in range(12)]
    want = [run("llama2-7b", "a100", {"output_tokens": 48}, hw).totals() for hw in bandwidths]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: a race shows at once
    try:
        for _ in range(3):  # a fresh model each time: its iterations are evaluated by whichever thread is first
            built = load_model("llama2-7b", {"output_tokens": 48})
            start = threading.Barrier(len(bandwidths))

            def cost(hw):
                start.wait()  # all at once
                return run(built, "a100", {}, hw).totals()
            with ThreadPoolExecutor(max_workers=len(bandwidths)) as pool:
                assert list(pool.map(cost, bandwidths)) == want
    finally:
        sys.setswitchinterval(switch)


def test_export_is_what_run_prints():
    state = {"model": "sd15", "hardware": "h100", "set": {"height": "768"}, "hw_set": {"compute.fp16": "5e14"}}
    argv = shlex.split(api.run_view(state)["cli"])[3:]
    for fmt, by in (("json", "layer"), ("csv", "layer"), ("csv", "stage")):
        code, out, _ = run_cli(*argv, "--format", fmt, "--by", by)
        assert code == 0
        assert api.export(state, fmt, by) + "\n" == out


def test_whatif_sliders_are_the_fields_this_run_reads():
    """Sliders come from the registry of which cost term reads which field, for this run: the main ones each
    change the answer at either end of their range; fields this run cannot read are not offered."""
    from simulator.fields import term_of
    base = {"model": "sd15", "hardware": "a100"}
    view = api.run_view(base)
    totals = view["result"]["totals"]
    paths = {f["path"] for f in view["whatif"]}
    assert {"memory.bandwidth", "compute.fp16", "efficiency.launch_overhead_s", "memory.capacity"} <= paths
    assert "compute.bf16" not in paths  # sd15 computes in fp16
    assert not {p for p in paths if p.startswith(("interconnect", "network"))}  # one device: no collectives
    assert "efficiency.graph_launch_overhead_s" not in paths  # eager launches from a stream
    for f in view["whatif"]:
        assert f["min"] <= f["value"] <= f["max"] and term_of(f["path"]) not in (None, "pending"), f
        if not f["main"]:
            continue
        for end in (f["min"], f["max"]):
            moved = api.Inputs({**base, "hw_set": {f["path"]: str(end)}}).run().totals()
            assert moved != totals, f"{f['path']}={end} changes nothing"
    graphs = {f["path"] for f in api.run_view({**base, "stack": "compile-cudagraphs"})["whatif"]}
    assert "efficiency.graph_launch_overhead_s" in graphs and "efficiency.launch_overhead_s" not in graphs


def test_doubling_bandwidth_moves_the_roof_and_the_ridge():
    a = api.run_view({"model": "sd15", "hardware": "a100"})["roofline"]
    b = api.run_view({"model": "sd15", "hardware": "a100", "hw_set": {"memory.bandwidth": str(2 * a["bandwidth"])}})
    b = b["roofline"]
    assert b["bandwidth"] == 2 * a["bandwidth"]
    # the ridge is the peak over the bandwidth (the peak itself may move with a device's power model)
    assert b["ridge"] == pytest.approx(b["peak_flops"] / b["bandwidth"])
    assert b["ridge"] < 0.55 * a["ridge"]
    assert len(a["points"]) == len(b["points"]) > 100  # one dot per kernel that does arithmetic


@pytest.mark.parametrize("state", [
    {"model": "sd15", "hardware": "a100"},
    {"model": "sd15", "hardware": "a100", "set": {"offload": "model", "text_encoder_device": "cpu"}},
    {"model": "llama2-70b", "hardware": "h100", "devices": "4"},
    {"model": "cogvideox-5b", "hardware": "h100", "devices": 4, "parallel": "sp=2,cfg=2"},
])
def test_groups_add_up_to_the_device_time(state):
    """Categories and layers add up to the device time, stages to the time per inference (host-link copies and
    host CPU time included); on several devices the plan's collectives are a bar of their own in each stage."""
    view = api.run_view(state)
    totals, groups = view["result"]["totals"], view["groups"]
    for key in ("categories", "layers"):
        assert sum(r["time_s"] for r in groups[key]) == pytest.approx(totals["device_time_s"], rel=1e-9)
    assert sum(r["time_s"] for r in groups["stages"]) == pytest.approx(totals["time_s"], rel=1e-9)
    for s in groups["stages"]:
        assert s["time_s"] == pytest.approx(s["device_time_s"] + s["host_s"] + s["transfer_s"] + s["cpu_s"])
    collectives = [r for r in groups["layers"] if r["layer"] == api.COLLECTIVES]
    several = view["result"]["totals"].get("devices", 1) > 1
    assert bool(collectives) == several
    if several:
        comm = view["result"]["categories"]["comm"]
        assert sum(r["time_s"] for r in collectives) == pytest.approx(comm["time_s"], rel=1e-9)
        assert sum(r["bytes"] for r in collectives) == pytest.approx(comm["bytes"], rel=1e-9)
        assert {r["bound"] for r in collectives} == {"comm"}


@pytest.mark.parametrize("state, dtype", [
    ({"model": "llama2-7b", "hardware": "h100", "set": {"weight_dtype": "int8", "act_dtype": "int8"}}, "int8"),
    ({"model": "llama2-7b", "hardware": "h100", "set": {"weight_dtype": "int4"}}, "fp16"),
    ({"model": "llama2-70b", "hardware": "h100", "devices": "4"}, "fp16"),
    ({"model": "cogvideox-5b", "hardware": "h100", "devices": 4, "parallel": "sp=2,cfg=2"}, "bf16"),
])
def test_the_roof_is_the_rate_gemms_run_at_on_one_device(state, dtype):
    """The roofline's roof is the matrix rate of the activations' dtype (W8A8 runs at the int8 rate, weight-only
    int4 at the model's), one device's on several: no kernel's attained FLOP/s is above it, every kernel that
    does arithmetic is a dot or counted as unplaced (no DRAM bytes of its own), and the devices are named."""
    from simulator.hardware import load_hardware
    from simulator.metrics import peak_flops
    view = api.run_view(state)
    rf = view["roofline"]
    spec = load_hardware(state["hardware"]).spec
    assert rf["dtype"] == dtype and rf["peak_flops"] == peak_flops(spec, dtype)
    assert rf["points"] and all(0 < p["flops_per_s"] <= rf["peak_flops"] * (1 + 1e-9) for p in rf["points"])
    assert all(p["intensity"] > 0 for p in rf["points"])
    assert rf["devices"] == view["result"]["totals"].get("devices", 1)
    assert (rf["plan"] is None) == (rf["devices"] == 1)


def test_params_offer_the_options_every_model_takes():
    """Quantisation and memory-saving options are page controls for the models that can apply them (no KV-cache
    dtype without a KV cache, no VAE tiling without a decoder), and each offered value changes the answer."""
    sd15 = {p["name"]: p for p in api.params("sd15")}
    llama = {p["name"]: p for p in api.params("llama2-7b")}
    assert sd15["height"]["group"] == "workload" and sd15["offload"]["group"] == "memory saving"
    assert sd15["weight_dtype"]["group"] == "quantisation" and sd15["weight_dtype"]["default"] is None
    assert {"weight_dtype", "act_dtype", "offload", "vae_tiling", "vae_slicing", "text_encoder_device"} <= set(sd15)
    assert "kv_dtype" not in sd15 and "kv_dtype" in llama
    assert not {"vae_tiling", "vae_slicing", "text_encoder_device"} & set(llama)
    large = {"height": "1024", "width": "1024", "batch": "2"}  # larger than a VAE tile, more than one image
    base = api.run_view({"model": "sd15", "hardware": "a100", "set": large}, views=[])["summary"]["totals"]
    on = {"weight_dtype": "int8", "act_dtype": "fp32", "offload": "model", "vae_tiling": "true",
          "vae_slicing": "true", "text_encoder_device": "cpu"}
    for name, p in sd15.items():
        if p["group"] == "workload":
            continue
        assert p["choices"] is None or on[name] in p["choices"]
        moved = api.run_view({"model": "sd15", "hardware": "a100", "set": {**large, name: on[name]}}, views=[])
        assert moved["summary"]["totals"] != base, name
        assert f"--set {name}={on[name]}" in moved["cli"]


def test_memory_saving_modes_offer_the_host_sliders():
    """Offloading reads the host link, a CPU text encoder the host CPU: their sliders appear then, and move the
    answer."""
    state = {"model": "sd15", "hardware": "a100", "set": {"offload": "model", "text_encoder_device": "cpu"}}
    view = api.run_view(state)
    fields = {f["path"]: f for f in view["whatif"]}
    assert {"host_link.bandwidth", "host.flops", "host.bandwidth"} <= set(fields)
    assert fields["host_link.bandwidth"]["unit"] == "B/s" and fields["host.flops"]["unit"] == "FLOP/s"
    assert fields["host_link.efficiency"]["max"] == 1.0
    for path in ("host_link.bandwidth", "host.flops"):
        moved = api.run_view({**state, "hw_set": {path: str(fields[path]["max"])}}, views=[])
        assert moved["summary"]["totals"]["time_s"] < view["summary"]["totals"]["time_s"], path
    plain = {f["path"] for f in api.run_view({"model": "sd15", "hardware": "a100"}, views=["whatif"])["whatif"]}
    assert not {p for p in plain if p.startswith("host")}


def test_attention_views_of_a_video_model_split_spatial_and_temporal():
    view = api.run_view({"model": "modelscope-t2v", "hardware": "a100"})["attention"]
    assert {"spatial", "temporal"} <= set(view["roles"])
    temporal = [r for r in view["layers"] if r["role"] == "temporal"]
    spatial = [r for r in view["layers"] if r["role"] == "spatial"]
    assert temporal and spatial
    assert max(r["q_len"] for r in temporal) < max(r["q_len"] for r in spatial)  # frames vs pixels of a frame


def test_compare_devices_is_the_compare_command():
    state = {"model": "sd15", "hardware": "a100"}
    out = api.compare(state, devices=["a100", "h100", "l4"])
    code, text, _ = run_cli("compare", "sd15", "--hardware", "a100,h100,l4", "--format", "json")
    assert code == 0
    cli = json.loads(text)
    assert [{k: it[k] for k in cli[0]} for it in out["items"]] == cli
    with pytest.raises(SpecError, match="2 to 4"):
        api.compare(state, devices=["a100"])
    with pytest.raises(SpecError, match="2 to 4"):
        api.compare(state, models=["sd15", "sd21", "sdxl", "dit-xl-2", "pixart-alpha"])


def test_sweep_is_the_library_sweep_and_is_bounded():
    from simulator.sweep import sweep
    state = {"model": "dit-xl-2", "hardware": "a100"}
    vary = ["memory.bandwidth=1e12:4e12:3", "compute.bf16=1e14:8e14:4:log"]
    out = api.sweep(state, vary)
    rows = sweep(["dit-xl-2"], "a100", vary)
    assert out["points"] == 12 == len(rows)
    assert out["columns"]["time_s"] == [r["time_s"] for r in rows]
    with pytest.raises(SpecError, match="max-points"):
        api.sweep(state, ["memory.bandwidth=1e12:4e12:200", "compute.bf16=1e14:8e14:200"])


def test_the_page_cannot_name_files_on_the_server():
    uploads = api.Uploads()
    try:
        for state in ({"model": "/etc/hostname"}, {"model": "sd15", "hardware": "../hardware/a100.yaml"},
                      {"model": "sd15", "stack": "stacks/eager.yaml"}, {"model": "upload:0123"}):
            with pytest.raises(SpecError):
                api.Inputs(state, uploads)
    finally:
        uploads.close()


def test_upload_errors_read_as_the_cli_prints_them(tmp_path, monkeypatch):
    uploads = api.Uploads()
    try:
        bad = "name: broken\nfamily: tti\nparams: {batch: 1\n"
        (tmp_path / "bad.yaml").write_text(bad)
        monkeypatch.chdir(tmp_path)
        code, _, err = run_cli("run", "bad.yaml")
        assert code == 2
        with pytest.raises(SpecError) as exc:
            uploads.add("model", "bad.yaml", bad)
        assert api.error_line(exc.value, uploads) == err.strip()
        assert "\n" not in err.strip() and str(uploads.root) not in api.error_line(exc.value, uploads)
        with pytest.raises(SpecError, match="upload limit"):
            uploads.add("hardware", "big.yaml", "#" * (api.MAX_UPLOAD_BYTES + 1))
        fast = uploads.add("hardware", "fast.yaml", "inherit: a100\nname: faster A100\nmemory: {bandwidth: 4e12}\n")
        view = api.run_view({"model": "sd15", "hardware": fast["id"]}, uploads)
        assert view["cli"].endswith("--hardware fast.yaml")
        assert view["result"]["totals"]["time_s"] < api.run_view({"model": "sd15", "hardware": "a100"})[
            "result"]["totals"]["time_s"]
        assert list(uploads.root.iterdir())  # written inside the temporary folder only
    finally:
        uploads.close()
    assert not uploads.root.exists()


def test_explore_without_the_extra_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "starlette" else real(name, *a))
    code, out, err = run_cli("explore")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and 'pip install -e ".[explore]"' in err


def test_help_does_not_load_the_web_stack():
    import subprocess
    import sys
    code = ("import sys; from simulator.cli import main\ntry: main(['explore', '--help'])\nexcept SystemExit: pass\n"
            "assert not {'starlette', 'uvicorn', 'plotly'} & set(sys.modules), sorted(sys.modules)")
    from conftest import ROOT
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)


# ---------------------------------------------------------------------------------------------- the server

def post(url: str, body, timeout: float = 60.0):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def server():
    if not HAVE_SERVER:
        pytest.skip('the explore extra is not installed (pip install -e ".[explore]")')
    from simulator.explore.server import Background
    srv = Background()
    yield srv.url
    srv.stop()


@needs_server
def test_the_page_loads_nothing_from_the_internet(server):
    with urllib.request.urlopen(server, timeout=10) as r:
        html = r.read().decode()
    assert "http://" not in html and "https://" not in html
    with urllib.request.urlopen(server + "static/plotly.min.js", timeout=30) as r:
        assert r.status == 200 and len(r.read()) > 1_000_000


@needs_server
def test_the_server_refuses_what_it_should(server):
    status, body = post(server + "api/upload", b"x" * (api.MAX_UPLOAD_BYTES + 100 * 1024))
    assert status == 413 and "larger than" in json.loads(body)["error"]
    status, body = post(server + "api/run", b"{not json")
    assert status == 400 and json.loads(body)["error"] == "error: the request is not JSON"
    status, body = post(server + "api/run", {"state": {"model": "sd1"}})
    assert status == 400 and json.loads(body)["error"].startswith("error: unknown model 'sd1' (did you mean")
    status, body = post(server + "api/run", {"state": {"model": "sd15", "hw_set": {"memory.bandwidth": "-1"}}})
    code, _, err = run_cli("run", "sd15", "--hw-set", "memory.bandwidth=-1")
    assert status == 400 and code == 2 and json.loads(body)["error"] == err.strip()


BAD_BODIES = [
    ("api/run", {}), ("api/run", {"state": []}), ("api/run", {"state": {"model": 5}}),
    ("api/run", {"state": {"model": "sd15", "set": ["batch=2"]}}),
    ("api/run", {"state": {"model": "sd15", "set": {"batch": {"a": 1}}}}),
    ("api/run", {"state": {"model": "sd15", "set": {"height": "nan"}}}),
    ("api/run", {"state": {"model": "sd15", "hw_set": {"memory.bandwidth": "fast"}}}),
    ("api/run", {"state": {"model": "sd15", "hw_set": {"nosuch.path": "1"}}}),
    ("api/run", {"state": {"model": "sd15", "disable": "tile"}}),
    ("api/run", {"state": {"model": "sd15", "devices": "0"}}), ("api/run", {"state": {"model": "sd15", "devices": 1.5}}),
    ("api/run", {"state": {"model": "sd15", "devices": "2", "parallel": "tp=3"}}),
    ("api/run", {"state": {"model": "sd15", "parallel": ["tp=2"]}}),
    ("api/run", {"state": {"model": "sd15", "stack": ["eager"]}}),
    ("api/run", {"state": {"model": "sd15", "fusion": {"x": 1}}}),
    ("api/run", {"state": {"model": "sd15"}, "views": "result"}),
    ("api/run", {"state": {"model": "sd15"}, "views": ["nosuch"]}),
    ("api/params", {"model": None}), ("api/export", {"state": {"model": "sd15"}, "format": "xml"}),
    ("api/export", {"state": {"model": "sd15"}, "by": "nosuch"}),
    ("api/compare", {"state": {"model": "sd15"}, "devices": "a100,h100"}),
    ("api/compare", {"state": {"model": "sd15"}, "devices": ["a100", "/etc/hostname"]}),
    ("api/sweep", {"state": {"model": "sd15"}, "vary": ["memory.bandwidth=nan:1:2"]}),
    ("api/sweep", {"state": {"model": "sd15"}, "vary": [1, 2]}), ("api/sweep", {"state": {"model": "sd15"}}),
    ("api/upload", {"kind": "stack", "name": "s.yaml", "text": "name: x"}),
    ("api/upload", {"kind": "model", "name": None, "text": "x"}),
    ("api/upload", {"kind": "hardware", "name": "h.yaml", "text": "a: &a [*a]"}),
]


@needs_server
@pytest.mark.parametrize("path, body", BAD_BODIES)
def test_bad_requests_get_one_line_not_a_traceback(server, path, body):
    status, text = post(server + path, body)
    assert status == 400, text[:300]
    error = json.loads(text)["error"]
    assert error.startswith("error: ") and "\n" not in error and "Traceback" not in error


@needs_server
def test_fifty_students_at_once(server):
    """50 concurrent what-if requests (different models, devices and slider values) to 127.0.0.1, each
    answered exactly as a direct library call answers it."""
    from simulator.simulate import run
    models = ["dit-xl-2", "llama2-7b", "sd15", "pixart-alpha", "cogvideox-2b"]
    devices = ["a100", "h100", "l4", "mi300x", "tpu-v5e"]
    cases = []
    for i in range(50):
        hw_set = {"memory.bandwidth": f"{1.0e12 + 0.1e12 * i:g}"}
        if i % 3 == 0:
            hw_set["efficiency.launch_overhead_s"] = f"{(1 + i % 5) * 1e-6:g}"
        cases.append({"model": models[i % 5], "hardware": devices[(i // 5) % 5], "hw_set": hw_set})

    def ask(state):
        status, body = post(server + "api/run", {"state": state}, timeout=120)
        assert status == 200, body[:300]
        return json.loads(body)["result"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(ask, cases))
    for state, got in zip(cases, answers):
        hw = {k: float(v) for k, v in state["hw_set"].items()}
        want = run(state["model"], state["hardware"], {}, hw).to_dict()
        assert got == json.loads(json.dumps(want)), state
