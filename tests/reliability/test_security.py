"""Secrets never leak, TLS verification stays on, write-back stays inside its block or field, and the
daemon's HTTP endpoint is loopback-only, read-only and survives malformed requests.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorContext
from connectors.github import GitHubConnector, GitHubSource
from connectors.http import HttpPolicy
from connectors.jira import JiraConnector, JiraSource
from syncer.sandbox.server import Fault
from syncer.store import Store
from syncer.sync import SyncOptions, run_once
from tests.conftest import clean_env, write_memory_config
from tests.reliability.harness import ENV, GITHUB_TOKEN, JIRA_EMAIL, JIRA_TOKEN, FakeClock, Org, sandbox_org

BASIC = base64.b64encode(f"{JIRA_EMAIL}:{JIRA_TOKEN}".encode()).decode()
FORBIDDEN = (JIRA_TOKEN, GITHUB_TOKEN, BASIC, f"Bearer {GITHUB_TOKEN}", JIRA_TOKEN[4:20], GITHUB_TOKEN[4:16])
HEADER = re.compile(rb"authorization\s*+[:=]\s*+\S{0,20}", re.IGNORECASE)
"""An ``Authorization`` header with any value at all, masked or not (``redact`` drops the header)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def leaks(label: str, data: bytes | str) -> list[str]:
    raw = data.encode() if isinstance(data, str) else data
    found = [f"{label} contains {needle[:12]}…" for needle in FORBIDDEN if needle.encode() in raw]
    return found + [f"{label} carries an Authorization header: {m.group(0)!r}" for m in HEADER.finditer(raw)][:1]


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    with sandbox_org(tmp_path) as started:
        yield started


def http_get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_leak_scan_finds_what_it_looks_for() -> None:
    assert leaks("x", f"...{JIRA_TOKEN}...") and leaks("x", f"Authorization: Basic {BASIC[:8]}")
    assert leaks("x", b"authorization=Bearer abc") and leaks("x", "Authorization: ***")
    assert not leaks("x", "[credentials redacted] and *** and an authorization-free line")


@pytest.mark.slow
def test_every_command_with_failing_sources_never_shows_a_secret(org: Org) -> None:
    folder = org.folder
    # A short pass deadline: the 500s' back-off ends the source in seconds instead of ~15 s.
    schedule = "{interval: 15s, jitter: 1s, deadline: 4s}"
    (folder / "okrs.yaml").write_text(org.config_text(publish=True, manual=True, schedule=schedule),
                                      encoding="utf-8")
    env = clean_env(folder, **ENV)
    found: list[str] = []

    def okrsync(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "syncer", *args], cwd=folder, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        found.extend(leaks(f"{args[0]} stdout", done.stdout) + leaks(f"{args[0]} stderr", done.stderr))
        return done

    assert okrsync("validate", "-c", "okrs.yaml").returncode == 0
    assert okrsync("sync", "-c", "okrs.yaml", "--full", "--quiet").returncode == 0
    # Now both trackers fail and echo the credentials back in their bodies.
    org.jira_server.inject(Fault(status=401, times=10**6, body={
        "errorMessages": [f"token {JIRA_TOKEN} refused", f"Authorization: Basic {BASIC}"]}))
    org.github_server.inject(Fault(status=500, times=10**6, body={
        "message": f"upstream saw Authorization: Bearer {GITHUB_TOKEN}"}))
    failed = okrsync("sync", "-c", "okrs.yaml", "--quiet")
    assert failed.returncode == 1 and "jira" in failed.stderr and "github" in failed.stderr
    assert okrsync("sync", "-c", "okrs.yaml", "--dry-run", "--quiet", "--format", "json").returncode == 1
    for fmt in ("table", "json", "markdown", "html"):
        assert okrsync("report", "-c", "okrs.yaml", "--format", fmt).returncode == 0
        out = folder / f"report.{fmt}"
        assert okrsync("report", "-c", "okrs.yaml", "--format", fmt, "-o", str(out)).returncode == 0
        found.extend(leaks(f"report file {fmt}", out.read_bytes()))
    assert okrsync("explain", "-c", "okrs.yaml", "mobile-done").returncode == 0
    assert okrsync("explain", "-c", "okrs.yaml", "mobile-done", "--format", "json").returncode == 0
    assert okrsync("checkin", "-c", "okrs.yaml", "nps", "38").returncode == 0
    assert okrsync("status", "-c", "okrs.yaml").returncode == 0
    assert okrsync("status", "-c", "okrs.yaml", "--format", "json").returncode == 0
    # A bad token in the environment that the config interpolates, plus --debug: still masked.
    debug = okrsync("sync", "-c", "okrs.yaml", "--quiet", "--debug")
    assert debug.returncode == 1

    port = free_port()
    log = folder / "daemon.log"
    with log.open("wb") as err:
        daemon = subprocess.Popen([sys.executable, "-m", "syncer", "daemon", "-c", "okrs.yaml", "--listen",
                                   f"127.0.0.1:{port}", "--interval", "2s"], cwd=folder, env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and log.read_text().count("pass finished") < 2:
            time.sleep(0.2)
        assert log.read_text().count("pass finished") >= 2, log.read_text()[-2000:]
        for path in ("/", "/healthz", "/metrics", "/report.json"):
            status, body = http_get(port, path)
            assert status in (200, 503)
            found.extend(leaks(f"daemon {path}", body))
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=12) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)
    found.extend(leaks("daemon log", log.read_bytes()))
    for name in ("okrsync.db", "okrsync.db-wal", "okrsync.db-shm"):
        if (folder / name).exists():
            found.extend(leaks(name, (folder / name).read_bytes()))
    assert "jira failing" in log.read_text()  # the failure itself is reported, only masked
    assert found == []


