"""test_interop_qemu.py - a stream written by migcert is loaded by QEMU 7.2.

`migcert vm` (64 MiB of random RAM, no devices) migrates to a file; a real
`qemu-system-x86_64 -M pc -m 64 -S -incoming defer` restores it with
`migrate-incoming "exec:cat F"`.  QEMU must complete the load, and its guest
memory (QMP `pmemsave`) must equal ours byte for byte, except the window
0xc0000-0xfffff where QEMU's pc machine maps its option ROMs and BIOS over
RAM (the RAM under it is loaded, but pmemsave reads the ROM).

What this guards: the stream layout QEMU's parser expects (issue 2,
"byte-for-byte what QEMU's own parser expects"), and in particular section
ids: QEMU 7.2 routes PART/END sections by the id its START carried and
treats 0 as "not loaded yet", so a `ram` section with id 0 sends our pages to
another handler (impl/savevm/savevm.c says why ids start at 1).

Machine type: the stream must name a machine QEMU's `pc` resolves to
(pc-i440fx-7.2).  `migcert vm --machine pc-i440fx-7.2 --devices none` (or
`--machine pc`, resolved as QEMU does) writes that name, so QEMU reads exactly
what migcert wrote.
"""
import struct

from conftest import wait_for_log

RAM = 64 << 20
ROM_WINDOW = (0xC0000, 0x100000)
QEMU_MACHINE = b"pc-i440fx-7.2"


def spawn_vm(qemu_launcher, migcert_bin, *extra):
    return qemu_launcher.spawn(
        lambda sock: [str(migcert_bin), "vm", "--ram", "64M", "--devices", "none",
                      "--fill", "random", "--seed", "11", *extra, "--qmp", f"unix:{sock}"],
        name="migcert")


def save_stream(qemu_launcher, migcert_bin, stream, machine, ram_file=None):
    """Migrate a stopped `migcert vm --machine MACHINE` to `stream`; with
    ram_file, pmemsave its RAM there.  Returns the stream's bytes."""
    vm = spawn_vm(qemu_launcher, migcert_bin, "--machine", machine)
    vm.qmp.execute("stop")
    vm.qmp.execute("migrate-set-parameters", {"max-bandwidth": 10 ** 12})
    vm.qmp.execute("migrate", uri=f"file:{stream}")
    info = vm.qmp.wait_migration(timeout=60)
    assert info.get("status") == "completed", (info, vm.log())
    if ram_file:
        vm.qmp.execute("pmemsave", val=0, size=RAM, filename=str(ram_file))
    vm.quit()
    return stream.read_bytes()


def machine_in_stream(data):
    """The CONFIGURATION section's machine name (QEVM, version 3, 0x07, be32
    len, name) and the offset just past it."""
    assert data[:8] == b"QEVM\x00\x00\x00\x03", data[:8]
    assert data[8] == 0x07, "configuration section missing"
    (n,) = struct.unpack(">I", data[9:13])
    return data[13:13 + n], 13 + n


def test_interop_qemu_loads_a_migcert_stream(qemu_launcher, migcert_bin, sock_dir):
    stream = sock_dir / "migcert.mig"
    ours = sock_dir / "migcert.ram"
    theirs = sock_dir / "qemu.ram"

    # `pc`, as a QEMU command line would say it: the stream names the
    # machine type it resolves to.
    data = save_stream(qemu_launcher, migcert_bin, stream, "pc", ram_file=ours)
    machine, at = machine_in_stream(data)
    assert machine == QEMU_MACHINE
    # The first section after the configuration is ram's START: a real id.
    assert data[at] == 0x01, data[at:at + 16]
    (ram_id,) = struct.unpack(">I", data[at + 1:at + 5])
    assert data[at + 5:at + 9] == b"\x03ram"
    assert ram_id != 0

    q = qemu_launcher("-S", "-incoming", "defer", name="qemu-dst")
    q.qmp.execute("migrate-incoming", uri=f"exec:cat {stream}")
    qinfo = q.qmp.wait_migration(timeout=60)
    assert qinfo.get("status") == "completed", (qinfo, q.log()[-3000:])
    assert q.alive(), q.log()[-3000:]
    status = q.qmp.execute("query-status")
    assert status["status"] in ("paused", "prelaunch"), status
    # pmemsave writes and closes the file before it replies
    q.qmp.execute("pmemsave", val=0, size=RAM, filename=str(theirs))
    q.quit()

    a = ours.read_bytes()
    b = theirs.read_bytes()
    assert len(a) == len(b) == RAM
    lo, hi = ROM_WINDOW
    assert a[:lo] == b[:lo], "QEMU's RAM below 0xc0000 differs from migcert's"
    assert a[hi:] == b[hi:], "QEMU's RAM above 1 MiB differs from migcert's"
    # Random fill: the comparison is not of two zero buffers.
    assert a[hi:hi + 4096] != bytes(4096)


def test_interop_qemu_refuses_a_truncated_migcert_stream(qemu_launcher, migcert_bin,
                                                         sock_dir):
    """The other direction of the same check: QEMU does parse our stream
    (a stream cut inside RAM fails QEMU's load, it is not ignored)."""
    stream = sock_dir / "migcert.mig"
    data = save_stream(qemu_launcher, migcert_bin, stream, QEMU_MACHINE.decode())
    assert machine_in_stream(data)[0] == QEMU_MACHINE
    stream.write_bytes(data[:len(data) // 2 + 1000])  # inside a page record
    q = qemu_launcher("-S", "-incoming", "defer", name="qemu-dst")
    at = machine_in_stream(data)[1]
    (ram_id,) = struct.unpack(">I", data[at + 1:at + 5])
    q.qmp.execute("migrate-incoming", uri=f"exec:cat {stream}")
    # QEMU 7.2 reports the failed load on stderr (its query-migrate may say
    # "failed" before it does), then exits: wait for the line.
    wait_for_log(q, f"error while loading state section id {ram_id}(ram)", timeout=60)
    q.kill()
