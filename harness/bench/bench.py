"""bench.py - migrate 1 GiB of random RAM over a unix socket with migcert
and with Debian's QEMU 7.2, through the same QMP driver (harness/pytest/qmp.py),
and compare them (docs/protocol-qemu-stream.md section 17 is the recipe).

    /usr/bin/python3 harness/bench/bench.py [--build DIR] [--runs N] [--ram-mib M]
        [--only migcert|qemu] [--no-verify] [--json FILE]

Both engines: source paused (-S), pre-faulted memory on both ends
(`-mem-prealloc` / `--mem-prealloc`), destination listening on unix:,
max-bandwidth 10**12 (unthrottled), query-migrate polled every 5 ms.
QEMU's RAM gets the very bytes migcert's seeded random fill produced: the
migcert source saves [1 MiB, end) of its RAM with QMP `pmemsave` and QEMU
loads that file at 1 MiB with `-device loader` (below 1 MiB the pc machine
has its ROM holes).  Throughput = ram.transferred / total-time, as in the
anchor; every run is verified (destination RAM digest / pmemsave hash equal
to the source's).  Prints a table with the median of N runs and the ratio
migcert/QEMU; exit 0 when every run completed and verified, 1 otherwise.
"""
import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "harness" / "pytest"))

from qmp import QMP  # noqa: E402

LOAD_ADDR = 1 << 20
UNLIMITED = 10**12
POLL = 0.005
# QEMU 7.2, unix, pre-faulted, unlimited (docs/protocol-qemu-stream.md section 17)
ANCHOR_MBPS = 2657


class Proc:
    def __init__(self, argv, sock, log):
        self.argv = [str(a) for a in argv]
        self.sock = sock
        self.log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        try:
            self.qmp = QMP.connect(sock, timeout=120, cmd_timeout=120, alive=self.alive)
        except Exception:
            self.kill()
            raise RuntimeError(f"{self.argv[0]} did not start:\n{self.log()}")

    def alive(self):
        return self.proc.poll() is None

    def log(self):
        self._log.flush()
        return Path(self.log_path).read_text(errors="replace")[-3000:]

    def quit(self):
        try:
            self.qmp.execute("quit", timeout=20)
        except Exception:
            pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def kill(self):
        if getattr(self, "qmp", None) is not None:
            self.qmp.close()
        if self.alive():
            self.proc.kill()
        self.proc.wait()
        if not self._log.closed:
            self._log.close()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 24)
            if not b:
                return h.hexdigest()
            h.update(b)


