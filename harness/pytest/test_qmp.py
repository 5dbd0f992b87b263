"""test_qmp.py - the suite's QMP client (qmp.py) against QEMU 7.2 and against
scripted servers that misbehave (silent, slow to appear, closing early).

Rerun: /usr/bin/python3 -m pytest harness/pytest -k qmp
"""
import json
import socket
import threading
import time

import pytest

from qmp import QMP, QMPConnectionError, QMPError, QMPTimeout


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
    srv.settimeout(10)
    try:
        conn, _ = srv.accept()
        with conn:
            script(conn)
    except OSError:
        pass
    finally:
        srv.close()


def _start_server(path, script, delay=0.0):
    ready = threading.Event()

    def run():
        time.sleep(delay)
        _serve_once(path, script, ready)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, ready


def _greet_and_ack(conn):
    conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\n')
    f = conn.makefile("rb")
    req = json.loads(f.readline())
    assert req["execute"] == "qmp_capabilities"
    conn.sendall(json.dumps({"return": {}, "id": req.get("id")}).encode() + b"\n")
    return f


def test_qmp_connect_retries_until_server_appears(sock_dir):
    path = sock_dir / "late.qmp"
    t, _ = _start_server(path, lambda c: _greet_and_ack(c), delay=0.3)
    with QMP.connect(path, timeout=5) as q:
        assert q.greeting == {"version": {}, "capabilities": []}
    t.join(5)


def test_qmp_connect_gives_up_after_timeout(sock_dir):
    start = time.monotonic()
    with pytest.raises(QMPConnectionError):
        QMP.connect(sock_dir / "never.qmp", timeout=0.3)
    assert time.monotonic() - start < 3


def test_qmp_command_timeout_when_server_is_silent(sock_dir):
    path = sock_dir / "silent.qmp"
    done = threading.Event()

    def script(conn):
        f = _greet_and_ack(conn)
        f.readline()          # the command; never answered
        done.wait(5)
    t, ready = _start_server(path, script)
    ready.wait(5)
    with QMP.connect(path, timeout=5) as q:
        start = time.monotonic()
        with pytest.raises(QMPTimeout):
            q.execute("query-status", timeout=0.3)
        assert time.monotonic() - start < 3
    done.set()
    t.join(5)


def test_qmp_event_before_reply_is_kept(sock_dir):
    path = sock_dir / "ev.qmp"

    def script(conn):
        f = _greet_and_ack(conn)
        req = json.loads(f.readline())
        conn.sendall(b'{"event": "MIGRATION", "data": {"status": "setup"}, "timestamp": {}}\n'
                     + json.dumps({"return": {"ok": 1}, "id": req["id"]}).encode() + b"\n")
        f.readline()
    t, ready = _start_server(path, script)
    ready.wait(5)
    with QMP.connect(path, timeout=5) as q:
        assert q.execute("migrate", uri="x") == {"ok": 1}
        ev = q.wait_event("MIGRATION", timeout=1, match=lambda e: e["data"]["status"] == "setup")
        assert ev["data"] == {"status": "setup"}
    t.join(5)


def test_qmp_server_closing_is_a_connection_error(sock_dir):
    path = sock_dir / "close.qmp"

    def script(conn):
        f = _greet_and_ack(conn)
        f.readline()          # then close without answering
    t, ready = _start_server(path, script)
    ready.wait(5)
    with QMP.connect(path, timeout=5) as q:
        with pytest.raises(QMPConnectionError):
            q.execute("query-status", timeout=5)
    t.join(5)


def test_qmp_non_qmp_greeting_is_refused(sock_dir):
    path = sock_dir / "http.qmp"
    t, ready = _start_server(path, lambda c: c.sendall(b'{"hello": 1}\n'))
    ready.wait(5)
    with pytest.raises(QMPConnectionError):
        QMP.connect(path, timeout=5)
    t.join(5)
