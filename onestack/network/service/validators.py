"""Attribute validators and converters with neutron-lib's rules and messages.

A validator takes a value and returns ``None`` when it is valid or the reason
it is not (the API wraps it: "Invalid input for <attr>. Reason: <reason>.").
A converter returns the converted value or raises ``InvalidInput``.
Addresses are handled with the standard library's ``ipaddress``.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from onestack.network.service.errors import InvalidInput

Validator = Callable[[Any], "str | None"]

TRUE_STRINGS = ("1", "t", "true", "on", "y", "yes")
FALSE_STRINGS = ("0", "f", "false", "off", "n", "no")
INVALID_MACS = ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_MAC_GROUPS = re.compile(r"^[0-9a-fA-F]{1,2}([:-])(?:[0-9a-fA-F]{1,2}\1){4}[0-9a-fA-F]{1,2}$")
_MAC_PLAIN = re.compile(r"^[0-9a-fA-F]{12}$")
_MAC_DOTTED = re.compile(r"^[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}$")


def _q(value: Any) -> str:
    """How Python's ``%s`` renders a value (as neutron-lib's messages do)."""
    return str(value)


# --- converters ----------------------------------------------------------------------


def to_bool(value: Any) -> bool:
    """oslo's ``bool_from_string(strict=True)``; anything else is InvalidInput."""
    if isinstance(value, bool):
        return value
    text = value if isinstance(value, str) else str(value)
    low = text.strip().lower()
    if low in TRUE_STRINGS:
        return True
    if low in FALSE_STRINGS:
        return False
    raise InvalidInput(f"'{_q(value)}' cannot be converted to boolean")


def to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value)
    except (ValueError, TypeError):
        raise InvalidInput(f"'{_q(value)}' is not an integer") from None


def to_int_or_none(value: Any) -> int | None:
    return None if value is None else to_int(value)


def none_to_empty_list(value: Any) -> Any:
    return [] if value is None else value


def none_to_empty_dict(value: Any) -> Any:
    return {} if value is None else value


def canonical_ip(value: Any) -> Any:
    """IPv6 addresses in compressed lower-case form; anything else unchanged."""
    if isinstance(value, str) and ":" in value:
        try:
            return str(ipaddress.IPv6Address(value))
        except ValueError:
            return value
    return value


def canonical_cidr(value: Any) -> str:
    """``addr/len`` with the address canonical (host bits kept, as Neutron keeps them)."""
    message = f"{_q(value)} is not in a CIDR format"
    if not isinstance(value, str):
        raise InvalidInput(message)
    try:
        iface = ipaddress.ip_interface(value.strip())
    except ValueError:
        raise InvalidInput(message) from None
    return f"{iface.ip}/{iface.network.prefixlen}"


def canonical_pools(value: Any) -> Any:
    if value is None:
        return []
    try:
        return [{k: canonical_ip(v) for k, v in pool.items()} for pool in value]
    except (AttributeError, TypeError):
        raise InvalidInput("Invalid data format for allocation pools") from None


