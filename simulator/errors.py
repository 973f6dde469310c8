"""Errors that carry where in the user's input they come from.

Every problem with user input (YAML files, --set values, ids) is a `SpecError`; the CLI prints its one-line
form and exits with status 2. Anything else escaping is a bug in the simulator, not the user's fault.
"""
from __future__ import annotations

import difflib
import reprlib
from dataclasses import dataclass

SHOWN_CHARS = 80  # the most characters of a user's value an error message repeats


@dataclass
class Location:
    file: str | None = None
    line: int | None = None
    path: str | None = None  # YAML path of the field, e.g. "stages[1].ops[4].kernel"

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.path:
            parts.append(self.path)
        return ": ".join(parts)


class SpecError(Exception):
    """Bad user input, reported as `file:line: field: message`."""

    def __init__(self, message: str, location: Location | None = None):
        super().__init__(message)
        self.message = message
        self.location = location or Location()

    def __str__(self) -> str:
        where = str(self.location)
        text = f"{where}: {self.message}" if where else self.message
        return " ".join(text.splitlines())  # always one line, whatever a message repeats


def closest(name: str, choices) -> str:
    """' (did you mean X?)' for the closest valid name, or '' when nothing is close."""
    if len(str(name)) > SHOWN_CHARS:  # nothing valid is that long; don't spend time comparing
        return ""
    match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown(what: str, name: str, choices) -> str:
    text = f"'{name}'" if isinstance(name, str) and len(name) <= SHOWN_CHARS else shown(name)
    return f"unknown {what} {text}{closest(name, choices)}"


class _Repr(reprlib.Repr):
    def repr1(self, x, level):  # the loader's Node / NodeList are dicts and lists: summarise them as such
        if isinstance(x, list) and type(x) is not list:
            return self.repr_list(x, level)
        if isinstance(x, dict) and type(x) is not dict:
            return self.repr_dict(x, level)
        return super().repr1(x, level)


_REPR = _Repr()
_REPR.maxstring = _REPR.maxother = SHOWN_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3


def shown(value, limit: int = SHOWN_CHARS) -> str:
    """A user's value as an error message repeats it: its repr, clipped to about `limit` characters.

    A long text keeps its start and says how long it was (`'abc...' (800,000 characters)`); containers are
    summarised without being walked in full, so a value expanded by YAML aliases costs nothing to show.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit - 20]!r}... ({len(value):,} characters)"
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def name_of(text) -> str:
    """A name the user typed, as a message repeats it: as is when short, else clipped like `shown`."""
    text = str(text)
    return text if len(text) <= SHOWN_CHARS else shown(text)
