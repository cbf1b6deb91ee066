"""Shared pytest harness: starts the real `vcenter-sim` binary on an ephemeral loopback
port with its own data directory, and connects pyvmomi to it."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def sim_binary() -> Path:
    """The simulator binary under test: $VCSIM_BIN, else the release build, else debug."""
    env = os.environ.get("VCSIM_BIN")
    if env:
        return Path(env)
    for profile in ("release", "debug"):
        p = REPO / "target" / profile / "vcenter-sim"
        if p.exists():
            return p
    raise RuntimeError("vcenter-sim is not built: run `cargo build -p vcenter-sim` first")


class SimProcess:
    """One simulator process. Restartable on the same data directory."""

    def __init__(self, data_dir: Path, extra_args=()):
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.proc = None
        self.info = None
        self.port = 0

    def start(self, timeout=30.0):
        info_file = self.data_dir / "sim-info.json"
        if info_file.exists():
            info_file.unlink()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "sim.log", "ab")
        # Reuse the port across restarts so clients keep the same URL.
        listen = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(sim_binary()), "--listen", listen, "--data-dir", str(self.data_dir),
             "--info-file", str(info_file), *self.extra_args],
            stdout=log, stderr=log,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if info_file.exists() and info_file.stat().st_size > 0:
                self.info = json.loads(info_file.read_text())
                self.port = int(self.info["url"].split(":")[2].split("/")[0])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"vcenter-sim exited with {self.proc.returncode}: "
                                   + (self.data_dir / "sim.log").read_text()[-2000:])
            time.sleep(0.02)  # allow-sleep: poll interval of a deadline loop
        raise RuntimeError("vcenter-sim did not start in time")

    def stop(self, kill=False):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None

    @property
    def host(self):
        return "127.0.0.1"

    @property
    def url(self):
        return self.info["url"]

    def connect(self, **kw):
        from pyVim.connect import SmartConnect
        args = dict(host=self.host, port=self.port, user=self.info["username"],
                    pwd=self.info["password"])
        if "thumbprint" not in kw and "sslContext" not in kw:
            args["disableSslCertValidation"] = True
        args.update(kw)
        return SmartConnect(**args)


@pytest.fixture
def sim_factory():
    """Builds simulators in private temp dirs; all are stopped and removed afterwards."""
    made = []
    dirs = []

    def make(extra_args=()):
        d = Path(tempfile.mkdtemp(prefix="vcsim-test-"))
        dirs.append(d)
        s = SimProcess(d, extra_args)
        made.append(s)
        return s.start()

    yield make
    for s in made:
        s.stop(kill=True)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def sim(sim_factory):
    return sim_factory()


@pytest.fixture
def si(sim):
    from pyVim.connect import Disconnect
    conn = sim.connect()
    yield conn
    try:
        Disconnect(conn)
    except Exception:
        pass
