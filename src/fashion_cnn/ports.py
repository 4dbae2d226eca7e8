"""Listening sockets for the two servers (the HTTP API and the web app): one clear line when a
port is taken or out of range, before either announces its address."""

from __future__ import annotations

import errno
import socket

from .errors import FashionCNNError


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; FashionCNNError (one line) when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except socket.gaierror as err:  # a --host that names no address of this machine
        sock.close()
        raise FashionCNNError(f"Cannot listen on {host} ({err.strerror}): --host must be an "
                              "address or name of this machine, e.g. 127.0.0.1 or 0.0.0.0."
                              ) from None
    except (OSError, OverflowError) as err:
        sock.close()
        reason = getattr(err, "strerror", None) or str(err)
        advice = ("--host must be an address of this machine, e.g. 127.0.0.1 or 0.0.0.0"
                  if getattr(err, "errno", None) == errno.EADDRNOTAVAIL
                  else "is another server using it? Pick another with --port")
        raise FashionCNNError(f"Cannot listen on {host}:{port} ({reason}); {advice}."
                              ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    """A loopback port nobody listens on now (for tests and benchmarks)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
