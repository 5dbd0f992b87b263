#!/usr/bin/python3
"""record-spice.py [--migcert M] [--no-qemu] [--no-gtk] OUT - record real
SPICE sessions and write them as fuzz-spice seeds (harness/fuzz/fuzz-spice.c
says what its input is) into OUT.  Called by make-seeds.py; run by hand to
refresh the recorded part of harness/fuzz/corpus/fuzz-spice:

    /usr/bin/python3 harness/fuzz/record-spice.py /tmp/rec
    cp /tmp/rec/* harness/fuzz/corpus/fuzz-spice/

A unix-socket proxy sits between each client and each server and keeps the
bytes of every connection, each direction apart; afterwards each connection
is split into its link stage and its messages (docs/protocol-spice.md:
link header and message, reply, auth mechanism and ticket, result, then
mini or full headers).  The sessions (each a seamless migration, so the
MIGRATE_DATA blobs are in them; the proxy of the destination is what
client_migrate_info names):
  vm    `migcert vm` -> `migcert vm`, `migcert client`
  qemu  QEMU 7.2 -> QEMU 7.2 (qxl, hda), `migcert client` (no qemu: left out)
  gtk   spice-gtk's client (harness/pytest/gtkclient.py) on one `migcert vm`
        (no spice-gtk GI: left out)
Seed files, per message of a connection (at most KEEP distinct ones per
session, direction, channel and message type; none over MAX bytes):
  mode 0 (decoders)     0, channel type, u16 message type, body
  mode 1 (our server)   1, channel index, the client's message (mini header)
  mode 2 (our client)   2, channel index | 0x80 when mini, the server's message
and the link stage's two halves as mode 0 with message type 0.  Names say
SESSION-DIR-CHANNEL-TYPE-N-mMODE.  What is left out is said on stderr.
"""
import argparse
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pytest"))

from qmp import QMP  # noqa: E402
from spiceclient import SpiceClient  # noqa: E402

KEEP, MAX = 2, 32 << 10
DEADLINE = 60.0
NAMES = {1: "main", 2: "display", 3: "inputs", 4: "cursor", 5: "playback", 6: "record", 7: "tunnel",
         8: "smartcard", 9: "usbredir", 10: "port", 11: "webdav"}
# fuzz-spice.c's channel lists for modes 1 and 2
SERVER_TYPES = [1, 2, 3, 4, 5, 6, 10]
CLIENT_TYPES = [1, 2, 5, 6, 10, 3]


class Proxy:
    """Listens on `path`, connects each client to `target`, keeps each
    connection's bytes: conns is a list of [client->server, server->client]."""

    def __init__(self, path, target):
        self.target, self.conns, self.lock = str(target), [], threading.Lock()
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ls.bind(str(path))
        self.ls.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.target)
            except OSError:
                c.close()
                continue
            bufs = [bytearray(), bytearray()]
            with self.lock:
                self.conns.append(bufs)
            threading.Thread(target=self._pump, args=(c, s, bufs[0]), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, bufs[1]), daemon=True).start()

    def _pump(self, src, dst, buf):
        while True:
            try:
                d = src.recv(65536)
            except OSError:
                d = b""
            if not d:
                break
            with self.lock:
                buf += d
            try:
                dst.sendall(d)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.ls.close()
        with self.lock:
            return [(bytes(a), bytes(b)) for a, b in self.conns]


def caps(mess, n_off, off_field):
    """The first u32 of the common caps of a link message or reply."""
    ncommon = struct.unpack_from("<I", mess, n_off)[0]
    off = struct.unpack_from("<I", mess, off_field)[0]
    return struct.unpack_from("<I", mess, off)[0] if ncommon and off + 4 <= len(mess) else 0


