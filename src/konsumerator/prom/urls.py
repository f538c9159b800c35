"""Prometheus addresses: what may be shown of them, and which may be requested at all.

A Consumer's author chooses the URLs the operator requests, from the operator's pod,
with its network access. Two consequences, handled here:

* **What is shown.** Addresses appear in status conditions, Events and logs, which
  other people read. :func:`redact` keeps scheme, host, port and path, and hides
  credentials (``user:password@``) and the query string, which is where tokens hide.
* **What is requested.** With ``--prometheus-allowed-hosts`` the operator only talks
  to the hosts it lists (:class:`AddressPolicy`); a Consumer naming any other address
  gets no request at all. Without it every address is allowed, as in the Go operator:
  then a Consumer author can make the operator send requests (POST/GET of
  ``<address>/api/v1/query``) to anything its pod reaches.

Patterns, comma-separated or repeated, matched case-insensitively:

* ``host`` or ``host:port``, with shell wildcards in the host (``*`` matches any
  characters, dots included): ``*.monitoring.svc``, ``prometheus.example.com:443``.
  Without a port any port matches; the port of a URL without one is 80 or 443.
* a CIDR block or an IP address (``10.0.0.0/8``, ``fd00::/8``): matches URLs whose host
  is an IP address in it. Names are never resolved for this (the client resolves them
  again when it connects, and the answer may differ), so a name only matches a host
  pattern.

The check is made on the URL that is actually requested (``<address>/api/v1/query``,
parsed by the same HTTP library), so an address cannot look like one host to the policy
and like another to the client.
"""

import fnmatch
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx2

API_PATH = "/api/v1/query"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_*?")


class PatternError(ValueError):
    """A ``--prometheus-allowed-hosts`` pattern that means nothing."""


def redact(address: str) -> str:
    """``address`` as it may be shown: no credentials, no query string.

    ``http://user:secret@prom:9090/p?token=x`` → ``http://***@prom:9090/p?***``.
    Text that is not a URL at all is not shown (it may be a credential pasted into
    the wrong field).
    """
    scheme, sep, rest = address.partition("://")
    if not sep or not scheme.isalpha():
        return "<not a URL>"
    # The authority ends at the first "/", "?" or "#", as URL parsers (and httpx) read it.
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    path, question, _ = tail.partition("#")[0].partition("?")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}://{authority}{path}" + ("?***" if question else "")


def endpoint_url(address: str) -> "httpx2.URL":
    """The URL that is requested for ``address``; raises ``ValueError`` if there is none."""
    # Imported here: ``konsumerator simulate`` loads this module (``redact``) and never
    # requests a URL, and the HTTP library is a good part of its start-up.
    import httpx2

    try:
        url = httpx2.URL(address.rstrip("/") + API_PATH)
    except httpx2.InvalidURL as exc:
        raise ValueError("not a valid URL") from exc
    if url.scheme not in _DEFAULT_PORTS or not url.host:
        raise ValueError("need an http:// or https:// URL with a host")
    return url


@dataclass(frozen=True, slots=True)
class _HostPattern:
    host: str  # lower case, shell wildcards, no trailing dot
    port: int | None  # None: any port

    def matches(self, *, host: str, port: int) -> bool:
        return fnmatch.fnmatchcase(host, self.host) and self.port in (None, port)


@dataclass(frozen=True, slots=True)
class _NetworkPattern:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    port: int | None = None

    def matches(self, *, host: str, port: int) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False  # a name: never resolved here, see the module docstring
        return (
            ip.version == self.network.version and ip in self.network and self.port in (None, port)
        )


def _normal_host(host: str) -> str:
    return host.lower().rstrip(".")


def parse_pattern(text: str) -> _HostPattern | _NetworkPattern:
    """One pattern: ``host``, ``host:port``, ``[v6]:port``, a CIDR block or an IP."""
    text = text.strip()
    try:
        return _NetworkPattern(ipaddress.ip_network(text, strict=False))
    except ValueError:
        pass
    if text.startswith("["):
        host, _, after = text[1:].partition("]")
        if (after and not after.startswith(":")) or ":" not in host:
            raise PatternError(f"{text!r}: expected [IPv6 address] or [IPv6 address]:port")
        port_text = after[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    port = _port(text, port_text) if port_text else None
    try:
        return _NetworkPattern(ipaddress.ip_network(host), port=port)
    except ValueError:
        pass
    host = _normal_host(host)
    if not host or not set(host) <= _HOST_CHARACTERS:
        raise PatternError(
            f"{text!r}: expected host, host:port (wildcards * and ? allowed in the host),"
            " a CIDR block or an IP address"
        )
    return _HostPattern(host=host, port=port)


def _port(text: str, port: str) -> int | None:
    if port == "*":
        return None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise PatternError(f"{text!r}: the port must be a number from 1 to 65535, or *")
    return int(port)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which Prometheus addresses may be requested; no patterns means every one."""

    patterns: tuple[_HostPattern | _NetworkPattern, ...] = ()
    # The patterns as given, for messages.
    text: tuple[str, ...] = ()

    @classmethod
    def parse(cls, values: Iterable[str]) -> "AddressPolicy":
        """From flag values, each a comma-separated list; raises :class:`PatternError`."""
        texts = tuple(t.strip() for v in values for t in v.split(",") if t.strip())
        return cls(patterns=tuple(parse_pattern(t) for t in texts), text=texts)

    @property
    def restricted(self) -> bool:
        return bool(self.patterns)

    def allows(self, address: str) -> bool:
        if not self.patterns:
            return True
        try:
            url = endpoint_url(address)
        except ValueError:
            return False
        host = _normal_host(url.host)
        port = url.port or _DEFAULT_PORTS[url.scheme]
        return any(p.matches(host=host, port=port) for p in self.patterns)

    def refused(self, addresses: Sequence[str]) -> list[int]:
        """Indexes of the addresses this policy does not allow."""
        return [i for i, address in enumerate(addresses) if not self.allows(address)]


ALLOW_ALL = AddressPolicy()
