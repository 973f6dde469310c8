"""Write models/index.json: each built-in model's SHA-256 and parameter count from a real build.

`python -m simulator list models` reads parameter counts from this index instead of building every model (an
entry counts only while its file's hash still matches; an edited model is built). tests/test_catalog.py fails
when the index is stale or disagrees with the build. Run after editing a model file:
    python tools/model_index.py
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.catalog import INDEX, build_index  # noqa: E402
from simulator.library import data_dir  # noqa: E402
from simulator.writers import write_atomic  # noqa: E402


def main() -> None:
    path = data_dir("models") / INDEX
    write_atomic(str(path), json.dumps(build_index(), indent=1, sort_keys=True))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
