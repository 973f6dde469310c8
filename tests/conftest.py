import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def write(tmp_path):
    """Write a YAML text to a temp file and return its path."""
    def _write(text: str, name: str = "model.yaml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return _write


def run_cli(*args):
    """Run the CLI in-process; returns (exit status, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from simulator.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


sys.path.insert(0, str(Path(__file__).resolve().parent))
