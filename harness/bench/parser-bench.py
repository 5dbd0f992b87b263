"""parser-bench.py - is every parser linear?  For each one, the time of one
input and of one ten times larger, and their ratio (about 10 when linear,
about 100 when quadratic); docs/limits.md lists the limits the inputs stay
within.  Run by `make bench` (ci/bench); figures are printed, never tested.

    /usr/bin/python3 harness/bench/parser-bench.py [--build DIR] [--runs N] [--json FILE]

Each input is generated here and timed in-process: BUILD/bench/
parse-time-TARGET (harness/bench/parse-time.c linked with the libFuzzer
target harness/fuzz/fuzz-TARGET.c, which calls the parser as the fuzz lane
does) gives the least CPU time of N calls.  No process start-up is in a
figure, so a small input's time is the parser's, not exec's.  What a call
costs whatever the input (a target that builds a machine or a monitor per
call) is the time of the same input with N = 0, subtracted from both:
  analyze, PART sections    one RAM section in N tiny PART sections
  analyze, START sections   N iterative sections (find_started)
  destination loader, PARTs a destination machine loading a stream of N
                            empty PART sections (it fails at the end: no EOF)
  vmstate, device loads     fake-serial's saved state loaded N times
  QMP, commands             N query-status commands from one client
  SPICE decoders, channels  a MAIN_CHANNELS_LIST body of N channels through
                            every decoder fuzz-spice has (messages, bitmap,
                            migration blobs, link and data headers)
  scenario loader, steps    a scenario of N steps
  check-compat, fields      a device of N fields, each inserted in NEW
  check-compat, subsects    a device of N subsections
Exit 0 when every parser ran; the ratio is for a person to judge.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def stream_parts(n):
    m = b"pc-i440fx-7.2"
    b = bytearray(b"QEVM" + struct.pack(">I", 3) + bytes([7]) + struct.pack(">I", len(m)) + m)
    b += (bytes([1]) + struct.pack(">I", 1) + bytes([3]) + b"ram" + struct.pack(">IIQQ", 0, 4, 4, 16)
          + bytes([0x7E]) + struct.pack(">I", 1))
    part = bytes([2]) + struct.pack(">IQ", 1, 16) + bytes([0x7E]) + struct.pack(">I", 1)
    b += part * n
    b += bytes([3]) + part[1:] + bytes([0])
    return bytes(b)


def stream_starts(n):
    m = b"pc-i440fx-7.2"
    b = bytearray(b"QEVM" + struct.pack(">I", 3) + bytes([7]) + struct.pack(">I", len(m)) + m)
    for i in range(1, n + 1):
        b += (bytes([1]) + struct.pack(">I", i) + bytes([3]) + b"ram"
              + struct.pack(">IIQQ", 0, 4, 4, 16) + bytes([0x7E]) + struct.pack(">I", i))
    b += bytes([0])
    return bytes(b)


def stream_load(n):
    """A stream the fuzz target's destination (harness/fuzz/fuzz-machine.h:
    machine type mc-2.1, one 64 KiB RAM block pc.ram) takes: the RAM
    block list, then N empty PART sections, and no EOF."""
    m = b"mc-2.1"
    b = bytearray(b"QEVM" + struct.pack(">I", 3) + bytes([7]) + struct.pack(">I", len(m)) + m)
    b += (bytes([1]) + struct.pack(">I", 1) + bytes([3]) + b"ram" + struct.pack(">II", 0, 4)
          + struct.pack(">Q", (64 << 10) | 4) + bytes([6]) + b"pc.ram" + struct.pack(">Q", 64 << 10)
          + struct.pack(">Q", 16) + bytes([0x7E]) + struct.pack(">I", 1))
    part = bytes([2]) + struct.pack(">IQ", 1, 16) + bytes([0x7E]) + struct.pack(">I", 1)
    b += part * n
    return bytes(b)


def qmp(n):
    """fuzz-qmp's input: the machine's commands (byte 0 even), negotiated
    first (byte 1 even), then N commands."""
    return b"\0\0" + b'{"execute": "query-status"}\n' * n


def spice_channels(n):
    """fuzz-spice's input for the decoders (byte 0 = 0): the body of
    MAIN_CHANNELS_LIST (channel 1, message 104) listing N channels; at
    N = 30000 (60 KB) it is still within the main channel's 64 KiB message."""
    return b"\0\1" + struct.pack("<HI", 104, n) + bytes([3, 0]) * n


