"""Where the server may send requests that a user chose the destination of (webhooks).

A supervisor types a webhook URL; without a guard that is a request from inside the bank's network
to anywhere: loopback services, the cloud metadata address (169.254.169.254), databases on private
addresses. ``EgressPolicy`` refuses every destination that is not a public unicast address, after
DNS resolution (a public name can point inside), unless the ``webhook_allowed_destinations``
setting names it (an internal receiver the bank runs on purpose). The caller then connects to the
very address that was checked (``Destination.url``), so a second DNS answer cannot swap it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefused(Exception):
    """The destination is not allowed; the message is ours, fit to show a supervisor."""


class Unresolved(DestinationRefused):
    """The host name has no address (at the moment)."""


def parse_allowlist(entries: Iterable[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """Split entries into host names and networks (``10.1.2.3``, ``10.0.0.0/8``, ``fd00::/8``)."""
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            if any(c.isspace() or c in "/:@" for c in entry):
                raise ValueError(f"not a host name, address or network: {raw!r}") from None
            names.add(entry.rstrip("."))
    return frozenset(names), tuple(networks)


# IPv6 forms that carry an IPv4 destination: a NAT64 gateway (RFC 6052's well-known prefix, which
# DNS64 synthesises for IPv4-only names) or a 6to4 relay forwards to the embedded address, and the
# deprecated IPv4-compatible form is the address itself; mapped (::ffff:a.b.c.d) likewise.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# RFC 8215's local-use translation prefix: not globally reachable by definition (IANA).
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):  # not :: or ::1
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return _kind(embedded)
        if address in _NAT64_LOCAL_USE:
            return "a local-use translation address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a reserved address"
    return None


async def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Unresolved("the host name does not resolve") from None
    # A scoped IPv6 answer (fe80::1%eth0) is link-local whatever its scope.
    found = (ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    addresses = list(dict.fromkeys(found))
    if not addresses:
        raise Unresolved("the host name does not resolve")
    return addresses


@dataclass(frozen=True, slots=True)
class Destination:
    """Where to connect: the URL with the checked address in place of the name, the Host header
    and TLS server name the original URL asks for."""

    url: str
    host_header: str
    server_name: str


@dataclass(frozen=True)
class EgressPolicy:
    allowed_names: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> EgressPolicy:
        names, networks = parse_allowlist(entries)
        return cls(names, networks)

    def _allowed(self, address: IPAddress) -> bool:
        embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        return any(address in n or (embedded is not None and embedded in n) for n in self.allowed_networks)

    async def check(self, url: str) -> None:
        """Refuse ``url`` now if it is or resolves to a refused address. A name that does not
        resolve (yet) passes: it reaches nothing, and every send resolves and checks again."""
        with contextlib.suppress(Unresolved):
            await self.resolve(url)

    async def resolve(self, url: str) -> Destination:
        """Resolve ``url``'s host and check every address; raise ``DestinationRefused`` otherwise."""
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise DestinationRefused("the URL has no host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = await _addresses(host, port)
        if host.lower() not in self.allowed_names:
            for address in addresses:
                why = _kind(address)
                if why is not None and not self._allowed(address):
                    # Every address must pass: a name with one public and one private record
                    # would otherwise be a coin toss away from the inside.
                    raise DestinationRefused(
                        f"the host resolves to {why}; list it in webhook_allowed_destinations to allow it"
                    )
        chosen = addresses[0]
        literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        host_header = parts.netloc.rsplit("@", 1)[-1]
        return Destination(url=pinned, host_header=host_header, server_name=host)
