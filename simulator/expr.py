"""Shape expressions: a tiny arithmetic language, parsed (never eval-ed) and evaluated against named values.

Grammar (lowest to highest precedence):
    or  ·  and  ·  not  ·  == != < <= > >=  ·  + -  ·  * / // %  ·  unary -  ·  ** ·  atoms
Atoms are numbers, names, `f(args)` for f in FUNCTIONS, and parenthesised expressions. A name may denote a
tensor in scope, whose dimensions `dim(x, axis)` reads.
`a / b` stays an exact integer when b divides a, so dimensions written as `height / 8` remain integers.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache

from .errors import shown

# Bounds checked before any work, so no expression can make the simulator hang or print a huge value:
MAX_CHARS = 2000          # the longest expression (the built-in models' longest is under 100)
MAX_MAGNITUDE = 2 ** 63   # any number an expression reads or computes (dimensions are far below this)

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\d*\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+)"
    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
    r"|(?P<op>\*\*|//|==|!=|<=|>=|[-+*/%(),<>]))"
)


class ExprError(ValueError):
    """A malformed expression or an unknown name; the caller adds the file location."""


def _if(cond, a, b):
    return a if cond else b


def _ceil(x):
    return x if isinstance(x, int) else math.ceil(x)


def _floor(x):
    return x if isinstance(x, int) else math.floor(x)


def _log2(x):
    return math.log2(x)


def _dim(shape, axis):
    if not isinstance(shape, tuple):
        raise ExprError("dim() takes a tensor name and an axis, e.g. dim(x, 1)")
    if not isinstance(axis, int) or not -len(shape) <= axis < len(shape):
        raise ExprError(f"axis {axis} is out of range for a tensor of rank {len(shape)}")
    return shape[axis]


def _rank(shape):
    if not isinstance(shape, tuple):
        raise ExprError("rank() takes a tensor name")
    return len(shape)


FUNCTIONS = {"min": min, "max": max, "ceil": _ceil, "floor": _floor, "abs": abs, "if": _if,
             "log2": _log2, "round": round, "dim": _dim, "rank": _rank}
CONSTANTS = {"true": True, "false": False}


def _tokens(text: str):
    pos, out = 0, []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"unexpected character {text[pos:].strip()[:1]!r} in expression {shown(text)}")
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    out.append(("end", None))
    return out


class _Parser:
    _BINARY = {  # operator -> (precedence, right-associative)
        "or": (1, False), "and": (2, False),
        "==": (4, False), "!=": (4, False), "<": (4, False), "<=": (4, False), ">": (4, False), ">=": (4, False),
        "+": (5, False), "-": (5, False),
        "*": (6, False), "/": (6, False), "//": (6, False), "%": (6, False),
        "**": (8, True),
    }

    def __init__(self, text: str):
        if len(text) > MAX_CHARS:
            raise ExprError(f"expression of {len(text):,} characters is longer than the limit of {MAX_CHARS:,}: "
                            f"{shown(text)}")
        self.text = text
        self.shown = shown(text)
        self.toks = _tokens(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i]

    def take(self):
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, value):
        tok = self.take()
        if tok[1] != value:
            raise ExprError(f"expected '{value}' in expression {self.shown}")

    def parse(self):
        node = self.expr(0)
        if self.peek()[0] != "end":
            raise ExprError(f"unexpected '{self.peek()[1]}' in expression {self.shown}")
        return node

    def _binop(self, tok):
        if tok[0] == "op" or (tok[0] == "name" and tok[1] in ("and", "or")):
            return self._BINARY.get(tok[1])
        return None

    def expr(self, min_prec):
        left = self.unary()
        while True:
            tok = self.peek()
            info = self._binop(tok)
            if not info or info[0] < min_prec:
                return left
            prec, right_assoc = info
            self.take()
            right = self.expr(prec if right_assoc else prec + 1)
            left = ("bin", tok[1], left, right)

    def unary(self):
        tok = self.peek()
        if tok == ("op", "-"):
            self.take()
            return ("neg", self.expr(7))
        if tok == ("op", "+"):
            self.take()
            return self.expr(7)
        if tok == ("name", "not"):
            self.take()
            return ("not", self.expr(3))
        return self.atom()

    def atom(self):
        kind, value = self.take()
        if kind == "num":
            if any(c in value for c in ".eE"):
                return ("num", _checked(float(value)))
            if len(value) > 19:  # more digits than any number below MAX_MAGNITUDE
                raise ExprError(f"number {shown(value)} is too large (limit {MAX_MAGNITUDE:.3g})")
            return ("num", _checked(int(value)))
        if kind == "name":
            if self.peek() == ("op", "("):
                if value not in FUNCTIONS:
                    raise ExprError(f"unknown function '{value}' in expression {self.shown} "
                                    f"(functions: {', '.join(sorted(FUNCTIONS))})")
                self.take()
                args = []
                if self.peek() != ("op", ")"):
                    args.append(self.expr(0))
                    while self.peek() == ("op", ","):
                        self.take()
                        args.append(self.expr(0))
                self.expect(")")
                return ("call", value, tuple(args))
            if value in CONSTANTS:
                return ("num", CONSTANTS[value])
            return ("name", value)
        if (kind, value) == ("op", "("):
            node = self.expr(0)
            self.expect(")")
            return node
        raise ExprError(f"unexpected {'end' if kind == 'end' else repr(value)} in expression {self.shown}")


@lru_cache(maxsize=None)
def parse(text: str):
    return _Parser(text).parse()


def _div(a, b):
    if b == 0:
        raise ExprError("division by zero")
    if isinstance(a, int) and isinstance(b, int) and a % b == 0:
        return a // b
    return a / b


def _floordiv(a, b):
    if b == 0:
        raise ExprError("division by zero")
    return a // b


def _mod(a, b):
    if b == 0:
        raise ExprError("modulo by zero")
    return a % b


def _pow(a, b):
    """`a ** b`, refused before it is computed when the result would pass MAX_MAGNITUDE (`2 ** 99999999`
    would otherwise take minutes and gigabytes)."""
    if a != 0 and b > 0 and abs(a) != 1 and b * math.log2(abs(a)) > math.log2(MAX_MAGNITUDE):
        raise ExprError(f"{shown(a)} ** {shown(b)} is too large (limit {MAX_MAGNITUDE:.3g})")
    if a == 0 and b < 0:
        raise ExprError("division by zero (0 to a negative power)")
    result = a ** b
    if isinstance(result, complex):
        raise ExprError(f"{shown(a)} ** {shown(b)} is not a real number")
    return result


def _checked(value):
    """Numbers stay finite and below MAX_MAGNITUDE: a bound on every intermediate keeps each step cheap."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ExprError(f"the value {value} is not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise ExprError(f"the value {value:.6g} is too large (limit {MAX_MAGNITUDE:.3g})")
    return value


