"""bench.py - localhost migration, transport by transport and RAM size by
RAM size, measured side by side in one run (docs/protocol-qemu-stream.md
section 17 is the recipe), with the host's own ceilings beside them.

    /usr/bin/python3 harness/bench/bench.py [--build DIR] [--runs N]
        [--sizes 256,1024,8192] [--transports qemu,unix,local,shared]
        [--pin SRC,DST] [--no-verify] [--json FILE]

Transports (rows of the table):
  qemu    Debian's QEMU 7.2 into a second QEMU over unix: (the reference);
  unix    migcert vm into migcert vm over unix:, the plain stream;
  local   the same with x-page-flip: page data through a pipe (vmsplice);
  shared  the same with x-ram-share (+ return-path): the source's RAM is a
          memfd (--mem-share) handed over at setup, only device state moves.
          A run is a chain of --shared-hops (3) migrations of the same
          memory: each destination, paused again, is the next source, and
          every hop is one of the row's runs (a pass over RAM just before
          slows a 0.2 ms migration on a VM host: the fill and the digest
          come before the first hop and after the last;
          docs/protocol-qemu-stream.md section 17).
Every engine: source paused (-S), random RAM (migcert's seeded fill; QEMU
gets the very same bytes: the first migcert source saves [1 MiB, end) of
its RAM with QMP pmemsave and QEMU loads it at 1 MiB with -device loader),
memory pre-faulted on both ends (-mem-prealloc / --mem-prealloc; the shared
destination skips it: its own RAM is replaced by the source's), destination
listening on unix:, max-bandwidth 10**12, the end waited for as the
source's MIGRATION event (not polled: wait_migration_end); total time from
the MIGRATION events' timestamps (setup to completed, in microseconds;
capability events on the source), query-migrate's whole milliseconds
otherwise.
Every run is verified: the destination's own query-migrate says completed
(a source completes once its last byte is in the socket and, without
return-path, never hears that its destination refused the stream: such a
run is "failed" with the destination's error, never a digest mismatch), and
its RAM digest (x-query-ram-digest, or QEMU's pmemsave hashed) equals the
source's (a shared chain: the last destination's equals the first
source's, taken before it migrated).  A size runs for a transport
only when MemAvailable holds its copies of RAM plus 2 GiB (qemu 3: the image
file and two guests; unix and local 2; shared 1); otherwise the row says
"skipped" and why.

Placement: by default the scheduler places every process.  --pin SRC,DST
pins every thread of each migration's source to CPU SRC and of its
destination to CPU DST (taskset, QEMU's and migcert's alike, once QMP
answers), and each probe's writer and reader the same way; the table's
first line says which.

Ceilings (build/bench/link-probe, 1 GiB, 1 MiB chunks, one run of each in
every round of migrations, right before the transport it bounds (at the
start of the round when that transport does not run), so that they share
the moments of a busy machine with its row; the median of those runs like
each row's, with the slowest and fastest beside it; the 1 GiB ratios take
the median of the runs of the 1 GiB rounds only, the moments of those rows):
a unix socketpair between two processes (a copy on each side: the bar for `unix`), the same
socketpair carrying PAGE records (an 8-byte header before each page, writev
and readv by reference: what the stream's format costs there), and a pipe
fed by vmsplice and drained by read() (what `local` cannot beat), the latter
as `local:` runs it: a 1 MiB pipe (bigger pipes are slower here: the writer
pins pages while the reader releases pages of the same huge folio), each
vmsplice a whole run of huge-page-backed memory, each read 1 MiB into
pre-faulted memory.  Each probe also prints its writer's and reader's CPU
seconds per GiB, to set beside the rows' CPU columns.

Printed: one table, transport x RAM size: median total time, downtime,
throughput (guest RAM bytes / total time, GB/s), CPU seconds per GiB of RAM
on each side (threads' run time from /proc/PID/task/*/schedstat, migrate to
the end of both sides), and
QEMU's total time / this row's at the same size (x QEMU, > 1 is faster);
then the ratios the goals name and which transport was fastest.

JSON (--json FILE, default reports/out/bench.json), for the HTML report:
  {"host": {"cpus": int, "mem_available_gib": float, "load_avg": [3 floats]},
   "placement": "scheduler" | {"src_cpu": int, "dst_cpu": int},
   "ceilings": {"socketpair_gbps": float, "socketpair_records_gbps": float,
                "vmsplice_pipe_gbps": float (medians),
                "at_1g": {the same three: the medians of the runs of the 1 GiB rounds,
                          which the 1 GiB ratios take},
                "probes": {"socket"|"records"|"vmsplice": link-probe's JSON (gbps (median),
                           min_gbps, max_gbps, chunk_kib, pipe_kib, cpus,
                           writer_cpu_s_per_gib, reader_cpu_s_per_gib)}},
   "runs_per_cell": int, "shared_hops": int (a shared row has runs_per_cell x shared_hops runs),
   "rows": [{"transport": "qemu"|"unix"|"local"|"shared", "ram_mib": int,
             "status": "ok"|"skipped"|"failed", "why": str (skipped/failed),
             "runs": [{"status", "total_time_ms", "downtime_ms", "setup_time_ms",
                       "transferred", "ram_bytes", "gbps", "fixed_ms", "src_cpu_s", "dst_cpu_s",
                       "verified", "error", "dst_status", "src_digest", "dst_digest"}],
             "median": {"total_time_ms", "downtime_ms", "gbps", "src_cpu_s_per_gib",
                        "dst_cpu_s_per_gib", "transferred", "fixed_ms"} | null,
             "x_qemu": float | null}],
   "ratios": {"unix_of_socketpair": float|null, "unix_of_socketpair_records": float|null,
              "unix_x_qemu_1g": float|null,
              "local_of_vmsplice": float|null, "shared_8g_over_1g": float|null,
              "shared_1g_over_unix_1g": float|null, "fastest_1g": str|null,
              "fastest": {"<RAM MiB>": transport|null}}}
Exit 0 when every run that ran completed and verified, 1 otherwise.
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


class Proc:
    def __init__(self, argv, sock, log, start_timeout=120):
        self.argv = [str(a) for a in argv]
        self.sock = sock
        self.log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        try:
            self.qmp = QMP.connect(sock, timeout=start_timeout, cmd_timeout=120,
                                   alive=self.alive)
        except Exception:
            log = self.log()
            self.kill()
            raise RuntimeError(f"{self.argv[0]} did not start:\n{log}")

    def alive(self):
        return self.proc.poll() is None

    def log(self):
        if not self._log.closed:
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


def wait_migration_end(q, timeout=600):
    """Wait for the MIGRATION event that ends the migration (the source has
    capability events on), then return one query-migrate's reply.  Waited
    for, not polled: a query-migrate every 5 ms woke the bench and the
    source's loop 200 times a second, and the scheduler then often put both
    ends of a migration on one CPU (`local:`, 1 GiB, default placement, 8
    runs each: 92-174 ms polled, 103-120 ms waiting).  The events stay
    queued for event_times; once a second a query-migrate checks that the
    migration still runs (an ended one whose event was lost ends the wait)."""
    done = ("completed", "failed", "cancelled")
    deadline = time.monotonic() + timeout
    next_check = time.monotonic() + 1.0
    while not any(ev.get("event") == "MIGRATION" and ev.get("data", {}).get("status") in done
                  for ev in q.events):
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(f"migration did not end in {timeout}s: "
                               f"{q.execute('query-migrate')}")
        if now >= next_check:
            info = q.execute("query-migrate")
            if info.get("status") in done:
                return info
            next_check = now + 1.0
        q._pump(min(deadline, next_check) - now)
    return q.execute("query-migrate")


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


def event_times(q):
    """The first timestamp (s) of each MIGRATION status the source announced."""
    t = {}
    for ev in q.get_events():
        if ev.get("event") == "MIGRATION" and "timestamp" in ev:
            ts = ev["timestamp"]
            t.setdefault(ev["data"]["status"], ts["seconds"] + ts["microseconds"] / 1e6)
    return t


def event_total_ms(t):
    """Total time from the MIGRATION events' timestamps (setup to
    completed, microseconds), or None: query-migrate's total-time is whole
    milliseconds, too coarse for a shared-memory migration."""
    if "setup" in t and "completed" in t:
        return (t["completed"] - t["setup"]) * 1000.0
    return None


def event_fixed_ms(t):
    """What of the total time moves no RAM, or None: setup to active
    (connection, handshake, capabilities) and device to completed (device
    state, the last sync, the drain).  The probes' interval has neither."""
    if all(k in t for k in ("setup", "active", "device", "completed")):
        return ((t["active"] - t["setup"]) + (t["completed"] - t["device"])) * 1000.0
    return None


