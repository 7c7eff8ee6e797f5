"""Layer 7: which browsers' requests a local HTTP server answers: the Host and Origin checks that
`llmos serve` and the studio share.

Why: any web page the user visits can send requests to 127.0.0.1. Two checks close that door
(the hole Ollama had, CVE-2024-28224):
- Host: when the server is bound to a loopback address, the Host header must name loopback
  (`localhost`, `127.0.0.1`, `::1`, any loopback IP) or a name the user allowed, so a page on a
  name that its DNS points at 127.0.0.1 (DNS rebinding) cannot read the answers. Bound to
  another address the user chose exposure: any Host passes unless allowed names are given.
- Origin: a request that can change state (any method but GET, HEAD, OPTIONS) carrying an
  Origin that is not this server's own (scheme://the Host header) is refused, unless the user
  allowed that origin (`*`: any). Browsers always send Origin on such cross-site requests;
  clients that are not browsers send none and pass.
Names and origins compare case-insensitively. Refusals are one line naming the value and what
would let it through; the app turns them into its own 403.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from llmos.errors import LLMOSError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
ANY = "*"


def hostname(netloc: str) -> str:
    """The host of a Host header or URL netloc, lower-case, without port or IPv6 brackets."""
    host = netloc.rsplit("@", 1)[-1].strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or IP, no port) is this machine's loopback interface."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class OriginGuard:
    """The checks for one server bound to `bind_host`; `owner` names it in refusals ("server",
    "studio"). Allowed hosts and origins are checked and normalised here: a malformed one is an
    LLMOSError naming it and the form expected. With `advise_flags`, a refusal names the
    command-line option that would let it through (--allowed-hosts, --allowed-origins)."""

    bind_host: str
    owner: str = "server"
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    advise_flags: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_hosts", tuple(dict.fromkeys(map(_host_name, self.allowed_hosts))))
        object.__setattr__(self, "allowed_origins", tuple(dict.fromkeys(map(_origin, self.allowed_origins))))

    def refusal(self, method: str, host_header: str | None, origin: str | None, port: int | None) -> str | None:
        """Why this request is refused (one line), or None when it passes both checks."""
        return self.host_refusal(host_header or "", port) or self.origin_refusal(method, origin, host_header or "")

    def host_refusal(self, host_header: str, port: int | None) -> str | None:
        host = hostname(host_header)
        if ANY in self.allowed_hosts or host in self.allowed_hosts:
            return None
        loopback_bound = is_loopback(self.bind_host)
        if not loopback_bound and not self.allowed_hosts:
            return None  # exposed on purpose, every name allowed
        if is_loopback(host) or (not loopback_bound and host == hostname(self.bind_host)):
            return None
        advice = f" or start it with --allowed-hosts {host}" if self.advise_flags else ""
        where = f"http://127.0.0.1:{port}/" if port else "http://127.0.0.1/"
        return f"host {host!r} is not this {self.owner}'s; open it at {where}{advice}"

    def origin_refusal(self, method: str, origin: str | None, host_header: str) -> str | None:
        if method.upper() in SAFE_METHODS or origin is None:
            return None
        if urlsplit(origin).netloc.lower() == host_header.strip().lower():
            return None  # the server's own page
        if ANY in self.allowed_origins or origin.strip().rstrip("/").lower() in self.allowed_origins:
            return None
        advice = f", or start it with --allowed-origins {origin}" if self.advise_flags else ""
        return f"requests from {origin!r} are not allowed; use the {self.owner}'s own page{advice}"


def _host_name(value: str) -> str:
    name = value.strip().lower()
    if name == ANY:
        return name
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    if not bare or any(c in bare for c in "/@ ") or (":" in bare and not _is_ip(bare)):
        raise LLMOSError(f"allowed host {value!r} is not a host name; give a name or IP without scheme, "
                         "port or path, e.g. mybox.lan or 192.168.1.5 (* allows any)")
    return bare


def _origin(value: str) -> str:
    origin = value.strip().rstrip("/").lower()
    if origin == ANY:
        return origin
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise LLMOSError(f"allowed origin {value!r} is not an origin; give scheme://host[:port] with no "
                         "path, e.g. http://localhost:3000 (* allows any)")
    return origin


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False
