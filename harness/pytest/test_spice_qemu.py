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
import json
import signal
import subprocess
import time

import pytest

CELL = 9 * 16  # one VGA text character cell
DEADLINE = 60.0


def read_ppm(path):
    data = path.read_bytes()
    magic, dims, maxval, pixels = data.split(b"\n", 3)
    assert magic == b"P6" and maxval == b"255", data[:20]
    w, h = map(int, dims.split())
    assert len(pixels) == 3 * w * h
    return w, h, pixels


def signals_blocked(pid, sig=signal.SIGUSR1):
    """The process blocks `sig` (the client does so first thing)."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("SigBlk:"):
                return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    except OSError:
        pass
    return False


def differing_pixels(a, b):
    return sum(1 for i in range(0, len(a), 3) if a[i:i + 3] != b[i:i + 3])


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
    js, shot, dump = sock_dir / "client.json", sock_dir / "client.ppm", sock_dir / "qemu.ppm"
    client = subprocess.Popen([str(migcert_bin), "client", "--connect", f"unix:{sock}", "--json", str(js),
                               "--screenshot", str(shot)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + DEADLINE
        seen = None
        while True:
            assert time.monotonic() < end, f"the client never showed QEMU's screen: {seen}"
            assert client.poll() is None, client.communicate()
            if not signals_blocked(client.pid):
                time.sleep(0.01)
                continue
            client.send_signal(signal.SIGUSR1)
            time.sleep(0.05)
            if js.exists() and shot.exists():
                summary = json.loads(js.read_text())
                q.qmp.execute("screendump", filename=str(dump))
                cw, ch, cpx = read_ppm(shot)
                qw, qh, qpx = read_ppm(dump)
                seen = (summary, (cw, ch), (qw, qh), differing_pixels(cpx, qpx) if (cw, ch) == (qw, qh) else None)
                if len(summary["channels"]) == 6 and seen[3] is not None and seen[3] <= CELL:
                    break
        summary = seen[0]
        assert sorted(summary["channels"]) == ["CURSOR:0", "DISPLAY:0", "INPUTS:0", "MAIN:0", "PLAYBACK:0",
                                               "RECORD:0"]
        assert summary["error"] == ""
        assert summary["primary"]["width"] == seen[2][0] and summary["primary"]["height"] == seen[2][1]
    finally:
        if client.poll() is None:
            client.send_signal(signal.SIGINT)
        out, err = client.communicate(timeout=DEADLINE)
    assert client.returncode == 0, err.decode()
    final = json.loads(js.read_text())
    assert final["error"] == "" and final["session_id"] != 0
