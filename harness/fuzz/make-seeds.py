#!/usr/bin/python3
"""make-seeds.py [--build-fuzz B] [--migcert M] [OUT] - gather the fuzz
targets' seeds from real inputs into OUT/TARGET/ (default
harness/fuzz/corpus-raw), for a maintainer who refreshes the checked-in
corpus (harness/fuzz/corpus):

    /usr/bin/python3 harness/fuzz/make-seeds.py /tmp/raw
    for t in build-fuzz/fuzz/fuzz-*; do n=$(basename $t); mkdir -p harness/fuzz/corpus/$n
      $t -merge=1 harness/fuzz/corpus/$n /tmp/raw/$n; done

Seeds per target (harness/fuzz/fuzz-*.c say what their input is):
  fuzz-stream   our streams of the fuzz machine (the target writes them:
                MIGCERT_FUZZ_SEEDS) and QEMU 7.2's (`-M pc -m 16`, paused,
                `migrate exec:cat>F`), its first 64 KiB and its last 32 KiB
  fuzz-analyze  the same streams, and a `migcert vm` stream (--ram 1M
                --devices default) cut to its first 64 KiB and last 32 KiB
  fuzz-devices  each vmstate device's saved state (the target writes them)
  fuzz-qmp      QMP sessions as the pytest QMP tests send them
  fuzz-scenario every file of the scenario library (scenarios/)
  fuzz-compat   `migcert dump-vmstate` of the oldest and the current release
                (OLD NUL NEW), QEMU 7.2's -dump-vmstate cut to a few devices
  fuzz-spice    make-corpus.py's messages, and recorded SPICE sessions
                (record-spice.py: every message a real server and a real
                client sent, the seamless migration's MIGRATE_DATA blobs
                among them: `migcert vm` and QEMU 7.2 with `migcert client`,
                spice-gtk's client on `migcert vm`)
QEMU is optional: without qemu-system-x86_64 its seeds are left out (said
on stderr).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent / "pytest"))

from qmp import QMP  # noqa: E402

HEAD, TAIL = 64 << 10, 32 << 10


def put(out, target, name, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def cut(data):
    """A long stream as its first HEAD and last TAIL bytes (two seeds)."""
    if len(data) <= HEAD + TAIL:
        return [("whole", data)]
    return [("head", data[:HEAD]), ("tail", data[-TAIL:])]


def migrate_to_file(argv, sock, out, uri):
    """Start the QMP server argv, migrate its machine with `uri` (which
    leaves the stream in `out`), quit it; the stream's bytes."""
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with QMP.connect(sock, timeout=30) as q:
            q.execute("migrate", uri=uri)
            info = q.wait_migration(timeout=60)
            if info.get("status") != "completed":
                raise RuntimeError(f"{argv[0]}: migration {info}")
            q.execute("quit")
    finally:
        p.kill()
        p.wait()
    deadline = time.monotonic() + 60  # exec:cat may still be writing
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return out.read_bytes()


def qemu_stream(tmp):
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        print("make-seeds: no qemu-system-x86_64: QEMU seeds left out", file=sys.stderr)
        return None
    sock, out = tmp / "q.qmp", tmp / "qemu.mig"
    return migrate_to_file([qemu, "-M", "pc", "-m", "16", "-display", "none", "-nodefaults", "-S",
                            "-qmp", f"unix:{sock},server=on,wait=off"], sock, out,
                           f"exec:cat > {out}.part && mv {out}.part {out}")


def migcert_stream(migcert, tmp):
    sock, out = tmp / "m.qmp", tmp / "ours.mig"
    return migrate_to_file([migcert, "vm", "--qmp", f"unix:{sock}", "--ram", "1M", "--devices",
                            "default", "--fill", "random", "--seed", "5"], sock, out, f"file:{out}")