def test_tls_verification_is_on_by_default_and_a_ca_bundle_only_adds_trust(tmp_path: Path) -> None:
    context = ConnectorContext(policy=HttpPolicy(), stop=threading.Event(), now=lambda: datetime.now(UTC))
    jira = JiraConnector("jira", JiraSource(type="jira", url="https://jira.example", scope="project = X",
                                            auth={"email": "a@b.c", "token": "t0ken"}), context)
    github = GitHubConnector("github", GitHubSource(type="github", token="t0ken", repos=("a/b",)), context)
    assert jira.http.session is not None and jira.http.session.verify is True
    assert github.http.session is not None and github.http.session.verify is True
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    pinned = GitHubConnector("github", GitHubSource(type="github", token="t0ken", repos=("a/b",),
                                                    ca_bundle=str(bundle)), context)
    assert pinned.http.session is not None and pinned.http.session.verify == str(bundle)
    for switch in ({"verify": False}, {"verify_ssl": False}, {"insecure": True}, {"ca_bundle": False}):
        with pytest.raises(ValueError):
            GitHubSource(type="github", token="t0ken", repos=("a/b",), **switch)


def test_write_back_touches_only_the_marked_block_and_the_one_field(
    org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock().install(monkeypatch)
    before = ("Intro written by a human\r\n\r\n<!-- okrsync:start -->\r\nold\r\n<!-- okrsync:end -->\r\n"
              "After — ünïcode\r\n")
    org.github.repos["acme/okrs"].issues[4].body = before
    okr = org.jira.find("OKR-12")
    assert okr is not None
    labels_before, summary_before = list(okr.labels), okr.summary
    config = org.config(store=f"sqlite:///{org.folder / 'okrsync.db'}", publish=True)
    with Store.open(config.store_url()) as store:
        result = run_once(config, store, SyncOptions(full=True, sleep=clock.sleep))
    assert result.exit_code == 0 and not result.write_errors
    after = org.github.repos["acme/okrs"].issues[4].body
    assert after.startswith("Intro written by a human\r\n\r\n<!-- okrsync:start -->\r\n")
    assert after.endswith("<!-- okrsync:end -->\r\nAfter — ünïcode\r\n") and "old" not in after
    assert "\n" not in after.replace("\r\n", "")  # the block kept the body's CRLF line endings
    puts = [s for s in clock.sent if s.method == "PUT"]
    assert len(puts) == 1 and set(json.loads(puts[0].body)) == {"fields"}
    assert list(json.loads(puts[0].body)["fields"]) == ["customfield_10100"]
    patches = [s for s in clock.sent if s.method == "PATCH"]
    assert len(patches) == 1 and set(json.loads(patches[0].body)) == {"body"}
    assert okr.labels == labels_before and okr.summary == summary_before


# -- the daemon's endpoint ---------------------------------------------------------------------------


def test_daemon_listens_on_loopback_by_default() -> None:
    import inspect

    from syncer.cli import _parser
    from syncer.daemon import Daemon

    assert _parser().parse_args(["daemon"]).listen.startswith("127.0.0.1:")
    assert inspect.signature(Daemon).parameters["listen"].default[0] == "127.0.0.1"


@pytest.fixture
def daemon_port(tmp_path: Path) -> Iterator[int]:
    env = write_memory_config(tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "syncer", "daemon", "-c", str(env.config), "--listen",
                             f"127.0.0.1:{port}", "--interval", "1h"], cwd=tmp_path, env=clean_env(tmp_path),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if http_get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        yield port
        assert proc.poll() is None, "the daemon died"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_daemon_endpoint_is_read_only_and_survives_malformed_requests(daemon_port: int) -> None:
    port = daemon_port
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"):
        assert http_get(port, "/", method)[0] == 405, method
    assert http_get(port, "/report.json")[0] == 200
    payloads: list[bytes] = [
        b"\x00\xff\xfe garbage \r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 200_000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(500)) + b"\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nshort",
    ]
    for payload in payloads:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            try:
                sock.sendall(payload)
                sock.recv(1024)
            except OSError:
                pass
        assert http_get(port, "/healthz")[0] == 200
    # Slowloris: connections that never finish their request line do not block other clients.
    idle: list[socket.socket] = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sock.sendall(b"GET / HTT")
            idle.append(sock)
        status, body = http_get(port, "/report.json")
        assert status == 200 and json.loads(body)
    finally:
        for sock in idle:
            sock.close()
    assert http_get(port, "/metrics")[0] == 200


def test_connection_to_a_non_loopback_address_is_refused_when_not_configured(daemon_port: int) -> None:
    addresses: set[Any] = set()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    except OSError:
        pass
    outside = sorted(a for a in addresses if not a.startswith("127."))
    if not outside:
        pytest.skip("this host has no non-loopback IPv4 address to try")
    with pytest.raises(OSError):
        socket.create_connection((outside[0], daemon_port), timeout=2).close()
