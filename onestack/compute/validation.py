"""Request bodies checked against JSON schemas, with Nova's error messages.

Nova validates every body with jsonschema and answers a 400 ``Invalid input
for field/attribute <path>. Value: <value>. <reason>`` whose reason is
jsonschema's own sentence (``'x' is not of type 'integer'``, ``'name' is a
required property``, ``Additional properties are not allowed ('x' was
unexpected)``). This is the subset of JSON Schema Nova's schemas use -
``type``, ``properties``, ``required``, ``additionalProperties``,
``patternProperties``, ``minLength``/``maxLength``, ``pattern``,
``minimum``/``maximum``, ``enum``, ``items``, ``minItems``/``maxItems``,
``uniqueItems``, ``oneOf``/``anyOf``, ``minProperties``/``maxProperties``
and the formats ``uuid``, ``uri``, ``ipv4``, ``ipv6``, ``date-time`` -
checked in the order jsonschema reports them.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from onestack.common.errors import BadRequest

Schema = Mapping[str, Any]

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
_DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_PATTERNS: dict[str, re.Pattern[str]] = {}


class SchemaError(BadRequest):
    """A body that does not match its schema (Nova's ValidationError, 400)."""


def _printable(char: str) -> bool:
    category = unicodedata.category(char)
    return not category.startswith("C") and (not category.startswith("Z") or category == "Zs")


def _name_ok(value: str, *, leading_spaces: bool, colon: bool) -> bool:
    """Nova's ``name`` formats: printable characters, no surrounding whitespace
    (unless allowed), at least one non-space character; no ``:`` in a zone name."""
    if not colon and ":" in value:
        return False
    if not all(_printable(c) for c in value):
        return False
    if not value.strip():
        return not value
    if not leading_spaces and (value[0].isspace() or value[-1].isspace()):
        return False
    return True


# format -> (check, InvalidName reason) of Nova's name formats
_NAME_FORMATS = {
    "name": (dict(leading_spaces=False, colon=True),
             "printable characters. Can not start or end with whitespace."),
    "name_with_leading_trailing_spaces": (
        dict(leading_spaces=True, colon=True),
        "printable characters with at least one non space character"),
    "az_name": (dict(leading_spaces=False, colon=False),
                "printable characters except :.Can not start or end with whitespace."),
    "az_name_with_leading_trailing_spaces": (
        dict(leading_spaces=True, colon=False),
        "printable characters except :, with at least one non space character"),
}


def _pattern(text: str) -> re.Pattern[str]:
    compiled = _PATTERNS.get(text)
    if compiled is None:
        compiled = _PATTERNS[text] = re.compile(text)
    return compiled


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_type(value: Any, kind: str) -> bool:
    actual = _type_name(value)
    if kind == "number":
        return actual in ("integer", "number")
    if kind == "integer" and actual == "number":
        return float(value).is_integer()
    return actual == kind


def _repr(value: Any) -> str:
    """Python's repr, as jsonschema quotes values in its messages."""
    return repr(value)


class _Failure(Exception):
    def __init__(self, path: list[str | int], value: Any, reason: str,
                 whole: str | None = None) -> None:
        super().__init__(reason)
        self.path = path
        self.value = value
        self.reason = reason
        self.whole = whole  # a message that replaces the usual one (InvalidName)


def _fail(path: list[str | int], value: Any, reason: str) -> _Failure:
    return _Failure(list(path), value, reason)


def _check_format(fmt: str, value: Any) -> bool:
    if not isinstance(value, str):
        return True
    if fmt == "uuid":
        return bool(_UUID_RE.match(value))
    if fmt == "ipv4":
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            return False
        return True
    if fmt == "ipv6":
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            return False
        return True
    if fmt == "date-time":
        return bool(_DATETIME_RE.match(value))
    if fmt == "uri":
        return "://" in value
    if fmt == "base64":
        try:
            base64.b64decode(value.encode(), validate=False)
        except (binascii.Error, ValueError):
            return False
        return True
    if fmt == "regex":
        try:
            re.compile(value)
        except re.error:
            return False
        return bool(value)
    return True


def _validate(schema: Schema, value: Any, path: list[str | int]) -> None:
    kinds = schema.get("type")
    if kinds is not None:
        options = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is_type(value, k) for k in options):
            shown = _repr(options[0]) if len(options) == 1 else _repr(options)
            raise _fail(path, value, f"{_repr(value)} is not of type {shown}")
    for sub in schema.get("allOf", ()):
        _validate(sub, value, path)
    if "enum" in schema and not any(
        value == option and type(value) is type(option) or (
            isinstance(value, int | float) and not isinstance(value, bool)
            and isinstance(option, int | float) and not isinstance(option, bool)
            and value == option)
        for option in schema["enum"]
    ):
        raise _fail(path, value, f"{_repr(value)} is not one of {_repr(list(schema['enum']))}")
    if "oneOf" in schema or "anyOf" in schema:
        alternatives = schema.get("oneOf") or schema.get("anyOf") or []
        matched = 0
        failures: list[tuple[Schema, _Failure]] = []
        for alternative in alternatives:
            try:
                _validate(alternative, value, path)
            except _Failure as failure:
                failures.append((alternative, failure))
                continue
            matched += 1
        if matched > 1 and "oneOf" in schema:
            raise _fail(path, value, f"{_repr(value)} is valid under each of the given schemas")
        if matched == 0:
            # As jsonschema's best_match: the one alternative of the value's own
            # type says what is wrong with it.
            typed = [f for alt, f in failures if "type" not in alt or any(
                _is_type(value, k) for k in ([alt["type"]] if isinstance(alt["type"], str)
                                             else alt["type"]))]
            if len(typed) == 1:
                raise typed[0]
            raise _fail(path, value, f"{_repr(value)} is not valid under any of the given schemas")
    if isinstance(value, str):
        _validate_string(schema, value, path)
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int | float):
        _validate_number(schema, value, path)
    elif isinstance(value, list):
        _validate_array(schema, value, path)
    elif isinstance(value, dict):
        _validate_object(schema, value, path)


