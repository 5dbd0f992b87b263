"""conftest.py - shared fixtures for the pytest lane (harness/pytest).

Run with Debian's python: `/usr/bin/python3 -m pytest harness/pytest [-k PAT]`
from the top of the checkout.  Environment:
  MIGCERT_BUILD  build folder holding the `migcert` binary (default "build";
                 relative paths are taken from the top of the checkout)
  QEMU           the QEMU binary (default qemu-system-x86_64, installed by ci/deps)

Fixtures
  repo_root          Path of the checkout
  migcert_build      Path of the build folder
  migcert_bin        Path of build/migcert (fails the test if it is not built)
  run_migcert        run_migcert(*args, timeout=60, input=None) -> CompletedProcess
                     (text mode, stdout/stderr captured, never raises on exit status)
  sock_dir           a short per-test folder for unix sockets (sun_path is 108 bytes)
  qemu_launcher      qemu_launcher(*extra_args, name=None) -> QmpProcess (QEMU
                     started with QEMU_BASE_ARGS + extra, QMP connected as .qmp);
                     qemu_launcher.spawn(lambda sock: argv, name=None) starts any
                     QMP server (e.g. `migcert vm --qmp unix:SOCK`); every process
                     is killed at teardown, pass or fail (and dies with pytest)
  qemu_stream        session-wide: one QEMU 7.2 migration stream (QemuStream: .path,
                     .data bytes, .info = the source's final query-migrate reply)
  qemu_vmstate_dump  session-wide: Path of `qemu-system-x86_64 -M pc -dump-vmstate`
Helpers
  wait_for_log(proc, text, timeout=30) -> log: polls proc.log() (any object
                     with .log(), e.g. QmpProcess or test_vm_migration's Vm)
                     until `text` is in it; fails with the log at the deadline.
                     A process reports a status change on stderr after QMP
                     can already show it, so never assert on a log right after
                     a state change: wait for the line.
QEMU starts take ~0.1-0.3 s each; share the session fixtures rather than
starting a QEMU per test.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from qmp import QMP  # noqa: E402

REPO_ROOT = HERE.parent.parent
QEMU_BASE_ARGS = ["-M", "pc", "-m", "64", "-display", "none", "-nodefaults"]


def qemu_binary():
    return os.environ.get("QEMU", "qemu-system-x86_64")


def require_qemu():
    q = qemu_binary()
    if shutil.which(q) is None:
        pytest.fail(f"{q} not found: run `bash ci/deps` (installs qemu-system-x86)", pytrace=False)
    return q


def wait_for_log(proc, text, timeout=30.0, poll=0.01):
    """Return proc.log() once it contains `text`; fail with the log if it
    does not within `timeout` seconds (a hang guard, not a speed) or if the
    process is gone and its log still lacks it."""
    deadline = time.monotonic() + timeout
    while True:
        log = proc.log()
        if text in log:
            return log
        alive = getattr(proc, "alive", lambda: True)()
        if time.monotonic() >= deadline or not alive:
            log = proc.log()  # a process that just exited may have written it last
            if text in log:
                return log
            state = "still running" if alive else "exited"
            raise AssertionError(f"{text!r} not in the log after {timeout}s ({state}):\n{log}")
        time.sleep(poll)


def _die_with_parent():
    # If pytest itself is killed (lane timeout), its servers go too.
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class QmpProcess:
    """A server process with a QMP socket (QEMU, `migcert vm`): started,
    `qmp` connected (unless connect=False).  Output goes to `log_path`."""

    def __init__(self, args, sock_path, log_path, connect=True, timeout=20):
        self.args = [str(a) for a in args]
        self.sock_path = Path(sock_path)
        self.log_path = Path(log_path)
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        self.qmp = None
        if connect:
            try:
                self.connect(timeout)
            except BaseException:
                self.kill()
                raise

    def connect(self, timeout=20):
        """(Re)connect `qmp`; fails fast, with the log, if the process died."""
        if self.qmp is not None:
            self.qmp.close()
        try:
            self.qmp = QMP.connect(self.sock_path, timeout=timeout, alive=self.alive)
        except Exception as e:
            raise RuntimeError(f"{self.args[0]}: no QMP on {self.sock_path}: {e}\n"
                               f"--- log ---\n{self.log()[-2000:]}") from e
        return self.qmp

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def log(self):
        self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def quit(self, timeout=10):
        """Ask QEMU to quit over QMP, wait for it; kill it if it does not go."""
        if self.alive() and self.qmp is not None:
            try:
                self.qmp.execute("quit", timeout=timeout)
            except Exception:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        return self.proc.returncode

    def kill(self):
        """SIGKILL if still running, reap, close the QMP session and the log."""
        if self.qmp is not None:
            self.qmp.close()
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        if not self._log.closed:
            self._log.close()


QemuProcess = QmpProcess


class _Launcher:
    """launcher(*extra_qemu_args, name=None, base=True) starts a QEMU
    (QEMU_BASE_ARGS + extra + -qmp unix:<folder>/<name>.qmp);
    launcher.spawn(argv_fn, name=None) starts any QMP server: argv_fn(sock)
    returns its argv given the socket path.  All are killed by close()."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.procs = []

    def __call__(self, *extra, base=True, name=None):
        qemu = require_qemu()
        return self.spawn(lambda sock: [qemu] + (QEMU_BASE_ARGS if base else []) + list(extra) +
                          ["-qmp", f"unix:{sock},server=on,wait=off"], name=name or "qemu")

    def spawn(self, argv_fn, name=None, connect=True, timeout=20):
        name = f"{name or 'proc'}{len(self.procs)}"
        sock = self.folder / f"{name}.qmp"
        p = QmpProcess(argv_fn(sock), sock, self.folder / f"{name}.log", connect=connect,
                       timeout=timeout)
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            p.kill()


