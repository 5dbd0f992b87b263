"""test_spice_abort_inputs.py - the three inputs on which spice-server
0.15.1 aborts the whole QEMU process (docs/protocol-spice.md section 12,
item 3) only disconnect the client that sent them from `migcert vm`:

  - an unsolicited MIGRATE_FLUSH_MARK (6 bytes; "unexpected flush mark");
  - migration data with a bad magic, on a seamless migration's target;
  - migration data of a newer version (SIGTRAP in spice-server).

Each test links a raw client (a few lines of the link stage below, the
ticket encrypted with python3-cryptography), sends the input, sees its
connection closed, and then checks that the machine still answers QMP and
that a fresh `migcert client` links every channel; in the flush-mark case
a client linked before stays linked through it.

Rerun: /usr/bin/python3 -m pytest harness/pytest -q -k abort_inputs
"""
import socket
import struct
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from conftest import wait_for_log
from spiceclient import SpiceClient
from test_spice_vm import CHANNELS
from test_vm_migration import vms  # noqa: F401 (fixture)

MAIN, DISPLAY = 1, 2
MSGC_MIGRATE_FLUSH_MARK, MSGC_MIGRATE_DATA = 4, 5
MSGC_MAIN_DO_SEAMLESS = 110
MSG_MAIN_SEAMLESS_ACK = 117
DEADLINE = 30.0


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def link(path, channel, connection_id=0):
    """Link one channel (mini header, no password); the connected socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(DEADLINE)
    s.connect(str(path))
    common, chan = 0x9, 0xF if channel == MAIN else 0  # AUTH_SELECTION, MINI_HEADER; main: every cap
    mess = struct.pack("<IBBIII", connection_id, channel, 0, 1, 1, 18) + struct.pack("<II", common, chan)
    s.sendall(b"REDQ" + struct.pack("<III", 2, 2, len(mess)) + mess)
    magic, major, minor, size = struct.unpack("<4sIII", recv_exact(s, 16))
    reply = recv_exact(s, size)
    err = struct.unpack_from("<I", reply)[0]
    assert magic == b"REDQ" and err == 0, f"link refused: error {err}"
    key = serialization.load_der_public_key(reply[4:166])
    s.sendall(struct.pack("<I", 1))  # SPICE authentication
    s.sendall(key.encrypt(b"\0", padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)))
    assert struct.unpack("<I", recv_exact(s, 4))[0] == 0, "ticket refused"
    return s


def send(s, msg, body=b""):
    s.sendall(struct.pack("<HI", msg, len(body)) + body)


def read_until(s, msg):
    """Messages until one of type `msg` (skipping others)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        t, size = struct.unpack("<HI", recv_exact(s, 6))
        recv_exact(s, size)
        if t == msg:
            return
    raise AssertionError(f"no message {msg}")


def closed_by_server(s):
    """True once the server closed the connection (what is pending is read)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            if not s.recv(65536):
                return True
        except ConnectionResetError:
            return True
    return False


@pytest.fixture
def seamless_vm(vms):
    sock = vms.dir / "abort.spice"
    vm = vms("abort", "--ram", "32M", "--spice", f"unix=on,addr={sock},disable-ticketing=on,seamless-migration=on")
    return vm, sock


def still_serves(vm, sock, migcert_bin, folder):
    assert vm.alive(), vm.log()
    assert vm.cmd("query-status")["status"] == "running"
    fresh = SpiceClient(migcert_bin, folder, f"unix:{sock}", name="fresh")
    try:
        fresh.wait_for(lambda s: sorted(s["channels"]) == CHANNELS, "seven channels on a fresh client")
    finally:
        rc, final = fresh.stop()
    assert rc == 0 and final["error"] == "", fresh.stderr


def test_abort_inputs_unsolicited_flush_mark_drops_only_that_client(seamless_vm, migcert_bin, vms):
    vm, sock = seamless_vm
    bystander = SpiceClient(migcert_bin, vms.dir, f"unix:{sock}", name="bystander")
    try:
        bystander.wait_for(lambda s: sorted(s["channels"]) == CHANNELS, "the bystander's seven channels")
        s = link(sock, MAIN)
        send(s, MSGC_MIGRATE_FLUSH_MARK)
        assert closed_by_server(s), "the server kept the connection after an unsolicited FLUSH_MARK"
        wait_for_log(vm, "unexpected MIGRATE_FLUSH_MARK")
        still_serves(vm, sock, migcert_bin, vms.dir)
        snap = bystander.snapshot()
        assert sorted(snap["channels"]) == CHANNELS and snap["error"] == ""
    finally:
        rc, final = bystander.stop()
    assert rc == 0 and final["error"] == ""


@pytest.mark.parametrize("blob,reason", [
    (b"XXXX" + struct.pack("<I", 1) + bytes(57), "magic"),
    (b"MNMD" + struct.pack("<I", 2) + bytes(57), "version 2 is newer"),
])
def test_abort_inputs_bad_migration_data_drops_only_that_client(seamless_vm, migcert_bin, vms, blob, reason):
    vm, sock = seamless_vm
    # a client arriving by seamless migration: main with a session id, DO_SEAMLESS, ACK
    s = link(sock, MAIN, connection_id=0x5eed)
    send(s, MSGC_MAIN_DO_SEAMLESS, struct.pack("<I", 1))
    read_until(s, MSG_MAIN_SEAMLESS_ACK)
    send(s, MSGC_MIGRATE_DATA, blob)
    assert closed_by_server(s), "the server kept the connection after bad migration data"
    wait_for_log(vm, reason)
    still_serves(vm, sock, migcert_bin, vms.dir)
