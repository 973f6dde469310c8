"""The benchmark scripts under bench/ still import: they are run by hand, so nothing else notices when an API they
use moves (bench_engine.py imported `lower` from the engine for a while after it moved to the mapping layer)."""
import importlib.util

import pytest

from conftest import ROOT

BENCHES = sorted((ROOT / "bench").glob("bench_*.py"))


@pytest.mark.parametrize("path", BENCHES, ids=[p.stem for p in BENCHES])
def test_bench_script_imports_and_has_a_main(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # module level only: `main()` is what takes the time
    assert callable(module.main)


def test_there_are_benches():
    assert len(BENCHES) >= 4
