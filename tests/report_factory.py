"""A realistic ``ReportData`` built by hand, so renderers are tested without a store.

Three objectives (a parent and two children), eight key results covering every metric, ~30
history points each, forecasts, items behind each key result with Jira and GitHub URLs,
unaligned items from two sources, one stale key result and one failed source.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from syncer.model import (
    Forecast,
    HistoryPoint,
    KeyResultChange,
    KeyResultDetail,
    KeyResultProgress,
    ObjectiveProgress,
    PlannedWrite,
    ReportData,
    ReportItem,
    SourceOutcome,
    Status,
    Tally,
)

CYCLE_START = datetime(2026, 10, 1, tzinfo=UTC)
CYCLE_END = datetime(2027, 1, 1, tzinfo=UTC)  # exclusive: end date 2026-12-31 + 1 day
GENERATED_AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
EXPECTED = (GENERATED_AT - CYCLE_START) / (CYCLE_END - CYCLE_START)
HISTORY_LEN = 30
HOSTILE = "<script>alert(1)</script> | *bold* [x](javascript:alert(1))"


def _status(progress: float, expected: float = EXPECTED) -> Status:
    if progress >= 1:
        return Status.DONE
    if progress >= expected - 0.10:
        return Status.ON_TRACK
    if progress >= expected - 0.25:
        return Status.AT_RISK
    return Status.OFF_TRACK


def _progress(start: float, target: float, current: float) -> float:
    return min(1.0, max(0.0, (current - start) / (target - start)))


def _history(start: float, target: float, current: float, n: int, until: datetime) -> tuple[HistoryPoint, ...]:
    """``n`` snapshots from the cycle's first day to ``until``, wobbling towards ``current``."""
    first = CYCLE_START + timedelta(hours=9)
    step = (until - first) / max(1, n - 1)
    points = []
    for i in range(n):
        frac = i / max(1, n - 1)
        value = start + (current - start) * frac + math.sin(i * 1.3) * abs(current - start) * 0.03
        value = current if i == n - 1 else round(value, 2)
        points.append(
            HistoryPoint(
                at=until if i == n - 1 else first + step * i,
                current=value,
                progress=_progress(start, target, value),
            )
        )
    return tuple(points)


def _jira(key: str, title: str, state: str, *, points: float | None = None, rule: str = "") -> ReportItem:
    return ReportItem(
        source="jira",
        key=key,
        title=title,
        url=f"https://acme.atlassian.net/browse/{key}",
        state=state,
        container=key.split("-")[0],
        points=points,
        rule=rule,
    )


def _gh(repo: str, number: int, title: str, state: str, *, rule: str = "") -> ReportItem:
    return ReportItem(
        source="github",
        key=f"{repo}#{number}",
        title=title,
        url=f"https://github.com/{repo}/issues/{number}",
        state=state,
        container=repo,
        rule=rule,
    )


def _kr(
    id: str,
    objective_id: str,
    title: str,
    metric: str,
    start: float,
    target: float,
    current: float,
    tally: Tally,
    *,
    sources: tuple[str, ...] = ("jira", "github"),
    stale: bool = False,
    last_synced: datetime = GENERATED_AT - timedelta(minutes=2),
) -> KeyResultProgress:
    progress = _progress(start, target, current)
    return KeyResultProgress(
        id=id,
        objective_id=objective_id,
        title=title,
        metric=metric,
        start=start,
        target=target,
        current=current,
        progress=progress,
        status=_status(progress),
        tally=tally,
        stale=stale,
        last_synced=last_synced,
        sources=sources,
    )


