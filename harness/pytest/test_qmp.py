"""test_qmp.py - the suite's QMP client (qmp.py) against QEMU 7.2 and against
scripted servers that misbehave (silent, slow to appear, closing early).

No case depends on how fast the machine is: a server "slow to appear" is
started by the client's own first retry, the connect timeout runs on a clock
the test sets (FakeClock), and a command timeout is checked by the waits the
client asks of its socket.  Other timeouts here only guard against hangs,
except wait_event's in test_qmp_events_are_queued_and_waited_for, which must
expire: no second STOP can come.

Rerun: /usr/bin/python3 -m pytest harness/pytest -k qmp
"""
import json
import socket
import threading

import pytest

import qmp
from qmp import QMP, QMPConnectionError, QMPError, QMPTimeout

HANG = 60  # seconds: a guard against a hung helper thread, never reached


class FakeClock:
    """Stands for qmp.py's `time` module: monotonic() reads a clock that only
    sleep() moves (and an optional hook runs at each sleep)."""

    def __init__(self, on_sleep=None):
        self.now = 1000.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def monotonic(self):
        return self.now

    def sleep(self, s):
        self.sleeps += 1
        if self.on_sleep:
            self.on_sleep()
        self.now += s


@pytest.fixture(scope="module")
def qemu(sock_dir_module):
    from conftest import _Launcher
    launcher = _Launcher(sock_dir_module)
    try:
        yield launcher("-S", name="qmp")
    finally:
        launcher.close()


