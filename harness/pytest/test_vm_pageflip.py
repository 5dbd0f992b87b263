"""test_vm_pageflip.py - localhost migration with page flipping
(docs/protocol-qemu-stream.md section 14)
between two `migcert vm` processes: capability x-page-flip negotiated over
QMP (qmp.negotiate_capabilities), the stream on the unix socket carrying
page addresses only while the pages go through a pipe passed with
SCM_RIGHTS.

What a user would notice, checked here:
- both sides 2.1-dev: x-page-flip is offered, negotiated, used (the socket's
  RAM bytes, query-migrate ram.transferred, stay under 1% of RAM while every
  page arrives: equal RAM digests), also into an `fd:` destination that is a
  unix socket;
- a destination of an older release (2.0) does not offer it: negotiation
  leaves it off and the migration runs as a plain stream;
- a `unix:` source with an `fd:` destination works with flipping off;
- a `file:` migration with x-page-flip set is refused at `migrate`, naming
  the capability and the transport; the source keeps running;
- a flipping migration cancelled, or whose destination dies, leaves the
  source running, and it can flip again into a fresh destination;
- an idle guest migrates flipped only when x-page-flip was negotiated
  (offered by both sides but not asked for: a plain stream).  Throughput,
  1 GiB plain against flipped, is `make bench`'s, not a test's.

Rerun one case: /usr/bin/python3 -m pytest harness/pytest/test_vm_pageflip.py -k NAME
"""
import os
import socket
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from qmp import QMPError, negotiate_capabilities, offered_capabilities  # noqa: E402
from conftest import wait_for_log  # noqa: E402
from test_vm_migration import (UNLIMITED, digest, enabled_caps, hold_migration,  # noqa: E402,F401
                               set_bandwidth, status, vms, wait_digest_changes, wait_ram,
                               wait_status)

FLIP = "x-page-flip"


def vm(vms, name, *args, ram="64M", pass_fds=()):
    return vms(name, "--ram", ram, *args, pass_fds=pass_fds)


def source(vms, *args, ram="64M", dirty=2000, pass_fds=()):
    return vm(vms, "src", "--fill", "random", "--seed", "7", "--dirty-rate", str(dirty), *args,
              ram=ram, pass_fds=pass_fds)


def completed(src, dst, timeout=120):
    info = src.qmp.wait_migration(timeout=timeout)
    assert info["status"] == "completed", f"{info}\n{src.log()}\n{dst.log()}"
    dinfo = wait_status(dst, ("completed", "failed"), timeout=30)
    assert dinfo["status"] == "completed", f"{dinfo}\n{dst.log()}"
    assert status(src) == (False, "postmigrate")
    assert status(dst) == (True, "running")
    assert digest(dst) == digest(src)
    return info


SCHED_OTHER, SCHED_BATCH = 0, 3


# The policy a `migcert vm` started here inherits (SCHED_OTHER unless the
# tests run under chrt): a flipping source changes only SCHED_OTHER.
INHERITED = os.sched_getscheduler(0)


def policy_while_flipping():
    """SCHED_BATCH, unless the source inherited another policy or this
    system refuses SCHED_BATCH (a seccomp filter): then the inherited one."""
    if INHERITED != SCHED_OTHER:
        return INHERITED
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        return SCHED_BATCH
    except OSError:
        return SCHED_OTHER