def scenario(n):
    steps = "".join("  - heal: {}\n" for _ in range(n - 1))
    return ("summary: parser bench\nmachines:\n  src: {ram: 16M}\nsteps:\n  - migrate: {}\n"
            + steps + "expect:\n  outcome: completed\n").encode()


def dump(fields, subs):
    desc = {"name": "dev", "version_id": 1, "minimum_version_id": 1,
            "Fields": [{"field": f"f{i}", "version_id": 0, "field_exists": False, "size": 4}
                       for i in range(fields)]}
    if subs:
        desc["Subsections"] = [{"name": f"dev/s{i}", "version_id": 1, "minimum_version_id": 1,
                                "Fields": [{"field": "x", "version_id": 0,
                                            "field_exists": False, "size": 1}]}
                               for i in range(subs)]
    return {"vmschkmachine": {"Name": "pc"},
            "dev": {"Name": "dev", "version_id": 1, "minimum_version_id": 1, "Description": desc}}


def compat_fields(n):
    old = dump(1, 0)
    old["dev"]["Description"]["Fields"][0]["field"] = "last"
    new = dump(n, 0)
    new["dev"]["Description"]["Fields"].append({"field": "last", "version_id": 0,
                                                 "field_exists": False, "size": 4})
    return json.dumps(old).encode() + b"\0" + json.dumps(new).encode()


def compat_subs(n):
    d = json.dumps(dump(1, n)).encode()
    return d + b"\0" + d


def device_loads(record):
    """fuzz-devices' input: the entry's index, then its saved state N times
    (`record` as the target's seed writer makes it: kind, length, state)."""
    return lambda n: record[:1] + record[1:] * n


def serial_record(build, folder):
    env = dict(os.environ, MIGCERT_FUZZ_SEEDS=str(folder))
    subprocess.run([str(build / "bench/parse-time-devices"), "-"], env=env, check=True,
                   capture_output=True, timeout=60)
    return (Path(folder) / "full-fake-serial").read_bytes()


def parse_time(build, target, files, runs):
    """{file: least CPU ns of `runs` calls} from parse-time-TARGET."""
    r = subprocess.run([str(build / f"bench/parse-time-{target}"), "-r", str(runs)]
                       + [str(f) for f in files], capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"parse-time-{target} exit {r.returncode}: {r.stderr[-500:]}")
    out = {}
    for line in r.stdout.splitlines():
        path, _, ns = line.rsplit(" ", 2)
        out[path] = int(ns)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json")
    a = ap.parse_args()
    build = (REPO / a.build).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="parser-bench-"))
    rows = []
    rc = 0
    try:
        parsers = [
            ("analyze, PART sections", "analyze", stream_parts, 20000),
            ("analyze, START sections", "analyze", stream_starts, 900),
            ("destination loader, PARTs", "stream", stream_load, 20000),
            ("vmstate, device loads", "devices", device_loads(serial_record(build, tmp)), 2000),
            ("QMP, commands", "qmp", qmp, 2000),
            ("SPICE decoders, channel list", "spice", spice_channels, 3000),
            ("scenario loader, steps", "scenario", lambda n: scenario(n + 1), 1000),
            ("check-compat, inserted fields", "compat", compat_fields, 900),
            ("check-compat, subsections", "compat", compat_subs, 100),
        ]
        print(f"parser bench: in-process CPU time, least of {a.runs} calls, the N = 0 "
              "input's subtracted; ratio = time(10 N) / time(N), ~10 linear, ~100 quadratic")
        print(f"{'parser':32} {'N':>8} {'t(N) ms':>10} {'t(10N) ms':>10} {'ratio':>7}")
        for i, (name, target, gen, n) in enumerate(parsers):
            files = []
            for k in (0, n, 10 * n):
                f = tmp / f"p{i}-{k}"
                f.write_bytes(gen(k))
                files.append(f)
            try:
                t = parse_time(build, target, files, a.runs)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"{name:32} failed: {e}")
                rc = 1
                continue
            t0, ts, tb = (t[str(f)] / 1e9 for f in files)
            ts, tb = max(ts - t0, 1e-6), max(tb - t0, 1e-6)
            rows.append({"parser": name, "n": n, "t_ms": ts * 1e3, "t10_ms": tb * 1e3,
                         "ratio": tb / ts})
            print(f"{name:32} {n:>8} {ts * 1e3:>10.2f} {tb * 1e3:>10.2f} {tb / ts:>7.1f}",
                  flush=True)
    finally:
        for p in tmp.iterdir():
            p.unlink()
        os.rmdir(tmp)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
