"""Shared pieces of the reliability tests: sandbox organisations, configs, the truth, a fake clock.

Everything here compares okrsync's store with the sandbox trackers' own records (``truth()``),
never with okrsync's earlier output. Tokens are distinctive strings so the secret scans can find
any leak byte for byte.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from connectors.transport import DirectTransport, Exchange
from syncer.config import Config, load
from syncer.model import WorkItem
from syncer.sandbox.github import GitHubApp, cycle_of, start_github_sandbox
from syncer.sandbox.jira import JiraApp, start_jira_sandbox
from syncer.sandbox.server import SandboxServer
from syncer.store import Store

JIRA_EMAIL = "reliability@example.com"
JIRA_TOKEN = "jira-SECRET-tok-5f0c2b9e"
GITHUB_TOKEN = "ghp_SECRETtok7a41d03c"
ENV = {"REL_JIRA_EMAIL": JIRA_EMAIL, "REL_JIRA_TOKEN": JIRA_TOKEN, "REL_GITHUB_TOKEN": GITHUB_TOKEN}
DEMO_REPOS = ("acme/web", "acme/api")


@dataclass
class Org:
    """Both sandbox trackers, started on loopback ports, and a folder for configs and stores."""

    jira_server: SandboxServer
    jira: JiraApp
    github_server: SandboxServer
    github: GitHubApp
    folder: Path
    repos: tuple[str, ...] = DEMO_REPOS
    projects: tuple[str, ...] = ("PLAT", "MOB")

    def stop(self) -> None:
        self.jira_server.stop()
        self.github_server.stop()

    def config_text(self, store: str = "sqlite:///okrsync.db", *, jira: bool = True, github: bool = True,
                    publish: bool = False, overlap: str = "10m", page_size: int = 100,
                    schedule: str = "{interval: 15s, jitter: 1s}", manual: bool = False) -> str:
        return config_text(self, store=store, jira=jira, github=github, publish=publish, overlap=overlap,
                           page_size=page_size, schedule=schedule, manual=manual)

    def config(self, name: str = "okrs.yaml", **options: Any) -> Config:
        path = self.folder / name
        path.write_text(self.config_text(**options), encoding="utf-8")
        return load(path, env=ENV)

    def truth(self, *, jira: bool = True, github: bool = True) -> dict[tuple[str, str], WorkItem]:
        items: list[WorkItem] = []
        if jira:
            items += [i for i in self.jira.truth("jira", self.jira_server.url) if i.container in self.projects]
        if github:
            items += self.github.truth("github", repos=list(self.repos))
        return {(i.source, i.id): i for i in items}


@contextmanager
def sandbox_org(folder: Path, *, jira_scenario: str = "demo", jira_size: int = 0,
                github_scenario: str = "demo", github_size: int = 0,
                repos: tuple[str, ...] | None = None, **jira_options: Any) -> Iterator[Org]:
    """Start both sandboxes (demo data by default); always stopped on exit."""
    now = datetime.now(UTC).replace(microsecond=0)
    jira_server, jira = start_jira_sandbox(jira_scenario, size=jira_size, now=now,
                                           users={JIRA_EMAIL: JIRA_TOKEN}, **jira_options)
    try:
        github_server, github = start_github_sandbox(
            github_scenario, size=github_size, now=now, tokens=(GITHUB_TOKEN,),
            repos=repos if github_scenario == "bench" else None,
        )
    except BaseException:
        jira_server.stop()
        raise
    chosen = repos if repos is not None else DEMO_REPOS
    org = Org(jira_server, jira, github_server, github, folder, repos=chosen)
    try:
        yield org
    finally:
        org.stop()


def config_text(org: Org, *, store: str, jira: bool, github: bool, publish: bool, overlap: str,
                page_size: int, schedule: str, manual: bool = False) -> str:
    """A config over the sandboxes: the key results below work on demo and bench data alike."""
    name, start, end = cycle_of(datetime.now(UTC))
    sources = ""
    krs: list[str] = []
    if jira:
        sources += f"""\
  jira:
    type: jira
    url: {org.jira_server.url}
    auth:
      email: ${{REL_JIRA_EMAIL}}
      token: ${{REL_JIRA_TOKEN}}
    scope: project in ({", ".join(org.projects)})
    overlap: {overlap}
    page_size: {page_size}
