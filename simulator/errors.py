"""Errors that carry where in the user's input they come from.

Every problem with user input (YAML files, --set values, ids) is a `SpecError`; the CLI prints its one-line
form and exits with status 2. Anything else escaping is a bug in the simulator, not the user's fault.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass


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
        return f"{where}: {self.message}" if where else self.message


def closest(name: str, choices) -> str:
    """' (did you mean X?)' for the closest valid name, or '' when nothing is close."""
    match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown(what: str, name: str, choices) -> str:
    return f"unknown {what} '{name}'{closest(name, choices)}"
