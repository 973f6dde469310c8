"""Regenerate the README's error tables from the simulator itself (a test checks they match):

    python tools/readme_tables.py            # rewrites the blocks between the markers in README.md

- `validate-public`: `python -m simulator validate --public` (published end-to-end cases);
- `validate-kernels`: `python -m simulator validate measurements/kernels/public-kernels.csv --all-rows`.
It also rewrites measurements/expected-error.json (the trust table every result reports).
"""
from __future__ import annotations

import io
import re
import sys
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.cli import main  # noqa: E402

BLOCKS = {
    "validate-public": ["validate", "--public"],
    "validate-kernels": ["validate", "measurements/kernels/public-kernels.csv", "--all-rows"],
}


def output(args: list) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(args)
    if code:
        raise SystemExit(f"{' '.join(args)} failed with status {code}")
    return buf.getvalue().rstrip("\n")


def block(name: str, text: str) -> str:
    return f"<!-- {name}:start -->\n```\n{text}\n```\n<!-- {name}:end -->"


def readme_blocks(readme: str) -> dict:
    """The text inside each marked block of the README."""
    return {name: m.group(1) for name in BLOCKS
            if (m := re.search(rf"<!-- {name}:start -->\n```\n(.*?)\n```\n<!-- {name}:end -->", readme, re.S))}


def main_() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, args in BLOCKS.items():
        text = output(args)
        pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.S)
        if not pattern.search(readme):
            raise SystemExit(f"README.md has no '{name}' block")
        readme = pattern.sub(lambda _: block(name, text), readme)
    (ROOT / "README.md").write_text(readme, encoding="utf-8")
    output(["validate", "--public", "--write"])
    print("README.md tables and measurements/expected-error.json rewritten")


if __name__ == "__main__":
    main_()
