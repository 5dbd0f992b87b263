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

Rerun one: /usr/bin/python3 -m pytest harness/pytest -k spice_qemu
"""
import time

import pytest

from spiceclient import DEADLINE, SpiceClient, differing_pixels, read_ppm

CELL = 9 * 16  # one VGA text character cell


@pytest.fixture
def qemu_spice(qemu_launcher, sock_dir):
    sock = sock_dir / "spice.sock"
    q = qemu_launcher("-vga", "qxl", "-spice",
                      f"unix=on,addr={sock},disable-ticketing=on,image-compression=off",
                      "-audiodev", "spice,id=snd0", "-device", "intel-hda",
                      "-device", "hda-duplex,audiodev=snd0")
    end = time.monotonic() + DEADLINE
    while not sock.exists():
        assert q.alive(), q.log()
        assert time.monotonic() < end, "QEMU made no SPICE socket"
        time.sleep(0.02)
    return q, sock


def test_spice_qemu_fake_client_links_every_channel_and_sees_the_screen(qemu_spice, migcert_bin, sock_dir):
    q, sock = qemu_spice
    dump = sock_dir / "qemu.ppm"
    client = SpiceClient(migcert_bin, sock_dir, f"unix:{sock}")
    seen = {}

    def shows_qemus_screen(summary):
        if len(summary["channels"]) != 6 or not client.shot.exists():
            return False
        q.qmp.execute("screendump", filename=str(dump))
        cw, ch, cpx = read_ppm(client.shot)
        qw, qh, qpx = read_ppm(dump)
        seen["diff"] = differing_pixels(cpx, qpx) if (cw, ch) == (qw, qh) else None
        return seen["diff"] is not None and seen["diff"] <= CELL

    try:
        summary = client.wait_for(shows_qemus_screen, "QEMU's screen")
        assert sorted(summary["channels"]) == ["CURSOR:0", "DISPLAY:0", "INPUTS:0", "MAIN:0", "PLAYBACK:0",
                                               "RECORD:0"]
        assert summary["error"] == ""
        w, h, _ = read_ppm(dump)
        assert (summary["primary"]["width"], summary["primary"]["height"]) == (w, h)
    finally:
        rc, final = client.stop()
    assert rc == 0, client.stderr
    assert final["error"] == "" and final["session_id"] != 0
