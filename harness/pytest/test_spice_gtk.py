"""test_spice_gtk.py - the real SPICE client, spice-gtk 0.42 (SpiceClientGLib
through Python GI, run by gtkclient.py in a child process) and its
`spicy-screenshot`, against `migcert vm --spice`: every channel the server
lists opens, playback frames and port bytes arrive in sequence, the
client's primary surface and spicy-screenshot's picture are exactly the
machine's screendump while the machine is stopped, and the client follows a
semi-seamless migration between two processes (client_migrate_info, then
migrate) to the destination's port, where the display keeps updating and
shows the destination's screen; and a seamless one, also with GLZ images,
where the target's images refer to images the source sent (the source's
dictionary came in the machine's stream) and spice-gtk decodes them.

Needs Debian's gir1.2-spiceclientglib-2.0, python3-gi and spice-client-gtk
(ci/deps).  Rerun: /usr/bin/python3 -m pytest harness/pytest -k spice_gtk
"""
import shutil
import signal
import subprocess
import time

import pytest

from gtkclient import GtkClient
from spiceclient import differing_pixels, read_ppm
from test_vm_migration import vms  # noqa: F401 (fixture)

CHANNELS = ["CURSOR:0", "DISPLAY:0", "INPUTS:0", "MAIN:0", "PLAYBACK:0", "PORT:0", "RECORD:0"]
SPICY_SCREENSHOT = "spicy-screenshot"


def unix_vm(vms, name):
    sock = vms.dir / f"{name}.spice"
    vm = vms(name, "--ram", "32M", "--spice", f"unix=on,addr={sock},disable-ticketing=on")
    return vm, f"spice+unix://{sock}"


def tcp_vm(vms, name, *extra):
    vm = vms(name, "--ram", "32M", "--spice", "port=0,addr=127.0.0.1,disable-ticketing=on", *extra)
    port = vm.cmd("query-spice")["port"]
    return vm, port


def all_open(s):
    return sorted(s["opened"]) == CHANNELS


def shows(vm, client, folder, name):
    """Stop the guest (it stops drawing), take its screendump, then wait
    until the client has drawn everything it was sent: its primary surface
    equals the screendump.  Each retry waits for the client to report a
    change first."""
    vm.cmd("stop")
    dump, shot = folder / f"{name}-dump.ppm", folder / f"{name}-gtk.ppm"
    vm.cmd("screendump", filename=str(dump))
    want = read_ppm(dump)
    seen = {"n": -1}

    def equal(s):
        if s["channel_events"] + s["display"]["invalidates"] + s["display"]["primaries"] == seen["n"]:
            return False  # nothing new drawn since the last comparison
        seen["n"] = s["channel_events"] + s["display"]["invalidates"] + s["display"]["primaries"]
        client.shot(shot)
        return read_ppm(shot) == want

    s = client.wait_for(equal, f"{name}: the client's primary surface equal to the screendump")
    return s, want


