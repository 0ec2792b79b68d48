"""The Dockerfile, checked without a Docker engine: what it says, and that what it runs works.

The image runs ``okrsync daemon --listen 0.0.0.0:8080`` with ``OKRSYNC_CONFIG=/config/okrs.yaml``
and checks itself with a python/urllib one-liner against ``/healthz``. Here the same commands run
from this virtualenv, on 127.0.0.1 and a free port instead of 0.0.0.0:8080.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, clean_env, write_memory_config

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        result.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continuation"
    return result


def only(name: str) -> str:
    found = [args for word, args in instructions() if word == name]
    assert found, f"no {name} in the Dockerfile"
    return found[-1]


def exec_form(args: str) -> list[str]:
    """``["a", "b"]`` (exec form) -> list; shell form is refused (signals would go to /bin/sh)."""
    parsed = json.loads(args)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed)
    return parsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def console_script() -> str:
    """The ``okrsync`` console script of the interpreter running the tests."""
    beside = Path(sys.executable).with_name("okrsync")
    found = str(beside) if beside.exists() else shutil.which("okrsync")
    if not found:
        pytest.skip("the okrsync console script is not installed (pip install -e .)")
    return found


# -- what the Dockerfile says ------------------------------------------------------------------


def test_slim_python_311_base() -> None:
    assert only("FROM") == "python:3.11-slim"


def test_runs_as_a_non_root_user() -> None:
    user = only("USER")
    assert user.split(":")[0] not in ("root", "0", "")
    assert user == "okrsync"
    words = [word for word, _ in instructions()]
    run_after_user = [i for i, w in enumerate(words) if w == "RUN" and i > words.index("USER")]
    assert not run_after_user, "everything that needs root happens before USER"


def test_installs_the_project_without_a_pip_cache() -> None:
    runs = " ".join(args for word, args in instructions() if word == "RUN")
    assert "pip install --no-cache-dir ." in runs
    copied = " ".join(args for word, args in instructions() if word == "COPY")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    for needed in ["pyproject.toml", project["project"]["readme"], *packages]:
        assert needed in copied.split(), f"{needed} is not copied into the build"
        assert (REPO / needed).exists()


def test_config_path_store_volume_and_port() -> None:
    env = " ".join(args for word, args in instructions() if word == "ENV")
    assert "OKRSYNC_CONFIG=/config/okrs.yaml" in env.split()
    assert exec_form(only("VOLUME")) == ["/data"]
    assert only("EXPOSE") == "8080"
    assert "sqlite:////data/okrsync.db" in DOCKERFILE.read_text(encoding="utf-8"), "the store URL is documented"


def test_cmd_runs_the_daemon_on_every_interface() -> None:
    cmd = exec_form(only("CMD"))
    assert cmd[:2] == ["okrsync", "daemon"]
    assert cmd[cmd.index("--listen") + 1] == "0.0.0.0:8080"
    assert "-c" not in cmd, "the config comes from OKRSYNC_CONFIG"


def healthcheck_command() -> list[str]:
    args = only("HEALTHCHECK")
    assert " CMD " in f" {args} "
    options, _, command = args.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    return exec_form(command)


def test_healthcheck_asks_healthz_with_python_not_curl() -> None:
    command = healthcheck_command()
    assert command[0] == "python"
    assert "curl" not in " ".join(command) and "wget" not in " ".join(command)
    assert "urllib" in command[-1]
    assert "http://127.0.0.1:8080/healthz" in command[-1]


def test_dockerignore_keeps_local_state_out_of_the_build() -> None:
    patterns = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", "tests/artifacts", "bench/out", "*.db"} <= patterns


# -- what it runs works from a virtualenv -----------------------------------------------------


def test_entry_commands_answer_help(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    for argv in ([console_script(), "daemon", "--help"], [sys.executable, "-m", "syncer", "daemon", "--help"]):
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("usage: okrsync daemon")
        assert "--listen" in proc.stdout and "--interval" in proc.stdout


def test_the_image_command_and_its_healthcheck_work_together(tmp_path: Path) -> None:
    """CMD (config from OKRSYNC_CONFIG, as in the image) on a loopback port; HEALTHCHECK against it."""
    env_files = write_memory_config(tmp_path)
    port = free_port()
    cmd = exec_form(only("CMD"))
    cmd[0] = console_script()
    cmd[cmd.index("--listen") + 1] = f"127.0.0.1:{port}"  # tests stay on loopback
    check = healthcheck_command()
    check[0] = sys.executable
    check[-1] = check[-1].replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    env = clean_env(tmp_path, OKRSYNC_CONFIG=str(env_files.config))

    def healthcheck() -> int:
        proc = subprocess.run(check, env=env, capture_output=True, timeout=30, check=False)
        return proc.returncode

    assert healthcheck() != 0, "nothing listens yet: the check must fail"
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=log)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
        assert healthcheck() == 0
        assert env_files.store.exists(), "the store URL in the config was used (relative to the config)"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_shell_words_of_the_cmd_are_what_a_user_would_type() -> None:
    assert shlex.join(exec_form(only("CMD"))) == "okrsync daemon --listen 0.0.0.0:8080"