def poll_migration(q, timeout=600):
    """query-migrate every 5 ms until the migration ends; the last reply."""
    deadline = time.monotonic() + timeout
    while True:
        info = q.execute("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            return info
        if time.monotonic() > deadline:
            raise RuntimeError(f"migration did not end in {timeout}s: {info}")
        time.sleep(POLL)


def wait_incoming(q, timeout=120):
    """The destination's own view of the end (QEMU: run state; migcert: query-migrate)."""
    deadline = time.monotonic() + timeout
    while True:
        st = q.execute("query-status")["status"]
        if st not in ("inmigrate", "prelaunch", "finish-migrate"):
            return st
        mig = q.execute("query-migrate").get("status")
        if mig in ("completed", "failed", "cancelled"):
            return st if mig == "completed" else mig
        if time.monotonic() > deadline:
            raise RuntimeError("destination did not finish")
        time.sleep(POLL)


def result(engine, info, wall):
    ram = info.get("ram", {})
    total = info.get("total-time", 0)
    transferred = ram.get("transferred", 0)
    return {
        "engine": engine,
        "status": info.get("status"),
        "total_time_ms": total,
        "downtime_ms": info.get("downtime"),
        "setup_time_ms": info.get("setup-time"),
        "transferred": transferred,
        "mbps": transferred / (total / 1000.0) / 1e6 if total else 0.0,
        "wall_s": wall,
        "dirty_sync_count": ram.get("dirty-sync-count"),
        "error": info.get("error-desc"),
    }


def run_migcert(args, work, i, ram_file):
    binary = Path(args.build) / "migcert"
    mig = work / f"mc-mig{i}.sock"
    common = ["--ram", f"{args.ram_mib}M", "--mem-prealloc", "--seed", str(args.seed)]
    src = Proc([binary, "vm", *common, "--fill", "random", "-S", "--qmp",
                f"unix:{work}/mc-src{i}.qmp"], work / f"mc-src{i}.qmp", work / f"mc-src{i}.log")
    dst = None
    try:
        dst = Proc([binary, "vm", *common, "--incoming", f"unix:{mig}", "--qmp",
                    f"unix:{work}/mc-dst{i}.qmp"], work / f"mc-dst{i}.qmp",
                   work / f"mc-dst{i}.log")
        if ram_file is not None and not ram_file.exists():
            src.qmp.execute("pmemsave", val=LOAD_ADDR, size=(args.ram_mib << 20) - LOAD_ADDR,
                            filename=str(ram_file), timeout=300)
        src.qmp.execute("migrate-set-parameters", {"max-bandwidth": UNLIMITED})
        t0 = time.monotonic()
        src.qmp.execute("migrate", uri=f"unix:{mig}")
        info = poll_migration(src.qmp)
        wall = time.monotonic() - t0
        r = result("migcert", info, wall)
        if info.get("status") == "completed":
            wait_incoming(dst.qmp)
            r["verified"] = (not args.verify or src.qmp.execute("x-query-ram-digest") ==
                             dst.qmp.execute("x-query-ram-digest"))
        else:
            r["verified"] = False
            r["log"] = src.log() + dst.log()
        return r
    finally:
        src.quit()
        if dst:
            dst.quit()


def run_qemu(args, work, i, ram_file, ram_sha):
    qemu = shutil.which(args.qemu)
    if not qemu:
        raise RuntimeError(f"{args.qemu} not found: run `bash ci/deps`")
    base = [qemu, "-M", "pc", "-m", str(args.ram_mib), "-S", "-nodefaults", "-display", "none",
            "-mem-prealloc"]
    mig = work / f"q-mig{i}.sock"

    def qmp_arg(name):
        return ["-qmp", f"unix:{work}/{name}.qmp,server=on,wait=off"]

    src = Proc(base + ["-device", f"loader,file={ram_file},addr={LOAD_ADDR:#x},force-raw=on"] +
               qmp_arg(f"q-src{i}"), work / f"q-src{i}.qmp", work / f"q-src{i}.log")
    dst = None
    try:
        dst = Proc(base + ["-incoming", f"unix:{mig}"] + qmp_arg(f"q-dst{i}"),
                   work / f"q-dst{i}.qmp", work / f"q-dst{i}.log")
        src.qmp.execute("migrate-set-parameters", {"max-bandwidth": UNLIMITED})
        t0 = time.monotonic()
        src.qmp.execute("migrate", uri=f"unix:{mig}")
        info = poll_migration(src.qmp)
        wall = time.monotonic() - t0
        r = result("qemu-7.2", info, wall)
        if info.get("status") == "completed":
            wait_incoming(dst.qmp)
            if args.verify:
                out = work / f"q-dst{i}.ram"
                dst.qmp.execute("pmemsave", val=LOAD_ADDR, size=(args.ram_mib << 20) - LOAD_ADDR,
                                filename=str(out), timeout=300)
                r["verified"] = sha256_file(out) == ram_sha
                out.unlink()
            else:
                r["verified"] = True
        else:
            r["verified"] = False
            r["log"] = src.log() + dst.log()
        return r
    finally:
        src.quit()
        if dst:
            dst.quit()


def median_row(rows):
    ok = [r for r in rows if r["status"] == "completed"]
    if not ok:
        return None
    pick = lambda k: statistics.median([r[k] for r in ok if r[k] is not None] or [0])  # noqa: E731
    return {k: pick(k) for k in ("total_time_ms", "downtime_ms", "transferred", "mbps")} | {
        "min_mbps": min(r["mbps"] for r in ok), "max_mbps": max(r["mbps"] for r in ok),
        "runs": len(ok)}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("MIGCERT_BUILD", "build"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ram-mib", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0x5eed)
    ap.add_argument("--only", choices=("migcert", "qemu"))
    ap.add_argument("--qemu", default=os.environ.get("QEMU", "qemu-system-x86_64"))
    ap.add_argument("--no-verify", dest="verify", action="store_false")
    ap.add_argument("--json", help="write every run and the summary as JSON here")
    args = ap.parse_args(argv)
    if not Path(args.build).is_absolute():
        args.build = str(REPO / args.build)

    # sockets and the RAM image on tmpfs when there is one (as the anchor)
    base_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = Path(tempfile.mkdtemp(prefix="migcert-bench-", dir=base_dir))
    rows = {"migcert": [], "qemu-7.2": []}
    ok = True
    try:
        ram_file = work / "ram.bin"
        print(f"bench: {args.ram_mib} MiB of random RAM over unix:, max-bandwidth {UNLIMITED:.0e}, "
              f"pre-faulted, source paused, {args.runs} run(s) each, seed {args.seed:#x}",
              flush=True)
        for i in range(args.runs):
            if args.only in (None, "migcert") or not ram_file.exists():
                r = run_migcert(args, work, i, ram_file)
                if args.only in (None, "migcert"):
                    rows["migcert"].append(r)
                    print(f"  migcert  run {i}: {r['status']}, {r['total_time_ms']} ms, "
                          f"downtime {r['downtime_ms']} ms, {r['mbps']:.0f} MB/s, "
                          f"verified {r['verified']}", flush=True)
            if args.only in (None, "qemu"):
                if i == 0:
                    ram_sha = sha256_file(ram_file)
                r = run_qemu(args, work, i, ram_file, ram_sha)
                rows["qemu-7.2"].append(r)
                print(f"  qemu-7.2 run {i}: {r['status']}, {r['total_time_ms']} ms, "
                      f"downtime {r['downtime_ms']} ms, {r['mbps']:.0f} MB/s, "
                      f"verified {r['verified']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    for engine, rs in rows.items():
        for r in rs:
            if r["status"] != "completed" or not r["verified"]:
                ok = False
                print(f"bench: {engine}: a run {r['status']}"
                      f"{' (not verified)' if r['status'] == 'completed' else ''}: "
                      f"{r.get('error') or ''}\n{r.get('log', '')}", file=sys.stderr)
    summary = {e: median_row(rs) for e, rs in rows.items() if rs}
    print()
    print(f"{'engine':<10} {'total-time ms':>14} {'downtime ms':>12} {'transferred MB':>15} "
          f"{'throughput MB/s':>16}  (median of runs; min-max)")
    for e, s in summary.items():
        if s is None:
            print(f"{e:<10} {'no completed run':>14}")
            continue
        print(f"{e:<10} {s['total_time_ms']:>14.0f} {s['downtime_ms']:>12.0f} "
              f"{s['transferred'] / 1e6:>15.1f} {s['mbps']:>16.0f}  "
              f"({s['min_mbps']:.0f}-{s['max_mbps']:.0f})")
    m, q = summary.get("migcert"), summary.get("qemu-7.2")
    if m and q and q["mbps"]:
        print(f"ratio migcert/QEMU: throughput {m['mbps'] / q['mbps']:.2f}x, "
              f"total-time {m['total_time_ms'] / max(q['total_time_ms'], 1):.2f}x "
              f"(QEMU 7.2 anchor on the reference host: ~{ANCHOR_MBPS} MB/s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"transport": "unix", "ram_mib": args.ram_mib,
                                               "runs": rows, "summary": summary}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
