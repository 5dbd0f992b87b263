"""test_vm_ramshare.py - shared-memory localhost migration (capability
x-ram-share, docs/protocol-qemu-stream.md section 14) between two
`migcert vm` processes: the source's RAM is a memfd (--mem-share), its fd
goes over the unix socket with SCM_RIGHTS at setup, the destination maps it
and only device state travels.

What a user would notice, checked here:
- both sides 2.1-dev: x-ram-share is offered, negotiated and used: no page
  crosses the socket (query-migrate ram.normal 0, transferred < 1% of RAM)
  and the destination's RAM digest equals the source's; the source never
  runs again (cont and migrate refused, naming why); the destination runs
  and its guest writes land in the shared memory;
- an older destination (2.0) does not offer it: plain stream;
- a unix: source into an fd: destination with the capability off: plain
  stream; x-ram-share on a file: URI, without return-path, or from a
  machine without --mem-share is refused at migrate, naming why, and the
  source keeps running;
- cancelled (held at pre-switchover) or the destination killed: the source
  runs again with its RAM digest unchanged (the destination wrote no byte);
- faults on the fd, made by a proxy between the two that rewrites the
  SCM_RIGHTS data: the fd never arrives, arrives twice, is not a memfd, has
  the wrong size, or is sealed against writing.  Each fails the migration on
  both sides, the destination's error names what was wrong, and the source
  runs with its digest unchanged.

Rerun one case: /usr/bin/python3 -m pytest harness/pytest/test_vm_ramshare.py -k NAME
"""
import fcntl
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from qmp import QMPError, negotiate_capabilities, offered_capabilities  # noqa: E402
from test_vm_migration import (UNLIMITED, digest, enabled_caps, hold_migration,  # noqa: E402,F401
                               set_bandwidth, status, vms, wait_status)

SHARE = "x-ram-share"
RP = "return-path"
RAM = "64M"


def source(vms, *args, name="src", share=True):
    return vms(name, "--ram", RAM, "--fill", "random", "--seed", "7",
               *(["--mem-share"] if share else []), *args)


def destination(vms, *args, name="dst", pass_fds=()):
    return vms(name, "--ram", RAM, "--incoming", "defer", *args, pass_fds=pass_fds)


def start(vms, src, dst, uri=None):
    uri = uri or f"unix:{vms.dir}/mig.sock"
    dst.cmd("migrate-incoming", uri=uri)
    set_bandwidth(src, UNLIMITED)
    src.cmd("migrate", uri=uri)


def completed(src, dst):
    info = src.qmp.wait_migration(timeout=120)
    assert info["status"] == "completed", f"{info}\n{src.log()}\n{dst.log()}"
    dinfo = wait_status(dst, ("completed", "failed"), timeout=30)
    assert dinfo["status"] == "completed", f"{dinfo}\n{dst.log()}"
    assert status(src) == (False, "postmigrate")
    assert digest(dst) == digest(src)
    return info


def shared(info):
    """No page crossed the socket."""
    ram = info["ram"]
    return ram["normal"] == 0 and ram["transferred"] < ram["total"] // 100


def test_vm_ramshare_both_current_releases_share(vms):
    dst = destination(vms, "-S", "--dirty-rate", "2000")  # stays paused: digests compare
    src = source(vms, "--dirty-rate", "2000")
    assert SHARE in offered_capabilities(src) and SHARE in offered_capabilities(dst)
    assert negotiate_capabilities(src, dst, wanted=[SHARE, RP]) == [RP, SHARE]
    start(vms, src, dst)
    info = completed(src, dst)
    assert shared(info), info
    assert status(dst) == (False, "paused")
    # The source gave its RAM away: it never runs again.
    for cmd, args in (("cont", {}), ("migrate", {"uri": f"unix:{vms.dir}/again.sock"})):
        with pytest.raises(QMPError) as e:
            src.cmd(cmd, **args)
        assert "handed to the destination" in e.value.desc, e.value.desc
    assert status(src) == (False, "postmigrate")
    # One memory: the destination's guest writes it, and the stopped
    # source's view of it (its digest) changes.
    before = digest(src)
    dst.cmd("cont")
    assert status(dst) == (True, "running")
    deadline = time.monotonic() + 30
    while digest(src) == before:
        assert time.monotonic() < deadline, "the destination's writes never showed"
        time.sleep(0.05)


