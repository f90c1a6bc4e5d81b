"""nftables set elements the firewall renders again at every sync, made cheap:
a memo of the last renders, and address lists merged into the fewest prefixes
(as ``ipaddress.collapse_addresses``) with integers rather than objects."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from onestack.host.nft import Json


class Memo:
    """What the last two renders computed, by key: a port that did not change costs a
    look-up at the next sync, whatever the number of ports (an LRU cache smaller than
    the cloud would miss every time), and what is no longer asked for goes."""

    def __init__(self) -> None:
        self.current: dict[object, object] = {}
        self.previous: dict[object, object] = {}

    def turn(self) -> None:
        """A new render begins: what the one before last used, and this one does not, goes."""
        self.previous, self.current = self.current, {}

    def get(self, key: object) -> object | None:
        found = self.current.get(key)
        if found is None:
            found = self.previous.get(key)
            if found is not None:
                self.current[key] = found
        return found

    def put(self, key: object, value: object) -> None:
        self.current[key] = value


_addresses = Memo()  # address text -> (version, integer, normalized text) or False


def turn() -> None:
    """A new render begins (see ``Memo.turn``)."""
    _addresses.turn()


def split_addresses(addresses: Iterable[str]) -> tuple[list[Json | str], list[Json | str]]:
    """IPv4 and IPv6 elements of an interval set: merged, no overlaps (nft refuses them).
    The same as ``ipaddress.collapse_addresses``; plain addresses (the usual members:
    fixed IPs) are merged as integers, 30 times cheaper for a group of 10,000."""
    addresses = list(addresses)
    hosts: list[tuple[int, int, str]] = []
    for text in addresses:
        found = _addresses.get(text)
        if found is None:
            found = _host(text)
            _addresses.put(text, found)
        if found is False:
            return _split_networks(addresses)
        hosts.append(found)  # type: ignore[arg-type]
    out: tuple[list[Json | str], list[Json | str]] = ([], [])
    for version, side in ((4, out[0]), (6, out[1])):
        texts = {number: text for v, number, text in hosts if v == version}
        side.extend(_ranges(version, sorted(texts), texts))
    return out


def _host(text: str) -> tuple[int, int, str] | bool:
    """(version, integer, normalized text) of a plain address; False otherwise."""
    if "/" in text:
        return False
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return address.version, int(address), str(address)


def _ranges(version: int, numbers: list[int], texts: Mapping[int, str]) -> Iterable[Json | str]:
    """Sorted distinct addresses as the fewest aligned prefixes covering exactly them."""
    bits = 32 if version == 4 else 128
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        low, high = numbers[i], numbers[j]
        while low <= high:
            size = (low & -low) if low else 1 << bits
            while size > high - low + 1:
                size >>= 1
            if size == 1:
                yield texts[low]
            else:
                yield {"prefix": {"addr": str(make(low)), "len": bits - size.bit_length() + 1}}
            low += size
        i = j + 1


def _split_networks(addresses: Iterable[str]) -> tuple[list[Json | str], list[Json | str]]:
    nets4: list[ipaddress.IPv4Network] = []
    nets6: list[ipaddress.IPv6Network] = []
    for text in addresses:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        if isinstance(net, ipaddress.IPv4Network):
            nets4.append(net)
        else:
            nets6.append(net)
    return ([element(n) for n in ipaddress.collapse_addresses(nets4)],
            [element(n) for n in ipaddress.collapse_addresses(nets6)])


def element(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Json | str:
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}
