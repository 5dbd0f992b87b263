"""test_spice_qemu.py - the fake SPICE client (`migcert client`) against a
real peer: QEMU 7.2 with spice-server 0.15.1 (`-vga qxl -spice`, sound
through intel-hda), on a unix socket.

The client links every channel QEMU offers and shows the guest's screen:
its primary surface equals QEMU's own screendump, but for the blinking text
cursor (at most one 9x16 character cell differs, depending on when each
picture was taken).  The client is polled with SIGUSR1, which makes it write
its summary and screenshot without stopping; the deadline only guards
against a hang.

QEMU sends raw bitmaps only with image-compression=off (the client decodes
BITMAP and FROM_CACHE images, not QEMU's LZ family).

Migration between two QEMUs (the destination running with -incoming: a
paused QEMU keeps its display worker stopped and the switch waits ~30 s):
client_migrate_info, then, once the client reports MIGRATE_CONNECTED
(QEMU 7.2's command returns at once, and spice-server falls back to
switch-host when the migration ends first), migrate.  The client ends on
the target's socket (a hostname starting with "/" is a unix socket path to
`migcert client`) in the same session, showing the target's screen; an old
client (--old, no SEMI_SEAMLESS) gets SWITCH_HOST and a new session there.

Rerun one: /usr/bin/python3 -m pytest harness/pytest -k spice_qemu
"""
import json
import time

import pytest

from spiceclient import DEADLINE, SpiceClient, differing_pixels, read_ppm

CELL = 9 * 16  # one VGA text character cell


def spice_args(sock, extra=""):
    return ["-vga", "qxl", "-spice", f"unix=on,addr={sock},disable-ticketing=on,image-compression=off{extra}",
            "-audiodev", "spice,id=snd0", "-device", "intel-hda", "-device", "hda-duplex,audiodev=snd0"]


def _qemu_spice(qemu_launcher, sock, *extra, name="qemu", spice_extra=""):
    q = qemu_launcher(*spice_args(sock, spice_extra), *extra, name=name)
    end = time.monotonic() + DEADLINE
    while not sock.exists():
        assert q.alive(), q.log()
        assert time.monotonic() < end, "QEMU made no SPICE socket"
        time.sleep(0.02)
    return q


def shows_screen(q, client, dump, ready):
    """A wait_for predicate: the client (once `ready(summary)`) shows QEMU
    q's screendump but for at most one text cell."""
    def pred(summary):
        if not ready(summary) or not client.shot.exists():
            return False
        q.qmp.execute("screendump", filename=str(dump))
        cw, ch, cpx = read_ppm(client.shot)
        qw, qh, qpx = read_ppm(dump)
        return (cw, ch) == (qw, qh) and differing_pixels(cpx, qpx) <= CELL
    return pred


@pytest.fixture
def qemu_spice(qemu_launcher, sock_dir):
    sock = sock_dir / "spice.sock"
    return _qemu_spice(qemu_launcher, sock), sock


def test_spice_qemu_fake_client_links_every_channel_and_sees_the_screen(qemu_spice, migcert_bin, sock_dir):
    q, sock = qemu_spice
    dump = sock_dir / "qemu.ppm"
    client = SpiceClient(migcert_bin, sock_dir, f"unix:{sock}")
    try:
        summary = client.wait_for(shows_screen(q, client, dump, lambda s: len(s["channels"]) == 6),
                                  "QEMU's screen")
        assert sorted(summary["channels"]) == ["CURSOR:0", "DISPLAY:0", "INPUTS:0", "MAIN:0", "PLAYBACK:0",
                                               "RECORD:0"]
        assert summary["error"] == ""
        w, h, _ = read_ppm(dump)
        assert (summary["primary"]["width"], summary["primary"]["height"]) == (w, h)
    finally:
        rc, final = client.stop()
    assert rc == 0, client.stderr
    assert final["error"] == "" and final["session_id"] != 0



