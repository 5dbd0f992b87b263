"""test_spice_vm.py - `migcert vm --spice` as a real process with the fake
client (`migcert client`): QEMU's -spice syntax, every channel linked, the
client's screen equal to the machine's screendump, QEMU's SPICE QMP
commands and events, and semi-seamless migration between two processes:
client_migrate_info, then migrate; the client ends on the destination in
the same session, showing its screen, with no playback frame or port byte
repeated or lost, and the source reports SPICE_MIGRATE_COMPLETED.

Rerun one: /usr/bin/python3 -m pytest harness/pytest -k spice_vm
"""
import json
import socket
import time

import pytest

from conftest import wait_for_log
from spiceclient import SpiceClient, read_ppm
from test_vm_migration import vms  # noqa: F401 (fixture)

CHANNELS = ["CURSOR:0", "DISPLAY:0", "INPUTS:0", "MAIN:0", "PLAYBACK:0", "PORT:0", "RECORD:0"]


def spice_vm(vms, name, *extra, password=None):
    sock = vms.dir / f"{name}.spice"
    opts = f"unix=on,addr={sock}" + (",disable-ticketing=on" if password is None else f",password={password}")
    return vms(name, "--ram", "32M", "--spice", opts, *extra), sock


def same_screen(vm, client, path):
    """Stop the guest (it stops drawing), then wait until the client shows
    exactly the machine's screendump."""
    vm.cmd("stop")

    def equal(summary):
        if not client.shot.exists():
            return False
        vm.cmd("screendump", filename=str(path))
        return read_ppm(client.shot) == read_ppm(path)

    return client.wait_for(equal, "the machine's screen")


def test_spice_vm_client_links_every_channel_and_sees_the_screen(vms, migcert_bin):
    vm, sock = spice_vm(vms, "one")
    vm.qmp.get_events()
    client = SpiceClient(migcert_bin, vms.dir, f"unix:{sock}")
    try:
        s = client.wait_for(lambda s: sorted(s["channels"]) == CHANNELS, "seven channels")
        s = client.wait_for(lambda s: s["playback"]["received"] > 0 and s["vmc"]["received"] > 0 and "primary" in s,
                            "sound and port data")
        info = vm.cmd("query-spice")
        assert info["enabled"] is True and info["auth"] == "none" and info["migrated"] is False
        assert len(info["channels"]) == 7
        assert {c["connection-id"] for c in info["channels"]} == {s["session_id"]}
        vm.qmp.wait_event("SPICE_INITIALIZED", timeout=30)
        vm.qmp.wait_event("SPICE_CONNECTED", timeout=30)
        s = same_screen(vm, client, vms.dir / "one.ppm")
        assert s["playback"]["gaps"] == 0 and s["playback"]["repeats"] == 0
        assert s["vmc"]["gaps"] == 0 and s["vmc"]["repeats"] == 0
    finally:
        rc, final = client.stop()
    assert rc == 0, client.stderr
    assert final["error"] == ""
    # the client left: QEMU's event for each of its channels' connections
    for _ in CHANNELS:
        vm.qmp.wait_event("SPICE_DISCONNECTED", timeout=30)
    assert vm.cmd("query-spice")["channels"] == []