def split(c2s, s2c):
    """One connection: (channel type, mini, link [c2s, s2c], messages
    [(dir, type, body, raw)]), or None when its link stage is incomplete."""
    if len(c2s) < 16 or len(s2c) < 16 or c2s[:4] != b"REDQ" or s2c[:4] != b"REDQ":
        return None
    csize, ssize = struct.unpack_from("<I", c2s, 12)[0], struct.unpack_from("<I", s2c, 12)[0]
    mess, reply = c2s[16:16 + csize], s2c[16:16 + ssize]
    if len(mess) < 18 or len(reply) < 178:
        return None
    ctype = mess[4]
    ccaps, scaps = caps(mess, 6, 14), caps(reply, 166, 174)
    both = ccaps & scaps
    mini = bool(both & (1 << 3))
    cpos = 16 + csize + (4 if both & 1 else 0) + 128
    spos = 16 + ssize + 4
    msgs = []
    for d, data, pos in (("c2s", c2s, cpos), ("s2c", s2c, spos)):
        hlen = 6 if mini else 18
        while pos + hlen <= len(data):
            if mini:
                mtype, size = struct.unpack_from("<HI", data, pos)
            else:
                _, mtype, size, _ = struct.unpack_from("<QHII", data, pos)
            if pos + hlen + size > len(data):
                break
            msgs.append((d, mtype, data[pos + hlen:pos + hlen + size], data[pos:pos + hlen + size]))
            pos += hlen + size
    return ctype, mini, [c2s[:16 + csize], s2c[:16 + ssize]], msgs


def seeds(session, conns):
    """The seed files of one session's connections: {name: bytes}."""
    out, kept, seen = {}, {}, set()

    def put(name, data):
        if len(data) <= MAX and data not in seen:
            seen.add(data)
            out[name] = data

    for c2s, s2c in conns:
        parts = split(c2s, s2c)
        if parts is None:
            continue
        ctype, mini, link, msgs = parts
        ch = NAMES.get(ctype, str(ctype))
        put(f"{session}-c2s-{ch}-link-m0", bytes([0, ctype, 0, 0]) + link[0])
        put(f"{session}-s2c-{ch}-link-m0", bytes([0, ctype, 0, 0]) + link[1])
        for d, mtype, body, raw in msgs:
            k = (d, ctype, mtype)
            n = kept.get(k, 0)
            if n >= KEEP or len(raw) > MAX:
                continue
            before = len(out)
            stem = f"{session}-{d}-{ch}-{mtype}-{n}"
            put(f"{stem}-m0", bytes([0, ctype]) + struct.pack("<H", mtype) + body)
            if d == "c2s" and ctype in SERVER_TYPES:
                put(f"{stem}-m1", bytes([1, SERVER_TYPES.index(ctype)]) + struct.pack("<HI", mtype, len(body)) + body)
            if d == "s2c" and ctype in CLIENT_TYPES:
                put(f"{stem}-m2", bytes([2, CLIENT_TYPES.index(ctype) | (0x80 if mini else 0)]) + raw)
            if len(out) > before:
                kept[k] = n + 1
    return out


def wait(pred, what):
    end = time.monotonic() + DEADLINE
    while not pred():
        if time.monotonic() > end:
            raise RuntimeError(f"record-spice: timed out waiting for {what}")
        time.sleep(0.05)


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, argv, sock, log):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        wait(lambda: sock.exists() or p.poll() is not None, f"{argv[0]}'s QMP socket")
        return QMP.connect(str(sock), timeout=30)

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()


def migrate_session(tmp, server_argv, client_factory, kind):
    """server_argv(name, spice_sock, qmp_sock, extra) starts a server; a
    client on the source's proxy follows a seamless migration to the
    destination's proxy.  The connections of both proxies."""
    procs = Procs()
    ps = pd = None
    log = open(tmp / f"{kind}.log", "wb")
    try:
        src = procs.start(server_argv("src", tmp / "src.spice", tmp / "src.qmp", []), tmp / "src.qmp", log)
        dst = procs.start(server_argv("dst", tmp / "dst.spice", tmp / "dst.qmp",
                                      ["-incoming" if kind == "qemu" else "--incoming", f"unix:{tmp / 'mig.sock'}"]),
                          tmp / "dst.qmp", log)
        wait(lambda: (tmp / "src.spice").exists() and (tmp / "dst.spice").exists(), "the SPICE sockets")
        ps, pd = Proxy(tmp / "psrc.spice", tmp / "src.spice"), Proxy(tmp / "pdst.spice", tmp / "dst.spice")
        client = client_factory(tmp / "psrc.spice")
        try:
            client.wait_for(lambda s: len(s["channels"]) >= 6 and "primary" in s, "the channels")
            time.sleep(1.0)  # some drawing, sound and port data
            src.execute("client_migrate_info", protocol="spice", hostname=str(tmp / "pdst.spice"), port=0)
            client.wait_for(lambda s: s["migrating"] == "connected", "the client's answer to the source")
            src.execute("migrate", uri=f"unix:{tmp / 'mig.sock'}")
            info = src.wait_migration(timeout=DEADLINE)
            if info.get("status") != "completed":
                raise RuntimeError(f"record-spice: {kind}: migration {info}")
            client.wait_for(lambda s: sum(s["migrations"].values()) == 1 and s["server"] == str(tmp / "pdst.spice"),
                            "the switch")
            time.sleep(1.0)
        finally:
            client.stop()
        src.close()
        dst.close()
    finally:
        procs.close()
        log.close()
    return ps.close() + pd.close()


