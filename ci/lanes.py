#!/usr/bin/python3
"""ci/lanes.py - runs the lanes of `make check` and `make run` (Makefile)
as jobs on a shared pool instead of one after another.

    ci/lanes.py BUILD [--full] [--slots N]

Who calls it: the Makefile's check and check-full targets (then
ci/summary.py for the last line, and `migcert report` for check-full).

Each lane is still its own script, ci/lane-NAME BUILD, unchanged in what it
runs and writes (its JUnit in reports/out).  What changes is when it runs:
a lane starts as soon as the lanes it needs have finished (every lane
that runs `BUILD/migcert` or a unit binary needs the build lane; the
sanitizers lane reuses the fuzz lane's ASan objects in BUILD-fuzz, so it
waits for fuzz) and one of SLOTS (default 2, the number of cores) is free.
Lanes mostly run two or more processes each and several (pytest, soak,
certify) spend much of their time waiting on peers, so two lanes side by
side keep both cores busy where one lane alone leaves gaps; the longest
lanes start first.  Invariants: a lane never starts before what it reads
is built; two lanes never write the same file (each lane owns its
reports/out files and its BUILD-suffix folder); a lane's output is printed
whole when it ends (never interleaved), followed by its one line
"lane NAME: N passed, N failed in S s (C CPU s)" (ci/summary.py), and at
the end a table of every lane's start, wall and CPU seconds (user+sys of
its whole process tree), also written to reports/out/lanes.txt.
Exit status: 0 when every lane exited 0, else 1.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from summary import lane_line  # noqa: E402

# name: (lanes it needs, rank: larger starts first among the ready ones).
# The rank is about the seconds the lane takes on its own on a quiet 2-core
# machine: its CPU seconds (reports/out/lanes.txt, a clean-clone make run
# of 2026-12-07 15:29, 517 s wall, 984 CPU s) over the cores it keeps busy
# (2 for the lanes that run two jobs; pytest about 1.1, so its wall;
# coverage about 1: its build and runs are two jobs at a time, lcov one;
# the soak takes no slot, below).  Longest first, so the short
# lanes fill the end where one lane alone would leave a core idle.  build
# and fuzz come first whatever their size: every other lane waits for one
# of them.  CPU/2 is the floor of the wall time; update the ranks when a
# lane's CPU moves.
CHECK = {
    "build": ((), 10000),
    "fuzz": ((), 9000),
    "layers": ((), 0),
    "unit": (("build",), 10),
    "pytest": (("build",), 139),
}
FULL = {
    "full-sanitizers": (("fuzz",), 136),
    "full-valgrind": (("build",), 104),
    "full-coverage": ((), 97),
    "full-sweeps": (("build",), 40),
    "full-soak": (("build",), 60),
    "full-certify": (("build",), 5),
    "full-determinism": (("build",), 2),
}

# Lanes that take no slot: layers reads sources for a fraction of a
# second; the soak mostly waits on its guests (17 CPU s in 62 s wall in
# the run above): holding a slot it left most of a core idle for a minute.
# It waits for states, never for time, so sharing the cores slows it and
# nothing else.
SLOTLESS = {"layers", "full-soak"}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--slots", type=int, default=int(os.environ.get("LANE_SLOTS", os.cpu_count() or 2)))
    ap.add_argument("--out", default=os.environ.get("REPORTS_OUT", "reports/out"))
    a = ap.parse_args(argv)
    lanes = dict(CHECK)
    if not a.full:
        # make check: the build first on both cores, then the fuzz lane
        # beside pytest.  pytest (the longest) waits for the build, which
        # took 84 s wall sharing the cores with the fuzz lane's own build
        # and about half that alone; nothing waits for the fuzz lane here.
        # (make run keeps both at once: its sanitizers lane, the longest,
        # waits for the fuzz lane.)
        lanes["fuzz"] = (("build",), CHECK["fuzz"][1])
    else:
        # every ci/lane-full-* runs; one not in FULL needs the build
        for path in sorted(glob.glob("ci/lane-full-*")):
            n = os.path.basename(path)[len("lane-"):]
            lanes[n] = FULL.get(n, (("build",), 30))
    os.makedirs(a.out, exist_ok=True)
    t0 = time.monotonic()
    pending = set(lanes)
    running = {}   # pid -> (name, Popen, log file, start)
    done = {}      # name -> (status, start, wall, cpu)
    rc = 0
    while pending or running:
        ready = sorted((n for n in pending if all(d in done for d in lanes[n][0])),
                       key=lambda n: -lanes[n][1])
        for n in ready:
            busy = sum(1 for r in running.values() if r[0] not in SLOTLESS)
            if n not in SLOTLESS and busy >= a.slots:
                continue
            log = tempfile.TemporaryFile(mode="w+b")
            env = None
            if a.full and n == "pytest":
                # the pair product runs whole in full-sanitizers: the pytest
                # lane's fifth of it would run twice (harness/pytest/test_scenarios.py)
                env = dict(os.environ, MIGCERT_SCENARIO_PAIRS="own")
            p = subprocess.Popen(["bash", f"ci/lane-{n}", a.build], stdout=log, env=env,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            running[p.pid] = (n, p, log, time.monotonic())
            pending.discard(n)
        if not running:
            # a lane whose prerequisite is missing: cannot happen with the
            # tables above; fail rather than spin
            print(f"lanes: cannot start {sorted(pending)}", file=sys.stderr)
            return 1
        pid, status, ru = os.wait4(-1, 0)
        if pid not in running:
            continue
        n, p, log, start = running.pop(pid)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - start
        cpu = ru.ru_utime + ru.ru_stime
        done[n] = (p.returncode, start - t0, wall, cpu)
        rc |= p.returncode != 0
        log.seek(0)
        sys.stderr.flush()
        sys.stderr.buffer.write(log.read())
        log.close()
        sys.stderr.flush()
        lane_line(a.out, n.removeprefix("full-"), round(wall), out=sys.stderr, cpu=round(cpu))
    total = time.monotonic() - t0
    rows = [f"{'lane':<14} {'start s':>8} {'wall s':>8} {'CPU s':>8}  exit"]
    for n, (st, start, wall, cpu) in sorted(done.items(), key=lambda kv: kv[1][1]):
        rows.append(f"{n.removeprefix('full-'):<14} {start:8.0f} {wall:8.0f} {cpu:8.0f}  {st}")
    cpu_all = sum(v[3] for v in done.values())
    rows.append(f"{'all':<14} {0:8.0f} {total:8.0f} {cpu_all:8.0f}  "
                f"(CPU/wall {cpu_all / max(total, 1e-9):.2f} of {a.slots} slots; "
                f"load {os.getloadavg()[0]:.1f})")
    text = "\n".join(rows) + "\n"
    with open(os.path.join(a.out, "lanes.txt"), "w") as f:
        f.write(text)
    sys.stderr.write(text)
    return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
