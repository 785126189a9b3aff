"""A loopback TCP proxy a test can freeze: while held, what the client sends is kept back
(never reaches the server) and the client waits for an answer that does not come.

Between a process and its broker, it stops that process at the exact moment it publishes:
no hook in the process, no guess at timing.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress
from dataclasses import dataclass, field

from tests.stack import free_port


@dataclass
class TcpProxy:
    upstream: tuple[str, int]
    port: int = field(default_factory=free_port)
    held: bytearray = field(default_factory=bytearray)  # client bytes kept back while holding
    _holding: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sockets: list[socket.socket] = field(default_factory=list)
    _server: socket.socket | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def hold(self) -> None:
        """From now on, keep back everything clients send."""
        self._holding.set()

    def held_bytes(self) -> bytes:
        with self._lock:
            return bytes(self.held)

    def stop(self) -> None:
        for sock in [self._server, *self._sockets]:
            if sock is not None:
                with suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client and self._holding.is_set():
                    with self._lock:
                        self.held.extend(data)
                    continue
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