def vm_argv(migcert):
    def argv(name, spice, qmp, extra):
        return [migcert, "vm", "--qmp", f"unix:{qmp}", "--ram", "32M", "--spice",
                f"unix=on,addr={spice},disable-ticketing=on,seamless-migration=on"] + extra
    return argv


def qemu_argv(qemu):
    def argv(name, spice, qmp, extra):
        return [qemu, "-M", "pc", "-m", "64", "-display", "none", "-nodefaults", "-vga", "qxl", "-spice",
                f"unix=on,addr={spice},disable-ticketing=on,image-compression=off,seamless-migration=on",
                "-audiodev", "spice,id=snd0", "-device", "intel-hda", "-device", "hda-duplex,audiodev=snd0",
                "-qmp", f"unix:{qmp},server=on,wait=off"] + extra
    return argv


def gtk_session(tmp, migcert):
    from gtkclient import GtkClient
    procs = Procs()
    log = open(tmp / "gtk.log", "wb")
    try:
        procs.start(vm_argv(migcert)("one", tmp / "one.spice", tmp / "one.qmp", []), tmp / "one.qmp", log)
        wait(lambda: (tmp / "one.spice").exists(), "the SPICE socket")
        p = Proxy(tmp / "pone.spice", tmp / "one.spice")
        c = GtkClient(tmp, f"spice+unix://{tmp / 'pone.spice'}")
        try:
            c.wait_for(lambda s: s["display"]["primaries"] > 0 and s["playback"]["frames"] > 0,
                       "a screen and sound")
            time.sleep(1.0)
        finally:
            c.stop()
        return p.close()
    finally:
        procs.close()
        log.close()


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--migcert", default="build/migcert")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--no-gtk", action="store_true")
    o = ap.parse_args(argv)
    out = Path(o.out)
    out.mkdir(parents=True, exist_ok=True)
    migcert = str(Path(o.migcert).resolve())
    total = {}
    sessions = [("vm", lambda t: migrate_session(t, vm_argv(migcert),
                                                lambda s: SpiceClient(migcert, t, f"unix:{s}"), "vm"))]
    qemu = shutil.which("qemu-system-x86_64")
    if qemu and not o.no_qemu:
        sessions.append(("qemu", lambda t: migrate_session(t, qemu_argv(qemu),
                                                          lambda s: SpiceClient(migcert, t, f"unix:{s}"), "qemu")))
    else:
        print("record-spice: the QEMU session left out", file=sys.stderr)
    if not o.no_gtk:
        sessions.append(("gtk", lambda t: gtk_session(t, migcert)))
    for name, run in sessions:
        tmp = Path(tempfile.mkdtemp(prefix="mc-rec-", dir="/tmp"))  # sun_path is short
        try:
            conns = run(tmp)
        except Exception as e:  # noqa: BLE001 (one session's failure leaves the others)
            print(f"record-spice: the {name} session left out: {e}", file=sys.stderr)
            continue
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        got = seeds(name, conns)
        for f, data in got.items():
            (out / f).write_bytes(data)
        total[name] = (len(conns), len(got))
    for name, (nc, ns) in total.items():
        print(f"record-spice: {name}: {nc} connections, {ns} seeds")
    return 0 if "vm" in total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
