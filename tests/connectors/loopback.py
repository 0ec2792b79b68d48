"""A loopback server that plays scripted bytes, for the failures ``responses`` cannot fake."""

from __future__ import annotations

import socket
import struct
import threading
import time


class RawServer:
    """One scripted reply per connection: the request read, ``bytes`` sent, then a stall of that
    many seconds before a clean close (a negative stall: a reset at once instead)."""

    def __init__(self, replies: list[tuple[bytes, float]]) -> None:
        self.replies = list(replies)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(10)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.workers: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for payload, stall in self.replies:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            worker = threading.Thread(target=self._reply, args=(conn, payload, stall), daemon=True)
            worker.start()
            self.workers.append(worker)

    @staticmethod
    def _reply(conn: socket.socket, payload: bytes, stall: float) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                conn.sendall(payload)
            except OSError:
                return
            if stall < 0:  # hang up with a reset instead of a clean close
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            time.sleep(stall)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=10)
        for worker in self.workers:
            worker.join(timeout=10)