def test_vm_ramshare_older_destination_leaves_it_off(vms):
    dst = destination(vms, "--release", "2.0")
    src = source(vms, "--machine", "mc-2.0")
    assert SHARE not in offered_capabilities(dst)
    src.cmd("migrate-set-capabilities", capabilities=[{"capability": SHARE, "state": True}])
    assert negotiate_capabilities(src, dst, wanted=[SHARE, RP]) == [RP]
    assert SHARE not in enabled_caps(src)
    start(vms, src, dst)
    info = completed(src, dst)
    assert not shared(info) and info["ram"]["normal"] > 0, info


def test_vm_ramshare_unix_source_fd_destination_plain_stream(vms):
    """An fd: destination gets the plain stream with the capability off."""
    path = vms.dir / "mig.sock"
    lsn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsn.bind(str(path))
    lsn.listen(1)
    src = source(vms)
    set_bandwidth(src, UNLIMITED)
    src.cmd("migrate", uri=f"unix:{path}")
    conn, _ = lsn.accept()
    lsn.close()
    try:
        dst = destination(vms)
        dst.qmp.getfd("mig", conn.fileno())  # over QMP an fd is named (getfd)
        dst.cmd("migrate-incoming", uri="fd:mig")
    finally:
        conn.close()
    info = completed(src, dst)
    assert not shared(info) and info["ram"]["normal"] > 0, info


@pytest.mark.parametrize("share,caps,uri,words", [
    (True, [SHARE], "file:{dir}/vm.mig", "a unix socket that can pass fds"),
    (True, [SHARE], "unix:{dir}/mig.sock", "capability 'return-path' too"),
    (False, [SHARE, RP], "unix:{dir}/mig.sock", "--mem-share"),
], ids=["file", "no-return-path", "private-ram"])
def test_vm_ramshare_refused_at_migrate(vms, share, caps, uri, words):
    src = source(vms, share=share)
    dst = destination(vms)
    negotiate_capabilities(src, dst, wanted=caps)
    assert SHARE in enabled_caps(src)
    dst.cmd("migrate-incoming", uri=f"unix:{vms.dir}/mig.sock")
    before = digest(src)
    with pytest.raises(QMPError) as e:
        src.cmd("migrate", uri=uri.format(dir=vms.dir))
    assert "'x-ram-share'" in e.value.desc and words in e.value.desc, e.value.desc
    assert status(src) == (True, "running")
    assert digest(src) == before


def held(vms, uri=None):
    """A sharing migration stopped at pre-switchover: the fd went over and
    the destination has it (query-migrate on the destination shows the RAM
    section's setup loaded), but the migration cannot complete.  Guests idle,
    so the source's digest is a fixed point to compare with."""
    dst = destination(vms)
    src = source(vms)
    assert negotiate_capabilities(src, dst, wanted=[SHARE, RP]) == [RP, SHARE]
    hold_migration(src)
    before = digest(src)
    start(vms, src, dst, uri)
    assert wait_status(src, ("pre-switchover",), timeout=30)["status"] == "pre-switchover"
    return src, dst, before


def check_source_intact(src, before):
    assert status(src) == (True, "running")
    assert digest(src) == before


def test_vm_ramshare_cancel_source_keeps_its_memory(vms):
    src, dst, before = held(vms)
    src.cmd("migrate_cancel")
    assert wait_status(src, ("cancelled",), timeout=30)["status"] == "cancelled"
    check_source_intact(src, before)
    dinfo = wait_status(dst, ("failed", "cancelled"), timeout=20)
    assert status(dst) == (False, "inmigrate"), dinfo
    # and it can share again into a fresh destination
    dst2 = destination(vms, name="dst2")
    assert negotiate_capabilities(src, dst2, wanted=[SHARE, RP]) == [RP, SHARE]
    start(vms, src, dst2, f"unix:{vms.dir}/mig2.sock")
    assert shared(completed(src, dst2))


