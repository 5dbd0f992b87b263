"""spice-bench.py - the SPICE figures of `make bench` (ci/bench), both as
`migcert client` (the fake client, fakes/client) sees them:

1. the switch-over gap of a semi-seamless migration: from the source's
   MIGRATE_END to the first display message from the target (the client's
   `switch_gap_ms`, monotonic time), between two `migcert vm --spice` and
   between two QEMU 7.2 (`-vga qxl -spice ... -audiodev spice` with
   intel-hda, the destination running with -incoming), in the same run,
   both guests' RAM nearly all zero pages (`--fill zero`; QEMU's guest sits
   in its BIOS), since the gap includes the target finishing the stream,
   with the ratio migcert/QEMU (the goal: at most 1); the migcert machines
   have no device but SPICE's (`--devices none`), like the QEMU guest: the
   release's default fake-gpu alone carries 16 MiB of device state, which
   the target loads before it reads the client's MIGRATE_END;
   The same gap for a seamless migration (both servers with
   seamless-migration=on): from the source's first MIGRATE (the start of
   the channel-by-channel hand-over) to the target's first display
   message, for both engines, with its ratio.  Both targets hold their
   display output for a seamless client until they took its display blob
   (spice-server's "waits for migrate data", migcert's held queue), so
   that message marks the same event for both: the target's answer to the
   client's arrival.  Both answer while the machine may still be loading:
   spice-server's display worker takes the blob in its own thread as it
   comes, migcert's display takes the blob's client part (serial, ACK
   window, cache) as soon as its loop reads it (when the load waits for
   the stream's next bytes, or at its end: one thread); neither draws
   before its machine has loaded.  The first message is a cache reset (INVAL_ALL_PIXMAPS or
   INVAL_ALL_PALETTES) or, when the blob came after the target had loaded
   and the guest drew, a drawing queued meanwhile; each run prints which,
   and splits the gap into the client's part (to the moment the display
   channel moved and sent its blob) and the target's (from there to its
   first message);
2. display throughput: drawing messages per second a `migcert vm --spice
   x-draw-rate=R` sends to a client that keeps up (the device never lets a
   client's pipe pass FAKE_QXL_MAX_PIPE messages), counted by the client
   over a fixed number of messages (`migcert client --draws N`).

    /usr/bin/python3 harness/bench/spice-bench.py [--build DIR] [--runs N]
        [--draws N] [--draw-rate R] [--only migcert|qemu] [--json FILE]
        [--kinds semi_seamless,seamless] [--no-throughput] [--trace DIR]

--trace DIR keeps each engine's log (the migcert machines run with
--trace: when the target linked the client, loaded each section, took
each blob and sent its first display message) and the client's summary.

Each migration: the client links every channel of the source and shows its
primary surface; `client_migrate_info`, then, once the client reports
MIGRATE_CONNECTED (spice-server needs it before the migration ends, and
QEMU 7.2's command returns at once), `migrate` to a unix socket; the figure
is read once the client has switched.  Figures only: the script checks
that every run ended on the target by the migration's kind of switch,
never a time.
Exit 0 when every run did, 1 otherwise.
"""
import argparse
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
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "harness" / "pytest"))

from bench import Proc  # noqa: E402
from spiceclient import SpiceClient  # noqa: E402

DEADLINE = 120  # a hang guard only


def wait_sock(proc, path):
    end = time.monotonic() + DEADLINE
    while not Path(path).exists():
        if not proc.alive() or time.monotonic() > end:
            raise RuntimeError(f"{proc.argv[0]} made no SPICE socket {path}:\n{proc.log()}")
        time.sleep(0.01)


def migcert_pair(args, work, i, procs, spice_extra=""):
    binary = Path(args.build) / "migcert"
    for side in ("src", "dst"):
        sock = work / f"mc-{side}{i}.spice"
        extra = ["--incoming", f"unix:{work}/mc-mig{i}.sock"] if side == "dst" else []
        # zero-filled RAM, as the idle QEMU guest's is nearly all zero pages
        p = Proc([binary, "vm", "--ram", "32M", "--fill", "zero", "--devices", "none", "--spice",
                  f"unix=on,addr={sock},disable-ticketing=on{spice_extra}",
                  *extra, *(["--trace"] if args.trace else []), "--qmp", f"unix:{work}/mc-{side}{i}.qmp"],
                 work / f"mc-{side}{i}.qmp",
                 work / f"mc-{side}{i}.log")
        procs.append((p, sock))
        wait_sock(p, sock)
    return work / f"mc-mig{i}.sock", 7


