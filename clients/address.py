"""What a --server address (HOST:PORT) says about where the daemon runs."""

from __future__ import annotations

import ipaddress


def on_this_machine(server: str) -> bool:
    """Whether `server` is a loopback address ("localhost", 127.x.x.x, [::1]): the daemon
    shares this machine's cores."""
    host = server.rpartition(":")[0].strip("[]") or server
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
