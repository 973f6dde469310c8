"""The README's error tables are the simulator's own output, and the trust table matches the public cases."""
import importlib.util
import json
from pathlib import Path

import pytest

from simulator import fidelity
from simulator.library import data_dir, public_cases
from simulator.trust import FILE, summarise

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "tools" / "readme_tables.py")
readme_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_tables)


@pytest.fixture(scope="module")
def found():
    return fidelity.validate_public(public_cases())


def test_readme_public_table_is_validate_public(found):
    blocks = readme_tables.readme_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks["validate-public"] == fidelity.public_table(found)


def test_readme_kernel_table_is_validate_of_the_published_kernels():
    blocks = readme_tables.readme_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks["validate-kernels"] == readme_tables.output(readme_tables.BLOCKS["validate-kernels"])


def test_expected_error_file_matches_the_public_cases(found):
    stored = json.loads((data_dir("measurements") / FILE).read_text())
    assert stored == json.loads(json.dumps(summarise(found)))


def test_public_set_is_large_cited_and_spread(found):
    assert len(found) >= 45
    assert all(f["source"] for f in found)
    assert len({f["source_id"] for f in found}) >= 12
    assert {"eager", "compile-cudagraphs", "tensorrt", "xla", "serving"} <= {f["stack"] for f in found}
    assert {"diffusion-tti", "ttv", "llm"} <= {f["family"] for f in found}