def qemu_pair(args, work, i, procs, spice_extra=""):
    qemu = shutil.which(args.qemu)
    if not qemu:
        raise RuntimeError(f"{args.qemu} not found: run `bash ci/deps`")
    for side in ("src", "dst"):
        sock = work / f"q-{side}{i}.spice"
        # the destination runs (no -S): a paused QEMU keeps its display worker stopped
        extra = ["-incoming", f"unix:{work}/q-mig{i}.sock"] if side == "dst" else []
        p = Proc([qemu, "-M", "pc", "-m", "64", "-display", "none", "-nodefaults", "-vga", "qxl", "-spice",
                  f"unix=on,addr={sock},disable-ticketing=on,image-compression=off{spice_extra}",
                  "-audiodev", "spice,id=snd0", "-device", "intel-hda", "-device", "hda-duplex,audiodev=snd0",
                  *extra, "-qmp", f"unix:{work}/q-{side}{i}.qmp,server=on,wait=off"],
                 work / f"q-{side}{i}.qmp", work / f"q-{side}{i}.log")
        procs.append((p, sock))
        wait_sock(p, sock)
    return work / f"q-mig{i}.sock", 6


def switch_gap(args, work, engine, i, kind="semi_seamless"):
    """One semi-seamless (or seamless) migration; the client's summary at the end."""
    pair = migcert_pair if engine == "migcert" else qemu_pair
    procs, client, final = [], None, None
    try:
        mig, nchan = pair(args, work, f"{kind[:2]}{i}", procs,
                          ",seamless-migration=on" if kind == "seamless" else "")
        (src, ssock), (dst, dsock) = procs
        client = SpiceClient(Path(args.build) / "migcert", work, f"unix:{ssock}", name=f"{engine}-{kind}{i}")
        client.wait_for(lambda s: len(s["channels"]) == nchan and "primary" in s, "every channel")
        src.qmp.execute("client_migrate_info", protocol="spice", hostname=str(dsock), port=0)
        client.wait_for(lambda s: s["migrating"] == "connected", "MIGRATE_CONNECTED")
        src.qmp.execute("migrate", uri=f"unix:{mig}")
        end = time.monotonic() + DEADLINE
        while src.qmp.execute("query-migrate").get("status") not in ("completed", "failed", "cancelled"):
            if time.monotonic() > end:
                raise RuntimeError("the migration did not end")
            time.sleep(0.005)
        s = client.wait_for(lambda s: s["switch_gap_ms"] is not None or s["error"] or
                            s["migrations"]["switch_host"], "the switch to the target")
        ok = s["migrations"][kind] == 1 and s["server"] == str(dsock) and not s["error"]
        return {"engine": engine, "kind": kind, "ok": ok, "gap_ms": s["switch_gap_ms"],
                "first_msg": s["switch_gap_msg"], "swap_ms": s["switch_swap_ms"], "summary": s,
                "log": "" if ok else src.log() + dst.log()}
    finally:
        if client:
            final = client.stop()[1]
        for p, _ in procs:
            p.quit()
        if args.trace:  # the engines' traces and the client's summary, for a look at where the gap goes
            Path(args.trace).mkdir(parents=True, exist_ok=True)
            for p, _ in procs:
                shutil.copy(p.log_path, Path(args.trace) / Path(p.log_path).name)
            (Path(args.trace) / f"{engine}-{kind}{i}.client.json").write_text(
                json.dumps(final, indent=1, default=str))


def throughput(args, work, i):
    binary = Path(args.build) / "migcert"
    sock = work / f"tp{i}.spice"
    vm = Proc([binary, "vm", "--ram", "32M", "--spice",
               f"unix=on,addr={sock},disable-ticketing=on,x-draw-rate={args.draw_rate}",
               "--qmp", f"unix:{work}/tp{i}.qmp"], work / f"tp{i}.qmp", work / f"tp{i}.log")
    try:
        wait_sock(vm, sock)
        out = work / f"tp{i}.json"
        r = subprocess.run([str(binary), "client", "--connect", f"unix:{sock}", "--draws", str(args.draws),
                            "--json", str(out)], capture_output=True, text=True, timeout=DEADLINE)
        s = json.loads(out.read_text()) if out.exists() else {}
        d = s.get("draws", {})
        ok = r.returncode == 0 and d.get("count", 0) >= args.draws and d.get("per_s") is not None
        return {"ok": ok, "per_s": d.get("per_s"), "count": d.get("count"), "ms": d.get("ms"),
                "log": "" if ok else r.stderr + vm.log()}
    finally:
        vm.quit()


