"""Analytical performance simulator for multi-modal generative AI inference (TTI, TTV, LLM).

The public names below load on first use (PEP 562), so `python -m simulator --help` does not pay for numpy,
pydantic or networkx.
"""
from .errors import SpecError

__all__ = ["run", "compare", "sweep", "load_model", "Terms", "FULL", "ROOFLINE", "SpecError", "Plan", "parse_plan"]
__version__ = "0.1.0"

# name -> module holding it. `sweep` is the module simulator/sweep.py itself, which is callable:
# `simulator.sweep("sd15", vary={...})` runs sweep.sweep(...), and `from simulator import sweep` keeps plan() etc.
_LAZY = {"run": "simulate", "compare": "simulate", "load_model": "simulate", "sweep": None,
         "Terms": "engine", "FULL": "engine", "ROOFLINE": "engine", "Plan": "parallel", "parse_plan": "parallel"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module
        module = import_module(f".{_LAZY[name] or name}", __name__)
        value = module if _LAZY[name] is None else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