def test_vm_ramshare_destination_killed_source_keeps_its_memory(vms):
    src, dst, before = held(vms)
    dst.kill()
    src.cmd("migrate-continue", state="pre-switchover")
    info = wait_status(src, ("failed",), timeout=30)
    assert info.get("error-desc"), info
    check_source_intact(src, before)


# ---- faults on the fd, by a proxy that rewrites SCM_RIGHTS ----

def memfd(size, seal=False):
    fd = os.memfd_create("fake-ram", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    if seal:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)
    return fd


class FdProxy:
    """Listens at `path`, connects to `target`, relays bytes both ways; every
    fd the source passes goes through mutate(fds) -> the fds to pass on
    (the proxy closes what it received)."""

    def __init__(self, path, target, mutate):
        self.mutate = mutate
        self.lsn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsn.bind(str(path))
        self.lsn.listen(1)
        self.target = target
        self.seen_fds = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        a, _ = self.lsn.accept()
        b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        b.connect(str(self.target))
        back = threading.Thread(target=self.pipe_back, args=(b, a), daemon=True)
        back.start()
        try:
            while True:
                data, fds, _flags, _addr = socket.recv_fds(a, 1 << 16, 8)
                if not data:
                    break
                if fds:
                    self.seen_fds += len(fds)
                    out = self.mutate(fds)
                    if len(data) > 1:
                        b.sendall(data[:-1])
                    # the fds rode on the last byte: so do their replacements
                    if out:
                        socket.send_fds(b, [data[-1:]], out)
                    else:
                        b.sendall(data[-1:])
                    for fd in set(fds) | set(out):
                        os.close(fd)
                else:
                    b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            back.join(10)
            a.close()
            b.close()
            self.lsn.close()

    @staticmethod
    def pipe_back(b, a):
        try:
            while True:
                d = b.recv(1 << 16)
                if not d:
                    break
                a.sendall(d)
        except OSError:
            pass
        try:
            a.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def not_memfd(tmp):
    def mutate(fds):
        path = tmp / "plain-file"
        path.write_bytes(b"\0" * 4096)
        fd = os.open(path, os.O_RDWR)
        os.ftruncate(fd, 64 << 20)
        return [fd]
    return mutate


FAULTS = {
    "never-arrives": (lambda tmp: lambda fds: [], "never arrived|no fd came"),
    "arrives-twice": (lambda tmp: lambda fds: [os.dup(fds[0]), os.dup(fds[0])],
                      "more than one fd"),
    "not-a-memfd": (not_memfd, "is not a memfd"),
    "wrong-size": (lambda tmp: lambda fds: [memfd(32 << 20)], "has 0x2000000 bytes"),
    "sealed": (lambda tmp: lambda fds: [memfd(64 << 20, seal=True)],
               "sealed against writing"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_vm_ramshare_fd_fault_fails_cleanly(vms, fault):
    make, words = FAULTS[fault]
    dst = destination(vms)
    src = source(vms)
    assert negotiate_capabilities(src, dst, wanted=[SHARE, RP]) == [RP, SHARE]
    real = vms.dir / "real.sock"
    proxy = FdProxy(vms.dir / "proxy.sock", real, make(vms.dir))
    before = digest(src)
    dst.cmd("migrate-incoming", uri=f"unix:{real}")
    set_bandwidth(src, UNLIMITED)
    src.cmd("migrate", uri=f"unix:{vms.dir}/proxy.sock")
    dinfo = wait_status(dst, ("failed", "completed"), timeout=30)
    assert dinfo["status"] == "failed", f"{dinfo}\n{dst.log()}"
    assert re.search(words, dinfo.get("error-desc", "")), dinfo
    assert "x-ram-share" in dinfo["error-desc"] and "pc.ram" in dinfo["error-desc"], dinfo
    assert status(dst) == (False, "inmigrate")
    info = wait_status(src, ("failed",), timeout=30)
    assert info.get("error-desc"), info
    check_source_intact(src, before)
    assert proxy.seen_fds == 1