def sanitized_mac(value: Any) -> Any:
    """``fa:16:3e:00:00:01`` form for anything ``validate_mac`` accepts."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if _MAC_GROUPS.match(text):
        parts = re.split(r"[:-]", text)
        return ":".join(p.zfill(2) for p in parts).lower()
    if _MAC_PLAIN.match(text):
        return ":".join(text[i : i + 2] for i in range(0, 12, 2)).lower()
    if _MAC_DOTTED.match(text):
        plain = text.replace(".", "")
        return ":".join(plain[i : i + 2] for i in range(0, 12, 2)).lower()
    return value


def lower_string(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"Input value {_q(value)} must be string type")
    return value.lower()


def kvp_list_to_dict(values: Sequence[str]) -> dict[str, list[str]]:
    """``["ip_address=1.2.3.4", "subnet_id=x"]`` -> ``{"ip_address": [...], ...}``."""
    if list(values) == ["True"]:
        return {}
    out: dict[str, set[str]] = {}
    for item in values:
        key, sep, val = (x.strip() for x in item.partition("="))
        if not sep or not key:
            raise InvalidInput(f"'{item}' is not of the form <key>=[value]")
        out.setdefault(key, set()).add(val)
    return {k: sorted(v) for k, v in out.items()}


# --- validators ------------------------------------------------------------------------


def _printable(char: str) -> bool:
    category = unicodedata.category(char)
    return not category.startswith("C") and (not category.startswith("Z") or category == "Zs")


def string(max_len: int | None = None) -> Validator:
    def check(data: Any) -> str | None:
        if not isinstance(data, str):
            return f"'{_q(data)}' is not a valid string"
        if max_len is not None and len(data) > max_len:
            return f"'{data}' exceeds maximum length of {max_len}"
        return None

    return check


def string_or_none(max_len: int | None = None) -> Validator:
    inner = string(max_len)
    return lambda data: None if data is None else inner(data)


def name_string(max_len: int | None = None) -> Validator:
    """A string of printable characters, no leading or trailing space."""
    inner = string(max_len)

    def check(data: Any) -> str | None:
        msg = inner(data)
        if msg:
            return msg
        text: str = data
        ok = all(_printable(c) for c in text) and not (
            text and (unicodedata.category(text[0]) == "Zs" or unicodedata.category(text[-1]) == "Zs")
        )
        return None if ok else f"'{text}' is not a valid string"

    return check


def not_empty_name_string(data: Any) -> str | None:
    msg = string()(data)
    if msg:
        return msg
    if not data.strip():
        return f"'{data}' Blank strings are not permitted"
    return name_string()(data)


def values(valid: Iterable[Any]) -> Validator:
    allowed = list(valid)

    def check(data: Any) -> str | None:
        try:
            ok = data in allowed
        except TypeError:
            ok = False
        return None if ok else f"{_q(data)} is not in valid_values"

    return check


def uuid(data: Any) -> str | None:
    if isinstance(data, str) and UUID_RE.match(data):
        return None
    return f"'{_q(data)}' is not a valid UUID"


def uuid_or_none(data: Any) -> str | None:
    return None if data is None else uuid(data)


def uuid_list(data: Any) -> str | None:
    return _unique_list_of(uuid, data)


def boolean(data: Any) -> str | None:
    try:
        to_bool(data)
    except InvalidInput:
        return f"'{_q(data)}' is not a valid boolean value"
    return None


def non_negative(data: Any) -> str | None:
    try:
        number = int(data)
    except (ValueError, TypeError):
        return f"'{_q(data)}' is not an integer"
    if number < 0:
        return f"'{_q(data)}' should be non-negative"
    return None


def int_range(low: int | None, high: int | None) -> Validator:
    def check(data: Any) -> str | None:
        try:
            number = int(data)
        except (ValueError, TypeError):
            return f"'{_q(data)}' is not an integer"
        if low is not None and number < low:
            return f"'{number}' is too small - must be at least '{low}'"
        if high is not None and number > high:
            return f"'{number}' is too large - must be no larger than '{high}'"
        return None

    return check


def int_range_or_none(low: int | None, high: int | None) -> Validator:
    inner = int_range(low, high)
    return lambda data: None if data is None else inner(data)


def mac_address(data: Any) -> str | None:
    if isinstance(data, str) and not re.search(r"\s", data):
        if _MAC_GROUPS.match(data) or _MAC_PLAIN.match(data) or _MAC_DOTTED.match(data):
            if sanitized_mac(data) not in INVALID_MACS:
                return None
    return f"'{_q(data)}' is not a valid MAC address"


def ip_address(data: Any) -> str | None:
    if not isinstance(data, str) or re.search(r"\s", data):
        return f"'{_q(data)}' is not a valid IP address"
    if ":" not in data:
        parts = data.split(".")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            return f"'{data}' is not a valid IP address"
        if any(int(p) > 255 for p in parts):
            return f"'{data}' is not a valid IP address"
        canonical = ".".join(str(int(p)) for p in parts)
        if canonical != data:
            return f"'{data}' is not an accepted IP address, '{canonical}' is recommended"
        return None
    try:
        ipaddress.IPv6Address(data)
    except ValueError:
        return f"'{data}' is not a valid IP address"
    return None


def ip_address_or_none(data: Any) -> str | None:
    return None if data is None else ip_address(data)


def subnet(data: Any) -> str | None:
    """A CIDR (host bits allowed, as neutron-lib allows them)."""
    if isinstance(data, str) and "/" in data and not re.search(r"\s", data):
        addr, _, length = data.partition("/")
        if ip_address(addr) is None and length.isdigit():
            try:
                ipaddress.ip_interface(data)
                return None
            except ValueError:
                pass
    return f"'{_q(data)}' is not a valid IP subnet"


def subnet_or_none(data: Any) -> str | None:
    return None if data is None else subnet(data)


def route_cidr(data: Any) -> str | None:
    """A CIDR without host bits, and not loopback (host and router routes)."""
    if isinstance(data, str) and "/" in data and not re.search(r"\s", data):
        try:
            net = ipaddress.ip_network(data, strict=True)
        except ValueError:
            return f"'{data}' is not a valid CIDR"
        if net.is_loopback:
            return f"'{data}' is not a routable CIDR"
        return None
    return f"'{_q(data)}' is not a valid CIDR"


def ip_or_subnet_or_none(data: Any) -> str | None:
    if data is None or ip_address(data) is None or subnet(data) is None:
        return None
    return f"'{_q(data)}' is neither a valid IP address, nor is it a valid IP subnet"


def _duplicates(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    dups: list[Any] = []
    for item in items:
        if item in seen:
            if item not in dups:
                dups.append(item)
        else:
            seen.append(item)
    return dups


def _unique_list_of(item: Validator, data: Any) -> str | None:
    """A list without duplicates whose every item passes ``item`` (Neutron's
    ``_validate_list_of_items``): the first problem's message, or None."""
    if not isinstance(data, list):
        return f"'{_q(data)}' is not a list"
    dups = _duplicates(data)
    if dups:
        return "Duplicate items in the list: '{}'".format(", ".join(str(d) for d in dups))
    for entry in data:
        msg = item(entry)
        if msg:
            return msg
    return None


