"""spiceclient.py - `migcert client` (the fake SPICE client) as a process,
for tests against our `migcert vm --spice` and QEMU's spice-server.

    c = SpiceClient(migcert_bin, folder, "unix:/path/spice.sock")
    s = c.snapshot()         # SIGUSR1: the summary dict, c.shot is its PPM
    s = c.wait_for(lambda s: len(s["channels"]) == 7)
    rc, s = c.stop()         # SIGINT: exit status and the final summary

The client blocks its signals as the first thing it does; snapshot() waits
for that (reading /proc) before it signals, so an early SIGUSR1 can never
kill it.  Every wait has a generous deadline that only guards against a
hang.
"""
import json
import signal
import subprocess
import time
from pathlib import Path

DEADLINE = 60.0


def read_ppm(path):
    data = Path(path).read_bytes()
    magic, dims, maxval, pixels = data.split(b"\n", 3)
    assert magic == b"P6" and maxval == b"255", data[:20]
    w, h = map(int, dims.split())
    assert len(pixels) == 3 * w * h
    return w, h, pixels


def differing_pixels(a, b):
    return sum(1 for i in range(0, len(a), 3) if a[i:i + 3] != b[i:i + 3])


def _signals_blocked(pid, sig=signal.SIGUSR1):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("SigBlk:"):
                return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    except OSError:
        pass
    return False


class SpiceClient:
    def __init__(self, binary, folder, connect, *args, name="client"):
        folder = Path(folder)
        self.json = folder / f"{name}.json"
        self.shot = folder / f"{name}.ppm"
        self.argv = [str(binary), "client", "--connect", connect, "--json", str(self.json),
                     "--screenshot", str(self.shot)] + [str(a) for a in args]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)

    def alive(self):
        return self.proc.poll() is None

    def snapshot(self):
        """The client's summary now (and its screenshot in self.shot)."""
        end = time.monotonic() + DEADLINE
        while not _signals_blocked(self.proc.pid):
            assert self.alive(), self.proc.communicate()
            assert time.monotonic() < end, "the client never blocked its signals"
            time.sleep(0.01)
        before = self.json.stat().st_mtime_ns if self.json.exists() else None
        self.proc.send_signal(signal.SIGUSR1)
        while True:
            assert self.alive(), self.proc.communicate()
            if self.json.exists() and self.json.stat().st_mtime_ns != before:
                return json.loads(self.json.read_text())
            assert time.monotonic() < end, "the client wrote no summary"
            time.sleep(0.01)

    def wait_for(self, pred, what="the condition"):
        end = time.monotonic() + DEADLINE
        s = None
        while True:
            s = self.snapshot()
            if pred(s):
                return s
            assert time.monotonic() < end, f"the client never met {what}: {s}"
            time.sleep(0.05)

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=DEADLINE)
        summary = json.loads(self.json.read_text()) if self.json.exists() else None
        self.stderr = err.decode(errors="replace")
        return self.proc.returncode, summary

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.communicate()