def spread(values):
    return statistics.median(values), min(values), max(values)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("MIGCERT_BUILD", "build"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--draws", type=int, default=100000, help="drawing messages counted per run")
    ap.add_argument("--draw-rate", type=int, default=2000000, help="fake-qxl operations per second offered")
    ap.add_argument("--only", choices=("migcert", "qemu"))
    ap.add_argument("--qemu", default=os.environ.get("QEMU", "qemu-system-x86_64"))
    ap.add_argument("--json", help="write every run and the summary as JSON here")
    ap.add_argument("--trace", help="keep each engine's log (migcert vm --trace) and the client's summary here")
    ap.add_argument("--kinds", default="semi_seamless,seamless", help="which migrations (comma-separated)")
    ap.add_argument("--no-throughput", action="store_true", help="skip the display throughput runs")
    args = ap.parse_args(argv)
    if not Path(args.build).is_absolute():
        args.build = str(REPO / args.build)
    engines = [e for e in ("migcert", "qemu-7.2") if args.only in (None, e.split("-")[0])]
    work = Path(tempfile.mkdtemp(prefix="mc-sb-", dir="/tmp"))  # unix socket paths are short
    kinds = tuple(k for k in args.kinds.split(",") if k)
    bad = [k for k in kinds if k not in ("semi_seamless", "seamless")]
    if bad or not kinds:
        ap.error(f"--kinds: {','.join(bad) or 'nothing'}: the kinds are semi_seamless and seamless")
    rows = {(k, e): [] for k in kinds for e in engines}
    tput = []
    ok = True
    try:
        print(f"spice bench: switch-over gap of a semi-seamless migration (the source's MIGRATE_END to the "
              f"target's first display message) and of a seamless one (the source's first MIGRATE to the "
              f"target's first display message), seen by migcert client, {args.runs} run(s) each",
              flush=True)
        for kind in kinds:
            for i in range(args.runs):
                for e in engines:
                    r = switch_gap(args, work, "migcert" if e == "migcert" else "qemu", i, kind)
                    rows[(kind, e)].append(r)
                    gap = f"{r['gap_ms']:.2f} ms" if r["gap_ms"] is not None else "none"
                    split = (f" (first from the target: {r['first_msg']}; display moved at "
                             f"{r['swap_ms']:.2f} ms, the target answered {r['gap_ms'] - r['swap_ms']:.2f} ms "
                             f"later)" if r["gap_ms"] is not None else "")
                    print(f"  {e:<8} {kind.replace('_', '-'):<13} run {i}: {'ok' if r['ok'] else 'FAILED'}, "
                          f"gap {gap}{split}", flush=True)
        if args.only in (None, "migcert") and not args.no_throughput:
            print(f"spice bench: display throughput, migcert vm --spice x-draw-rate={args.draw_rate}, "
                  f"{args.draws} drawing messages counted by migcert client per run", flush=True)
            for i in range(args.runs):
                r = throughput(args, work, i)
                tput.append(r)
                fig = f"{r['per_s']:.0f} draw messages/s" if r["per_s"] else "no figure"
                print(f"  migcert  run {i}: {fig} ({r['count']} in {r['ms'] or 0:.0f} ms)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    for r in [r for rs in rows.values() for r in rs] + tput:
        if not r["ok"]:
            ok = False
            print(f"spice bench: a run failed: {r.get('summary', '')}\n{r['log'][-3000:]}", file=sys.stderr)
    summary = {}
    print()
    print("switch gap: semi-seamless from the source's MIGRATE_END, seamless from its first MIGRATE, to the "
          "target's first display message, for both engines the moment the target let the client's display "
          "output go (seamless: it took the display blob)")
    print(f"{'migration':<14} {'engine':<10} {'switch gap ms':>14}  (median of runs; min-max)")
    for (kind, e), rs in rows.items():
        name = kind.replace("_", "-")
        gaps = [r["gap_ms"] for r in rs if r["ok"]]
        if not gaps:
            print(f"{name:<14} {e:<10} {'no ' + name + ' run':>14}")
            continue
        med, lo, hi = spread(gaps)
        summary[f"{name} {e}"] = {"gap_ms": med, "min_ms": lo, "max_ms": hi, "runs": len(gaps)}
        print(f"{name:<14} {e:<10} {med:>14.2f}  ({lo:.2f}-{hi:.2f})")
    for kind in kinds:
        name = kind.replace("_", "-")
        m, q = summary.get(f"{name} migcert"), summary.get(f"{name} qemu-7.2")
        if m and q and q["gap_ms"]:
            print(f"ratio migcert/QEMU: {name} switch-over gap {m['gap_ms'] / q['gap_ms']:.2f}x (goal: at most 1)")
    rates = [r["per_s"] for r in tput if r["ok"]]
    if rates:
        med, lo, hi = spread(rates)
        summary["throughput"] = {"per_s": med, "min": lo, "max": hi, "runs": len(rates)}
        print(f"display throughput (migcert vm --spice): {med:.0f} draw messages/s "
              f"(median of runs; {lo:.0f}-{hi:.0f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"gaps": {f"{k} {e}": rs for (k, e), rs in rows.items()},
                                               "throughput": tput, "summary": summary},
                                              indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