def qmp_sessions():
    def session(*cmds):
        return "".join(json.dumps(c) + "\n" for c in cmds).encode()
    yield "status", session({"execute": "query-status"}, {"execute": "query-migrate"},
                            {"execute": "x-query-ram-digest"}, {"execute": "x-query-device-digest"})
    yield "caps", session({"execute": "query-migrate-capabilities"},
                          {"execute": "migrate-set-capabilities", "arguments": {"capabilities": [
                              {"capability": "events", "state": True},
                              {"capability": "pause-before-switchover", "state": False}]}})
    yield "params", session({"execute": "query-migrate-parameters"},
                            {"execute": "migrate-set-parameters", "arguments": {
                                "max-bandwidth": 33554432, "downtime-limit": 300}},
                            {"execute": "migrate-set-parameters", "arguments": {"x-max-passes": -1}})
    yield "runstate", session({"execute": "stop", "id": 1}, {"execute": "cont", "id": "two"},
                              {"execute": "migrate_cancel"},
                              {"execute": "migrate-continue", "arguments": {"state": "pre-switchover"}},
                              {"execute": "migrate", "arguments": {"uri": "tcp:0:4444"}},
                              {"execute": "migrate-incoming", "arguments": {"uri": "defer"}},
                              {"execute": "quit"})
    # fd: URIs: numbers are refused, names need a getfd (which a client
    # without SCM_RIGHTS cannot give), so these reach no real fd
    yield "fd-uris", session({"execute": "getfd", "arguments": {"fdname": "mig"}},
                             {"execute": "migrate", "arguments": {"uri": "fd:mig"}},
                             {"execute": "migrate", "arguments": {"uri": "fd:3"}},
                             {"execute": "migrate-incoming", "arguments": {"uri": "fd:0"}},
                             {"execute": "closefd", "arguments": {"fdname": "mig"}})
    yield "errors", (b'{"execute": "nope"}\n{"execute": 5}\n{"arguments": {}}\n[1, 2]\n'
                     b'{"execute": "query-status", "arguments": {"x": 1}}\n"oops\n{"exec')
    # the test table (odd first byte): every argument type
    yield "test-table", session({"execute": "echo", "arguments": {"s": "x", "n": 1.5, "b": True,
                                                                  "a": [1, "\u00e9\\"]}},
                                {"execute": "open", "arguments": {"s": "y", "z": {"k": None}}},
                                {"execute": "none"}, {"execute": "fail"})


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=str(HERE / "corpus-raw"))
    ap.add_argument("--build-fuzz", default="build-fuzz")
    ap.add_argument("--migcert", default="build/migcert")
    o = ap.parse_args(argv)
    out = Path(o.out)
    tmp = Path(tempfile.mkdtemp(prefix="mc-seeds-"))
    try:
        env = dict(os.environ, MIGCERT_FUZZ_SEEDS=str(tmp))
        for target in ("fuzz-stream", "fuzz-devices"):
            for f in tmp.iterdir():
                f.unlink()
            subprocess.run([f"{o.build_fuzz}/fuzz/{target}"], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for f in sorted(tmp.iterdir()):
                put(out, target, f.name, f.read_bytes())
                if target == "fuzz-stream":
                    put(out, "fuzz-analyze", f.name, f.read_bytes())
            for f in tmp.iterdir():
                f.unlink()
        q = qemu_stream(tmp)
        if q is not None:
            for part, data in cut(q):
                put(out, "fuzz-stream", f"qemu-7.2-{part}", data)
                put(out, "fuzz-analyze", f"qemu-7.2-{part}", data)
        for part, data in cut(migcert_stream(o.migcert, tmp)):
            put(out, "fuzz-analyze", f"migcert-vm-{part}", data)
        for i, (name, data) in enumerate(qmp_sessions()):
            first = b"\x01" if name == "test-table" else b"\x00"
            put(out, "fuzz-qmp", name, first + b"\x00" + data)
            put(out, "fuzz-qmp", name + "-unnegotiated", first + b"\x01" + data)
        for y in sorted(ROOT.glob("scenarios/**/*.yaml")):
            put(out, "fuzz-scenario", str(y.relative_to(ROOT / "scenarios")).replace("/", "-"),
                y.read_bytes())
        dumps = {}
        for rel in ("1.0", "2.1-dev"):
            f = tmp / f"dump-{rel}.json"
            subprocess.run([o.migcert, "dump-vmstate", "--release", rel, str(f)], check=True,
                           stdout=subprocess.DEVNULL)
            dumps[rel] = f.read_bytes()
        put(out, "fuzz-compat", "ours-1.0-2.1", dumps["1.0"] + b"\0" + dumps["2.1-dev"])
        put(out, "fuzz-compat", "ours-2.1-1.0", dumps["2.1-dev"] + b"\0" + dumps["1.0"])
        qemu = shutil.which("qemu-system-x86_64")
        if qemu:
            f = tmp / "qemu-dump.json"
            subprocess.run([qemu, "-M", "pc", "-dump-vmstate", str(f), "-display", "none",
                            "-nodefaults"], check=True, capture_output=True)
            doc = json.loads(f.read_text())
            few = {k: doc[k] for k in ("serial", "i8254", "mc146818rtc", "PCIDevice", "e1000")
                   if k in doc}
            small = json.dumps(few, indent=2).encode()
            put(out, "fuzz-compat", "qemu-7.2-few", small + b"\0" + small)
        subprocess.run([sys.executable, str(HERE / "make-corpus.py"), str(out / "fuzz-spice")],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, str(HERE / "record-spice.py"), "--migcert", o.migcert,
                        str(out / "fuzz-spice")], check=True, stdout=subprocess.DEVNULL)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for d in sorted(out.iterdir()):
        n = sum(f.stat().st_size for f in d.iterdir())
        print(f"make-seeds: {d.name}: {len(list(d.iterdir()))} seeds, {n} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
