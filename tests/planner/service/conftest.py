"""Fixtures for the service: an app on temporary folders (the committed tiny models as the models dir), a real
`optiplan serve` process on a free port, and a real redis-server in a temporary folder. Tests that need a binary
the machine lacks skip with the reason; CI installs them (.ci/run)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

MODELS = Path(__file__).resolve().parents[2] / "assets" / "models"
TOKEN = "test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process started with start_new_session, and everything in its group: a machine that dies."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@pytest.fixture()
def models_dir(tmp_path) -> Path:
    """A models dir holding a copy of the committed tiny target model as `tiny`."""
    root = tmp_path / "models"
    shutil.copytree(MODELS / "target", root / "tiny")
    return root


@pytest.fixture()
def make_client(tmp_path, models_dir):
    """A TestClient on a fresh app; keyword arguments go to Settings."""
    from fastapi.testclient import TestClient
    from optiplan.planner.service.app import create_app
    from optiplan.planner.service.paths import Roots
    from optiplan.planner.service.security import Settings

    clients = []

    def make(raise_server_exceptions: bool = True, **settings) -> TestClient:
        roots = Roots.create(tmp_path / "work", [models_dir])
        client = TestClient(create_app(Settings(roots=roots, **settings)), base_url="http://127.0.0.1:8080",
                            raise_server_exceptions=raise_server_exceptions)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture()
def client(make_client):
    return make_client()


class Server:
    """`optiplan serve` in its own process group, so a test can kill it the way a machine dies."""

    def __init__(self, workdir: Path, models: Path, token: str | None = None, extra: tuple[str, ...] = ()):
        self.workdir, self.models, self.token, self.extra = workdir, models, token, extra
        self.port, self.proc, self.log = free_port(), None, workdir.parent / f"serve-{id(self)}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        env = dict(os.environ)
        env.pop("OPTIPLAN_TOKEN", None)
        if self.token:
            env["OPTIPLAN_TOKEN"] = self.token
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "optiplan.planner.cli.main", "serve", "--port", str(self.port), "--workdir",
                 str(self.workdir), "--models-dir", str(self.models), "--log-level", "warning", *self.extra],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        import httpx

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "the server to answer /healthz")
        return self

    def http(self):
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            kill_group(self.proc)


@pytest.fixture()
def server_factory(tmp_path, models_dir):
    servers = []

    def make(token: str | None = None, extra: tuple[str, ...] = (), workdir: Path | None = None) -> Server:
        server = Server(workdir or tmp_path / "work", models_dir, token, extra)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.kill()


@pytest.fixture()
def redis_url(tmp_path):
    """A real redis-server on a free port in a temporary folder, killed afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; CI installs it)")
    pytest.importorskip("redis")
    pytest.importorskip("rq")
    port = free_port()
    folder = tmp_path / "redis"
    folder.mkdir()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    from redis import Redis

    url = f"redis://127.0.0.1:{port}/0"

    def up():
        try:
            return Redis.from_url(url).ping()
        except Exception:  # noqa: BLE001  not listening yet
            return False

    try:
        wait_for(up, 20, "redis-server to answer")
        yield url
    finally:
        kill_group(proc)


@pytest.fixture()
def token() -> str:
    return TOKEN


@pytest.fixture(name="wait_for")
def wait_for_fixture():
    return wait_for


@pytest.fixture(name="kill_group")
def kill_group_fixture():
    return kill_group