def policy(proc):
    """The scheduling policy of the process's (only) thread: field 41 of
    /proc/PID/stat.  A flipping source runs SCHED_BATCH while its local
    transport is open, so that on a CPU shared with the destination it does
    not preempt the destination after every read (transport-local.c)."""
    return int(Path(f"/proc/{proc.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[38])


def flipped(info):
    """Pages went through the pipe: the stream's RAM bytes are < 1% of RAM."""
    ram = info["ram"]
    return ram["normal"] > 0 and ram["transferred"] < ram["total"] // 100


def test_vm_pageflip_both_current_releases_flip(vms):
    dst = vm(vms, "dst", "--incoming", "defer")
    src = source(vms)
    assert FLIP in offered_capabilities(src) and FLIP in offered_capabilities(dst)
    assert negotiate_capabilities(src, dst, wanted=[FLIP, "events"]) == ["events", FLIP]
    assert FLIP in enabled_caps(src) and FLIP in enabled_caps(dst)
    uri = f"unix:{vms.dir}/mig.sock"
    dst.cmd("migrate-incoming", uri=uri)
    set_bandwidth(src, UNLIMITED)
    wait_digest_changes(src)  # the guest dirties pages first: several passes flip
    src.cmd("migrate", uri=uri)
    info = completed(src, dst)
    assert flipped(info), info
    assert info["ram"]["normal"] >= (64 << 20) // 4096 - info["ram"]["duplicate"], info
    assert policy(src) == INHERITED  # as before the migration


def test_vm_pageflip_older_destination_leaves_it_off(vms):
    """A 2.0 destination does not know x-page-flip: the intersection leaves
    it off; the 2.1-dev source (running mc-2.0) sends a plain stream."""
    dst = vm(vms, "dst", "--release", "2.0", "--incoming", "defer")
    src = source(vms, "--machine", "mc-2.0")
    assert FLIP not in offered_capabilities(dst)
    src.cmd("migrate-set-capabilities", capabilities=[{"capability": FLIP, "state": True}])
    assert negotiate_capabilities(src, dst, wanted=[FLIP]) == []
    assert FLIP not in enabled_caps(src)
    uri = f"unix:{vms.dir}/mig.sock"
    dst.cmd("migrate-incoming", uri=uri)
    set_bandwidth(src, UNLIMITED)
    src.cmd("migrate", uri=uri)
    info = completed(src, dst)
    assert not flipped(info), info
    assert info["ram"]["transferred"] >= info["ram"]["normal-bytes"] > 0


def unix_to_fd(vms, flip):
    """A unix: source; the destination gets the accepted connection over QMP
    (getfd) as fd:NAME."""
    path = vms.dir / "mig.sock"
    lsn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsn.bind(str(path))
    lsn.listen(1)
    src = source(vms)
    if flip:
        src.cmd("migrate-set-capabilities", capabilities=[{"capability": FLIP, "state": True}])
    set_bandwidth(src, UNLIMITED)
    src.cmd("migrate", uri=f"unix:{path}")
    conn, _ = lsn.accept()
    lsn.close()
    try:
        dst = vm(vms, "dst", "--incoming", "defer")
        if flip:
            dst.cmd("migrate-set-capabilities",
                    capabilities=[{"capability": FLIP, "state": True}])
        dst.qmp.getfd("mig", conn.fileno())
        dst.cmd("migrate-incoming", uri="fd:mig")
    finally:
        conn.close()
    return completed(src, dst)


def test_vm_pageflip_unix_source_fd_destination_flipping_off(vms):
    info = unix_to_fd(vms, flip=False)
    assert not flipped(info), info


def test_vm_pageflip_unix_source_fd_destination_flipping_on(vms):
    """fd: is a unix socket here, so it can take the pipe too."""
    info = unix_to_fd(vms, flip=True)
    assert flipped(info), info


def test_vm_pageflip_refused_on_file(vms):
    src = source(vms)
    src.cmd("migrate-set-capabilities", capabilities=[{"capability": FLIP, "state": True}])
    with pytest.raises(QMPError) as e:
        src.cmd("migrate", uri=f"file:{vms.dir}/vm.mig")
    assert "'x-page-flip'" in e.value.desc and "'file' transport" in e.value.desc, e.value.desc
    assert status(src) == (True, "running")


def idle_migration(vms, tag, flip):
    """An idle random guest between two 2.1-dev processes over unix:, at
    full speed, flipping only when asked: completes with equal digests, and
    the stream carries the pages (flip off) or only their addresses (on)."""
    dst = vm(vms, f"dst-{tag}", "--incoming", "defer")
    src = vm(vms, f"src-{tag}", "--fill", "random", "--seed", "7")
    assert FLIP in offered_capabilities(src) and FLIP in offered_capabilities(dst)
    negotiate_capabilities(src, dst, wanted=[FLIP] if flip else [])
    uri = f"unix:{vms.dir}/{tag}.sock"
    dst.cmd("migrate-incoming", uri=uri)
    set_bandwidth(src, UNLIMITED)
    src.cmd("migrate", uri=uri)
    info = completed(src, dst)
    assert flipped(info) == flip, info
    src.quit()
    dst.quit()


def test_vm_pageflip_only_when_negotiated(vms):
    """Both sides offer x-page-flip: left out of the negotiation, the pages
    go in the stream; asked for, through the pipe; either way every page
    arrives (equal RAM digests).  64 MiB, as every other case here: the
    first pass alone fills the page pipe (1 MiB at most) 64 times or more,
    so a larger guest takes no other path, only longer.  How fast 1 GiB
    goes, plain against flipped, side by side and verified by digest, is
    `make bench`'s (harness/bench/bench.py, transports unix and local)."""
    idle_migration(vms, "plain", flip=False)
    idle_migration(vms, "flip", flip=True)


def flipping_forever(vms):
    """A flipping migration that cannot complete before the test interferes,
    by construction rather than by timing: pause-before-switchover stops it
    short of completion (hold_migration); meanwhile it stays in pre-copy, as
    the rate limit (flipped pages count against it) makes the first pass of
    64 MiB take 8 s at least and the guest dirties 80 MB/s (ten times the
    bandwidth) so no later pass converges.  Returned once pages have flown
    through the pipe (query-migrate's own count)."""
    dst = vm(vms, "dst", "--incoming", "defer")
    src = source(vms, dirty=20000)
    assert negotiate_capabilities(src, dst, wanted=[FLIP]) == [FLIP]
    hold_migration(src)
    uri = f"unix:{vms.dir}/mig.sock"
    dst.cmd("migrate-incoming", uri=uri)
    set_bandwidth(src, 8 << 20)
    src.cmd("migrate-set-parameters", {"downtime-limit": 0})
    src.cmd("migrate", uri=uri)
    wait_status(src, ("active",), timeout=30)
    info = wait_ram(src, lambda ram: ram["normal"] > 0)
    assert info["status"] == "active", info
    assert info["ram"]["transferred"] < info["ram"]["total"] // 100, info  # flipping
    assert policy(src) == policy_while_flipping() and policy(dst) == INHERITED
    return src, dst


def again_with_flipping(vms, src, name):
    """The source is intact: flipping again into a fresh destination
    completes with equal digests."""
    dst = vm(vms, name, "--incoming", "defer")
    # negotiation also turns off a pause-before-switchover set for the first
    assert negotiate_capabilities(src, dst, wanted=[FLIP]) == [FLIP]
    uri = f"unix:{vms.dir}/{name}.sock"
    dst.cmd("migrate-incoming", uri=uri)
    set_bandwidth(src, UNLIMITED)
    src.cmd("migrate-set-parameters", {"downtime-limit": 300})
    src.cmd("migrate", uri=uri)
    assert flipped(completed(src, dst))


def test_vm_pageflip_destination_killed_source_keeps_running(vms):
    src, dst = flipping_forever(vms)
    dst.kill()
    info = wait_status(src, ("failed",), timeout=20)
    assert info.get("error-desc"), info
    assert status(src) == (True, "running")
    wait_for_log(src, f"outgoing migration failed: {info['error-desc']}")
    wait_digest_changes(src)  # the guest is live
    assert policy(src) == INHERITED  # the failed migration gave it back
    again_with_flipping(vms, src, "dst2")


def test_vm_pageflip_cancel_source_keeps_running(vms):
    src, dst = flipping_forever(vms)
    src.cmd("migrate_cancel")
    assert wait_status(src, ("cancelled",), timeout=30)["status"] == "cancelled"
    assert status(src) == (True, "running")
    wait_for_log(src, "outgoing migration cancelled")
    assert policy(src) == INHERITED
    dinfo = wait_status(dst, ("failed", "cancelled"), timeout=20)
    assert dinfo.get("error-desc"), dinfo
    assert status(dst) == (False, "inmigrate")
    wait_for_log(dst, f"incoming migration failed: {dinfo['error-desc']}"
                 if dinfo["status"] == "failed" else "incoming migration cancelled")
    again_with_flipping(vms, src, "dst2")


FIU_PRELOAD = "/usr/lib/fiu/fiu_run_preload.so"  # libfiu0 (ci/deps: fiu-utils)


@pytest.mark.parametrize("point,dst_says", [
    # the pipe's write end closes half-way into the first page: the
    # destination reads 2048 bytes, then the end of the pipe
    ("mig/transport/pipe-break", "the pipe closed after 2048 of 4096 bytes of page 1"),
    # half of the first page goes in, its record goes out, nothing more goes
    # in: the destination finds half a page where a whole one must be
    ("mig/transport/splice-short", "the pipe holds 2048 of the 4096 bytes of page 1"),
])
def test_vm_pageflip_pipe_fault_fails_both_sides(vms, monkeypatch, point, dst_says):
    """The page pipe breaks mid-page, or splices short (stream-damage fault
    points of the source, armed from its start with libfiu's preload, so
    they fire on the first flipped page: impl/common/faults.h): the
    destination fails naming the page and what the pipe held, the source
    (return-path on) fails with the destination's word, and keeps running
    with its RAM unchanged."""
    if not os.path.exists(FIU_PRELOAD):
        pytest.fail(f"{FIU_PRELOAD} missing: run `bash ci/deps`", pytrace=False)
    dst = vm(vms, "dst", "--incoming", "defer")
    monkeypatch.setenv("LD_PRELOAD", FIU_PRELOAD)
    monkeypatch.setenv("FIU_ENABLE", f"enable name={point}")
    monkeypatch.setenv("FIU_CTRL_FIFO", "")
    src = source(vms, dirty=0)  # running, idle: its RAM stays as it is
    for name in ("LD_PRELOAD", "FIU_ENABLE", "FIU_CTRL_FIFO"):
        monkeypatch.delenv(name)
    negotiate_capabilities(src, dst, wanted=[FLIP, "return-path"])
    assert enabled_caps(src) == {FLIP, "return-path"}
    before = digest(src)
    uri = f"unix:{vms.dir}/mig.sock"
    dst.cmd("migrate-incoming", uri=uri)
    set_bandwidth(src, UNLIMITED)
    src.cmd("migrate", uri=uri)
    dinfo = wait_status(dst, ("failed", "completed"), timeout=60)
    assert dinfo["status"] == "failed", f"{dinfo}\n{dst.log()}"
    assert dst_says in dinfo.get("error-desc", ""), dinfo
    info = wait_status(src, ("failed", "completed"), timeout=60)
    assert info["status"] == "failed", f"{info}\n{src.log()}"
    assert info.get("error-desc"), info
    wait_for_log(src, f"outgoing migration failed: {info['error-desc']}")
    assert status(src) == (True, "running")
    assert digest(src) == before
    assert status(dst) == (False, "inmigrate")
