"""Flip maps: the class transition of asymmetric noise, as the user gives it.

A flip map sends some classes to others, ``{3: 5, 5: 3, 9: 1}``; a selected row whose class is
not in the map keeps its label.  On disk it is either

* a JSON object, ``{"3": 5, "5": 3, "9": 1}`` (keys are class numbers written as strings, as
  JSON requires), or
* a CSV of ``from,to`` pairs, one a line: an optional header line ``from,to``; blank lines and
  lines starting with ``#`` are skipped.

The format is told by the content: a file starting with ``{`` (or ``[``) is read as JSON.
"""
from __future__ import annotations

import csv
import json

from .data import require_file
from .errors import InputError


def check_flip_map(mapping, n_classes: int, name: str = "flip_map") -> dict:
    """Validate a flip map against a class count.

    Parameters
    ----------
    mapping : dict of int to int
        ``{from_class: to_class}``; entries mapping a class to itself are allowed (they change
        nothing).
    n_classes : int
        C: every class must lie in 0..C-1.
    name : str
        The argument or file, for messages.

    Returns
    -------
    dict of int to int
        The same map with plain ``int`` keys and values.

    Raises
    ------
    InputError
        When the map is empty, holds a non-integer or out-of-range class, or changes no class.
    """
    if not isinstance(mapping, dict) or not mapping:
        raise InputError(f"{name}: the flip map is empty (expected pairs such as 3 -> 5)")
    out = {}
    for src, dst in mapping.items():
        out[_in_range(src, n_classes, name)] = _in_range(dst, n_classes, name)
    if all(src == dst for src, dst in out.items()):
        raise InputError(f"{name}: every class of the flip map maps to itself; it would change no label")
    return out


def _in_range(value, n_classes: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where}: class {value!r} is not an integer")
    if not 0 <= value < n_classes:
        raise InputError(f"{where}: class {value} out of range for {n_classes} classes "
                         f"(classes are 0..{n_classes - 1})")
    return int(value)


def _class(text: str, where: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise InputError(f"{where}: {text.strip()!r} is not a class number") from None


def _add(pairs: dict, src: int, dst: int, where: str) -> None:
    if src in pairs:
        raise InputError(f"{where}: class {src} is mapped twice ({pairs[src]} and {dst})")
    pairs[src] = dst


def _parse_json(text: str, name: str) -> dict:
    def pairs_hook(items):
        pairs = {}
        for key, value in items:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"{name}: the target of class {key!r} is {value!r}, not a class number")
            _add(pairs, _class(key, name), value, name)
        return pairs

    try:
        data = json.loads(text, object_pairs_hook=pairs_hook)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise InputError(f"{name}: expected a JSON object such as {{\"3\": 5}}, got a {type(data).__name__}")
    return data


def _parse_csv(text: str, name: str, n_classes: int) -> dict:
    pairs = {}
    for lineno, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        where = f"{name} line {lineno}"
        if len(row) != 2:
            raise InputError(f"{where}: expected two fields from,to, got {len(row)}")
        if not pairs and [f.strip().lower() for f in row] == ["from", "to"]:
            continue                                   # the optional header
        _add(pairs, *(_in_range(_class(f, where), n_classes, where) for f in row), where)
    return pairs


def read_flip_map(path, n_classes: int) -> dict:
    """Read and validate a flip map file (JSON object or ``from,to`` CSV, see the module doc).

    Parameters
    ----------
    path : str or Path
    n_classes : int
        C: every class must lie in 0..C-1.

    Returns
    -------
    dict of int to int
        ``{from_class: to_class}``.

    Raises
    ------
    InputError
        One line naming the file (``--flip-map NAME``): missing or empty file, not text, bad
        JSON or CSV, a class mapped twice, a class out of range, or a map that changes nothing.
    """
    path = require_file(path, "--flip-map", "a flip map (JSON or CSV)")
    name = f"--flip-map {path.name}"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{name}: not a text file (expected a JSON object or from,to lines)") from None
    start = text.lstrip()[:1]
    pairs = _parse_json(text, name) if start in ("{", "[") else _parse_csv(text, name, n_classes)
    return check_flip_map(pairs, n_classes, name)