def test_spice_vm_semi_seamless_migration_between_two_processes(vms, migcert_bin):
    src, ssock = spice_vm(vms, "src")
    dst, dsock = spice_vm(vms, "dst", "--incoming", f"unix:{vms.dir / 'mig.sock'}")
    client = SpiceClient(migcert_bin, vms.dir, f"unix:{ssock}")
    try:
        before = client.wait_for(lambda s: sorted(s["channels"]) == CHANNELS and "primary" in s,
                                 "seven channels and the screen")
        src.cmd("client_migrate_info", protocol="spice", hostname=str(dsock), port=0)
        # it answered once the client had linked to the destination: its main channel is there
        assert [c["channel-type"] for c in dst.cmd("query-spice")["channels"]] == [1]
        src.cmd("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
        src.cmd("migrate", uri=f"unix:{vms.dir / 'mig.sock'}")
        src.qmp.wait_event("MIGRATION", timeout=60, match=lambda e: e["data"]["status"] == "completed")
        src.qmp.wait_event("SPICE_MIGRATE_COMPLETED", timeout=60)
        after = client.wait_for(lambda s: s["migrations"]["semi_seamless"] == 1 and s["server"] == str(dsock),
                                "the switch to the destination")
        assert after["session_id"] == before["session_id"]
        assert src.cmd("query-spice")["migrated"] is True
        assert dst.cmd("query-status")["running"] is True
        # the destination keeps playing and writing: the client keeps receiving
        n = after["playback"]["received"]
        after = client.wait_for(lambda s: s["playback"]["received"] > n, "playback from the destination")
        s = same_screen(dst, client, vms.dir / "dst.ppm")
        assert s["playback"]["gaps"] == 0 and s["playback"]["repeats"] == 0
        assert s["vmc"]["gaps"] == 0 and s["vmc"]["repeats"] == 0
        assert s["error"] == ""
    finally:
        rc, final = client.stop()
    assert rc == 0, client.stderr
    assert final["migrations"] == {"seamless": 0, "semi_seamless": 1, "switch_host": 0, "cancelled": 0,
                                   "connect_errors": 0}


def scripted_pair(vms, migcert_bin, script_text):
    """A source and a destination, and a client on the source run with this script."""
    src, ssock = spice_vm(vms, "src")
    dst, dsock = spice_vm(vms, "dst", "--incoming", f"unix:{vms.dir / 'mig.sock'}")
    script = vms.dir / "client.yaml"
    script.write_text(script_text)
    client = SpiceClient(migcert_bin, vms.dir, f"unix:{ssock}", "--script", str(script))
    return src, ssock, dsock, client


def test_spice_vm_slow_client_loses_no_playback_across_the_switch(vms, migcert_bin):
    """The client is slow to send MIGRATE_END to the destination (1.5 s,
    scripted: the slowness a loaded host gave once): the destination's
    guest already plays, and its playback link is held until then. What it
    played meanwhile reaches the client after START: not one frame lost."""
    src, ssock, dsock, client = scripted_pair(vms, migcert_bin, "migrate-end-delay-ms: 1500\n")
    try:
        client.wait_for(lambda s: sorted(s["channels"]) == CHANNELS and s["playback"]["received"] > 0,
                        "seven channels and sound")
        src.cmd("client_migrate_info", protocol="spice", hostname=str(dsock), port=0)
        src.cmd("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
        src.cmd("migrate", uri=f"unix:{vms.dir / 'mig.sock'}")
        src.qmp.wait_event("MIGRATION", timeout=60, match=lambda e: e["data"]["status"] == "completed")
        after = client.wait_for(lambda s: s["migrations"]["semi_seamless"] == 1 and s["server"] == str(dsock),
                                "the switch to the destination")
        n = after["playback"]["received"]
        s = client.wait_for(lambda s: s["playback"]["received"] > n + 48000, "a second of playback after it")
        assert (s["playback"]["gaps"], s["playback"]["repeats"]) == (0, 0)
        assert s["error"] == ""
    finally:
        rc, final = client.stop()
    assert rc == 0, client.stderr


def test_spice_vm_client_migrate_info_again_after_connect_error(vms, migcert_bin):
    """client_migrate_info whose client cannot reach the target, and no
    migrate after it: a second client_migrate_info is taken, as by
    spice-server (the first is cancelled: MIGRATE_CANCEL), not refused as
    'already in progress'."""
    src, ssock, dsock, client = scripted_pair(vms, migcert_bin, "target: refuse\n")
    try:
        client.wait_for(lambda s: sorted(s["channels"]) == CHANNELS, "seven channels")
        src.cmd("client_migrate_info", protocol="spice", hostname=str(dsock), port=0)
        assert client.snapshot()["migrations"]["connect_errors"] == 1
        src.cmd("client_migrate_info", protocol="spice", hostname=str(dsock), port=0)
        s = client.wait_for(lambda s: s["migrations"]["connect_errors"] == 2, "the second MIGRATE_BEGIN answered")
        assert s["migrations"]["cancelled"] == 1
        assert s["server"] == str(ssock) and sorted(s["channels"]) == CHANNELS
    finally:
        rc, final = client.stop()
    assert final["migrations"]["cancelled"] == 1  # it exits 1: the refusals are its last error


def test_spice_vm_password(vms, migcert_bin, run_migcert):
    vm, sock = spice_vm(vms, "pw", password="s3cret")
    r = run_migcert("client", "--connect", f"unix:{sock}", "--password", "guess", timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr  # linked nothing: the session failed
    assert json.loads(r.stdout)["error"] == "MAIN:0: the server refused the ticket: PERMISSION_DENIED"
    # the server says why, and goes on
    wait_for_log(vm, "migcert vm: SPICE: link refused: ticket: wrong password")
    # so does an HTTP client that knocks on the SPICE socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(sock))
        s.sendall(b"GET / HTTP/1.1\r\n")  # 16 bytes: a link header's worth, all read
        s.settimeout(60)
        reply = b""
        while chunk := s.recv(4096):  # until the server closes
            reply += chunk
        assert len(reply) == 16 + 178 and reply[16] == 2  # a link reply with INVALID_MAGIC
    wait_for_log(vm, "link refused: link: bad magic 0x20544547")
    vm.cmd("set_password", protocol="spice", password="other")
    client = SpiceClient(migcert_bin, vms.dir, f"unix:{sock}", "--password", "other")
    try:
        client.wait_for(lambda s: len(s["channels"]) == 7 and "primary" in s, "seven channels and the screen")
        # expire_password now: the next client is refused, the linked one stays
        vm.cmd("expire_password", protocol="spice", time="now")
        r = run_migcert("client", "--connect", f"unix:{sock}", "--password", "other", timeout=60)
        assert r.returncode == 1 and "PERMISSION_DENIED" in json.loads(r.stdout)["error"]
        wait_for_log(vm, "link refused: ticket: the password expired")
        assert len(client.snapshot()["channels"]) == 7
        assert len(vm.cmd("query-spice")["channels"]) == 7
        vm.cmd("expire_password", protocol="spice", time="never")
        r = run_migcert("client", "--connect", f"unix:{sock}", "--password", "other", "--draws", "1", timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        rc, _ = client.stop()
    assert rc == 0, client.stderr


@pytest.mark.parametrize("opts,message", [
    ("port=70000", "port=70000: expected 0 to 65535"),
    ("unix=on", "unix=on needs addr=PATH"),
    ("disable-ticketing=maybe,port=1", "disable-ticketing=maybe: expected on or off"),
    ("port=1,tls-port=2", "tls-port: TLS is not supported"),
    ("port=1,bogus=1", "unknown option 'bogus'"),
])
def test_spice_vm_bad_spice_options_exit_2(run_migcert, sock_dir, opts, message):
    r = run_migcert("vm", "--qmp", f"unix:{sock_dir / 'q.sock'}", "--spice", opts, timeout=60)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr


def test_spice_vm_client_script_refuses_the_target(vms, migcert_bin):
    """A scripted client that cannot reach the destination answers
    CONNECT_ERROR; client_migrate_info still returns, the migration
    completes, and the source sends the client SWITCH_HOST (which the
    script refuses too: the session ends)."""
    src, ssock = spice_vm(vms, "src")
    dst, dsock = spice_vm(vms, "dst", "--incoming", f"unix:{vms.dir / 'mig.sock'}")
    script = vms.dir / "refuse.yaml"
    script.write_text("# the migration's target is unreachable for this client\ntarget: refuse\n")
    client = SpiceClient(migcert_bin, vms.dir, f"unix:{ssock}", "--script", str(script))
    try:
        client.wait_for(lambda s: sorted(s["channels"]) == CHANNELS and "primary" in s, "seven channels")
        src.cmd("client_migrate_info", protocol="spice", hostname=str(dsock), port=0)
        s = client.snapshot()
        assert s["migrations"]["connect_errors"] == 1
        assert dst.cmd("query-spice")["channels"] == []  # nothing of it reached the destination
        src.cmd("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
        src.cmd("migrate", uri=f"unix:{vms.dir / 'mig.sock'}")
        src.qmp.wait_event("MIGRATION", timeout=60, match=lambda e: e["data"]["status"] == "completed")
        client.proc.wait(timeout=60)  # SWITCH_HOST, refused: the session is over
    finally:
        rc, final = client.stop()
    assert final["migrations"]["connect_errors"] == 1
    assert "refused by the script" in final["error"]


def test_spice_vm_client_script_leaves_after_n_messages(vms, migcert_bin, run_migcert):
    vm, sock = spice_vm(vms, "one")
    script = vms.dir / "leave.yaml"
    script.write_text("disconnect-at-message: 25\npixmap-cache: 5000\n")
    r = run_migcert("client", "--connect", f"unix:{sock}", "--script", str(script), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr  # the session ended as scripted
    summary = json.loads(r.stdout)
    assert summary["error"] == "" and "MAIN:0" in summary["channels"]
    # the client has exited; the server lets its links go once it reads
    # their hang-ups, which may come after the client's exit: wait for it
    # (the deadline is a hang guard only; under load it took a moment)
    deadline = time.monotonic() + 30
    while vm.cmd("query-spice")["channels"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert vm.cmd("query-spice")["channels"] == []


@pytest.mark.parametrize("text,message", [
    ("old: maybe\n", "key 'old': 'maybe' is not true or false"),
    ("colour: red\n", "Unexpected key: colour"),
    ("target: sometimes\n", "key 'target': 'sometimes' is not connect or refuse"),
    ("disconnect-at-message: -3\n", "key 'disconnect-at-message': '-3' is not a whole number"),
])
def test_spice_vm_bad_client_script_exits_2(run_migcert, sock_dir, text, message):
    script = sock_dir / "bad.yaml"
    script.write_text(text)
    r = run_migcert("client", "--connect", "unix:/nonexistent", "--script", str(script), timeout=60)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
