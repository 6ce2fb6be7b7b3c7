"""Typed JSON documents: dataclasses read from JSON with every field's type and range checked.

Records and baselines are dataclasses; `load(cls, data)` builds one from parsed JSON and
raises `SchemaError` naming the field path and the value when anything is missing, of the
wrong type, out of range or unknown. Ranges and patterns are declared beside each field
(`field(metadata=bounds(0, 1))`), so the definition and its validation are one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")
"""Identifiers that become file or folder names: no separators, no leading dot."""


class SchemaError(ValueError):
    """A JSON document does not match its declared shape; the message names the field."""


def bounds(
    low: float | None = None, high: float | None = None, *, above: float | None = None
) -> dict[str, Any]:
    """Field metadata: a number must lie in [low, high] (and be > `above`, when given)."""
    return {"bounds": (low, high, above)}


def safe_name() -> dict[str, Any]:
    """Field metadata: a string that is used as a file or folder name."""
    return {"pattern": SAFE_NAME}


def one_of(*choices: str) -> dict[str, Any]:
    """Field metadata: a string from a fixed set."""
    return {"choices": choices}


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _convert(hint: Any, value: Any, where: str, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None:
            if type(None) in options:
                return None
            raise SchemaError(f"{where}: missing value (null)")
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where, meta)
            except SchemaError as error:
                errors.append(str(error))
        raise SchemaError(
            errors[0] if len(errors) == 1 else f"{where}: {_describe(value)} fits none of {options}"
        )
    if dataclasses.is_dataclass(hint):
        return load(hint, value, where)  # type: ignore[arg-type]
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise SchemaError(f"{where}: expected a list, got {_describe(value)}")
        (item,) = typing.get_args(hint)[:1]
        return tuple(_convert(item, v, f"{where}[{i}]", {}) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected an object, got {_describe(value)}")
        key_hint, item = typing.get_args(hint)
        return {
            _convert(key_hint, k, f"{where} key", {}): _convert(item, v, f"{where}.{k}", meta)
            for k, v in value.items()
        }
    if hint is bool:
        if not isinstance(value, bool):
            raise SchemaError(f"{where}: expected true or false, got {_describe(value)}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError(f"{where}: expected a number, got {_describe(value)}")
        if hint is int and not (isinstance(value, int) or float(value).is_integer()):
            raise SchemaError(f"{where}: expected an integer, got {_describe(value)}")
        number = int(value) if hint is int else float(value)
        if not math.isfinite(number):
            raise SchemaError(f"{where}: expected a finite number, got {_describe(value)}")
        low, high, above = meta.get("bounds", (None, None, None))
        if (low is not None and number < low) or (high is not None and number > high):
            span = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
            raise SchemaError(f"{where}: {_describe(value)} is outside {span}")
        if above is not None and number <= above:
            raise SchemaError(f"{where}: {_describe(value)} must be greater than {above}")
        return number
    if hint is str:
        if not isinstance(value, str):
            raise SchemaError(f"{where}: expected a string, got {_describe(value)}")
        pattern = meta.get("pattern")
        if pattern is not None and not pattern.match(value):
            raise SchemaError(
                f"{where}: {_describe(value)} is not a safe name (letters, digits, '_.+-'; "
                "no path separators, no leading dot)"
            )
        choices = meta.get("choices")
        if choices and value not in choices:
            raise SchemaError(f"{where}: {_describe(value)} is not one of {', '.join(choices)}")
        return value
    raise TypeError(f"{where}: unsupported field type {hint!r}")  # a bug in a declaration


def load(cls: type[T], data: Any, where: str = "") -> T:
    """Build `cls` (a dataclass) from parsed JSON, checking every field; raise SchemaError."""
    label = where or cls.__name__
    if not isinstance(data, dict):
        raise SchemaError(f"{label}: expected an object, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SchemaError(f"{label}: unknown field(s) {unknown}; known: {sorted(fields)}")
    values = {}
    for name, spec in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in data:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise SchemaError(f"{path}: missing")
            continue
        values[name] = _convert(hints[name], data[name], path, spec.metadata)
    try:
        return cls(**values)
    except (ValueError, TypeError) as error:  # cross-field checks in __post_init__
        raise SchemaError(f"{label}: {error}") from None


def load_versioned(
    cls: type[T],
    document: Any,
    migrations: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]],
    regenerate: str,
) -> T:
    """Load a document whose `schema` and `version` fields must match `cls`'s defaults.

    Older versions are lifted one step at a time by `migrations` (version -> function); any
    other version is refused with `regenerate`, the command that writes a current one.
    """
    fields = {f.name: f.default for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    name, current = fields["schema"], fields["version"]
    if not isinstance(document, dict) or document.get("schema") != name:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise SchemaError(f"schema: expected {name!r}, got {found!r}")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int):  # `true` is not version 1
        raise SchemaError(f"version: expected an integer, got {version!r}; {regenerate}")
    while version in migrations:
        document = migrations[version](document)
        version = document["version"]
    if version != current:
        raise SchemaError(
            f"version: this harness reads versions up to {current} of {name}, got {version!r}; "
            f"{regenerate}"
        )
    return load(cls, document)


MAX_JSON_BYTES = 64 * 2**20
"""The largest JSON file the harness reads (a record with every layer's histogram is ~100 KB)."""


def read_json(path: Path, error: type[Exception], what: str) -> Any:
    """Parse a JSON file; raise `error` naming the file when it cannot be taken as JSON.

    Every file the harness reads may be crafted: only a regular file (a named pipe would block
    for ever), at most `MAX_JSON_BYTES`, is read; integers of more digits than Python parses
    and nesting deeper than it recurses are refused like any other malformed JSON.
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: no such {what}")
    if not path.is_file():
        raise error(f"{path}: not a regular file, so not a {what}; move it away")
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            data = handle.read(MAX_JSON_BYTES + 1)
    except OSError as problem:
        raise error(f"{path}: not a readable JSON {what} ({problem})") from None
    if max(size, len(data)) > MAX_JSON_BYTES:
        raise error(f"{path}: {max(size, len(data))} bytes, more than a {what} can hold "
                    f"({MAX_JSON_BYTES} at most); move it away")  # fmt: skip
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as problem:
        # ValueError: malformed JSON, or an integer of more digits than Python converts.
        raise error(f"{path}: not a readable JSON {what} ({problem})") from None


def dump(document: Any) -> Any:
    """Return a dataclass (or plain data) as JSON-ready data; NaN and infinities become null."""
    if dataclasses.is_dataclass(document) and not isinstance(document, type):
        fields = [f.name for f in dataclasses.fields(document)]
        names = sorted(fields, key=lambda name: name not in ("schema", "version"))  # these first
        return {name: dump(getattr(document, name)) for name in names}
    if isinstance(document, dict):
        return {key: dump(value) for key, value in document.items()}
    if isinstance(document, list | tuple):
        return [dump(value) for value in document]
    if isinstance(document, float) and not math.isfinite(document):
        return None
    return document


def added(version: int, what: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Return the migration to `version` of a file whose new fields are absent before it.

    Such a migration only sets the version: the loader's defaults stand for what was not
    recorded (`what` says what that is).
    """

    def migrate(document: dict[str, Any]) -> dict[str, Any]:
        return dict(document, version=version)

    migrate.__doc__ = f"Version {version - 1} -> {version}: {what}."
    return migrate
