"""Workload parameters a model declares (`params:`), with their type, range and meaning.

An entry is either a plain default (`batch: 1`: a non-negative number, or a text such as a dtype) or a
declaration (`batch: {default: 1, min: 1, type: int, help: "..."}`; `type` defaults to the default's type).
Every value a user gives (`--set`, `--vary-workload`, a public case's `set:`) is checked here, so a bad one is
refused at the option that gave it, naming it, instead of surfacing as a shape error deep in the model file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import Location, SpecError, shown, unknown
from .expr import MAX_MAGNITUDE

TYPES = ("int", "float", "bool", "str")


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    type: str                   # int, float, bool, str; "number" for a plain numeric default (int or float)
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    help: str = ""

    def allowed(self) -> str:
        """The allowed values in words, e.g. 'whole number >= 1' (for `describe` and error messages)."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        words = {"int": "whole number", "float": "number", "number": "number", "bool": "true or false (1 or 0)",
                 "str": "text"}[self.type]
        bounds = ([f">= {self.min:g}"] if self.min is not None else []) + \
                 ([f"<= {self.max:g}"] if self.max is not None else [])
        return " ".join([words] + bounds)

    def problem(self, value):
        """(None, the value as the model reads it) when `value` is allowed, else (what is wrong, None)."""
        if self.type == "bool":
            if isinstance(value, bool):
                return None, value
            if isinstance(value, (int, float)) and value in (0, 1):
                return None, bool(value)
            return "expected on or off (true/false or 1/0)", None
        if self.type == "str":
            if not isinstance(value, str):
                return "expected text" + (f", one of {', '.join(map(str, self.choices))}" if self.choices else ""), None
        elif isinstance(value, (str, bool)):
            return f"expected a {'whole number' if self.type == 'int' else 'number'}", None
        else:
            if isinstance(value, float) and not math.isfinite(value):
                return "expected a finite number", None
            if abs(value) > MAX_MAGNITUDE:
                return f"too large (limit {MAX_MAGNITUDE:.3g})", None
            if self.type == "int":
                if isinstance(value, float):
                    if not value.is_integer():
                        return "expected a whole number", None
                    value = int(value)
            elif self.type == "float":
                value = float(value)
            if self.type == "number" and value < 0:
                return "must not be negative", None
            if self.min is not None and value < self.min:
                return f"must be at least {self.min:g}", None
            if self.max is not None and value > self.max:
                return f"must be at most {self.max:g}", None
        if self.choices and value not in self.choices:
            what = "dtype" if self.name.endswith("dtype") else "value"
            return f"{unknown(what, value, self.choices)} (choose from {', '.join(map(str, self.choices))})", None
        return None, value

    def check(self, value, flag: str = "--set"):
        """The value as the model reads it, or a SpecError starting with `FLAG NAME=VALUE:`."""
        problem, out = self.problem(value)
        if problem is None:
            return out
        text = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
        text = text if len(text) <= 40 else shown(text, 40)
        about = f"; {self.name}: {self.help}" if self.help else ""
        raise SpecError(f"{flag} {self.name}={text}: {problem}{about}")


def declare(raw: dict, node=None) -> dict:
    """name -> Param from a validated `params:` mapping (plain defaults or ParamSpec declarations).

    `node` is the YAML `params` node, for the line of a declaration whose default breaks its own rules.
    """
    out = {}
    for name, entry in raw.items():
        where = node.loc(name, f"params.{name}") if node is not None and hasattr(node, "loc") else \
            Location(path=f"params.{name}")
        if not hasattr(entry, "default"):  # a plain default: today's form
            if isinstance(entry, bool):
                kind = "bool"
            elif isinstance(entry, str):
                kind = "str"
            else:
                kind = "number"
            param = Param(name, entry, kind)
        else:
            kind = entry.type or ("bool" if isinstance(entry.default, bool) else
                                  "str" if isinstance(entry.default, str) else
                                  "int" if isinstance(entry.default, int) else "float")
            if entry.min is not None and entry.max is not None and entry.min > entry.max:
                raise SpecError(f"min {entry.min:g} is above max {entry.max:g}", where)
            if kind in ("bool", "str") and (entry.min is not None or entry.max is not None):
                raise SpecError(f"a {kind} parameter takes no min or max", where)
            choices = tuple(entry.choices) if entry.choices is not None else None
            if choices is not None and not choices:
                raise SpecError("choices must not be empty", where)
            param = Param(name, entry.default, kind, entry.min, entry.max, choices, entry.help)
        problem, default = param.problem(param.default)
        if problem is not None:
            raise SpecError(f"default {shown(param.default)}: {problem}", where)
        if param.choices:
            for c in param.choices:
                if param.problem(c)[0] is not None:
                    raise SpecError(f"choice {shown(c)}: {param.problem(c)[0]}", where)
        out[name] = Param(name, default, param.type, param.min, param.max, param.choices, param.help)
    return out


def declared_params(model: str) -> dict:
    """name -> Param of a built-in model id or model file, without building the model."""
    from .library import resolve
    from .loader import load_yaml
    from .schema import ModelFile, validate
    path = resolve("models", model)
    root = load_yaml(path)
    return declare(validate(ModelFile, root, str(path)).params, root.get("params"))


def workload_options() -> dict:
    """name -> Param of the workload options every model takes without declaring them: quantisation
    (quantisation.OPTIONS) and memory saving (memory_saving.OPTIONS)."""
    from .memory_saving import OPTIONS as saving
    from .quantisation import OPTIONS as precision
    return precision | saving