def spicy_screenshot(uri, path):
    r = subprocess.run([SPICY_SCREENSHOT, f"--uri={uri}", f"--out-file={path}"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return read_ppm(path)


@pytest.fixture(autouse=True)
def spice_gtk_installed():
    r = subprocess.run(["/usr/bin/python3", "-c", "import gi; gi.require_version('SpiceClientGLib', '2.0')"],
                       capture_output=True, text=True)
    if r.returncode != 0 or shutil.which(SPICY_SCREENSHOT) is None:
        pytest.fail("spice-gtk is not installed (ci/deps: gir1.2-spiceclientglib-2.0, python3-gi, "
                    f"spice-client-gtk): {r.stderr.strip()}")


def test_spice_gtk_opens_every_channel_and_receives_sound_and_port_data(vms):
    vm, uri = unix_vm(vms, "one")
    client = GtkClient(vms.dir, uri)
    try:
        s = client.wait_for(all_open, "seven channels open")
        info = vm.cmd("query-spice")
        assert sorted((c["channel-type"], c["channel-id"]) for c in info["channels"]) == \
            [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (10, 0)]
        s = client.wait_for(lambda s: s["playback"]["frames"] >= 4800 and s["port"]["bytes"] >= 4096,
                            "100 ms of sound and 4 KiB of port bytes")
        assert s["errors"] == [] and s["closed"] == []
        assert s["playback"]["starts"] == 1
        assert s["playback"]["skips"] == 0 and s["playback"]["repeats"] == 0
        assert s["port"] == dict(s["port"], name="org.migcert.vmc.0", opened=True, skips=0)
    finally:
        client.stop()
    assert "CRITICAL" not in client.log() and "WARNING" not in client.log(), client.log()


def test_spice_gtk_primary_and_spicy_screenshot_equal_screendump(vms):
    vm, uri = unix_vm(vms, "one")
    client = GtkClient(vms.dir, uri)
    try:
        client.wait_for(lambda s: all_open(s) and s["display"]["marks"] >= 1, "the first frame")
        s, want = shows(vm, client, vms.dir, "one")
        assert s["display"]["primaries"] == 1 and (s["display"]["width"], s["display"]["height"]) == want[:2]
        # a picture of one colour would make the comparison meaningless
        w, h, px = want
        assert len({px[i:i + 3] for i in range(0, len(px), 3 * 97)}) > 8
    finally:
        client.stop()
    got = spicy_screenshot(uri, vms.dir / "spicy.ppm")
    assert got[:2] == want[:2]
    assert differing_pixels(got[2], want[2]) == 0


# Migrations with spice-gtk: a guest that draws 60 times a second, so that
# on a loaded host (make check runs two pytest workers, other jobs beside)
# spice-gtk still reads the source's display queue to its end well within
# the source's 10 s waits (for the PONGs before MIGRATE_END, for the
# client to leave); at 250 a second it once fell more than 10 s behind and
# was cut off under the migration's end.
MIGRATION_SPICE = "port=0,addr=127.0.0.1,disable-ticketing=on,x-draw-rate=60"


def test_spice_gtk_follows_semi_seamless_migration(vms):
    src, sport = tcp_vm(vms, "src", "--spice", MIGRATION_SPICE)
    mig = vms.dir / "mig.sock"
    dst, dport = tcp_vm(vms, "dst", "--spice", MIGRATION_SPICE, "--incoming", f"unix:{mig}")
    assert sport != dport
    client = GtkClient(vms.dir, f"spice://127.0.0.1?port={sport}")
    try:
        before = client.wait_for(lambda s: all_open(s) and s["display"]["marks"] >= 1
                                 and s["port"]["bytes"] > 0, "seven channels and the first frame")
        assert set(before["peers"]) == {sport} and len(before["peers"]) == 7
        session = {c["connection-id"] for c in src.cmd("query-spice")["channels"]}
        assert len(session) == 1
        src.cmd("client_migrate_info", protocol="spice", hostname="127.0.0.1", port=dport)
        # it returned once the client answered: its main channel is linked on
        # the destination, in its session, and held there until the switch
        assert [(c["channel-type"], c["connection-id"]) for c in dst.cmd("query-spice")["channels"]] == \
            [(1, session.copy().pop())]
        src.cmd("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
        src.cmd("migrate", uri=f"unix:{mig}")
        src.qmp.wait_event("MIGRATION", timeout=60, match=lambda e: e["data"]["status"] == "completed")
        src.qmp.wait_event("SPICE_MIGRATE_COMPLETED", timeout=60)
        after = client.wait_for(lambda s: s["peers"] and set(s["peers"]) == {dport},
                                "every socket on the destination's port")
        assert len(after["peers"]) == 7, after["peers"]
        assert src.cmd("query-spice")["migrated"] is True and src.cmd("query-spice")["channels"] == []
        # a socket the client opened is linked on the server a moment later
        deadline = time.monotonic() + 30  # a hang guard, not a speed
        while len(dst.cmd("query-spice")["channels"]) < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        chans = dst.cmd("query-spice")["channels"]
        assert len(chans) == 7 and {c["connection-id"] for c in chans} == session
        assert dst.cmd("query-status")["running"] is True
        # the destination keeps drawing, playing and writing to the same client
        n = after["display"]["invalidates"], after["playback"]["frames"], after["port"]["bytes"]
        after = client.wait_for(lambda s: s["display"]["invalidates"] > n[0] and s["playback"]["frames"] > n[1]
                                and s["port"]["bytes"] > n[2] and s["port"]["opened"],
                                "display, sound and port data from the destination")
        # the port's byte stream goes on in order on the destination, with no
        # break at the switch: spice-gtk drops what it has not read from the
        # source's port channel when MIGRATE_END resets its channels, so the
        # source sends MIGRATE_END only once a PING on each channel came back
        # (docs/protocol-spice.md section 13); playback restarted with a new
        # START and is continuous again
        assert after["port"]["skips"] == 0
        assert after["playback"]["starts"] == 2 and after["playback"]["skips"] == after["playback"]["repeats"] == 0
        s, want = shows(dst, client, vms.dir, "dst")
        assert s["errors"] == [] and s["closed"] == [], s
        assert s["opened"] == before["opened"]  # the same channels, swapped, none reopened
    finally:
        client.stop()
    assert spicy_screenshot(f"spice://127.0.0.1?port={dport}", vms.dir / "dst-spicy.ppm") == want


def seamless_switch(vms, opts):
    """Two `migcert vm` with `opts`, spice-gtk on the source, then
    client_migrate_info and migrate: returns (src, dst, client, before,
    after) once every socket is on the target and the target's display,
    sound and port data arrived.  The caller stops the client."""
    src, sport = tcp_vm(vms, "src", "--spice", opts)
    mig = vms.dir / "mig.sock"
    dst, dport = tcp_vm(vms, "dst", "--spice", opts, "--incoming", f"unix:{mig}")
    client = GtkClient(vms.dir, f"spice://127.0.0.1?port={sport}", debug=True)
    try:
        before = client.wait_for(lambda s: all_open(s) and s["display"]["marks"] >= 1
                                 and s["port"]["bytes"] > 0, "seven channels and the first frame")
        session = {c["connection-id"] for c in src.cmd("query-spice")["channels"]}
        src.cmd("client_migrate_info", protocol="spice", hostname="127.0.0.1", port=dport)
        # returned once the client answered: after the target's ACK every
        # channel is linked there at once, waiting for its migration data
        chans = dst.cmd("query-spice")["channels"]
        assert len(chans) == 7 and {c["connection-id"] for c in chans} == session, chans
        src.cmd("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
        src.cmd("migrate", uri=f"unix:{mig}")
        src.qmp.wait_event("MIGRATION", timeout=60, match=lambda e: e["data"]["status"] == "completed")
        src.qmp.wait_event("SPICE_MIGRATE_COMPLETED", timeout=60)
        after = client.wait_for(lambda s: s["peers"] and set(s["peers"]) == {dport} and len(s["peers"]) == 7,
                                "every socket on the destination's port")
        n = after["display"]["invalidates"], after["playback"]["frames"], after["port"]["bytes"]
        after = client.wait_for(lambda s: s["display"]["invalidates"] > n[0] and s["playback"]["frames"] > n[1]
                                and s["port"]["bytes"] > n[2],
                                "display, sound and port data from the destination")
    except BaseException:
        client.stop()
        raise
    return src, dst, client, before, after


def assert_seamless_log(client):
    log = client.log()
    assert "CRITICAL" not in log and "WARNING" not in log, log[-4000:]
    assert "migrate-dst-seamless-ack" in log, log[-4000:]
    assert "migration (seamless): connections all ok" in log, log[-4000:]
    for fallback in ("switch-host", "migrate_cancel", "MIGRATE_CANCEL"):
        assert fallback not in log, fallback


def test_spice_gtk_follows_seamless_migration(vms):
    """Two `migcert vm` with seamless-migration=on: spice-gtk's debug log
    shows the target's ACK and every connection handed over, and nothing of
    a fallback; the client keeps its session and shows the target's screen."""
    # (the target's 10 s wait for the display's migration data, too)
    src, dst, client, before, after = seamless_switch(vms, MIGRATION_SPICE + ",seamless-migration=on")
    try:
        # nothing lost or repeated at the switch; playback restarted with START
        assert after["port"]["skips"] == 0
        assert after["playback"]["starts"] == 2 and after["playback"]["skips"] == after["playback"]["repeats"] == 0
        assert after["display"]["primaries"] == before["display"]["primaries"]  # no surface sent again
        s, want = shows(dst, client, vms.dir, "dst")
        assert s["errors"] == [] and s["closed"] == [], s
        assert s["opened"] == before["opened"]
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- source:\n{src.log()[-2000:]}\n--- destination:\n{dst.log()[-2000:]}") from None
    finally:
        client.stop()
    assert_seamless_log(client)


def test_spice_gtk_glz_dictionary_crosses_a_seamless_migration(vms):
    """image-compression=glz with seamless-migration=on: the source's GLZ
    images refer to earlier ones; after the switch the target's images
    refer to images the SOURCE sent (its dictionary came in the machine's
    stream, its window and last image id in the display blob, so the
    client's dictionary stays valid), spice-gtk decodes them with no reset
    and its screen equals the target's screendump."""
    src, dst, client, before, after = seamless_switch(vms, MIGRATION_SPICE + ",seamless-migration=on,image-compression=glz")
    try:
        # the target refers to the source's images (the pixmap cache's reset
        # makes it send images the client had from the source again)
        deadline = time.monotonic() + 60  # a hang guard, not a speed
        while dst.cmd("query-spice")["x-display"][0]["glz-inherited-refs"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        head = dst.cmd("query-spice")["x-display"][0]
        # GLZ images went out before the switch and after it
        assert head["glz-inherited-refs"] > 0 and head["glz-images"] > 0, head
        assert src.cmd("query-spice")["x-display"][0]["glz-images"] > 0
        assert after["display"]["primaries"] == before["display"]["primaries"]  # no surface sent again
        s, want = shows(dst, client, vms.dir, "dst")
        assert s["errors"] == [] and s["closed"] == [], s
        w, h, px = want
        assert len({px[i:i + 3] for i in range(0, len(px), 3 * 97)}) > 8
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- source:\n{src.log()[-2000:]}\n--- destination:\n{dst.log()[-2000:]}") from None
    finally:
        client.stop()
    assert_seamless_log(client)


def heads_equal_screendumps(vm, client, folder, heads):
    """Stop the guest, then wait until the client's primary surface of each
    head equals that head's screendump (each retry after a change)."""
    vm.cmd("stop")
    s = None
    for head in range(heads):
        dump, shot = folder / f"head{head}-dump.ppm", folder / f"head{head}-gtk.ppm"
        vm.cmd("screendump", filename=str(dump), head=head)
        want = read_ppm(dump)
        seen = {"n": -1}

        def equal(s):
            n = s["channel_events"] + s["display"]["invalidates"] + s["display"]["primaries"]
            if n == seen["n"]:
                return False  # nothing new drawn since the last comparison
            seen["n"] = n
            client.shot(shot, head=head)
            return read_ppm(shot) == want

        s = client.wait_for(equal, f"head {head}: the client's primary surface equal to the screendump")
        w, h, px = want
        assert len({px[i:i + 3] for i in range(0, len(px), 3 * 97)}) > 8
    return s


def test_spice_gtk_two_heads_share_the_pixmap_cache_and_equal_screendump(vms):
    """A guest with two heads (x-heads=2): spice-gtk opens DISPLAY:0 and
    DISPLAY:1, one pixmap cache serves both (the server sends
    WAIT_FOR_CHANNELS where one head's eviction races the other's use), and
    each head's primary surface equals that head's screendump."""
    sock = vms.dir / "two.spice"
    vm = vms("two", "--ram", "32M", "--spice", f"unix=on,addr={sock},disable-ticketing=on,x-heads=2")
    client = GtkClient(vms.dir, f"spice+unix://{sock}")
    try:
        client.wait_for(lambda s: "DISPLAY:1" in s["opened"] and "DISPLAY:0" in s["opened"]
                        and s["display"]["marks"] >= 2, "both heads' first frames")
        s = heads_equal_screendumps(vm, client, vms.dir, 2)
        assert s["errors"] == [] and s["closed"] == [], s
        assert s["display"]["primaries"] == 2
    finally:
        client.stop()
    assert "CRITICAL" not in client.log(), client.log()


def test_spice_gtk_decodes_glz_images_pixel_exact(vms):
    """image-compression=glz on two heads: every image the client does not
    hold goes as GLZ_RGB (one dictionary for both heads, images referring
    to earlier ones); spice-gtk decodes them (its debug log shows the GLZ
    headers) and each head equals its screendump."""
    sock = vms.dir / "glz.spice"
    vm = vms("glz", "--ram", "32M", "--spice",
             f"unix=on,addr={sock},disable-ticketing=on,x-heads=2,image-compression=glz")
    client = GtkClient(vms.dir, f"spice+unix://{sock}", debug=True)
    try:
        client.wait_for(lambda s: "DISPLAY:1" in s["opened"] and "DISPLAY:0" in s["opened"]
                        and s["display"]["marks"] >= 2 and s["display"]["invalidates"] >= 200,
                        "both heads drawing")
        s = heads_equal_screendumps(vm, client, vms.dir, 2)
        assert s["errors"] == [] and s["closed"] == [], s
    finally:
        client.stop()
    log = client.log()
    assert "CRITICAL" not in log, log[-4000:]
    # the surfaces (ids 0 and 1) and the first image of each recurring set
    assert log.count("decode_header") >= 4, log[-4000:]


def qemu_or_skip():
    from conftest import qemu_binary
    if shutil.which(qemu_binary()) is None:
        pytest.skip(f"{qemu_binary()} is not installed: the QEMU 7.2 reference pair cannot run")


def free_tcp_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# QEMU's -spice takes a port number, not a socket: the port is found free
# here and bound by QEMU later, and in between anything on the host (the
# other xdist worker, another suite, an outgoing connection's ephemeral
# port) may take it.  QEMU then exits at once saying so; the launch takes
# another port (the test itself is never retried).
PORT_TAKEN = "binding socket to 127.0.0.1:"
PORT_TRIES = 8


def qemu_on_free_port(qemu_launcher, name, spice_opts, *extra):
    """A QEMU whose SPICE listens on a TCP port found free: (QmpProcess, port)."""
    from test_spice_qemu import spice_args
    for _ in range(PORT_TRIES):
        port = free_tcp_port()
        args = spice_args("unused", ",seamless-migration=on")
        args[args.index("-spice") + 1] = f"port={port},addr=127.0.0.1,{spice_opts}"
        try:
            return qemu_launcher(*args, *extra, name=name), port
        except RuntimeError as e:
            if f"{PORT_TAKEN}{port} failed" not in str(e):
                raise
    raise AssertionError(f"{name}: {PORT_TRIES} free ports in a row were taken before QEMU bound them")


def qemu_seamless_pair(qemu_launcher, folder):
    """Two QEMU 7.2 with seamless-migration=on on TCP ports (spice-gtk
    migrates between host:port addresses), the second waiting with
    -incoming; returns (src, sport, dst, dport)."""
    out = []
    for name, extra in (("qsrc", []), ("qdst", ["-incoming", f"unix:{folder / 'q.mig'}"])):
        out += qemu_on_free_port(qemu_launcher, name,
                                 "disable-ticketing=on,image-compression=off,seamless-migration=on", *extra)
    return tuple(out)


def qemu_client_migration(qemu_launcher, folder, delay):
    """spice-gtk on the first of two QEMU 7.2, client_migrate_info, then
    migrate after `delay` seconds (QEMU 7.2's client_migrate_info returns at
    once, not when the client answered); returns the client once every one
    of its sockets is on the target, and the target's port."""
    src, sport, dst, dport = qemu_seamless_pair(qemu_launcher, folder)
    client = GtkClient(folder, f"spice://127.0.0.1?port={sport}", debug=True)
    try:
        before = client.wait_for(lambda s: "MAIN:0" in s["opened"] and "DISPLAY:0" in s["opened"]
                                 and s["display"]["primaries"] >= 1, "the source's channels and screen")
        assert set(before["peers"]) == {sport}, before
        if not delay:
            # "at once" whatever the machine's speed: the client cannot
            # answer BEGIN_SEAMLESS before the migration ended
            client.proc.send_signal(signal.SIGSTOP)
        try:
            src.qmp.execute("client_migrate_info", protocol="spice", hostname="127.0.0.1", port=dport)
            if delay:
                time.sleep(delay)  # the second the issue names: no event tells QEMU's caller the client answered
                # what the second is for, so that a loaded machine does not
                # turn it into a switch-host: the client linked every channel
                # to the target (its log; 60 s is a hang guard)
                end = time.monotonic() + 60
                while "migration (seamless): connections all ok" not in client.log():
                    assert time.monotonic() < end and client.alive(), client.log()[-4000:]
                    time.sleep(0.01)
            src.qmp.execute("migrate", uri=f"unix:{folder / 'q.mig'}")
            info = src.qmp.wait_migration(timeout=60)
            assert info["status"] == "completed", info
        finally:
            if not delay:
                client.proc.send_signal(signal.SIGCONT)
        client.wait_for(lambda s: s["peers"] and set(s["peers"]) == {dport} and len(s["peers"]) == len(before["peers"]),
                        "every socket on the target's port")
    except BaseException:
        client.stop()
        raise
    return client, dport


def test_spice_gtk_qemu_seamless_when_migrate_comes_a_second_late(qemu_launcher, sock_dir):
    """The reference measured (issue 11, section 4): two QEMU 7.2 with
    seamless-migration=on, migrate a second after client_migrate_info:
    spice-gtk's log shows the target's ACK and every connection handed over,
    nothing of a fallback."""
    qemu_or_skip()
    client, dport = qemu_client_migration(qemu_launcher, sock_dir, 1.0)
    client.stop()
    assert_seamless_log(client)
    assert "migrate_switch" not in client.log()


def test_spice_gtk_qemu_switch_host_when_migrate_comes_at_once(qemu_launcher, sock_dir):
    """The same pair with migrate at once: the migration ends before the
    client answered (the client is held stopped until it ended, so that this
    holds on a machine of any speed), and spice-server falls back to
    switch-host: the client reconnects to the target's port."""
    qemu_or_skip()
    client, dport = qemu_client_migration(qemu_launcher, sock_dir, 0)
    client.stop()
    log = client.log()
    # spice-gtk may have linked its channels to the target meanwhile
    # ("connections all ok"): the server's SWITCH_HOST decides, and the
    # client tears its channels down and reconnects to the target's port
    seen = "\n".join(x for x in log.splitlines() if "migrat" in x or "switch" in x)
    assert "migration message: migrate-switch-host" in log, seen
    assert f"migrate_switch 127.0.0.1 {dport}" in log, seen


def test_spice_gtk_qemu_launch_takes_another_port_when_its_port_was_taken(qemu_launcher, monkeypatch):
    """The port found free is taken before QEMU binds it (here by the test
    itself, listening on it): QEMU exits saying so, and the launch takes
    the next free port; the QEMU it returns listens there."""
    qemu_or_skip()
    import socket
    import sys
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    handed, real = [], free_tcp_port

    def first_taken():
        handed.append(real() if handed else taken.getsockname()[1])
        return handed[-1]

    monkeypatch.setattr(sys.modules[__name__], "free_tcp_port", first_taken)
    try:
        q, port = qemu_on_free_port(qemu_launcher, "qtaken", "disable-ticketing=on")
        assert handed[0] == taken.getsockname()[1] and handed[1:] == [port], handed
    finally:
        taken.close()
    assert q.alive()
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass
