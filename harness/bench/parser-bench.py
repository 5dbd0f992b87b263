"""parser-bench.py - is every parser linear?  For each one, the time of one
input and of one ten times larger, and their ratio (about 10 when linear,
about 100 when quadratic); docs/limits.md lists the limits the inputs stay
within.  Run by `make bench` (ci/bench); figures are printed, never tested.

    /usr/bin/python3 harness/bench/parser-bench.py [--build DIR] [--runs N] [--json FILE]

Each input is generated here, written to a temporary folder, and given to
the `migcert` command that parses it (process start-up is part of each
time: it is measured alone and subtracted):
  analyze, PART sections   one RAM section in N tiny PART sections
  analyze, START sections  N iterative sections (find_started)
  destination loader       `migcert vm --incoming file:F` on a stream of N
                           empty PART sections that ends without its EOF (the
                           machine fails it at the end and exits)
  QMP                      N commands sent at once to one `migcert vm`
                           client, timed from the first byte to the last
                           reply (no start-up to subtract)
  scenario loader          a scenario of N steps (`migcert run F --list`)
  check-compat, fields     a device of N fields, each inserted in NEW
  check-compat, subsects   a device of N subsections
Exit 0 when every parser ran; the ratio is for a person to judge.
"""
import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
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
    """A stream `migcert vm --machine pc --ram 1M` takes: one RAM block
    (pc.ram, 1 MiB), then N empty PART sections, and no EOF."""
    m = b"pc-i440fx-7.2"
    b = bytearray(b"QEVM" + struct.pack(">I", 3) + bytes([7]) + struct.pack(">I", len(m)) + m)
    b += (bytes([1]) + struct.pack(">I", 1) + bytes([3]) + b"ram" + struct.pack(">II", 0, 4)
          + struct.pack(">Q", (1 << 20) | 4) + bytes([6]) + b"pc.ram" + struct.pack(">Q", 1 << 20)
          + struct.pack(">Q", 16) + bytes([0x7E]) + struct.pack(">I", 1))
    part = bytes([2]) + struct.pack(">IQ", 1, 16) + bytes([0x7E]) + struct.pack(">I", 1)
    b += part * n
    return bytes(b)


def qmp_session(binary, folder, n):
    """Seconds from sending N commands to a `migcert vm` to its Nth reply."""
    sock = Path(folder) / f"q{n}.sock"
    vm = subprocess.Popen([binary, "vm", "--qmp", f"unix:{sock}", "--ram", "1M"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if vm.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"migcert vm did not open {sock}")
            time.sleep(0.01)
        c = socket.socket(socket.AF_UNIX)
        c.connect(str(sock))
        f = c.makefile("rb")
        f.readline()  # the greeting
        req = b'{"execute": "qmp_capabilities"}\n' + b'{"execute": "query-status"}\n' * n
        t0 = time.perf_counter()
        sender = __import__("threading").Thread(target=c.sendall, args=(req,))
        sender.start()
        got = 0
        while got < n + 1:
            line = f.readline()
            if not line:
                raise RuntimeError(f"QMP closed after {got} replies")
            got += line.startswith(b'{"return"')
        t = time.perf_counter() - t0
        sender.join()
        c.close()
        return t
    finally:
        vm.kill()
        vm.wait()


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
    return json.dumps(old).encode(), json.dumps(new).encode()


def compat_subs(n):
    d = json.dumps(dump(1, n)).encode()
    return d, d


def timed(argv, ok_codes=(0, 1)):
    if callable(argv):
        return argv()  # times itself, without start-up
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, timeout=600)
    t = time.perf_counter() - t0
    if r.returncode not in ok_codes:
        raise RuntimeError(f"{argv[:3]} exit {r.returncode}: {r.stderr.decode()[-500:]}")
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    binary = str((REPO / a.build / "migcert").resolve())
    tmp = Path(tempfile.mkdtemp(prefix="parser-bench-"))

    def write(name, data):
        p = tmp / name
        p.write_bytes(data)
        return str(p)

    def analyze(gen):
        return lambda n: [binary, "analyze", write(f"s{n}.mig", gen(n))]

    def load_stream(n):
        return [binary, "vm", "--machine", "pc", "--ram", "1M", "--qmp",
                f"unix:{tmp}/l{n}.sock", "--incoming", f"file:{write(f'l{n}.mig', stream_load(n))}",
                "--exit-on-incoming-failure"]

    def qmp(n):
        return lambda: qmp_session(binary, tmp, n) + base

    def load_scenario(n):
        return [binary, "run", write(f"scn{n}.yaml", scenario(n)), "--list"]

    def compat(gen):
        def argv(n):
            old, new = gen(n)
            return [binary, "check-compat", write(f"o{n}.json", old), write(f"n{n}.json", new)]
        return argv

    parsers = [
        ("analyze, PART sections", analyze(stream_parts), 20000),
        ("analyze, START sections", analyze(stream_starts), 1000),
        ("destination loader, PARTs", load_stream, 20000),
        ("QMP, commands", qmp, 2000),
        ("scenario loader, steps", load_scenario, 1000),
        ("check-compat, inserted fields", compat(compat_fields), 900),
        ("check-compat, subsections", compat(compat_subs), 100),
    ]
    base = statistics.median(timed([binary, "--help"], (0, 1, 2)) for _ in range(a.runs))
    rows = []
    print(f"parser bench: median of {a.runs} runs, process start-up ({base * 1e3:.1f} ms) "
          "subtracted; ratio = time(10 N) / time(N), ~10 linear, ~100 quadratic")
    print(f"{'parser':32} {'N':>8} {'t(N) ms':>10} {'t(10N) ms':>10} {'ratio':>7}")
    rc = 0
    for name, argv, n in parsers:
        try:
            small = [argv(n) for _ in range(1)][0]
            big = argv(10 * n)
            ts = statistics.median(timed(small) for _ in range(a.runs)) - base
            tb = statistics.median(timed(big) for _ in range(a.runs)) - base
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"{name:32} failed: {e}")
            rc = 1
            continue
        ts, tb = max(ts, 1e-4), max(tb, 1e-4)
        rows.append({"parser": name, "n": n, "t_ms": ts * 1e3, "t10_ms": tb * 1e3,
                     "ratio": tb / ts})
        print(f"{name:32} {n:>8} {ts * 1e3:>10.1f} {tb * 1e3:>10.1f} {tb / ts:>7.1f}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    for p in tmp.iterdir():
        p.unlink()
    os.rmdir(tmp)
    return rc


if __name__ == "__main__":
    sys.exit(main())