_OPS = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": _div, "//": _floordiv,
    "%": _mod, "**": _pow,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _eval(node, env, used):
    tag = node[0]
    if tag == "num":
        return node[1]
    if tag == "name":
        name = node[1]
        if name not in env:
            raise ExprError(f"unknown name '{name}'")
        if used is not None:
            used.add(name)
        return env[name]
    if tag == "bin":
        op = node[1]
        if op == "and":
            return _eval(node[2], env, used) and _eval(node[3], env, used)
        if op == "or":
            return _eval(node[2], env, used) or _eval(node[3], env, used)
        a, b = _eval(node[2], env, used), _eval(node[3], env, used)
        if isinstance(a, tuple) or isinstance(b, tuple):
            raise ExprError("a tensor is not a number: use dim(x, axis) for its dimensions")
        if isinstance(a, str) or isinstance(b, str):
            if op in ("==", "!="):
                return _OPS[op](a, b)
            raise ExprError(f"operator '{op}' does not apply to text values")
        return _checked(_OPS[op](a, b))
    if tag == "neg":
        value = _eval(node[1], env, used)
        if isinstance(value, (str, tuple)):
            raise ExprError("unary '-' applies to numbers only")
        return -value
    if tag == "not":
        return not _eval(node[1], env, used)
    if tag == "call":
        args = [_eval(a, env, used) for a in node[2]]
        if node[1] not in ("dim", "rank", "if") and any(isinstance(a, (str, tuple)) for a in args):
            raise ExprError(f"{node[1]}() takes numbers")
        try:
            return _checked(FUNCTIONS[node[1]](*args))
        except TypeError:
            raise ExprError(f"wrong number of arguments to {node[1]}()") from None
        except ExprError:
            raise
        except ValueError:
            raise ExprError(f"{node[1]}() of {', '.join(shown(a) for a in args)} is undefined") from None
    raise AssertionError(tag)


def evaluate(value, env: dict, used: set | None = None):
    """Evaluate a YAML value: numbers and booleans pass through, strings are parsed as expressions.

    `used`, when given, collects the names the expression read (to track what depends on an iteration).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return _checked(value)
    if not isinstance(value, str):
        raise ExprError(f"expected a number or an expression, got {type(value).__name__} {shown(value)}")
    if value in env and not isinstance(env[value], (int, float)):  # a bare text-valued name such as dtype
        if used is not None:
            used.add(value)
        return env[value]
    try:
        return _eval(parse(value), env, used)
    except RecursionError:
        raise ExprError(f"expression too deeply nested: {shown(value)}") from None
    except (OverflowError, ZeroDivisionError):
        raise ExprError(f"expression overflows: {shown(value)}") from None