def result(engine, info, wall, mib, q=None):
    ram = info.get("ram", {})
    total = info.get("total-time", 0)
    t = event_times(q) if q is not None and info.get("status") == "completed" else {}
    precise = event_total_ms(t)
    if precise is not None and precise > 0:
        total = precise
    ram_bytes = mib << 20
    return {
        "engine": engine,
        "status": info.get("status"),
        "total_time_ms": total,
        "downtime_ms": info.get("downtime"),
        "setup_time_ms": info.get("setup-time"),
        "fixed_ms": event_fixed_ms(t),
        "transferred": ram.get("transferred", 0),
        "ram_bytes": ram_bytes,
        "gbps": ram_bytes / (total / 1000.0) / 1e9 if total else 0.0,
        "wall_s": wall,
        "dirty_sync_count": ram.get("dirty-sync-count"),
        "error": info.get("error-desc"),
    }


def pin(proc, cpu):
    """Every thread of a started process (QMP answered) on one CPU."""
    if cpu is not None:
        subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(proc.proc.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def cpu_seconds(pid):
    """CPU time of a process so far: its threads' run time in nanoseconds
    (/proc/PID/task/*/schedstat), else user + system in clock ticks
    (/proc/PID/stat: 10 ms steps, a sixth of a flipping 1 GiB side)."""
    try:
        ns = [int(p.read_text().split()[0])
              for p in Path(f"/proc/{pid}/task").glob("*/schedstat")]
        if ns:
            return sum(ns) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CAPS = {"unix": [], "local": ["x-page-flip"], "shared": ["x-ram-share", "return-path"]}


def set_caps(q, names):
    if names:
        q.execute("migrate-set-capabilities",
                  capabilities=[{"capability": c, "state": True} for c in names])


def migrate_once(src, dst, transport, mib, mig):
    """One migration from src into dst (both answering QMP), timed from
    the source's events; the destination's own status checked, nothing
    verified yet."""
    set_caps(src.qmp, CAPS[transport] + ["events"])
    set_caps(dst.qmp, CAPS[transport])
    dst.qmp.execute("migrate-incoming", uri=f"unix:{mig}")
    src.qmp.execute("migrate-set-parameters", {"max-bandwidth": UNLIMITED})
    cpu0 = (cpu_seconds(src.proc.pid), cpu_seconds(dst.proc.pid))
    t0 = time.monotonic()
    src.qmp.execute("migrate", uri=f"unix:{mig}")
    info = wait_migration_end(src.qmp)
    wall = time.monotonic() - t0
    r = result(f"migcert-{transport}", info, wall, mib, src.qmp)
    if info.get("status") != "completed":
        r["verified"] = False
        r["log"] = src.log() + dst.log()
        return r
    dst_end = wait_incoming(dst.qmp)
    r["src_cpu_s"] = cpu_seconds(src.proc.pid) - cpu0[0]
    r["dst_cpu_s"] = cpu_seconds(dst.proc.pid) - cpu0[1]
    # The source completes once its last byte is in the socket, and
    # without return-path it never hears that the destination refused
    # the stream: take the destination's own word for it.
    dinfo = dst.qmp.execute("query-migrate")
    r["dst_status"] = dinfo.get("status")
    if r["dst_status"] != "completed":
        r["status"], r["verified"] = "failed", False
        r["error"] = (f"the destination ended {r['dst_status']} ({dst_end}): "
                      f"{dinfo.get('error-desc')}")
        r["log"] = dst.log()
    return r


def run_migcert(args, work, i, ram_file, transport, mib, hops=1):
    """Run i of a migcert transport: a list of results, one per migration.
    hops > 1 (shared memory only) chains them: each destination, paused
    again, is the next migration's source, so the same memory moves hops
    times for one fill of it; the last destination's digest must equal
    the first source's."""
    binary = Path(args.build) / "migcert"
    tag = f"{transport}{mib}-{i}"
    common = ["--ram", f"{mib}M", "--seed", str(args.seed)]
    src_args = ["--mem-prealloc", "--fill", "random", "-S"]
    if transport == "shared":
        src_args.append("--mem-share")
    dst_args = [] if transport == "shared" else ["--mem-prealloc"]
    start = 120 + 60 * (mib >> 10)  # filling and pre-faulting RAM before QMP answers

    def new_dst(h):
        return Proc([binary, "vm", *common, *dst_args, "--incoming", "defer", "--qmp",
                     f"unix:{work}/mc-dst-{tag}-{h}.qmp"], work / f"mc-dst-{tag}-{h}.qmp",
                    work / f"mc-dst-{tag}-{h}.log", start)
    src = Proc([binary, "vm", *common, *src_args, "--qmp", f"unix:{work}/mc-src-{tag}.qmp"],
               work / f"mc-src-{tag}.qmp", work / f"mc-src-{tag}.log", start)
    dst = None
    runs = []
    try:
        dst = new_dst(0)
        pin(src, args.pin[0])
        pin(dst, args.pin[1])
        if ram_file is not None and not ram_file.exists():
            src.qmp.execute("pmemsave", val=LOAD_ADDR, size=(mib << 20) - LOAD_ADDR,
                            filename=str(ram_file), timeout=600)
        # A chain's first source is hashed before it migrates (the others
        # after), so that no pass over its RAM lies between two hops.
        src_digest = None
        if args.verify and hops > 1:
            src_digest = src.qmp.execute("x-query-ram-digest", timeout=600)
        for h in range(hops):
            if h:
                # the last destination, paused like the first source, is the
                # next source; the previous one is done with
                src.quit()
                src, dst = dst, None
                src.qmp.execute("stop")
                dst = new_dst(h)
                pin(src, args.pin[0])
                pin(dst, args.pin[1])
            r = migrate_once(src, dst, transport, mib, work / f"mc-mig-{tag}-{h}.sock")
            runs.append(r)
            if r["status"] != "completed" or r.get("verified") is False:
                for done in runs[:-1]:  # no digest to check them by
                    done["verified"] = False
                    done["error"] = f"the chain's hop {h} failed before its digest was checked"
                return runs
            if args.verify and src_digest is None:
                src_digest = src.qmp.execute("x-query-ram-digest", timeout=600)
        verified = True
        if args.verify:
            dst_digest = dst.qmp.execute("x-query-ram-digest", timeout=600)
            verified = src_digest == dst_digest
        for r in runs:
            r["verified"] = verified
            if args.verify:
                r["src_digest"], r["dst_digest"] = src_digest, dst_digest
                if not verified:
                    r["error"] = f"RAM digests differ: {src_digest} {dst_digest}"
        return runs
    finally:
        src.quit()
        if dst:
            dst.quit()


def run_qemu(args, work, i, ram_file, ram_sha, mib):
    qemu = shutil.which(args.qemu)
    if not qemu:
        raise RuntimeError(f"{args.qemu} not found: run `bash ci/deps`")
    base = [qemu, "-M", "pc", "-m", str(mib), "-S", "-nodefaults", "-display", "none",
            "-mem-prealloc"]
    tag = f"{mib}-{i}"
    mig = work / f"q-mig-{tag}.sock"

    def qmp_arg(name):
        return ["-qmp", f"unix:{work}/{name}.qmp,server=on,wait=off"]

    start = 120 + 60 * (mib >> 10)
    src = Proc(base + ["-device", f"loader,file={ram_file},addr={LOAD_ADDR:#x},force-raw=on"] +
               qmp_arg(f"q-src-{tag}"), work / f"q-src-{tag}.qmp", work / f"q-src-{tag}.log",
               start)
    dst = None
    try:
        dst = Proc(base + ["-incoming", f"unix:{mig}"] + qmp_arg(f"q-dst-{tag}"),
                   work / f"q-dst-{tag}.qmp", work / f"q-dst-{tag}.log", start)
        pin(src, args.pin[0])
        pin(dst, args.pin[1])
        src.qmp.execute("migrate-set-parameters", {"max-bandwidth": UNLIMITED})
        set_caps(src.qmp, ["events"])
        cpu0 = (cpu_seconds(src.proc.pid), cpu_seconds(dst.proc.pid))
        t0 = time.monotonic()
        src.qmp.execute("migrate", uri=f"unix:{mig}")
        info = wait_migration_end(src.qmp)
        wall = time.monotonic() - t0
        r = result("qemu-7.2", info, wall, mib, src.qmp)
        if info.get("status") == "completed":
            wait_incoming(dst.qmp)
            r["src_cpu_s"] = cpu_seconds(src.proc.pid) - cpu0[0]
            r["dst_cpu_s"] = cpu_seconds(dst.proc.pid) - cpu0[1]
            if args.verify:
                out = work / f"q-dst-{tag}.ram"
                dst.qmp.execute("pmemsave", val=LOAD_ADDR, size=(mib << 20) - LOAD_ADDR,
                                filename=str(out), timeout=600)
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


def median_row(rows, mib):
    ok = [r for r in rows if r["status"] == "completed" and r.get("verified")]
    if not ok:
        return None
    gib = mib / 1024.0

    def med(k):
        vals = [r[k] for r in ok if r.get(k) is not None]
        return statistics.median(vals) if vals else None
    return {"total_time_ms": med("total_time_ms"), "downtime_ms": med("downtime_ms"),
            "gbps": med("gbps"), "transferred": med("transferred"), "fixed_ms": med("fixed_ms"),
            "src_cpu_s_per_gib": (med("src_cpu_s") or 0.0) / gib,
            "dst_cpu_s_per_gib": (med("dst_cpu_s") or 0.0) / gib,
            "min_gbps": min(r["gbps"] for r in ok), "max_gbps": max(r["gbps"] for r in ok),
            "runs": len(ok)}


COPIES = {"qemu": 3, "unix": 2, "local": 2, "shared": 1}
LABEL = {"qemu": "QEMU 7.2 unix", "unix": "migcert unix", "local": "migcert local",
         "shared": "shared memory"}


def mem_available_mib():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


# The vmsplice probe runs as `local:` does (impl/transport/transport-local.c):
# a 1 MiB pipe, filled with one vmsplice of 1 MiB of huge-page-backed
# memory, drained with one read of 1 MiB into pre-faulted memory (the
# bench's destination RAM is pre-faulted too).
# The records probe is the socketpair again, carrying the stream's own shape
# (an 8-byte header before each 4 KiB page, writev and readv by reference):
# what the format costs over the same socket, beside the plain ceiling.
PROBE_FOR = {"socket": "unix", "records": "unix", "vmsplice": "local"}
PROBE_ARGS = {"socket": ["socket", "--chunk", "1024"], "records": ["socket", "--records"],
              "vmsplice": ["vmsplice", "--chunk", "1024", "--pipe", "1024"]}


def probe(args, kind):
    """One run of the probe: its JSON (gbps, each side's CPU s/GiB), or None."""
    exe = Path(args.build) / "bench" / "link-probe"
    cpus = ["--cpus", f"{args.pin[0]},{args.pin[1]}"] if args.pin[0] is not None else []
    out = subprocess.run([str(exe), *PROBE_ARGS[kind], "--mib", "1024", "--runs", "1",
                          *cpus, "--json"], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        print(f"bench: link-probe {kind} failed: {out.stderr.strip()}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def probe_median(runs):
    """The probe's runs taken as a row's: the median GB/s and CPU s/GiB of
    each side, the slowest and fastest run beside them; None without any."""
    ok = [r for r in runs if r]
    if not ok:
        return None
    out = dict(ok[0])
    out.pop("round_mib", None)
    med = statistics.median
    out.update({"runs": len(ok), "statistic": "median", "gbps": med(r["gbps"] for r in ok),
                "min_gbps": min(r["gbps"] for r in ok), "max_gbps": max(r["gbps"] for r in ok),
                "each_gbps": [r["gbps"] for r in ok],
                "each_round_mib": [r.get("round_mib") for r in ok],
                "writer_cpu_s_per_gib": med(r["writer_cpu_s_per_gib"] for r in ok),
                "reader_cpu_s_per_gib": med(r["reader_cpu_s_per_gib"] for r in ok)})
    return out


def fmt(v, spec, width):
    return f"{'-':>{width}}" if v is None else f"{v:>{width}{spec}}"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("MIGCERT_BUILD", "build"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--shared-hops", type=int, default=3,
                    help="migrations of the same shared memory per shared run (a chain)")
    ap.add_argument("--sizes", default="256,1024,8192", help="RAM sizes in MiB")
    ap.add_argument("--ram-mib", type=int, help="one size only (old option)")
    ap.add_argument("--transports", default="qemu,unix,local,shared")
    ap.add_argument("--only", choices=("migcert", "qemu"), help="old option: qemu or unix")
    ap.add_argument("--seed", type=int, default=0x5eed)
    ap.add_argument("--qemu", default=os.environ.get("QEMU", "qemu-system-x86_64"))
    ap.add_argument("--pin", metavar="SRC,DST",
                    help="pin each source to CPU SRC and each destination to CPU DST (the "
                         "probes' writer and reader too)")
    ap.add_argument("--no-verify", dest="verify", action="store_false")
    ap.add_argument("--json", default=str(REPO / "reports" / "out" / "bench.json"),
                    help="write every run, the table and the ratios as JSON here")
    args = ap.parse_args(argv)
    if not Path(args.build).is_absolute():
        args.build = str(REPO / args.build)
    sizes = [args.ram_mib] if args.ram_mib else [int(x) for x in args.sizes.split(",") if x]
    transports = [t for t in args.transports.split(",") if t]
    if args.only:
        transports = ["qemu"] if args.only == "qemu" else ["unix"]
    pin_arg = args.pin
    args.pin = (None, None)
    if pin_arg:
        try:
            args.pin = tuple(int(c) for c in pin_arg.split(","))
        except ValueError:
            args.pin = ()
        if len(args.pin) != 2 or min(args.pin) < 0:
            ap.error(f"--pin takes two CPU numbers, SRC,DST: {pin_arg!r}")
        if not shutil.which("taskset"):
            ap.error("--pin needs taskset (util-linux)")
    placement = "scheduler" if not pin_arg else {"src_cpu": args.pin[0], "dst_cpu": args.pin[1]}
    where = "the scheduler" if not pin_arg else \
        f"source/writer on CPU {args.pin[0]}, destination/reader on CPU {args.pin[1]}"
    if args.shared_hops < 1:
        ap.error(f"--shared-hops takes 1 or more: {args.shared_hops}")
    for t in transports:
        if t not in COPIES:
            ap.error(f"unknown transport {t!r} (qemu, unix, local, shared)")

    print(f"bench: random RAM over unix:, max-bandwidth {UNLIMITED:.0e}, pre-faulted, source "
          f"paused, {args.runs} run(s) per cell, seed {args.seed:#x}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus; placement: {where}", flush=True)
    # The ceilings are measured between the migrations, one probe run at
    # the start of each round (as each transport's run i follows run i-1 of
    # the others), so both sides of a ratio see the same moments of a
    # shared machine; the median of those runs, like each row's.
    probe_runs = {"socket": [], "records": [], "vmsplice": []}

    base_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
    rows = []
    ok = True
    for mib in sizes:
        work = Path(tempfile.mkdtemp(prefix="migcert-bench-", dir=base_dir))
        try:
            ram_file = work / "ram.bin"
            ram_sha = None
            cells = {}
            for t in transports:
                need = COPIES[t] * mib + 2048
                avail = mem_available_mib()
                if avail < need:
                    cells[t] = {"transport": t, "ram_mib": mib, "status": "skipped",
                                "why": f"needs {need} MiB available, {avail} are", "runs": []}
                else:
                    cells[t] = {"transport": t, "ram_mib": mib, "status": "ok", "runs": []}
            def run_probes(kinds):
                for kind in kinds:
                    got = probe_runs[kind]
                    got.append(probe(args, kind))
                    if got[-1]:
                        got[-1]["round_mib"] = mib
                        print(f"  {kind + ' probe':<15} {'':>5}     run {len(got) - 1}: "
                              f"{got[-1]['gbps']:.2f} GB/s", flush=True)
            for i in range(args.runs):
                # each ceiling right before the transport it bounds (those
                # whose transport does not run: at the start of the round)
                run_probes([k for k, t in PROBE_FOR.items() if t not in transports])
                for t in transports:
                    run_probes([k for k, pt in PROBE_FOR.items() if pt == t])
                    cell = cells[t]
                    if cell["status"] == "skipped":
                        continue
                    try:
                        if t == "qemu":
                            if not ram_file.exists():
                                run_migcert(args, work, "img", ram_file, "unix", mib)
                            if ram_sha is None:
                                ram_sha = sha256_file(ram_file)
                            rs = [run_qemu(args, work, i, ram_file, ram_sha, mib)]
                        else:
                            # QEMU's image, taken from the first migcert source, only
                            # when QEMU runs at this size (it costs the RAM in tmpfs)
                            keep = ram_file if cells.get("qemu", {}).get("status") == "ok" \
                                else None
                            rs = run_migcert(args, work, i, keep, t, mib,
                                             args.shared_hops if t == "shared" else 1)
                    except Exception as e:  # a peer that did not start: a failed run
                        rs = [{"status": "failed", "error": str(e), "verified": False,
                               "total_time_ms": 0, "gbps": 0.0}]
                    for h, r in enumerate(rs):
                        cell["runs"].append(r)
                        run = f"{i}.{h}" if len(rs) > 1 else f"{i}"
                        print(f"  {LABEL[t]:<15} {mib:>5} MiB run {run}: {r['status']}, "
                              f"{r['total_time_ms']:.1f} ms, downtime {r.get('downtime_ms')} ms, "
                              f"{r['gbps']:.2f} GB/s, verified {r['verified']}", flush=True)
                        if r["status"] != "completed" or not r["verified"]:
                            ok = False
                            print(f"bench: {LABEL[t]} {mib} MiB: {r['status']}"
                                  f"{' (not verified)' if r['status'] == 'completed' else ''}: "
                                  f"{r.get('error') or ''}\n{r.get('log', '')}", file=sys.stderr)
            for t in transports:
                cell = cells[t]
                if cell["status"] != "skipped":
                    cell["median"] = median_row(cell["runs"], mib)
                    if cell["median"] is None:
                        cell["status"], cell["why"] = "failed", "no completed, verified run"
                rows.append(cell)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    probes = {k: probe_median(v) for k, v in probe_runs.items()}
    ceil = {"socketpair_gbps": (probes["socket"] or {}).get("gbps"),
            "socketpair_records_gbps": (probes["records"] or {}).get("gbps"),
            "vmsplice_pipe_gbps": (probes["vmsplice"] or {}).get("gbps"), "probes": probes}

    def cpu_note(p):
        if not p:
            return ""
        return (f" ({p['min_gbps']:.2f}-{p['max_gbps']:.2f}, CPU s/GiB writer "
                f"{p['writer_cpu_s_per_gib']:.3f}, reader {p['reader_cpu_s_per_gib']:.3f})")
    print()
    print(f"ceilings: unix socketpair {fmt(ceil['socketpair_gbps'], '.2f', 0)} GB/s"
          f"{cpu_note(probes['socket'])}, the same in PAGE records "
          f"{fmt(ceil['socketpair_records_gbps'], '.2f', 0)} GB/s{cpu_note(probes['records'])}, "
          f"vmsplice 1 MiB pipe "
          f"{fmt(ceil['vmsplice_pipe_gbps'], '.2f', 0)} GB/s{cpu_note(probes['vmsplice'])} "
          f"(two processes, 1 MiB chunks, median of {len(probe_runs['socket'])} runs taken "
          f"between the migrations)", flush=True)

    def cell(t, mib):
        for c in rows:
            if c["transport"] == t and c["ram_mib"] == mib and c.get("median"):
                return c["median"]
        return None
    for c in rows:
        q, m = cell("qemu", c["ram_mib"]), c.get("median")
        c["x_qemu"] = q["total_time_ms"] / m["total_time_ms"] if q and m and \
            m["total_time_ms"] else None

    print()
    print(f"{'transport':<15} {'RAM MiB':>7} {'total ms':>9} {'downtime':>9} {'GB/s':>7} "
          f"{'src CPU':>8} {'dst CPU':>8} {'x QEMU':>7}   (median; CPU in s/GiB; "
          f"x QEMU = QEMU's time / this)")
    for c in rows:
        m = c.get("median")
        if not m:
            print(f"{LABEL[c['transport']]:<15} {c['ram_mib']:>7} {c['status']}: {c.get('why')}")
            continue
        print(f"{LABEL[c['transport']]:<15} {c['ram_mib']:>7} {m['total_time_ms']:>9.1f} "
              f"{fmt(m['downtime_ms'], '.0f', 9)} {m['gbps']:>7.2f} "
              f"{m['src_cpu_s_per_gib']:>8.3f} {m['dst_cpu_s_per_gib']:>8.3f} "
              f"{fmt(c['x_qemu'], '.2f', 7)}")

    fixed = [f"{LABEL[c['transport']]} {c['ram_mib']} MiB {c['median']['fixed_ms']:.1f} ms"
             for c in rows if c.get("median") and c["median"].get("fixed_ms") is not None]
    print(f"interval: total time runs from the source's MIGRATION setup event to its completed "
          f"event, GB/s is RAM bytes over it; the probes run from the first byte written to the "
          f"last byte read.  Of the total, setup and the end (device state, last sync, drain) "
          f"took {', '.join(fixed) if fixed else '-'} (median)")
    ratios = {}
    u1, l1, s1, s8 = cell("unix", 1024), cell("local", 1024), cell("shared", 1024), \
        cell("shared", 8192)
    # The 1 GiB rows against the probe runs of their own rounds, each taken
    # right before its row's run (the median of those; all of the probe's
    # runs when it ran in no 1 GiB round): the moments of a busy machine
    # that the rows saw.
    def ceiling_1g(kind):
        own = [r["gbps"] for r in probe_runs[kind] if r and r.get("round_mib") == 1024]
        return statistics.median(own) if own else (probes[kind] or {}).get("gbps")
    sp, vp, spr = ceiling_1g("socket"), ceiling_1g("vmsplice"), ceiling_1g("records")
    ceil["at_1g"] = {"socketpair_gbps": sp, "socketpair_records_gbps": spr,
                     "vmsplice_pipe_gbps": vp}
    ratios["unix_of_socketpair"] = u1["gbps"] / sp if u1 and sp else None
    ratios["unix_of_socketpair_records"] = u1["gbps"] / spr if u1 and spr else None
    ratios["unix_x_qemu_1g"] = next((c["x_qemu"] for c in rows if c["transport"] == "unix" and
                                     c["ram_mib"] == 1024), None)
    ratios["local_of_vmsplice"] = l1["gbps"] / vp if l1 and vp else None
    ratios["shared_8g_over_1g"] = s8["total_time_ms"] / s1["total_time_ms"] if s1 and s8 and \
        s1["total_time_ms"] else None
    ratios["shared_1g_over_unix_1g"] = s1["total_time_ms"] / u1["total_time_ms"] if s1 and u1 \
        and u1["total_time_ms"] else None
    def fastest(mib):
        fast = [(cell(t, mib)["total_time_ms"], t) for t in transports if cell(t, mib)]
        return min(fast)[1] if fast else None
    ratios["fastest_1g"] = fastest(1024)
    ratios["fastest"] = {str(mib): fastest(mib) for mib in sizes}
    print()
    if ratios["unix_of_socketpair"] is not None:
        own = [r["gbps"] for r in probe_runs["socket"] if r and r.get("round_mib") == 1024]
        print(f"migcert unix, 1 GiB: {ratios['unix_of_socketpair'] * 100:.0f}% of the socketpair "
              f"(medians: {u1['gbps']:.2f} of {sp:.2f} GB/s, the probe's runs of the 1 GiB "
              f"rounds; runs {u1['min_gbps']:.2f}-{u1['max_gbps']:.2f} against "
              f"{min(own or [sp]):.2f}-{max(own or [sp]):.2f}), "
              f"{fmt(ratios['unix_x_qemu_1g'], '.2f', 0)}x QEMU 7.2")
    if ratios["unix_of_socketpair_records"] is not None:
        print(f"migcert unix, 1 GiB: {ratios['unix_of_socketpair_records'] * 100:.0f}% of the "
              f"socketpair carrying PAGE records ({spr:.2f} GB/s; the records cost the "
              f"socketpair {(1 - spr / sp) * 100 if sp else 0:.0f}% of its rate)")
    if ratios["local_of_vmsplice"] is not None:
        print(f"migcert local, 1 GiB: {ratios['local_of_vmsplice'] * 100:.0f}% of the vmsplice "
              f"pipe ({vp:.2f} GB/s, the probe's runs of the 1 GiB rounds)")
    if ratios["shared_8g_over_1g"] is not None:
        print(f"shared memory: 8 GiB takes {ratios['shared_8g_over_1g']:.2f}x the time of 1 GiB")
    if ratios["shared_1g_over_unix_1g"] is not None:
        print(f"shared memory, 1 GiB: {ratios['shared_1g_over_unix_1g']:.3f} of the plain "
              f"stream's time (1/{1 / max(ratios['shared_1g_over_unix_1g'], 1e-9):.0f})")
    for mib in sizes:
        t = ratios["fastest"][str(mib)]
        if t:
            print(f"fastest transport for {mib} MiB on this machine (load average "
                  f"{os.getloadavg()[0]:.1f}): {LABEL[t]}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "host": {"cpus": os.cpu_count(), "mem_available_gib": mem_available_mib() / 1024,
                     "load_avg": list(os.getloadavg())},
            "placement": placement, "ceilings": ceil, "runs_per_cell": args.runs,
            "shared_hops": args.shared_hops, "rows": rows, "ratios": ratios},
            indent=2))
        print(f"bench: JSON in {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
