"""Network addresses as the daemon and the clients read them."""

from __future__ import annotations

import ipaddress


def address_host(address: str) -> str:
    """The HOST of a HOST:PORT address ("[::1]:50051" → "::1"); the address itself without a port."""
    return address.rpartition(":")[0].strip("[]") or address


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine's loopback ("localhost", 127.x.x.x, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
