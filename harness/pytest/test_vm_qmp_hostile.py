"""test_vm_qmp_hostile.py - `migcert vm`'s QMP monitor against a client
that misbehaves (issue 12), with QEMU 7.2 as the reference where it has one:

- an fd: URI names an fd handed over with getfd (SCM_RIGHTS), never an fd
  number: `migrate` / `migrate-incoming` with fd:N is refused with an error
  saying so, and the machine carries on untouched (today a number points the
  machine at its own event loop, its QMP listener or the client's socket);
- getfd and closefd answer as QEMU's do (no fd passed, a name starting with
  a digit, an unknown name), and a named fd is consumed by the migration;
- a bare string cut by a newline (`"oops` + newline) gets a JSON parse
  error, as from QEMU 7.2, and the connection goes on (it used to wedge);
- a client that never reads its replies is dropped once its queue passes
  the documented bound (1 MiB), with a line on stderr; others go on.

Rerun: /usr/bin/python3 -m pytest harness/pytest -k qmp_hostile
"""
import json
import socket
import time

import pytest

from conftest import wait_for_log
from qmp import QMPError
from test_vm_migration import (RAM, UNLIMITED, check_completed_pair, destination, set_bandwidth,  # noqa: F401
                               source, status, vms)

HANG = 60  # seconds: a guard against a hung server, never reached when it works


def raw_session(path):
    """A negotiated QMP socket that the test reads by hand."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(HANG)
    s.connect(str(path))
    f = s.makefile("rb")
    assert b"QMP" in f.readline()
    s.sendall(b'{"execute": "qmp_capabilities"}\n')
    assert json.loads(f.readline()) == {"return": {}}
    return s, f


def test_vm_qmp_hostile_fd_number_is_refused_and_nothing_changes(vms):
    """fd:0 .. fd:15 cover stdio, the epoll fd, the signalfd, the listener
    and the client's own socket: each is refused by name."""
    src = source(vms)
    dst = vms("dst", "--ram", RAM, "--incoming", "defer")
    for n in range(16):
        with pytest.raises(QMPError) as e:
            src.cmd("migrate", uri=f"fd:{n}")
        assert e.value.desc == (f"'migrate': uri 'fd:{n}': an fd must be handed over with "
                                "'getfd' and named (fd:NAME); fd numbers are refused")
        with pytest.raises(QMPError) as e:
            dst.cmd("migrate-incoming", uri=f"fd:{n}")
        assert "fd numbers are refused" in e.value.desc, e.value.desc
    for vm, st in ((src, (True, "running")), (dst, (False, "inmigrate"))):
        assert status(vm) == st
        assert vm.cmd("query-migrate").get("status", "none") == "none"
        assert vm.alive()
    # still reachable on a new connection: the listener is intact
    s, f = raw_session(src.sock)
    s.close()
    # and the destination still takes a real migration, by name
    a, b = socket.socketpair()
    try:
        dst.qmp.getfd("in", b.fileno())
        src.qmp.getfd("out", a.fileno())
    finally:
        a.close()
        b.close()
    dst.cmd("migrate-incoming", uri="fd:in")
    set_bandwidth(src, UNLIMITED)
    src.cmd("migrate", uri="fd:out")
    check_completed_pair(src, dst)


def test_vm_qmp_hostile_getfd_and_closefd_answer_as_qemu(vms):
    vm = vms("vm", "--ram", "16M")
    with pytest.raises(QMPError) as e:
        vm.cmd("getfd", fdname="x")
    assert e.value.desc == "No file descriptor supplied via SCM_RIGHTS"
    r, w = socket.socketpair()
    try:
        with pytest.raises(QMPError) as e:
            vm.qmp.getfd("3x", r.fileno())
        assert e.value.desc == "Parameter 'fdname' expects a name not starting with a digit"
        vm.qmp.getfd("x", r.fileno())
        vm.qmp.getfd("x", w.fileno())  # same name: replaces
    finally:
        r.close()
        w.close()
    vm.cmd("closefd", fdname="x")
    with pytest.raises(QMPError) as e:
        vm.cmd("closefd", fdname="x")
    assert e.value.desc == "File descriptor named 'x' not found"
    with pytest.raises(QMPError) as e:
        vm.cmd("migrate", uri="fd:x")
    assert e.value.desc == "File descriptor named 'x' has not been found"
    assert status(vm) == (True, "running")


def test_vm_qmp_hostile_named_fds_are_bounded(vms):
    vm = vms("vm", "--ram", "16M")
    r, w = socket.socketpair()
    try:
        for i in range(16):
            vm.qmp.getfd(f"f{i}", r.fileno())
        with pytest.raises(QMPError) as e:
            vm.qmp.getfd("one-more", r.fileno())
        assert "already holds 16 named fds (the limit)" in e.value.desc, e.value.desc
        vm.cmd("closefd", fdname="f0")
        vm.qmp.getfd("one-more", r.fileno())
    finally:
        r.close()
        w.close()


@pytest.mark.parametrize("text", [b'"oops\n', b'{"execute": "query-status\n'])
def test_vm_qmp_hostile_string_cut_by_a_newline_gets_a_parse_error(vms, text):
    vm = vms("vm", "--ram", "16M")
    s, f = raw_session(vm.sock)
    try:
        s.sendall(text)
        reply = json.loads(f.readline())
        assert reply["error"]["class"] == "GenericError", reply
        assert reply["error"]["desc"].startswith("JSON parse error, stray '"), reply
        s.sendall(b'{"execute": "query-status", "id": 7}\n')
        reply = json.loads(f.readline())
        assert reply["id"] == 7 and reply["return"]["status"] == "running", reply
    finally:
        s.close()


def test_vm_qmp_hostile_qemu_answers_a_cut_string_the_same_way(qemu_launcher):
    """The reference: QEMU 7.2 answers the same bytes with a GenericError
    "JSON parse error, stray ..." and goes on."""
    q = qemu_launcher("-S")
    q.qmp.close()  # QEMU serves one client at a time
    q.qmp = None
    s, f = raw_session(q.sock_path)
    try:
        s.sendall(b'"oops\n')
        reply = json.loads(f.readline())
        assert reply["error"]["class"] == "GenericError", reply
        assert reply["error"]["desc"].startswith("JSON parse error, stray '"), reply
        s.sendall(b'{"execute": "query-status", "id": 7}\n')
        assert json.loads(f.readline())["id"] == 7
    finally:
        s.close()


def test_vm_qmp_hostile_client_that_never_reads_is_dropped(vms):
    vm = vms("vm", "--ram", "16M")
    s, _f = raw_session(vm.sock)
    req = b'{"execute": "query-migrate-parameters"}\n' * 256
    sent, dropped = 0, False
    deadline = time.monotonic() + HANG
    try:
        while sent < (64 << 20) and time.monotonic() < deadline:
            try:
                s.sendall(req)
            except (BrokenPipeError, ConnectionResetError):
                dropped = True
                break
            sent += len(req)
    finally:
        s.close()
    assert dropped, f"still connected after {sent} bytes of requests never read"
    log = wait_for_log(vm, "migcert vm: QMP: client 1 dropped: ")
    assert "bytes of replies and events unread (limit 1048576)" in log, log
    # the others go on
    assert status(vm) == (True, "running")
