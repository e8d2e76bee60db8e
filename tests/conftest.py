"""Shared fixtures. Tests never reach the network: outbound sockets to anything but the
loopback are refused for the whole session."""

from __future__ import annotations

import socket

import pytest

_real_connect = socket.socket.connect


def _guarded_connect(self, address):  # pragma: no cover - exercised only on misuse
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
        return _real_connect(self, address)
    raise RuntimeError(f"tests must not reach the network (tried {address!r})")


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    socket.socket.connect = _guarded_connect
    yield
    socket.socket.connect = _real_connect


@pytest.fixture(autouse=True)
def _few_threads(monkeypatch):
    """Keep each test to the machine's 2 cores and make runs repeatable."""
    import torch

    torch.set_num_threads(2)
    yield
