"""Analytical performance simulator for multi-modal generative AI inference (TTI, TTV, LLM)."""
from .engine import FULL, ROOFLINE, Terms
from .errors import SpecError
from .simulate import compare, load_model, run

__all__ = ["run", "compare", "load_model", "Terms", "FULL", "ROOFLINE", "SpecError"]
__version__ = "0.1.0"