def make_report(*, hostile: bool = False, history_len: int = HISTORY_LEN) -> ReportData:
    """The standard report; ``hostile`` puts markup-laden titles where trackers supply text."""
    revamp_items = (
        _jira("PLAT-101", "Welcome screen redesign", "done", rule="epic PLAT-123"),
        _jira("PLAT-102", "Progressive profile form", "done", rule="epic PLAT-123"),
        _jira("PLAT-103", "Email verification | resend flow", "done", rule="epic PLAT-123"),
        _jira("PLAT-104", "Skip *optional* steps", "in_progress", rule="epic PLAT-123"),
        _jira("PLAT-105", "Onboarding checklist widget", "in_progress", rule="epic PLAT-123"),
        _jira("PLAT-106", "Old wizard removal", "done", rule="epic PLAT-123", points=None),
        _gh("acme/web", 51, "Tooltip tour for first project", "todo", rule="repo acme/web labels onboarding"),
        _gh("acme/web", 52, "A/B test the new sign-up copy", "in_progress", rule="labels onboarding"),
        _gh("acme/web", 57, "Track onboarding funnel events", "todo", rule="labels onboarding"),
        _gh("acme/web", 58, "Localise onboarding into German", "todo", rule="labels onboarding"),
        replace(_gh("acme/web", 60, "Duplicate of #51", "done", rule="labels onboarding"), excluded=True),
    )
    if hostile:
        revamp_items = (
            *revamp_items[:-1],
            _gh("acme/web", 66, HOSTILE, "todo", rule="labels onboarding"),
            revamp_items[-1],
        )
    bug_items = tuple(
        _gh("acme/api" if i % 2 else "acme/web", 200 + i, f"Customer bug #{i}: export fails", "done") for i in range(18)
    ) + tuple(_gh("acme/api", 300 + i, f"Customer bug: timeout {i}", "todo") for i in range(4))
    perf_items = tuple(
        _jira(f"PERF-{i}", f"Cache layer step {i}", "done" if i < 6 else "todo", points=float(5 + i))
        for i in range(1, 10)
    )
    p1_items = tuple(
        _jira(f"OPS-{i}", f"P1 incident follow-up {i}", "todo" if i < 22 else "done") for i in range(1, 30)
    )
    docs_items = (
        _jira("DOC-1", "API reference for webhooks", "done", points=8.0),
        _jira("DOC-2", "Quick-start rewrite", "in_progress", points=5.0),
        _gh("acme/docs", 3, "Runbook for failover", "todo"),
    )
    activation_items = (
        _jira("MOB-7", "Push notification opt-in", "done", points=3.0),
        _jira("MOB-8", "Deep links from email", "in_progress", points=5.0),
        _gh("acme/web", 70, "Activation dashboard", "done"),
    )
    slo_items = (_gh("acme/api", 11, "Retry budget for the gateway", "done"),)

    krs_grow = (
        _kr("nps", "grow", "Reach an NPS of 45", "manual", 30, 45, 36.5, Tally(), sources=()),
        _kr(
            "activation-points",
            "grow",
            "Deliver the activation epic (story points)",
            "points_percent_done",
            0,
            100,
            37.5,
            Tally(total=3, done=2, in_progress=1, points_total=8, points_done=3, unestimated=1),
        ),
    )
    krs_onboarding = (
        _kr(
            "onboarding-revamp",
            "onboarding",
            "Ship the onboarding revamp",
            "percent_done",
            0,
            100,
            40.0,
            Tally(total=10, done=4, in_progress=3, todo=3, excluded=1),
        ),
        _kr(
            "customer-bugs",
            "onboarding",
            "Close 50 customer bugs",
            "count_done",
            0,
            50,
            18,
            Tally(total=22, done=18, todo=4, done_in_cycle=18),
            sources=("github",),
        ),
        _kr(
            "perf-points",
            "onboarding",
            "Deliver 120 story points of performance work",
            "sum_points_done",
            0,
            120,
            44,
            Tally(total=9, done=6, todo=3, points_total=81, points_done=45, points_done_in_cycle=44),
            sources=("jira-dc",),
            stale=True,
            last_synced=datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
        ),
    )
    krs_reliability = (
        _kr(
            "p1-backlog",
            "reliability",
            "Cut the open P1 backlog from 40 to 10",
            "count_open",
            40,
            10,
            21,
            Tally(total=29, done=8, todo=21),
            sources=("jira",),
        ),
        _kr(
            "docs-coverage",
            "reliability",
            "Document every public API",
            "points_percent_done",
            0,
            100,
            61.54,
            Tally(total=3, done=1, in_progress=1, todo=1, unknown=0, points_total=13, points_done=8),
        ),
        _kr(
            "gateway-slo",
            "reliability",
            "Gateway retry budget shipped",
            "percent_done",
            0,
            100,
            100.0,
            Tally(total=1, done=1),
            sources=("github",),
        ),
    )

    def objective(
        id: str, title: str, parent: str | None, krs: tuple[KeyResultProgress, ...], **kw: object
    ) -> ObjectiveProgress:
        progress = sum(k.progress for k in krs) / len(krs)
        return ObjectiveProgress(
            id=id,
            title=title,
            parent=parent,
            progress=progress,
            status=_status(progress),
            key_results=krs,
            **kw,  # type: ignore[arg-type]
        )

    onboarding = objective(
        "onboarding",
        HOSTILE if hostile else "Make onboarding effortless",
        "grow",
        krs_onboarding,
        owner="growth-team",
    )
    reliability = objective("reliability", "Be boringly reliable", "grow", krs_reliability, owner="sre")
    grow_progress = (sum(k.progress for k in krs_grow) + onboarding.progress + reliability.progress) / 4
    grow = ObjectiveProgress(
        id="grow",
        title="Increase user engagement and retention",
        parent=None,
        progress=grow_progress,
        status=_status(grow_progress),
        key_results=krs_grow,
        owner="vp-product",
        children=("onboarding", "reliability"),
    )

    forecasts = {
        "onboarding-revamp": Forecast(68.0, 0.68, Status.AT_RISK, "linear", 12),
        "customer-bugs": Forecast(31.0, 0.62, Status.OFF_TRACK, "linear", 12),
        "perf-points": Forecast(77.5, 0.6458, Status.AT_RISK, "linear", 10),
        "p1-backlog": Forecast(6.0, 1.0, Status.DONE, "linear", 12),
        "docs-coverage": Forecast(100.0, 1.0, Status.DONE, "linear", 12),
        "activation-points": Forecast(64.0, 0.64, Status.AT_RISK, "linear", 12),
    }
    items = {
        "onboarding-revamp": revamp_items,
        "customer-bugs": bug_items,
        "perf-points": perf_items,
        "p1-backlog": p1_items,
        "docs-coverage": docs_items,
        "activation-points": activation_items,
        "gateway-slo": slo_items,
    }
    scope = {"onboarding-revamp": 0.25, "docs-coverage": -0.1, "activation-points": 0.0}
    changes = {
        "onboarding-revamp": KeyResultChange("onboarding-revamp", 37.0, 40.0, "%", done_delta=1, added=1),
        "customer-bugs": KeyResultChange("customer-bugs", 16, 18, "done", done_delta=2),
        "p1-backlog": KeyResultChange("p1-backlog", 23, 21, "open", done_delta=2, left=1),
    }
    details = {}
    for kr in (*krs_grow, *krs_onboarding, *krs_reliability):
        until = kr.last_synced or GENERATED_AT
        details[kr.id] = KeyResultDetail(
            history=_history(kr.start, kr.target, kr.current, history_len, until),
            forecast=forecasts.get(kr.id),
            scope_change=scope.get(kr.id),
            items=items.get(kr.id, ()),
            change=changes.get(kr.id),
        )

    unaligned = (
        _jira("PLAT-77", "Refactor billing cron", "in_progress"),
        _jira("PLAT-78", "Upgrade Postgres minor version", "todo"),
        _jira("PLAT-80", "Investigate slow login", "todo"),
        _jira("MOB-31", "Dark mode for settings", "in_progress"),
        _jira("MOB-33", "Crash on Android 15 rotate", "done"),
        _gh("acme/web", 90, "Landing page copy tweaks", "todo"),
        _gh("acme/web", 91, HOSTILE if hostile else "Footer links broken on Safari", "todo"),
        _gh("acme/api", 44, "Rate limiter metrics", "done"),
        _gh("acme/api", 45, "Bump SDK to v3", "todo"),
    )
    sources = (
        SourceOutcome("jira", ok=True, fetched=120, requests=3),
        SourceOutcome("github", ok=True, fetched=64, requests=5),
        SourceOutcome(
            "jira-dc",
            ok=False,
            fetched=0,
            requests=4,
            error=HOSTILE if hostile else "503 Service Unavailable from https://jira.acme.internal (3 retries)",
        ),
    )
    writes = (
        PlannedWrite("jira", "OKR-12", "field customfield_10100", "40", "was 37"),
        PlannedWrite("github", "acme/okrs#4", "body block", "Ship the onboarding revamp: 40%", "changed"),
    )
    return ReportData(
        cycle_name="2026-Q4",
        cycle_start=CYCLE_START,
        cycle_end=CYCLE_END,
        expected=EXPECTED,
        generated_at=GENERATED_AT,
        objectives=(grow, onboarding, reliability),
        details=details,
        unaligned=unaligned,
        total_work_items=140,
        sources=sources,
        source_last_synced={
            "jira": GENERATED_AT - timedelta(minutes=2),
            "github": GENERATED_AT - timedelta(minutes=2),
            "jira-dc": datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
        },
        writes=writes,
        dry_run=True,
        requests=12,
    )