def _short_dir(prefix):
    # sun_path holds 108 bytes: pytest's tmp_path is too long for sockets.
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def migcert_build():
    b = Path(os.environ.get("MIGCERT_BUILD", "build"))
    return b if b.is_absolute() else REPO_ROOT / b


@pytest.fixture(scope="session")
def migcert_bin(migcert_build):
    b = migcert_build / "migcert"
    if not os.access(b, os.X_OK):
        pytest.fail(f"{b} is not built: run `make BUILD={migcert_build.name}`", pytrace=False)
    return b


@pytest.fixture(scope="session")
def run_migcert(migcert_bin):
    def run(*args, timeout=60, input=None, check=False):
        return subprocess.run([str(migcert_bin)] + [str(a) for a in args], input=input,
                              capture_output=True, text=True, timeout=timeout,
                              cwd=REPO_ROOT, check=check)
    return run


@pytest.fixture
def sock_dir():
    d = _short_dir("mc-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def qemu_launcher(sock_dir):
    launcher = _Launcher(sock_dir)
    yield launcher
    launcher.close()


class QemuStream:
    """A QEMU 7.2 migration stream: `path`, its `data` (bytes), the source's
    final query-migrate reply `info`, and its `machine` (resolved name)."""

    def __init__(self, path, info):
        self.path = Path(path)
        self.data = self.path.read_bytes()
        self.info = info


@pytest.fixture(scope="session")
def qemu_stream(tmp_path_factory):
    """Paused `-M pc -m 64` with no guest, migrated to a file with
    `migrate "exec:cat > F.part && mv F.part F"`; made once per session."""
    out = tmp_path_factory.mktemp("qemu-stream") / "pc.mig"
    part = out.with_name(out.name + ".part")
    folder = _short_dir("mc-s-")
    launcher = _Launcher(folder)
    try:
        q = launcher("-S", name="src")
        q.qmp.execute("migrate", uri=f"exec:cat > {part} && mv {part} {out}")
        info = q.qmp.wait_migration(timeout=60)
        assert info.get("status") == "completed", f"QEMU migration did not complete: {info}\n{q.log()}"
        q.quit()
    finally:
        launcher.close()
        shutil.rmtree(folder, ignore_errors=True)
    # `cat` may still be writing after QEMU reports completed: the file is
    # whole once it has its name (the rename follows cat's exit).
    deadline = time.monotonic() + 60  # a hang guard only
    while not out.exists():
        assert time.monotonic() < deadline, f"{out}: cat never finished ({part} left)"
        time.sleep(0.01)
    return QemuStream(out, info)


@pytest.fixture(scope="session")
def qemu_vmstate_dump(tmp_path_factory):
    """`qemu-system-x86_64 -M pc -dump-vmstate F`, made once per session."""
    qemu = require_qemu()
    out = tmp_path_factory.mktemp("qemu-dump") / "pc-7.2.json"
    r = subprocess.run([qemu, "-M", "pc", "-dump-vmstate", str(out), "-display", "none",
                        "-nodefaults"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and out.exists(), f"-dump-vmstate failed: {r.stderr}"
    return out
