"""The built-in model and hardware library: `models/*.yaml` and `hardware/*.yaml`.

Found inside an installed wheel (`simulator/data/...`, placed there by the build) or, from a checkout or an
editable install, in the repository next to the package. `SIMULATOR_DATA` points elsewhere if set.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import SHOWN_CHARS, Location, SpecError, shown, unknown

_PACKAGE = Path(__file__).resolve().parent


def data_dir(kind: str) -> Path:
    candidates = []
    if os.environ.get("SIMULATOR_DATA"):
        candidates.append(Path(os.environ["SIMULATOR_DATA"]) / kind)
    candidates += [_PACKAGE / "data" / kind, _PACKAGE.parent / kind]
    for path in candidates:
        if path.is_dir():
            return path
    return candidates[-1]


def public_cases() -> Path:
    """The published end-to-end measurements that `validate --public` compares with (shipped in the wheel)."""
    return data_dir("measurements") / "public.yaml"


def builtin_ids(kind: str) -> list[str]:
    folder = data_dir(kind)
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def resolve(kind: str, name: str) -> Path:
    """A built-in id (`sd15`, `a100`) or a path to a YAML file -> the file's path."""
    what = {"models": "model", "hardware": "hardware", "stacks": "stack"}[kind]
    path = Path(name)

    def is_file(p: Path) -> bool:
        try:
            return p.is_file()
        except (OSError, ValueError):  # a name too long for the file system, a NUL byte
            return False
    if path.suffix in (".yaml", ".yml") or os.sep in name or "/" in name:
        if not is_file(path):
            raise SpecError(f"no such {what} file", Location(shown(name) if len(name) > SHOWN_CHARS else name))
        return path
    candidate = data_dir(kind) / f"{name}.yaml"
    if is_file(candidate):
        return candidate
    raise SpecError(f"{unknown(what, name, builtin_ids(kind))}; `python -m simulator list {kind}` shows them")
