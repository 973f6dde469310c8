"""Explorer responsiveness: milliseconds from a what-if slider's `input` event to the page having redrawn the
totals and charts, sd15 on a100, end to end in headless Chromium (request, library call, JSON, plotly redraw).

Target (issue: browser explorer): median of 10 updates <= 200 ms. Printed, not asserted.
Needs the `explore` extra, selenium and Debian's chromium + chromium-driver.
Run: python bench/bench_explore.py [--screenshots docs/explore]   (the second form also writes the README's
screenshots: the main view, the roofline and a sweep)
"""
import argparse
import statistics
import sys
from pathlib import Path

from simulator.explore.browser import Browser, missing
from simulator.explore.server import Background

UPDATES = 10


def screenshots(browser: Browser, url: str, folder: Path) -> None:
    """The README's pictures: a what-if on the main view, the roofline and a two-field sweep heatmap."""
    folder.mkdir(parents=True, exist_ok=True)
    browser.driver.set_window_size(1400, 1500)  # the open charts in full below the totals
    browser.open(url)
    before = browser.updates()
    browser.slide("memory.bandwidth", 750)  # twice the A100's bandwidth
    browser.settled(before)
    print(f"wrote {browser.screenshot(folder / 'main.png')}")
    browser.tab("roofline")
    browser.wait(lambda: browser.js("return (document.getElementById('chart-roofline').data || []).length > 3"))
    print(f"wrote {browser.screenshot(folder / 'roofline.png')}")
    before = browser.updates()
    browser.click("reset")
    browser.settled(before)
    browser.tab("sweep")
    browser.select("sweep-x", "memory.bandwidth")
    browser.select("sweep-y", "compute.fp16")
    browser.click("sweep-run")
    browser.wait(lambda: browser.js("return (document.getElementById('chart-sweep').data || []).length > 0"))
    print(f"wrote {browser.screenshot(folder / 'sweep.png')}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshots", metavar="FOLDER", help="also write main.png, roofline.png, sweep.png")
    args = parser.parse_args(argv)
    why = missing()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    server = Background()
    browser = Browser()
    try:
        browser.open(server.url)
        times, parts = [], []
        for i in range(UPDATES):  # alternate between two bandwidths so every update changes the answer
            before = browser.updates()
            browser.slide("memory.bandwidth", 600 if i % 2 == 0 else 700)
            browser.settled(before)
            times.append(browser.js("return window.explorer.lastUpdateMs"))
            parts.append(browser.js("return window.explorer.timing"))
        print(f"sd15 on a100, what-if update (bandwidth slider) end to end in the browser: median "
              f"{statistics.median(times):.0f} ms, min {min(times):.0f}, max {max(times):.0f} over {UPDATES} "
              f"updates (target <= 200 ms); of which the request (server: library call and JSON) "
              f"{statistics.median(p['request_ms'] for p in parts):.0f} ms and drawing "
              f"{statistics.median(p['draw_ms'] for p in parts):.0f} ms")
        if args.screenshots:
            screenshots(browser, server.url, Path(args.screenshots))
    finally:
        browser.quit()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
