"""The sandbox server's own behaviour: gzip-compressed answers for clients that accept them."""

from __future__ import annotations

import gzip
import http.client
from typing import Any
from urllib.parse import urlsplit

import pytest

from syncer.sandbox.server import COMPRESS_MIN, Reply, Request, SandboxServer, accepts_gzip


class _Echo:
    """Answers ``/big`` with a body over the compression threshold, ``/small`` under it, and
    ``/same`` with a 304."""

    def handle(self, request: Request) -> Reply:
        if request.path == "/same":
            return Reply(304, None, {"ETag": '"e"'})
        size = COMPRESS_MIN * 4 if request.path == "/big" else 10
        return Reply(200, {"data": "x" * size}, {"Vary": "Accept, Authorization"})

    def control(self, action: str, body: Any) -> Any:
        raise KeyError(action)


def _get(server: SandboxServer, path: str, accept: str | None) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": accept} if accept is not None else {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip, deflate", True), ("GZIP", True), ("br;q=1.0, gzip;q=0.5", True), ("*", True),
        ("deflate", False), ("gzip;q=0", False), ("gzip; q=0.0", False), ("", False), (None, False),
        ("gzip;q=nonsense", False), ("identity", False), ("*, gzip;q=0", False), ("gzip;q=0, *", False),
        ("deflate, *;q=0.1", True), ("x-gzip", True),
    ],
)
def test_accept_encoding_is_read_with_its_weights(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_a_compressing_sandbox_gzips_large_answers_only_for_clients_that_accept_it() -> None:
    with SandboxServer(_Echo(), compress=True) as server:
        status, headers, body = _get(server, "/big", "gzip, deflate")
        assert status == 200 and headers["content-encoding"] == "gzip"
        assert headers["vary"] == "Accept, Authorization, Accept-Encoding"
        assert int(headers["content-length"]) == len(body) < COMPRESS_MIN
        assert gzip.decompress(body) == b'{"data":"' + b"x" * COMPRESS_MIN * 4 + b'"}'
        for path, accept in (("/big", None), ("/big", "gzip;q=0"), ("/small", "gzip")):
            status, headers, body = _get(server, path, accept)
            assert status == 200 and "content-encoding" not in headers and body.startswith(b'{"data":'), path
        status, headers, body = _get(server, "/same", "gzip")
        assert status == 304 and "content-encoding" not in headers and body == b""
        assert server.compressed == 1


def test_the_sandbox_does_not_compress_unless_asked_to() -> None:
    with SandboxServer(_Echo()) as server:
        status, headers, body = _get(server, "/big", "gzip")
        assert status == 200 and "content-encoding" not in headers and body.startswith(b'{"data":')
        assert server.compressed == 0