def _validate_string(schema: Schema, value: str, path: list[str | int]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        if schema["minLength"] == 1:
            raise _fail(path, value, f"{_repr(value)} should be non-empty")
        raise _fail(path, value, f"{_repr(value)} is too short")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise _fail(path, value, f"{_repr(value)} is too long")
    if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
        raise _fail(path, value, f"{_repr(value)} does not match {_repr(schema['pattern'])}")
    fmt = schema.get("format")
    if fmt in _NAME_FORMATS:
        options, reason = _NAME_FORMATS[fmt]
        if not _name_ok(value, **options):  # type: ignore[arg-type]
            raise _Failure(list(path), value, "", whole=(
                f"An invalid 'name' value was provided. The name must be: {reason}"))
    elif fmt is not None and not _check_format(fmt, value):
        raise _fail(path, value, f"{_repr(value)} is not a {_repr(fmt)}")
    # Nova compares numbers given as strings ("5") with minimum and maximum too.
    if ("minimum" in schema or "maximum" in schema) and value.isdigit():
        _validate_number(schema, int(value), path, shown=value)


def _validate_number(schema: Schema, value: float, path: list[str | int],
                     shown: Any = None) -> None:
    original = value if shown is None else shown
    if "minimum" in schema and value < schema["minimum"]:
        raise _fail(path, original,
                    f"{_repr(original)} is less than the minimum of {schema['minimum']}")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        raise _fail(path, original, f"{_repr(original)} is less than or equal to the minimum "
                    f"of {schema['exclusiveMinimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        raise _fail(path, original,
                    f"{_repr(original)} is greater than the maximum of {schema['maximum']}")


def _validate_array(schema: Schema, value: list[Any], path: list[str | int]) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        if schema["minItems"] == 1:
            raise _fail(path, value, f"{_repr(value)} should be non-empty")
        raise _fail(path, value, f"{_repr(value)} is too short")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        raise _fail(path, value, f"{_repr(value)} is too long")
    if schema.get("uniqueItems"):
        seen: list[Any] = []
        for item in value:
            if item in seen:
                raise _fail(path, value, f"{_repr(value)} has non-unique elements")
            seen.append(item)
    items = schema.get("items")
    if isinstance(items, Mapping):
        for index, item in enumerate(value):
            _validate(items, item, [*path, index])


def _validate_object(schema: Schema, value: dict[str, Any], path: list[str | int]) -> None:
    for name in schema.get("required", ()):
        if name not in value:
            raise _fail(path, value, f"{_repr(name)} is a required property")
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        raise _fail(path, value, f"{_repr(value)} does not have enough properties")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        raise _fail(path, value, f"{_repr(value)} has too many properties")
    properties: Mapping[str, Schema] = schema.get("properties", {})
    patterns: Mapping[str, Schema] = schema.get("patternProperties", {})
    additional = schema.get("additionalProperties", True)
    extra: list[str] = []
    for name, item in value.items():
        matched = False
        if name in properties:
            matched = True
            _validate(properties[name], item, [*path, name])
        for pattern, sub in patterns.items():
            if _pattern(pattern).search(name):
                matched = True
                _validate(sub, item, [*path, name])
        if not matched:
            if additional is False:
                extra.append(name)
            elif isinstance(additional, Mapping):
                _validate(additional, item, [*path, name])
    if extra:
        if patterns and not properties:
            shown = ", ".join(_repr(e) for e in sorted(extra))
            verb = "do" if len(extra) > 1 else "does"
            raise _fail(path, value, f"{shown} {verb} not match any of the regexes: "
                        + ", ".join(_repr(p) for p in sorted(patterns)))
        shown = ", ".join(_repr(e) for e in extra)
        verb = "were" if len(extra) > 1 else "was"
        raise _fail(path, value, f"Additional properties are not allowed ({shown} {verb} unexpected)")


def _path_text(path: list[str | int]) -> str:
    return "/".join(str(p) for p in path)


def validate(schema: Schema, body: Any) -> Any:
    """``body`` if it matches ``schema``; else Nova's 400 ``Invalid input ...``
    (the path is the last element only, the value as Python prints it)."""
    try:
        _validate(schema, body, [])
    except _Failure as failure:
        if failure.whole is not None:
            message = failure.whole
        elif failure.path:
            message = (f"Invalid input for field/attribute {failure.path[-1]}. "
                       f"Value: {_value_text(failure.value)}. {failure.reason}")
        else:
            message = failure.reason
        raise SchemaError(message) from None
    return body


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return "None"
    return str(value)


def validate_query(params: Any, properties: Mapping[str, Schema], *, additional: bool) -> None:
    """Nova's query schemas: each value of each parameter against its schema;
    an unknown parameter is a 400 when ``additional`` is False (2.75+)."""
    for name, value in params.multi_items():
        schema = properties.get(name)
        if schema is None:
            if not additional:
                raise SchemaError(
                    f"Invalid input for query parameters {name}. Value: {value}. "
                    f"Additional properties are not allowed ({_repr(name)} was unexpected)"
                )
            continue
        try:
            _validate(schema, value, [name])
        except _Failure as failure:
            if failure.whole is not None:
                raise SchemaError(failure.whole) from None
            raise SchemaError(
                f"Invalid input for query parameters {name}. "
                f"Value: {_value_text(failure.value)}. {failure.reason}"
            ) from None
