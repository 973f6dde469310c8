"""Safe YAML loading that remembers the line of every mapping key, so errors can point at the field.

Mappings load as `Node` (a dict) with the file name and the line of each key; sequences load as `NodeList`
(a list) with the line of each item. Everything else is plain Python data from yaml's safe constructors.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml

from .errors import Location, SpecError

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Node(dict):
    file: str | None = None
    line: int | None = None
    key_lines: dict

    def loc(self, key=None, path: str | None = None) -> Location:
        line = self.key_lines.get(key, self.line) if key is not None else self.line
        return Location(self.file, line, path)


class NodeList(list):
    file: str | None = None
    line: int | None = None
    item_lines: list

    def loc(self, index=None, path: str | None = None) -> Location:
        line = self.line
        if index is not None and 0 <= index < len(self.item_lines):
            line = self.item_lines[index]
        return Location(self.file, line, path)


class _LineLoader(_Base):
    filename: str | None = None


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Node:
    loader.flatten_mapping(node)
    result = Node()
    result.file = loader.filename
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise SpecError("mapping keys must be plain names",
                            Location(loader.filename, key_node.start_mark.line + 1))
        if key in result:
            raise SpecError(f"duplicate key '{key}'", Location(loader.filename, key_node.start_mark.line + 1))
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> NodeList:
    result = NodeList(loader.construct_object(child, deep=True) for child in node.value)
    result.file = loader.filename
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


# YAML 1.1 reads `312e12` (no dot) as a string; hardware numbers are written that way by people, so accept it.
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


# Aliases let a few lines of YAML stand for an exponentially large value ("billion laughs"). The loader shares
# the aliased objects, so loading is cheap, but anything that walks the value (validation, an error message)
# would expand it: a file whose values, aliases expanded, exceed this count is refused before anything reads it.
MAX_YAML_VALUES = 1_000_000


def read_text(path: str, what: str = "file") -> str:
    """A text file as UTF-8; unreadable files and bytes that are not UTF-8 are SpecErrors with the line."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read {what}: {exc.strerror or exc}", Location(path)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SpecError(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot be decoded", Location(path, line)) \
            from None


def expanded_size(data, limit: int = MAX_YAML_VALUES) -> int:
    """How many values `data` holds with every alias expanded (shared objects counted once per use), stopping
    early once past `limit`. Memoised by object, so a bomb costs time linear in its text."""
    sizes: dict = {}
    # iterative post-order walk: deep nesting must not exhaust Python's stack
    stack = [(data, False)]
    while stack:
        obj, done = stack.pop()
        if not isinstance(obj, (dict, list)) or (id(obj) in sizes and not done):
            continue
        children = list(obj.values()) if isinstance(obj, dict) else obj
        if done:
            total = 1 + sum(sizes.get(id(c), 1) if isinstance(c, (dict, list)) else 1 for c in children)
            sizes[id(obj)] = min(total, limit + 1)
            continue
        stack.append((obj, True))
        stack.extend((c, False) for c in children if isinstance(c, (dict, list)) and id(c) not in sizes)
    return sizes.get(id(data), 1)


def load_yaml(path: str | Path, text: str | None = None):
    """Parse a YAML file safely; syntax errors become a SpecError with the file and line.

    Every call returns its own copy, which the caller may change; the parse behind it is kept per (path,
    text), so an unchanged file is not parsed again (one analysis reads the model, device and stack files, and
    parsing them was a quarter of its time) and a changed one is."""
    path = str(path)
    if text is None:
        text = read_text(path)
    try:
        return _fresh(_parsed(path, text), {})
    except RecursionError:
        raise SpecError("malformed YAML: nested too deeply", Location(path)) from None


def _fresh(value, copies: dict):
    """`value` with every mapping and list (and set) copied, the scalars shared (they cannot change); a value
    reached twice (a YAML alias) is copied once and shared again, so an alias bomb stays as small as loaded."""
    if type(value) in _SCALARS:
        return value
    done = copies.get(id(value))
    if done is not None:
        return done
    if isinstance(value, Node):
        out = Node()
        out.file, out.line, out.key_lines = value.file, value.line, dict(value.key_lines)
        copies[id(value)] = out
        for k, v in value.items():
            out[k] = v if type(v) in _SCALARS else _fresh(v, copies)
    elif isinstance(value, NodeList):
        out = NodeList()
        out.file, out.line, out.item_lines = value.file, value.line, list(value.item_lines)
        copies[id(value)] = out
        out.extend(v if type(v) in _SCALARS else _fresh(v, copies) for v in value)
    elif isinstance(value, (list, tuple, set)):  # the plain lists of !!omap / !!pairs, their tuples, and !!set
        out = type(value)(_fresh(v, copies) for v in value)
        copies[id(value)] = out
    else:  # dates, timestamps, bytes: immutable
        return value
    return out


# What the safe loader builds that cannot change in place (shared, not copied, by `_fresh`)
_SCALARS = frozenset({str, int, float, bool, type(None)})


# Keyed by the text itself: an edited file is a new key. The built-in library is some 50 files; past 128 the
# parse used least recently is dropped (parsed again if read again)
@lru_cache(maxsize=128)
def _parsed(path: str, text: str):
    loader = _LineLoader(text)
    loader.filename = path
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"malformed YAML: {exc.problem or exc.context}", Location(path, line)) from None
    except yaml.reader.ReaderError as exc:  # e.g. a NUL byte: the reader knows the position, not the line
        line = text[:exc.position].count("\n") + 1 if isinstance(exc.position, int) else None
        char = ord(exc.character) if isinstance(exc.character, str) else exc.character
        what = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        raise SpecError(f"malformed YAML: unacceptable character {what} ({exc.reason})", Location(path, line)) \
            from None
    except yaml.YAMLError as exc:
        raise SpecError(f"malformed YAML: {' '.join(str(exc).split())}", Location(path)) from None
    except RecursionError:
        raise SpecError("malformed YAML: nested too deeply", Location(path)) from None
    finally:
        loader.dispose()
    if not isinstance(data, Node):
        raise SpecError("expected a mapping at the top level", Location(path, 1))
    if expanded_size(data) > MAX_YAML_VALUES:
        raise SpecError(f"YAML aliases expand to more than {MAX_YAML_VALUES:,} values; refusing the file "
                        "(an alias bomb?)", Location(path, 1))
    return data