def subnet_list(data: Any) -> str | None:
    return _unique_list_of(subnet, data)


def dict_keys(expected: Iterable[str], target: Any, strict: bool = True) -> str | None:
    keys = set(expected)
    if not isinstance(target, dict):
        return f"Invalid input. '{_q(target)}' must be a dictionary with keys: {sorted(keys)}"
    provided = set(target)
    ok = keys == provided if strict else keys <= provided
    if not ok:
        return (
            f"Validation of dictionary's keys failed. Expected keys: {keys} "
            f"Provided keys: {provided}"
        )
    return None


def ip_pools(data: Any) -> str | None:
    if not isinstance(data, list):
        return f"Invalid data format for IP pool: '{_q(data)}'"
    for pool in data:
        msg = dict_keys(("start", "end"), pool)
        if msg:
            return msg
        for key in ("start", "end"):
            msg = ip_address(pool[key])
            if msg:
                return msg
    return None


def fixed_ips(data: Any) -> str | None:
    if not isinstance(data, list):
        return f"Invalid data format for fixed IP: '{_q(data)}'"
    seen: list[Any] = []
    for item in data:
        if not isinstance(item, dict):
            return f"Invalid data format for fixed IP: '{_q(item)}'"
        if "ip_address" in item:
            address = item["ip_address"]
            if address in seen:
                return f"Duplicate IP address '{address}'"
            msg = ip_address(address)
            if msg:
                return msg
            seen.append(address)
        if "subnet_id" in item:
            msg = uuid(item["subnet_id"])
            if msg:
                return msg
    return None


def nameservers(data: Any) -> str | None:
    if not isinstance(data, list | tuple):
        return f"Invalid data format for nameserver: '{_q(data)}'"
    hosts: list[Any] = []
    for host in data:
        msg = ip_address(host)
        if msg:
            return f"'{_q(host)}' is not a valid nameserver. {msg}"
        if host in hosts:
            return f"Duplicate nameserver '{host}'"
        hosts.append(host)
    return None


def hostroutes(data: Any) -> str | None:
    if not isinstance(data, list):
        return f"Invalid data format for hostroute: '{_q(data)}'"
    routes: list[Any] = []
    for route in data:
        msg = dict_keys(("destination", "nexthop"), route)
        if msg:
            return msg
        msg = route_cidr(route["destination"]) or ip_address(route["nexthop"])
        if msg:
            return msg
        if route in routes:
            return f"Duplicate hostroute '{route}'"
        routes.append(route)
    return None


def dict_spec(spec: Mapping[str, tuple[Validator | None, bool]], *, nodata: bool = False) -> Validator:
    """A dict whose keys are ``spec``'s: ``key -> (validator, required)``."""

    def check(data: Any) -> str | None:
        if nodata and not data:
            return None
        if not isinstance(data, dict):
            return f"'{_q(data)}' is not a dictionary"
        required = [k for k, (_v, req) in spec.items() if req]
        if required:
            msg = dict_keys(required, data, strict=False)
            if msg:
                return msg
        unexpected = [k for k in data if k not in spec]
        if unexpected:
            return "Unexpected keys supplied: {}".format(", ".join(unexpected))
        for key, (validator, _req) in spec.items():
            if key in data and validator is not None:
                msg = validator(data[key])
                if msg:
                    return msg
        return None

    return check


def list_of_dicts(spec: Mapping[str, tuple[Validator | None, bool]]) -> Validator:
    """A list of dicts each matching ``spec`` (``type:list_of_dict_or_nodata``)."""
    item = dict_spec(spec, nodata=True)

    def check(data: Any) -> str | None:
        if not data:
            return None
        return _unique_list_of(item, data)

    return check


def list_of_strings(max_len: int | None = None) -> Validator:
    inner = string(max_len)

    def check(data: Any) -> str | None:
        return _unique_list_of(inner, data)

    return check
