#!/usr/bin/python3
"""soak.py - the soak of real `migcert vm` processes (ci/lane-full-soak, in
`make run`): a dirtying guest migrates back and forth between two slots,
A and B, over unix sockets, ROUNDS times, with cancels and destination
kills mixed in, and nothing may be lost or leak.

    soak.py --migcert build/migcert [--rounds 200] [--seed 1] [--ram 4M]
            [--gpu-mem 256K]
            [--dir D] [--junit FILE]

One round moves the guest from the slot that runs it to the other one:
  1. a destination `migcert vm --incoming unix:SLOT.mig -S` is started in
     the other slot (-S: it stays paused after completion, so its RAM and
     devices can be compared with the source's at stop time);
  2. zero or more failed attempts, drawn from --seed: "cancel" (the source
     cancels a migration held at pre-switchover: the source must be
     running, its guest live, the destination up in inmigrate, then quit
     and replaced) or "kill" (the destination is SIGKILLed mid-way: the
     source must say "failed" with a reason and keep running; a new
     destination is started);
  3. the migration that completes: source postmigrate, destination paused,
     RAM digest (x-query-ram-digest) and every device digest
     (x-query-device-digest: fake-serial, fake-nic, fake-rng, fake-gpu)
     equal on both sides; then the destination's guest is resumed (`cont`),
     the old source quits (exit 0) and its slot is free for the next round.
Every process a round ends must exit 0 on `quit` (or be the one we killed).

Leaks: after the first and the last round, the surviving pair is measured
(VmRSS and open fds from /proc of the running guest and of the source
that the failed attempts of the round left running): both pairs have the
same history shape, so their fd counts must be equal and their RSS equal
within RSS_SLACK (page-cache and allocator noise; a leak per round would be
ROUNDS times larger).  A source also keeps its fd count across every
failed attempt (the same process, before and after).  Figures are printed.

Nothing here depends on machine speed: interference lands on a migration
held short of completion (pause-before-switchover), every wait is for a
state, and deadlines are hang guards only.  The last line printed is the
lane's summary: "soak: N of N rounds completed, C cancels, K kills, F
failure(s)"; --junit writes one case per check family.
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pytest"))

from qmp import QMP  # noqa: E402

UNLIMITED = 10**12
DIRTY_RATE = 2000        # pages/s the running guest writes (RAM and fake-gpu memory)
SLOW_BANDWIDTH = 4 << 20  # for attempts that are interfered with: pre-copy lasts
RSS_SLACK_KB = 2048      # allowed RSS difference, first vs last pair (kB)
GUARD = 60.0             # hang guard per wait, seconds


class SoakFailure(Exception):
    def __init__(self, family, msg):
        super().__init__(msg)
        self.family = family


class Vm:
    """One `migcert vm` with its QMP session; the log is kept in DIR."""

    def __init__(self, binary, folder, name, args):
        self.name = name
        self.sock = Path(folder) / f"{name}.qmp"
        self.log_path = Path(folder) / f"{name}.log"
        argv = [str(binary), "vm", "--qmp", f"unix:{self.sock}"] + list(args)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        try:
            self.qmp = QMP.connect(self.sock, timeout=GUARD, cmd_timeout=GUARD, alive=self.alive)
        except Exception as e:
            self.kill()
            raise SoakFailure("start", f"{name}: no QMP: {e}\n{self.log()}")

    def alive(self):
        return self.proc.poll() is None

    def log(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def cmd(self, name, args=None, **kw):
        return self.qmp.execute(name, args, **kw)

    def status(self):
        st = self.cmd("query-status")
        return st["running"], st["status"]

    def wait_status(self, wanted, family):
        deadline = time.monotonic() + GUARD
        while True:
            info = self.cmd("query-migrate")
            if info.get("status") in wanted:
                return info
            if time.monotonic() > deadline:
                raise SoakFailure(family, f"{self.name}: migration {info} not in {wanted}\n{self.log()}")
            time.sleep(0.005)

    def usage(self):
        """(VmRSS kB, open fds) from /proc."""
        rss = 0
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        return rss, len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def quit(self, family):
        try:
            self.cmd("quit", timeout=10)
        except Exception:
            pass
        try:
            rc = self.proc.wait(GUARD)
        except subprocess.TimeoutExpired:
            rc = None
        self.kill()
        if rc != 0:
            raise SoakFailure(family, f"{self.name}: exit status {rc} on quit\n{self.log()}")

    def kill(self):
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        if not self._log.closed:
            self._log.close()


class Soak:
    def __init__(self, opts):
        self.o = opts
        self.rnd = random.Random(opts.seed)
        self.dir = Path(opts.dir)
        self.n = 0              # processes started (names are unique)
        self.cancels = self.kills = self.completed = 0
        self.live = []
        self.arrived = None     # RAM digest the guest had when it last arrived

    def start(self, slot, args):
        self.n += 1
        vm = Vm(self.o.migcert, self.dir, f"{slot}{self.n}", args)
        self.live.append(vm)
        return vm

    def common(self):
        return ["--ram", self.o.ram, "--gpu-mem", self.o.gpu_mem, "--devices", "default",
                "--dirty-rate", str(DIRTY_RATE)]

    def destination(self, slot):
        return self.start(slot, self.common() + ["--seed", str(self.n + 100), "-S",
                                                 "--incoming", f"unix:{self.dir}/{slot}.mig"])

    def retire(self, vm, family, killed=False):
        self.live.remove(vm)
        if killed:
            vm.kill()
        else:
            vm.quit(family)

    def ram_digest(self, vm):
        return vm.cmd("x-query-ram-digest")["sha256"]

    def dev_digests(self, vm):
        return {d["id"]: d["digest"] for d in vm.cmd("x-query-device-digest")["devices"]}

    def hold(self, src, on):
        src.cmd("migrate-set-capabilities",
                capabilities=[{"capability": "pause-before-switchover", "state": on}])

    def check_source_survived(self, src, fds_before, what):
        """After a failed attempt: running, its guest live, no fd left over."""
        if src.status() != (True, "running"):
            raise SoakFailure(what, f"{src.name}: {src.status()} after a {what}\n{src.log()}")
        d1 = self.ram_digest(src)
        deadline = time.monotonic() + GUARD
        while self.ram_digest(src) == d1:
            if time.monotonic() > deadline:
                raise SoakFailure(what, f"{src.name}: guest not live after a {what}\n{src.log()}")
            time.sleep(0.01)
        fds = src.usage()[1]
        if fds != fds_before:
            raise SoakFailure("leaks", f"{src.name}: {fds_before} open fds before a {what}, "
                                       f"{fds} after\n{src.log()}")

    def held_attempt(self, src, dst):
        """Start a migration that cannot complete and wait until it is under
        way on both sides."""
        self.hold(src, True)
        src.cmd("migrate-set-parameters", {"max-bandwidth": SLOW_BANDWIDTH})
        src.cmd("migrate", uri=f"unix:{self.dir}/{dst.name[0]}.mig")
        dst.wait_status(("active",), "start")
        deadline = time.monotonic() + GUARD
        while src.cmd("query-migrate").get("ram", {}).get("transferred", 0) < (256 << 10):
            if time.monotonic() > deadline:
                raise SoakFailure("start", f"{src.name}: migration not under way\n{src.log()}")
            time.sleep(0.005)

    def attempt_cancel(self, src, dst, slot):
        fds = src.usage()[1]
        self.held_attempt(src, dst)
        src.cmd("migrate_cancel")
        src.wait_status(("cancelled",), "cancel")
        dinfo = dst.wait_status(("failed", "cancelled"), "cancel")
        if not dst.alive() or dst.status() != (False, "inmigrate") or \
                (dinfo["status"] == "failed" and not dinfo.get("error-desc")):
            raise SoakFailure("cancel", f"{dst.name}: {dinfo} after the source cancelled\n{dst.log()}")
        self.check_source_survived(src, fds, "cancel")
        self.retire(dst, "cancel")
        self.cancels += 1
        return self.destination(slot)

    def attempt_kill(self, src, dst, slot):
        fds = src.usage()[1]
        self.held_attempt(src, dst)
        self.retire(dst, "kill", killed=True)
        info = src.wait_status(("failed",), "kill")
        if not info.get("error-desc"):
            raise SoakFailure("kill", f"{src.name}: failed without error-desc: {info}")
        self.check_source_survived(src, fds, "kill")
        self.kills += 1
        return self.destination(slot)

    def wait_dirtied(self, src):
        """The guest has written memory since it arrived in src (so every
        round moves a changed guest; waited for, not timed)."""
        deadline = time.monotonic() + GUARD
        while self.arrived is not None and self.ram_digest(src) == self.arrived:
            if time.monotonic() > deadline:
                raise SoakFailure("complete", f"{src.name}: the guest wrote nothing\n{src.log()}")
            time.sleep(0.01)

    def complete(self, src, dst):
        self.wait_dirtied(src)
        self.hold(src, False)
        src.cmd("migrate-set-parameters", {"max-bandwidth": UNLIMITED})
        src.cmd("migrate", uri=f"unix:{self.dir}/{dst.name[0]}.mig")
        info = src.wait_status(("completed", "failed", "cancelled"), "complete")
        dinfo = dst.wait_status(("completed", "failed", "cancelled"), "complete")
        if info["status"] != "completed" or dinfo["status"] != "completed":
            raise SoakFailure("complete", f"source {info}\ndestination {dinfo}\n"
                                          f"--- {src.name} ---\n{src.log()}\n--- {dst.name} ---\n{dst.log()}")
        if src.status() != (False, "postmigrate") or dst.status() != (False, "paused"):
            raise SoakFailure("complete", f"run states {src.status()} / {dst.status()}")
        self.arrived = self.ram_digest(dst)
        if self.ram_digest(src) != self.arrived:
            raise SoakFailure("digests", f"RAM digests differ: {src.name} vs {dst.name}")
        ds, dd = self.dev_digests(src), self.dev_digests(dst)
        if ds != dd or len(ds) < 4:
            raise SoakFailure("digests", f"device digests differ: {src.name} {ds} vs {dst.name} {dd}")
        dst.cmd("cont")
        self.completed += 1

    def round(self, src):
        """Move the guest from src to the other slot; return the new source
        and the (VmRSS kB, fds) of the pair at the end: the old source in
        postmigrate, the new one running."""
        slot = "b" if src.name[0] == "a" else "a"
        dst = self.destination(slot)
        while True:
            r = self.rnd.random()
            if r < 0.15:
                dst = self.attempt_cancel(src, dst, slot)
            elif r < 0.30:
                dst = self.attempt_kill(src, dst, slot)
            else:
                break
        self.complete(src, dst)
        pair = (src.usage(), dst.usage())
        self.retire(src, "complete")
        return dst, pair

    def run(self):
        """Round 0 brings the guest from the process that filled its RAM
        into slot a, so that every process of rounds 1..N has the same
        history shape: started as a destination, received the guest,
        sent it on."""
        seeder = self.start("s", self.common() + ["--fill", "random", "--seed", str(self.o.seed)])
        src = self.destination("a")
        self.complete(seeder, src)
        self.retire(seeder, "complete")
        self.completed = 0
        first = last = None
        for i in range(self.o.rounds):
            src, pair = self.round(src)
            if self.o.verbose:
                print(f"soak: round {i + 1}: {fmt(pair)}")
            if first is None:
                first = pair
            last = pair
        return first, last

    def cleanup(self):
        for vm in list(self.live):
            vm.kill()
        self.live.clear()


def fmt(pair):
    (sr, sf), (dr, df) = pair
    return f"source {sr} kB RSS {sf} fds, destination {dr} kB RSS {df} fds"


def write_junit(path, results):
    bad = sum(1 for _, msg in results if msg and msg != "skipped")
    rows = []
    for name, msg in results:
        if msg == "skipped":
            rows.append(f'<testcase classname="soak" name={quoteattr(name)}><skipped message='
                        '"not judged: the soak stopped at an earlier failure"/></testcase>')
        elif msg:
            rows.append(f'<testcase classname="soak" name={quoteattr(name)}><failure message='
                        f'{quoteattr(msg.splitlines()[0][:200])}>{escape(msg)}</failure></testcase>')
        else:
            rows.append(f'<testcase classname="soak" name={quoteattr(name)}/>')
    Path(path).write_text('<?xml version="1.0" encoding="UTF-8"?>\n'
                          f'<testsuites><testsuite name="soak" tests="{len(rows)}" failures="{bad}">'
                          + "".join(rows) + "</testsuite></testsuites>\n")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--migcert", default="build/migcert")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    # small: what the soak looks for (a leak a round, a lost page or device
    # state, a source that does not survive) does not grow with the guest;
    # most of a round's CPU was digesting, copying and checksumming 16 MiB
    # of RAM and 16 MiB of fake-gpu memory
    ap.add_argument("--ram", default="4M")
    ap.add_argument("--gpu-mem", default="256K")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--junit", default=None)
    ap.add_argument("--verbose", action="store_true", help="print the figures of every round")
    o = ap.parse_args(argv)
    own_dir = o.dir is None
    if own_dir:
        o.dir = tempfile.mkdtemp(prefix="migcert-soak-")
    Path(o.dir).mkdir(parents=True, exist_ok=True)
    repro = (f"REPRO: /usr/bin/python3 harness/soak/soak.py --migcert {o.migcert} --rounds {o.rounds} "
             f"--seed {o.seed} --ram {o.ram} --gpu-mem {o.gpu_mem}")
    soak = Soak(o)
    families = ["start", "cancel", "kill", "complete", "digests", "leaks"]
    failure = None
    first = last = None
    try:
        first, last = soak.run()
    except SoakFailure as e:
        failure = e
    except Exception as e:  # a QMP timeout or a lost connection: a hang or a crash
        failure = SoakFailure("complete", f"{type(e).__name__}: {e}")
    finally:
        soak.cleanup()
    if failure is None:
        print(f"soak: after round 1: {fmt(first)}")
        print(f"soak: after round {o.rounds}: {fmt(last)}")
        msgs = []
        for side, (a, b) in zip(("source", "destination"), zip(first, last)):
            if a[1] != b[1]:
                msgs.append(f"{side}: {a[1]} open fds after round 1, {b[1]} after round {o.rounds}")
            if abs(a[0] - b[0]) > RSS_SLACK_KB:
                msgs.append(f"{side}: VmRSS {a[0]} kB after round 1, {b[0]} kB after round "
                            f"{o.rounds} (more than {RSS_SLACK_KB} kB apart)")
        if msgs:
            failure = SoakFailure("leaks", "; ".join(msgs))
    if failure is not None:
        print(f"soak: {failure.family}: {failure}\n{repro} --dir {o.dir}", file=sys.stderr)
    elif own_dir:
        shutil.rmtree(o.dir, ignore_errors=True)
    results = []
    for fam in families:
        msg = None
        if failure is not None:  # the other families were not all judged
            msg = f"{failure}\n{repro}" if failure.family == fam else "skipped"
        results.append((fam, msg))
    if o.junit:
        write_junit(o.junit, results)
    nfail = 1 if failure else 0
    print(f"soak: {soak.completed} of {o.rounds} rounds completed, {soak.cancels} cancels, "
          f"{soak.kills} kills, {nfail} failure(s)")
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