def follow_qemu_migration(qemu_launcher, migcert_bin, sock_dir, kind):
    """Two QEMUs (seamless-migration=on for kind "seamless"): the client
    follows by `kind`, keeps its session and shows the target's screen."""
    ssock, dsock, mig = sock_dir / "src.spice", sock_dir / "dst.spice", sock_dir / "mig.sock"
    opt = ",seamless-migration=on" if kind == "seamless" else ""
    src = _qemu_spice(qemu_launcher, ssock, name="src", spice_extra=opt)
    # the destination runs (not -S): a paused QEMU keeps its display worker stopped
    dst = _qemu_spice(qemu_launcher, dsock, "-incoming", f"unix:{mig}", name="dst", spice_extra=opt)
    client = SpiceClient(migcert_bin, sock_dir, f"unix:{ssock}")
    dump = sock_dir / "dst.ppm"
    try:
        before = client.wait_for(lambda s: len(s["channels"]) == 6 and "primary" in s, "six channels")
        src.qmp.execute("client_migrate_info", protocol="spice", hostname=str(dsock), port=0)
        # QEMU 7.2 returns at once; spice-server needs the client's
        # MIGRATE_CONNECTED (seamless: MIGRATE_CONNECTED_SEAMLESS, after the
        # target's ACK) before the migration ends, else switch-host
        client.wait_for(lambda s: s["migrating"] == "connected", "the client's answer to the source")
        src.qmp.execute("migrate", uri=f"unix:{mig}")
        info = src.qmp.wait_migration(timeout=DEADLINE)
        assert info["status"] == "completed", info
        after = client.wait_for(lambda s: s["migrations"][kind] == 1 and s["server"] == str(dsock),
                                f"the {kind} switch to the destination")
        assert after["session_id"] == before["session_id"]
        want = {"seamless": 0, "semi_seamless": 0, "switch_host": 0, "cancelled": 0, "connect_errors": 0}
        assert after["migrations"] == dict(want, **{kind: 1})
        s = client.wait_for(shows_screen(dst, client, dump, lambda s: "primary" in s), "the target's screen")
        assert s["error"] == "" and s["server"] == str(dsock) and len(s["channels"]) == 6
        if kind == "semi_seamless":  # the target re-sends its surfaces: a display message at once
            assert s["switch_gap_ms"] is not None
    finally:
        rc, final = client.stop()
    assert rc == 0, client.stderr
    assert final["error"] == "" and final["migrations"][kind] == 1


def test_spice_qemu_fake_client_follows_a_semi_seamless_migration(qemu_launcher, migcert_bin, sock_dir):
    follow_qemu_migration(qemu_launcher, migcert_bin, sock_dir, "semi_seamless")


def test_spice_qemu_fake_client_follows_a_seamless_migration(qemu_launcher, migcert_bin, sock_dir):
    """With seamless-migration=on the client answers the source's
    MIGRATE_BEGIN_SEAMLESS with DO_SEAMLESS to the target and, after its
    ACK, every channel hands its migration data over."""
    follow_qemu_migration(qemu_launcher, migcert_bin, sock_dir, "seamless")


def test_spice_qemu_old_client_follows_switch_host(qemu_launcher, migcert_bin, sock_dir):
    """A client without SEMI_SEAMLESS (`--old`) is sent to the target with
    SWITCH_HOST at the end of the migration and starts a new session there."""
    ssock, dsock, mig = sock_dir / "src.spice", sock_dir / "dst.spice", sock_dir / "mig.sock"
    src = _qemu_spice(qemu_launcher, ssock, name="src")
    dst = _qemu_spice(qemu_launcher, dsock, "-incoming", f"unix:{mig}", name="dst")
    client = SpiceClient(migcert_bin, sock_dir, f"unix:{ssock}", "--old")
    try:
        before = client.wait_for(lambda s: len(s["channels"]) == 6 and "primary" in s, "six channels")
        src.qmp.execute("client_migrate_info", protocol="spice", hostname=str(dsock), port=0)
        src.qmp.execute("migrate", uri=f"unix:{mig}")
        info = src.qmp.wait_migration(timeout=DEADLINE)
        assert info["status"] == "completed", info
        after = client.wait_for(lambda s: s["migrations"]["switch_host"] == 1 and s["server"] == str(dsock) and
                                "primary" in s, "the switch to the target")
        assert after["session_id"] not in (0, before["session_id"])
        assert after["migrations"]["semi_seamless"] == 0 and after["error"] == ""
        client.wait_for(shows_screen(dst, client, sock_dir / "dst.ppm", lambda s: "primary" in s),
                        "the target's screen")
    finally:
        rc, final = client.stop()
    assert rc == 0, client.stderr
    assert final["server"] == str(dsock) and final["error"] == ""

def test_spice_qemu_client_ends_after_n_drawing_messages(qemu_spice, run_migcert, sock_dir):
    """`migcert client --draws N` (the throughput measurement of `make
    bench`) ends the session by itself once N drawing messages came: QEMU's
    text screen keeps redrawing its blinking cursor."""
    q, sock = qemu_spice
    out = sock_dir / "draws.json"
    r = run_migcert("client", "--connect", f"unix:{sock}", "--draws", "5", "--json", out, timeout=DEADLINE)
    assert r.returncode == 0, r.stderr
    s = json.loads(out.read_text())
    assert s["error"] == ""
    assert s["draws"]["count"] >= 5 and s["draws"]["per_s"] > 0  # a read may bring several
    r = run_migcert("client", "--connect", f"unix:{sock}", "--draws", "0", timeout=DEADLINE)
    assert r.returncode == 2 and "--draws 0: a message count from 1" in r.stderr
