"""Config files checked by a schema (pydantic), with the problem said in one line.

A config file the suite reads (the pipeline's study TOML, an online site's study.json) is
described by pydantic models built on ``STRICT``: an unknown key is an error, a value must
already have its type (true is not a number, 2.5 is not a whole number, 5 is not text).
``problem`` turns pydantic's report into the suite's one ``error:`` line naming the file,
the key and what is expected (docs/commands.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import ConfigDict, Field, StrictStr, ValidationError

#: Model config of every schema: unknown keys refused, no conversion between types.
STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)

#: A list of text (a TOML/JSON array of strings), held as a tuple.
TextList = Annotated[tuple[StrictStr, ...], Field(strict=False)]

_WANTED = {
    "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "text in quotes", "tuple_type": 'a list of text in quotes, e.g. ["a", "b"]',
    "list_type": 'a list of text in quotes, e.g. ["a", "b"]',
}
_BOUNDS = {"greater_than_equal": ("≥", "ge"), "greater_than": (">", "gt"),
           "less_than_equal": ("≤", "le"), "less_than": ("<", "lt")}


def kind(value: object, table: str = "a table") -> str:
    """What a parsed TOML/JSON value is, in the words the messages use."""
    if isinstance(value, bool):
        return "true/false"
    return {int: "a whole number", float: "a number", str: "text", list: "a list",
            dict: table}.get(type(value), type(value).__name__)


def problem(err: ValidationError, where: str, section: Sequence[str | int] = (),
            table: str = "a table") -> str:
    """One line for the first problem pydantic found: ``where: KEY must be …, got …``.

    ``where`` names the file (and section); ``section`` is the part of each error's
    location already said by ``where`` and left out of the key. Unknown keys of one place
    are named together with the known ones.
    """
    errors = err.errors()
    first = errors[0]
    loc = tuple(first["loc"])[len(section):]
    value = first.get("input")
    if first["type"] == "extra_forbidden":
        parent = tuple(first["loc"])[:-1]
        unknown = sorted(str(e["loc"][-1]) for e in errors
                         if e["type"] == "extra_forbidden" and tuple(e["loc"])[:-1] == parent)
        inside = ".".join(str(p) for p in parent[len(section):])
        return f"{where}: unknown key(s) {unknown}" + (f" in {inside}" if inside else "")
    key = ".".join(str(p) for p in loc if not isinstance(p, int)) or "the file"
    if loc and isinstance(loc[-1], int):   # an element of a list
        return f"{where}: {key} must be a list of text in quotes; element {value!r} is not text"
    if first["type"] == "missing":
        return f"{where}: {key} is missing"
    if first["type"] in ("model_type", "dict_type", "dataclass_type"):
        return f"{where}: {key} must be {table}, got {value!r}"
    if first["type"] in _BOUNDS:
        sign, name = _BOUNDS[first["type"]]
        return f"{where}: {key} must be {sign} {first['ctx'][name]}, got {value!r}"
    if first["type"] == "literal_error":
        return f"{where}: {key} must be {first['ctx']['expected']}, got {value!r}"
    wanted = _WANTED.get(first["type"])
    if wanted is None:
        return f"{where}: {key}: {first['msg'].lower()}, got {value!r}"
    return f"{where}: {key} must be {wanted}, got {value!r} ({kind(value, table)})"
