"""The explorer in a real browser (headless Chromium from Debian's packages, driven by Selenium): what the page
shows is what `python -m simulator run ... --format json` answers, sliders move the total and the roofline, a
bad upload shows the CLI's one-line error, and a link restores the view.

Skipped, with the reason, only where Chromium, its driver, Selenium or the `explore` extra is missing; CI
installs them (.ci/run)."""
import json
import re
import shlex

import pytest

from conftest import run_cli
from simulator.explore.browser import missing

REASON = missing()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no browser test: {REASON}")

PREFIX = {"P": 1e15, "T": 1e12, "G": 1e9, "M": 1e6, "k": 1e3, "": 1.0, "m": 1e-3, "µ": 1e-6, "n": 1e-9}


def shown_value(text: str) -> tuple[float, float]:
    """A number the page shows (`1.790 s`, `714.1 ms`) as (value in base units, half its last digit)."""
    m = re.fullmatch(r"(-?[0-9.]+)\s*([PTGMkmµn]?)s", text.strip())
    assert m, f"not a time: {text!r}"
    digits = m.group(1)
    decimals = len(digits.partition(".")[2])
    scale = PREFIX[m.group(2)]
    return float(digits) * scale, 0.5 * 10 ** -decimals * scale


def cli_answer(view_cli: str) -> dict:
    code, out, err = run_cli(*shlex.split(view_cli)[3:], "--format", "json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def page():
    from simulator.explore.browser import Browser
    from simulator.explore.server import Background
    server = Background()
    browser = Browser()
    browser.url = server.url
    try:
        browser.open(server.url)
        yield browser
    finally:
        browser.quit()
        server.stop()


def choose(page, element_id, value):
    before = page.updates()
    page.select(element_id, value)
    page.settled(before)


def test_sd15_on_a100_shows_the_cli_total(page, tmp_path):
    choose(page, "model", "sd15")
    choose(page, "hardware", "a100")
    assert page.text("error") == ""
    shown, half = shown_value(page.text("now-time_s"))
    want = cli_answer("python -m simulator run sd15 --hardware a100")["totals"]["time_s"]
    assert abs(shown - want) <= half * (1 + 1e-9), (page.text("now-time_s"), want)
    assert page.text("cli") == "python -m simulator run sd15 --hardware a100"
    page.screenshot(tmp_path / "main.png")


def test_bandwidth_slider_moves_the_total_and_the_roofline(page, tmp_path):
    choose(page, "hardware", "a100")
    page.tab("roofline")
    page.wait(lambda: page.js("return (document.getElementById('chart-roofline').data || []).length > 3"))
    roof = "return document.getElementById('chart-roofline').data[0].y.slice()"
    before_roof, before_caption = page.js(roof), page.text("roofline-caption")
    before_total = page.text("now-time_s")
    before = page.updates()
    page.slide("memory.bandwidth", 1000)  # four times the A100's bandwidth
    page.settled(before)
    assert page.text("error") == ""
    assert page.text("now-time_s") != before_total
    assert page.text("base-time_s") == before_total  # the baseline stays beside the what-if
    assert "--hw-set memory.bandwidth=" in page.text("cli")
    after_roof = page.js(roof)
    assert after_roof != before_roof and page.text("roofline-caption") != before_caption
    assert max(after_roof) == pytest.approx(max(before_roof), rel=0.01)  # the compute roof stays ...
    assert after_roof[0] > 3.9 * before_roof[0]  # ... the memory roof rises with the bandwidth
    # the what-if is the CLI's answer for the command line the page shows
    shown, half = shown_value(page.text("now-time_s"))
    assert abs(shown - cli_answer(page.text("cli"))["totals"]["time_s"]) <= half * (1 + 1e-9)
    page.screenshot(tmp_path / "roofline.png")
    before = page.updates()
    page.click("reset")
    page.settled(before)
    assert page.text("now-time_s") == before_total and "--hw-set" not in page.text("cli")
    page.tab("breakdown")


def test_a_bad_yaml_upload_shows_the_cli_error_line(page, tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: broken\nfamily: tti\nparams:\n  batch: [1\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("run", "bad.yaml")
    assert code == 2
    page.driver.find_element("id", "model-file").send_keys(str(bad))
    page.wait(lambda: page.text("error"), what="the upload's error")
    assert page.text("error") == err.strip()
    assert "\n" not in page.text("error") and "bad.yaml:" in page.text("error")
    page.screenshot(tmp_path / "upload-error.png")


def test_clicking_a_stage_filters_the_layers(page):
    choose(page, "model", "sd15")
    layers = "return document.getElementById('chart-layers').data.flatMap((t) => t.x)"
    everything = page.js(layers)
    page.js("document.getElementById('chart-stages').emit('plotly_click', {points: [{x: 'decoder'}]})")
    page.wait(lambda: page.js(layers) != everything, what="the layer view to filter")
    shown = page.js(layers)
    assert shown and all(x.startswith("decoder/") for x in shown)
    assert {x for x in everything if x.startswith("decoder/")} == set(shown)
    page.click("all-stages")
    page.wait(lambda: page.js(layers) == everything, what="every layer again")


def test_attention_and_sweep_views(page, tmp_path):
    choose(page, "model", "dit-xl-2")
    page.tab("attention")
    page.wait(lambda: page.js("return (document.getElementById('chart-seqlen').data || []).length > 0"))
    bars = page.js("return document.getElementById('chart-seqlen').data.reduce((n, t) => n + t.x.length, 0)")
    from simulator.paper import attention_layers
    from simulator.simulate import run
    assert bars == len(attention_layers(run("dit-xl-2", "a100")))  # one bar per attention op, as `plot seqlen`
    page.tab("sweep")
    page.select("sweep-x", "memory.bandwidth")
    page.js("const n = document.getElementById('sweep-n'); n.value = 7; n.dispatchEvent(new Event('change'))")
    page.click("sweep-run")
    page.wait(lambda: page.js("return (document.getElementById('chart-sweep').data || []).length > 0")
              or page.text("error"), what="the sweep")
    assert page.text("error") == ""
    xs = page.js("return document.getElementById('chart-sweep').data[0].x")
    ys = page.js("return document.getElementById('chart-sweep').data[0].y")
    assert len(xs) == 7 and ys[0] >= ys[-1]  # more bandwidth never makes an inference slower
    assert "--vary memory.bandwidth=" in page.text("sweep-cli")
    svg = page.driver.execute_async_script(
        "Plotly.toImage('chart-sweep', {format: 'svg'}).then(arguments[0], (e) => arguments[0]('failed: ' + e))")
    assert svg.startswith("data:image/svg+xml")  # what the SVG button downloads
    page.screenshot(tmp_path / "sweep.png")
    page.tab("breakdown")


def test_a_link_restores_the_view(page):
    choose(page, "model", "sd15")
    before = page.updates()
    page.slide("efficiency.launch_overhead_s", 900)
    page.settled(before)
    page.tab("roofline")
    link, total, cli = page.driver.current_url, page.text("now-time_s"), page.text("cli")
    page.driver.get("about:blank")
    page.open(link)
    assert page.text("now-time_s") == total and page.text("cli") == cli
    assert page.js("return window.explorer.state().tab") == "roofline"
    before = page.updates()
    page.click("reset")
    page.settled(before)
    page.tab("breakdown")


CHARTS = {"breakdown": ("chart-stages", "chart-categories", "chart-layers"), "roofline": ("chart-roofline",),
          "attention": ("chart-seqlen", "chart-roles")}


def test_every_chart_has_a_title_and_axes_with_units(page):
    """Each chart of the main tabs has a title and both axes titled, the value axis with its unit in brackets;
    a legend where it draws more than one series."""
    choose(page, "model", "sd15")
    choose(page, "hardware", "a100")
    for tab, charts in CHARTS.items():
        page.tab(tab)
        for chart in charts:
            read = (f"const gd = document.getElementById('{chart}'); return gd.layout && gd.data && "
                    "[gd.layout.title.text, gd.layout.xaxis.title.text, gd.layout.yaxis.title.text, "
                    "gd.data.filter((t) => t.showlegend !== false).length, gd.layout.showlegend]")
            title, x, y, series, legend = page.wait(lambda: page.js(read), what=chart)
            assert title and x and y, (chart, title, x, y)
            assert re.search(r"\[[^\]]+\]$", y), (chart, y)  # [s], [ms], [FLOP/s], [tokens]
            assert legend is not False or series == 1, chart
    page.tab("breakdown")


def test_workload_options_and_several_devices(page):
    """The options every model takes are controls of the page and answer as the CLI does; offloading offers the
    host link's slider; on several devices the layer view shows the plan's collectives and the roofline is one
    device's."""
    choose(page, "model", "sd15")
    choose(page, "hardware", "a100")
    assert page.js("return document.getElementById('param-kv_dtype')") is None  # sd15 keeps no KV cache
    choose(page, "param-weight_dtype", "int8")
    assert page.text("error") == "" and "--set weight_dtype=int8" in page.text("cli")
    shown, half = shown_value(page.text("now-time_s"))
    assert abs(shown - cli_answer(page.text("cli"))["totals"]["time_s"]) <= half * (1 + 1e-9)
    choose(page, "param-weight_dtype", "")
    choose(page, "param-offload", "model")
    assert page.text("error") == "" and "--set offload=model" in page.text("cli")
    total = page.text("now-time_s")
    before = page.updates()
    page.slide("host_link.bandwidth", 1000)  # four times the PCIe link's bandwidth
    page.settled(before)
    assert page.text("now-time_s") != total and page.text("base-time_s") == total
    before = page.updates()
    page.click("reset")
    page.settled(before)
    choose(page, "param-offload", "none")
    assert "--set" not in page.text("cli")

    choose(page, "model", "llama2-70b")
    choose(page, "hardware", "h100")
    before = page.updates()
    page.js("const d = document.getElementById('devices'); d.value = '4'; d.dispatchEvent(new Event('change'))")
    page.settled(before)
    assert page.text("error") == "" and "--devices 4" in page.text("cli")
    layers = page.js("return document.getElementById('chart-layers').data.flatMap((t) => t.x)")
    assert any(x.endswith("/(collectives)") for x in layers)
    page.tab("roofline")
    page.wait(lambda: "per device (4 devices, tp=4)" in page.text("roofline-caption"), what="the roofline")
    before = page.updates()
    page.js("const d = document.getElementById('devices'); d.value = ''; d.dispatchEvent(new Event('change'))")
    page.settled(before)
    page.tab("breakdown")
    choose(page, "model", "sd15")
    choose(page, "hardware", "a100")
