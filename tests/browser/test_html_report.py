"""The HTML report as a person sees it: rendered by headless Chromium, screenshots saved.

Chromium comes from Debian's ``chromium`` package (``tests/browser/ensure_chromium.sh`` installs
it). It is driven through its command line only (``--dump-dom``, ``--screenshot``), so no new
Python dependency; every run is bounded by a timeout and its whole process group is killed.
Screenshots land in ``tests/artifacts/`` (git-ignored) for a human to look at.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from syncer.report import render_html
from tests.report_factory import HISTORY_LEN, make_report

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TIMEOUT = 90
CONSOLE = re.compile(r":CONSOLE[:(]|Uncaught|Refused to", re.IGNORECASE)


def _chromium_path() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _chromium_path()
    if path is None:
        pytest.skip("headless Chromium not installed: run tests/browser/ensure_chromium.sh (needs root)")
    return path


@pytest.fixture()
def run(chromium: str, tmp_path: Path) -> Iterator[object]:
    """Run Chromium headless with a throwaway profile; returns (stdout, stderr)."""
    profiles = iter(range(1000))

    def _run(*args: str, window: str = "1280,2000") -> tuple[str, str]:
        profile = tmp_path / f"profile-{next(profiles)}"
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={profile}",
            f"--window-size={window}",
            *args,
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"chromium did not finish within {TIMEOUT}s: {' '.join(args)}")
        finally:
            try:  # helpers (zygote, GPU) that outlived the browser belong to its group
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert proc.returncode == 0, err[-2000:]
        return out, err

    yield _run


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def _parse(dom_text: str) -> _Dom:
    dom = _Dom()
    dom.feed(dom_text)
    return dom


def _png_ok(path: Path) -> None:
    assert path.is_file(), f"no screenshot at {path}"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000, f"{path} is only {len(data)} bytes: blank page?"


def test_console_check_catches_errors(run, tmp_path: Path) -> None:
    """The "no console errors" assertion below is only worth something if it can fail."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><html lang=en><body><p>x</p>"
        "<script>console.error('boom'); missingFunction();</script></body></html>"
    )
    _out, err = run("--dump-dom", page.as_uri())
    assert _console_errors(err)


def test_html_report_in_chromium(run, tmp_path: Path) -> None:
    data = make_report()
    page = tmp_path / "report.html"
    page.write_text(render_html(data), encoding="utf-8")

    dom_text, err = run("--dump-dom", page.as_uri())
    assert not _console_errors(err), _console_errors(err)
    dom = _parse(dom_text)
    text = " ".join(" ".join(dom.text).split())

    for objective in data.objectives:
        assert objective.title in text
    krs = [kr for o in data.objectives for kr in o.key_results]
    for kr in krs:
        assert kr.title in text
    lines = dom.find("polyline", **{"class": "actual"})
    assert len(lines) == len(krs)
    for kr, line in zip(krs, lines, strict=True):
        n = len(data.details[kr.id].history)
        assert n == HISTORY_LEN
        assert line["data-points"] == str(n)
        assert len(re.findall(r"-?[\d.]+,-?[\d.]+", line["points"])) == n
    links = [a["href"] for a in dom.find("a", **{"class": "item-link"})]
    assert links == [i.url for kr in krs for i in data.details[kr.id].items]
    assert "stale: last good sync" in text and "failed" in text

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    desktop = ARTIFACTS / "report.png"
    phone = ARTIFACTS / "report-phone.png"
    for shot in (desktop, phone):
        shot.unlink(missing_ok=True)
    _out, err = run(f"--screenshot={desktop}", page.as_uri(), window="1280,2000")
    assert not _console_errors(err), _console_errors(err)
    _png_ok(desktop)
    _out, err = run(f"--screenshot={phone}", page.as_uri(), window="375,2400")
    _png_ok(phone)


@pytest.mark.parametrize("width", [375, 1280])
def test_layout_fits_the_viewport(run, tmp_path: Path, width: int) -> None:
    """No sideways scrolling on a phone or a laptop.

    Headless Chromium keeps its window at least 500px wide for ``--dump-dom``, so the report is
    laid out in an iframe of exactly ``width`` px and measured from the parent page.
    """
    report = render_html(make_report(hostile=True))
    wrapper = (
        "<!doctype html><html lang=en><body style='margin:0'>"
        f"<iframe id=f title=report style='width:{width}px;height:900px;border:0' "
        f'srcdoc="{html.escape(report, quote=True)}"></iframe>'
        "<script>addEventListener('load', () => {"
        " const d = document.getElementById('f').contentDocument.documentElement;"
        " document.body.dataset.scrollWidth = d.scrollWidth;"
        " document.body.dataset.clientWidth = d.clientWidth; });</script></body></html>"
    )
    page = tmp_path / "probe.html"
    page.write_text(wrapper, encoding="utf-8")
    dom_text, err = run("--dump-dom", page.as_uri(), window=f"{max(width, 800)},1000")
    assert not _console_errors(err), _console_errors(err)
    body = _parse(dom_text).find("body")[0]
    assert int(body["data-client-width"]) == width
    assert int(body["data-scroll-width"]) <= width