@pytest.fixture(scope="module")
def sock_dir_module():
    import shutil
    import tempfile
    from pathlib import Path
    d = tempfile.mkdtemp(prefix="mc-q-", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def test_qmp_greeting_and_command_return(qemu):
    assert qemu.qmp.greeting["version"]["qemu"]["major"] == 7
    st = qemu.qmp.execute("query-status")
    assert st["running"] is False and st["status"] == "prelaunch"


def test_qmp_error_reply_raises_with_desc(qemu):
    with pytest.raises(QMPError) as e:
        qemu.qmp.execute("no-such-command")
    assert e.value.error_class == "CommandNotFound"
    assert "no-such-command" in e.value.desc
    # The session still works after an error.
    assert qemu.qmp.execute("query-status")["status"] == "prelaunch"


def test_qmp_dashed_arguments_pass_as_dict(qemu):
    qemu.qmp.execute("migrate-set-parameters", {"downtime-limit": 123})
    assert qemu.qmp.execute("query-migrate-parameters")["downtime-limit"] == 123


def test_qmp_events_are_queued_and_waited_for(qemu):
    qemu.qmp.execute("cont")
    ev = qemu.qmp.wait_event("RESUME", timeout=10)
    assert ev["event"] == "RESUME" and "timestamp" in ev
    qemu.qmp.execute("stop")
    assert qemu.qmp.wait_event("STOP", timeout=10)["event"] == "STOP"
    with pytest.raises(QMPTimeout):
        qemu.qmp.wait_event("STOP", timeout=0.2)


def test_qmp_second_client_connects_to_same_server(qemu):
    # QEMU serves one QMP client per socket; a fresh connection after close works.
    qemu.connect(timeout=10)
    assert "status" in qemu.qmp.execute("query-status")


def _serve_once(path, script, ready):
    """A scripted QMP server: accepts one client and runs script(conn)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)
    ready.set()
    srv.settimeout(HANG)
    try:
        conn, _ = srv.accept()
        with conn:
            script(conn)
    except OSError:
        pass
    finally:
        srv.close()


def _start_server(path, script):
    ready = threading.Event()
    t = threading.Thread(target=_serve_once, args=(path, script, ready), daemon=True)
    t.start()
    return t, ready


def _greet_and_ack(conn):
    conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\n')
    f = conn.makefile("rb")
    req = json.loads(f.readline())
    assert req["execute"] == "qmp_capabilities"
    conn.sendall(json.dumps({"return": {}, "id": req.get("id")}).encode() + b"\n")
    return f


def test_qmp_connect_retries_until_server_appears(sock_dir, monkeypatch):
    """The server appears only after the client's first attempt failed: the
    client's first retry pause starts it (and waits until it listens)."""
    path = sock_dir / "late.qmp"
    started = []

    def start_server():
        if not started:
            t, ready = _start_server(path, lambda c: _greet_and_ack(c))
            assert ready.wait(HANG)
            started.append(t)
    clock = FakeClock(on_sleep=start_server)
    monkeypatch.setattr(qmp, "time", clock)
    with QMP.connect(path, timeout=HANG) as q:
        assert q.greeting == {"version": {}, "capabilities": []}
    assert started and clock.sleeps == 1  # failed once, then connected
    started[0].join(HANG)


def test_qmp_connect_gives_up_after_timeout(sock_dir, monkeypatch):
    """Nobody listens: connect retries until its timeout has passed on its
    clock, not before and at most one retry pause (0.02 s) after."""
    clock = FakeClock()
    monkeypatch.setattr(qmp, "time", clock)
    start = clock.now
    with pytest.raises(QMPConnectionError) as e:
        QMP.connect(sock_dir / "never.qmp", timeout=0.3)
    assert "within 0.3s" in str(e.value)
    assert 0.3 <= clock.now - start <= 0.3 + 0.02 + 1e-9, clock.now - start


class _WaitRecorder:
    """A socket that records every wait (settimeout) asked of it."""

    def __init__(self, sock):
        self.sock = sock
        self.waits = []

    def settimeout(self, t):
        self.waits.append(t)
        self.sock.settimeout(t)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def test_qmp_command_timeout_when_server_is_silent(sock_dir):
    """A command's own timeout (0.3 s), not the session's (an hour here),
    bounds the wait for its reply: every wait the client asks of its socket
    is at most 0.3 s, and it gives up with QMPTimeout (the server never
    answers, so the timeout expires whatever the host's speed)."""
    path = sock_dir / "silent.qmp"
    done = threading.Event()

    def script(conn):
        f = _greet_and_ack(conn)
        f.readline()          # the command; never answered
        done.wait(HANG)
    t, ready = _start_server(path, script)
    assert ready.wait(HANG)
    try:
        with QMP.connect(path, timeout=HANG, cmd_timeout=3600) as q:
            q._sock = rec = _WaitRecorder(q._sock)
            with pytest.raises(QMPTimeout) as e:
                q.execute("query-status", timeout=0.3)
            assert "within 0.3s" in str(e.value)
            assert rec.waits and max(rec.waits) <= 0.3, rec.waits
    finally:
        done.set()
    t.join(HANG)


def test_qmp_event_before_reply_is_kept(sock_dir):
    path = sock_dir / "ev.qmp"

    def script(conn):
        f = _greet_and_ack(conn)
        req = json.loads(f.readline())
        conn.sendall(b'{"event": "MIGRATION", "data": {"status": "setup"}, "timestamp": {}}\n'
                     + json.dumps({"return": {"ok": 1}, "id": req["id"]}).encode() + b"\n")
        f.readline()
    t, ready = _start_server(path, script)
    assert ready.wait(HANG)
    with QMP.connect(path, timeout=HANG) as q:
        assert q.execute("migrate", uri="x") == {"ok": 1}
        ev = q.wait_event("MIGRATION", timeout=HANG, match=lambda e: e["data"]["status"] == "setup")
        assert ev["data"] == {"status": "setup"}
    t.join(HANG)


def test_qmp_server_closing_is_a_connection_error(sock_dir):
    path = sock_dir / "close.qmp"

    def script(conn):
        f = _greet_and_ack(conn)
        f.readline()          # then close without answering
    t, ready = _start_server(path, script)
    assert ready.wait(HANG)
    with QMP.connect(path, timeout=HANG) as q:
        with pytest.raises(QMPConnectionError):
            q.execute("query-status", timeout=HANG)
    t.join(HANG)


def test_qmp_non_qmp_greeting_is_refused(sock_dir):
    path = sock_dir / "http.qmp"
    t, ready = _start_server(path, lambda c: c.sendall(b'{"hello": 1}\n'))
    assert ready.wait(HANG)
    with pytest.raises(QMPConnectionError):
        QMP.connect(path, timeout=HANG)
    t.join(HANG)