"""
        krs.append("""\
      - id: perf-points
        title: Deliver performance points
        metric: sum_points_done
        target: 40
        match: [{source: jira, jql: labels = perf}]
      - id: mobile-done
        title: Finish mobile work
        metric: percent_done
        match: [{source: jira, jql: project = MOB}]""")
        if publish:
            krs[-1] += """
        publish:
          - {source: jira, issue: OKR-12, field: customfield_10100}"""
    if github:
        sources += f"""\
  github:
    type: github
    url: {org.github_server.url}
    token: ${{REL_GITHUB_TOKEN}}
    repos: [{", ".join(org.repos)}]
    overlap: {overlap}
"""
        krs.append("""\
      - id: bugs-open
        title: Bring open bugs down
        metric: count_open
        start: 20
        target: 2
        match: [{source: github, labels: [bug]}]""")
        if publish:
            krs[-1] += """
        publish:
          - {source: github, issue: acme/okrs#4}"""
    if manual:
        krs.append("""\
      - id: nps
        title: Reach an NPS of 45
        metric: manual
        start: 30
        target: 45""")
    return f"""\
version: 1
cycle: {{name: {name}, start: {start.isoformat()}, end: {end.isoformat()}}}
store: {store}
schedule: {schedule}
sources:
{sources}objectives:
  - id: ship
    title: Ship the quarter's work
    key_results:
{chr(10).join(krs)}
"""


def stored(store: Store, source: str | None = None) -> dict[tuple[str, str], WorkItem]:
    return {(i.source, i.id): i for i in store.iter_items(source) if source is None or i.source == source}


def _view(item: WorkItem) -> tuple[Any, ...]:
    return (item.key, item.state, item.excluded, item.kind, item.points, tuple(sorted(item.labels)), item.container)


def differences(store: Store, expected: dict[tuple[str, str], WorkItem], source: str | None = None) -> list[str]:
    """How the store's live items differ from ``expected`` (empty when equal)."""
    if source is not None:
        expected = {k: v for k, v in expected.items() if k[0] == source}
    actual = stored(store, source)
    problems = []
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    if missing:
        problems.append(f"missing {missing[:5]} ({len(missing)})")
    if extra:
        problems.append(f"extra {extra[:5]} ({len(extra)})")
    for ref in set(expected) & set(actual):
        if _view(actual[ref]) != _view(expected[ref]):
            problems.append(f"{ref}: stored {_view(actual[ref])} != truth {_view(expected[ref])}")
    return problems


@dataclass
class Sent:
    """One HTTP request as the fake clock saw it."""

    at: float
    method: str
    url: str
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class FakeClock:
    """``sleep`` for ``SyncOptions.sleep`` that only advances a number, and a log of every request
    (with the fake time it was sent at) taken by wrapping the transport, ``HTTPAdapter.send``
    (every request, redirect hops included, goes through it)."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    after: Callable[[Sent], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def install(self, monkeypatch: Any) -> FakeClock:
        """Observe both transports: requests' adapter and ``DirectTransport`` (the one a plain
        session uses). The adapter's wrapper names what it wraps, so the direct transport stays
        in use (``connectors.transport.direct_allowed``)."""
        adapter_send = requests.adapters.HTTPAdapter.send
        direct_send = DirectTransport.send

        def record(method: str, url: str, body: Any, headers: Any, send: Callable[[], requests.Response]
                   ) -> requests.Response:
            at = self.now
            raw = body if isinstance(body, bytes) else (body or "").encode()
            try:
                response = send()
            except requests.RequestException:
                with self._lock:
                    self.sent.append(Sent(at, method, url, 0, raw, dict(headers)))
                raise
            sent = Sent(at, method, url, response.status_code, raw, dict(headers))
            with self._lock:
                self.sent.append(sent)
            if self.after is not None:
                self.after(sent)
            return response

        @functools.wraps(adapter_send)
        def send(adapter: requests.adapters.HTTPAdapter, request: requests.PreparedRequest,
                 **kw: Any) -> requests.Response:
            return record(str(request.method), str(request.url), request.body, request.headers,
                          lambda: adapter_send(adapter, request, **kw))

        @functools.wraps(direct_send)
        def send_direct(transport: DirectTransport, exchange: Exchange, **kw: Any) -> requests.Response:
            return record(exchange.method, exchange.url, exchange.body, exchange.headers,
                          lambda: direct_send(transport, exchange, **kw))

        monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
        monkeypatch.setattr(DirectTransport, "send", send_direct)
        return self

    def to(self, fragment: str) -> list[Sent]:
        return [s for s in self.sent if fragment in s.url]
