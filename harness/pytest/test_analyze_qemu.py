"""test_analyze_qemu.py - `migcert analyze` against a real QEMU 7.2 stream.

THE CLI CONTRACT of `migcert analyze` (what these tests check; the analyzer
is written to it -- harness/runner/cmd-analyze.c, impl/stream/analyze.c):

  migcert analyze FILE [--json]

  Exit status
    0  the stream parsed up to its EOF marker (and through the VMDESCRIPTION
       trailer when there is one);
    1  the stream is malformed.  stderr carries one line
         migcert analyze: FILE: offset N: PROBLEM
       N (decimal or 0x-hex) is the offset of the first byte that could not be
       accepted, or the start of the wire item holding it (file header,
       configuration, section header, RAM record, footer); for a truncated
       file, the file's length or the start of the incomplete item.
       PROBLEM says what is wrong in words that contain: "magic" (bad magic),
       "version" (stream version, section version), "configuration" (bad
       configuration section; a damaged 0x07 byte may instead be reported as
       a bad "section" at that offset), "footer" (missing or mismatched section
       footer), "truncated" or "unexpected end" (input ends early), and the
       section's name (e.g. "ram") when the problem is inside a section.
       A file cut anywhere after its RAM says "truncated" and the offset
       where it ends; cut inside a section, "stream ended at offset N inside
       section 'x' (id i)" naming that section (not the first device
       section, whose payload could not be walked without the trailer);
    2  usage error, FILE cannot be read, or the input is over the limits:
       a regular file over 64 GiB; from a pipe, more than 64 GiB in all or
       more than 256 MiB from the first device section to the end.  A
       directory is refused before parsing ("FILE: is a directory"); when
       FILE cannot be read, stdout stays empty.
    Never a crash or a signal, whatever the bytes.
    Names from the wire (idstrs, block names) are printed escaped: printable
    ASCII as is, every other byte as \\xNN (a backslash doubled).

  FILE may be "-" (stdin), a pipe, a FIFO or a device: it is parsed as it is
    read, with the same results as the file, in bounded memory; /dev/zero
    fails at once on its magic ("Not a migration stream", offset 0).

  Text mode (no --json): human-readable text on stdout that contains the
    machine type (e.g. "pc-i440fx-7.2"), each RAM block name ("pc.ram", ...)
    and the name of every section as written in the stream ("ram", "timer",
    "0000:00:01.0/PIIX3", ...).

  --json: stdout is exactly one JSON object with at least
    {
      "config":   {"machine": "pc-i440fx-7.2"}     (null when the stream has
                                                     no configuration section),
      "sections": [                                  stream order, one entry per
        {"type": "start"|"part"|"end"|"full",        SECTION_START/PART/END/FULL;
         "section_id": 2, "name": "ram",             PART/END repeat the name,
         "instance_id": 0, "version": 4,             instance_id and version of
         "size": 165}, ...],                         their START; size = payload
                                                     bytes between the section
                                                     header and its footer,
      "ram_blocks": [                                MEM_SIZE order;
        {"name": "pc.ram", "length": 67108864,       length in bytes;
         "pages": {"normal": 0, "zero": 16384}}, ...],  pages counted over the
                                                     whole stream, by record kind,
      "complete": true                               the EOF marker was reached
    }
    More keys are welcome (e.g. decoded device fields, commands, vmdesc).

The stream: `qemu-system-x86_64 -M pc -m 64 -display none -nodefaults -S`,
migrated with `migrate "exec:cat > F"` (conftest.py, qemu_stream, once per
session).  Malformations follow docs/protocol-qemu-stream.md section 9.
Rerun one: /usr/bin/python3 -m pytest harness/pytest -k 'analyze and footer'
"""
import json
import os
import random
import re
import signal
import struct
import subprocess
import tempfile
import threading
import time
from collections import namedtuple

import pytest

from streamutil import Layout, offsets_in, vmdesc

PAGE = 4096


@pytest.fixture(scope="module")
def stream(qemu_stream):
    return qemu_stream


@pytest.fixture(scope="module")
def layout(stream):
    return Layout(stream.data)


@pytest.fixture(scope="module")
def desc(stream):
    d = vmdesc(stream.data)
    assert d is not None, "QEMU's stream has no VMDESCRIPTION trailer"
    return d


@pytest.fixture(scope="module")
def analyzed_json(stream, run_migcert):
    r = run_migcert("analyze", stream.path, "--json")
    assert r.returncode == 0, f"analyze --json exit {r.returncode}: {r.stderr.strip()}"
    try:
        doc = json.loads(r.stdout)
    except ValueError as e:
        pytest.fail(f"analyze --json did not print one JSON document: {e}\n{r.stdout[:400]}")
    assert isinstance(doc, dict)
    return doc


def device_sections(doc):
    return [s for s in doc["sections"] if s["type"] == "full"]


def describe_exit(r):
    if r.returncode < 0:
        return f"killed by {signal.Signals(-r.returncode).name}"
    return f"exit {r.returncode}"


# -- a good stream -----------------------------------------------------------

def test_analyze_qemu_text_names_machine_ram_and_every_device(stream, desc, layout, run_migcert):
    r = run_migcert("analyze", stream.path)
    assert r.returncode == 0, f"{describe_exit(r)}: {r.stderr.strip()}"
    assert layout.machine in r.stdout
    assert "pc.ram" in r.stdout
    missing = sorted({d["name"] for d in desc["devices"] if d["name"] not in r.stdout})
    assert not missing, f"device sections not named in the text: {missing}"


def test_analyze_qemu_json_reaches_eof_with_config(analyzed_json, layout):
    assert analyzed_json["complete"] is True
    assert analyzed_json["config"]["machine"] == layout.machine == "pc-i440fx-7.2"


def test_analyze_qemu_json_section_entries_have_contract_keys(analyzed_json):
    keys = {"type", "section_id", "name", "instance_id", "version", "size"}
    assert analyzed_json["sections"], "no sections reported"
    for s in analyzed_json["sections"]:
        assert keys <= set(s), f"section entry lacks {keys - set(s)}: {s}"
        assert s["type"] in ("start", "part", "end", "full"), s
        assert isinstance(s["size"], int) and s["size"] >= 0, s


def test_analyze_qemu_json_ram_is_start_parts_end(analyzed_json, layout):
    ram = [s for s in analyzed_json["sections"] if s["name"] == "ram"]
    types = [s["type"] for s in ram]
    assert types[0] == "start" and types[-1] == "end" and set(types[1:-1]) <= {"part"}, types
    assert {s["section_id"] for s in ram} == {layout.ram_section_id}
    assert all(s["version"] == 4 and s["instance_id"] == 0 for s in ram)
    # RAM sections come before every device section
    # (docs/protocol-qemu-stream.md section 4).
    order = [s["type"] for s in analyzed_json["sections"]]
    assert order.index("full") > max(i for i, s in enumerate(analyzed_json["sections"])
                                     if s["name"] == "ram")


def test_analyze_qemu_json_device_sections_match_vmdesc(analyzed_json, desc):
    got = sorted((s["name"], s["instance_id"]) for s in device_sections(analyzed_json))
    want = sorted((d["name"], d["instance_id"]) for d in desc["devices"])
    assert got == want


def test_analyze_qemu_json_device_versions_match_vmdesc(analyzed_json, desc):
    want = {(d["name"], d["instance_id"]): d["version"] for d in desc["devices"] if "version" in d}
    got = {(s["name"], s["instance_id"]): s["version"] for s in device_sections(analyzed_json)}
    wrong = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    assert not wrong, f"(name, instance): (analyze, vmdesc) versions differ: {wrong}"


def test_analyze_qemu_json_ram_blocks_match_mem_size_list(analyzed_json, layout):
    got = [(b["name"], b["length"]) for b in analyzed_json["ram_blocks"]]
    assert got == list(layout.blocks.items())
    assert dict(got)["pc.ram"] == 64 << 20


def test_analyze_qemu_json_every_page_counted_once(analyzed_json):
    # A paused guest dirties nothing: each page of each block is sent once.
    for b in analyzed_json["ram_blocks"]:
        pages = b["pages"]
        assert pages["normal"] + pages["zero"] == b["length"] // PAGE, b


def test_analyze_qemu_json_page_counts_match_query_migrate(analyzed_json, stream):
    ram = stream.info["ram"]
    normal = sum(b["pages"]["normal"] for b in analyzed_json["ram_blocks"])
    zero = sum(b["pages"]["zero"] for b in analyzed_json["ram_blocks"])
    assert (normal, zero) == (ram["normal"], ram["duplicate"])


def test_analyze_qemu_json_section_sizes_fit_the_file(analyzed_json, stream):
    total = sum(s["size"] for s in analyzed_json["sections"])
    assert 0 < total < len(stream.data)
    ram_pages = sum(b["pages"]["normal"] for b in analyzed_json["ram_blocks"])
    assert total >= ram_pages * (8 + PAGE)


def test_analyze_missing_file_is_a_usage_error(run_migcert, tmp_path):
    r = run_migcert("analyze", tmp_path / "absent.mig")
    assert r.returncode == 2, describe_exit(r)
    assert "absent.mig" in r.stderr


# -- malformed streams (docs/protocol-qemu-stream.md section 9) ----------------

def _mutations(data, lay):
    """name -> (bytes, allowed offset range, words one of which must appear)."""
    def patch(at, new):
        return data[:at] + new + data[at + len(new):]

    ver_last = lay.ram_version + 3
    cut = len(data) // 2
    return {
        "magic": (patch(0, b"XXXX"), (0, 3), ["magic"]),
        "version-2": (patch(4, b"\0\0\0\2"), (0, 7), ["version"]),
        "version-4": (patch(4, b"\0\0\0\4"), (0, 7), ["version"]),
        # Streams of machine types <= 2.3 have no configuration, so an analyzer
        # may read this byte as a section header: it must fail right there.
        "config-byte": (patch(lay.config, b"\x01"), (lay.config, lay.config),
                        ["configuration", "section"]),
        "truncated-50pct": (data[:cut], (cut - 2 * (PAGE + 8 + 256), cut),
                            ["truncated", "unexpected end"]),
        "footer-byte": (patch(lay.ram_footer, b"\x7d"), (lay.ram_section, lay.ram_footer), ["footer"]),
        "ram-version-5": (patch(ver_last, b"\x05"), (lay.ram_section, ver_last), ["version"]),
    }


MUTATIONS = ["magic", "version-2", "version-4", "config-byte", "truncated-50pct",
             "footer-byte", "ram-version-5"]


@pytest.mark.parametrize("case", MUTATIONS)
def test_analyze_qemu_malformed_names_problem_and_offset(case, stream, layout, run_migcert, tmp_path):
    bad, (lo, hi), words = _mutations(stream.data, layout)[case]
    f = tmp_path / f"{case}.mig"
    f.write_bytes(bad)
    r = run_migcert("analyze", f)
    assert r.returncode == 1, f"{case}: {describe_exit(r)}, expected exit 1; stderr: {r.stderr.strip()}"
    msg = r.stderr
    assert any(w in msg.lower() for w in words), f"{case}: no word of {words} in {msg!r}"
    offs = offsets_in(msg)
    assert offs, f"{case}: no 'offset N' in {msg!r}"
    assert any(lo <= o <= hi for o in offs), f"{case}: offsets {offs} not in [{lo}, {hi}]: {msg!r}"
    if case in ("footer-byte", "ram-version-5", "truncated-50pct"):
        want = f"section 'ram' (id {layout.ram_section_id})"
        assert want in msg, f"{case}: {want} not in {msg!r}"


def test_analyze_qemu_malformed_json_mode_also_fails(stream, run_migcert, tmp_path):
    f = tmp_path / "half.mig"
    f.write_bytes(stream.data[: len(stream.data) // 2])
    r = run_migcert("analyze", f, "--json")
    assert r.returncode == 1, describe_exit(r)
    assert offsets_in(r.stderr), r.stderr


def test_analyze_qemu_random_damage_never_crashes(stream, run_migcert, tmp_path):
    """Seeded byte flips and cuts over the whole stream: exit 0 or 1, never a
    signal; every failure names an offset inside the file."""
    rng = random.Random(0x5EED)
    data = stream.data
    failures = []
    for i in range(40):
        b = bytearray(data)
        if i % 4 == 3:
            b = b[: rng.randrange(len(b))]
        else:
            for _ in range(1 + i % 3):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        f = tmp_path / f"damaged-{i}.mig"
        f.write_bytes(bytes(b))
        r = run_migcert("analyze", f, timeout=30)
        if r.returncode not in (0, 1):
            failures.append(f"case {i}: {describe_exit(r)}: {r.stderr.strip()[:200]}")
        elif r.returncode == 1 and not any(0 <= o <= len(b) for o in offsets_in(r.stderr)):
            failures.append(f"case {i}: no offset within the file in {r.stderr.strip()[:200]!r}")
        f.unlink()
    assert not failures, "\n".join(failures)


# -- truncated inside the RAM section: the section is named --------------------

def _ram_cuts(doc):
    """Cut points inside the RAM section: inside the START's block list, at
    the end of every RAM section (a section boundary), inside a PART header,
    halfway through each PART's payload."""
    ram = [x for x in doc["sections"] if x["name"] == "ram"]
    cuts = {ram[0]["offset"] + 30}
    for x in ram:
        payload = x["offset"] + (17 if x["type"] == "start" else 5)
        cuts.add(payload + x["size"] + 5)           # after its footer
        if x["type"] != "start":                    # (a START header names nothing yet)
            cuts.add(x["offset"] + 2)               # inside its header
        cuts.add(payload + x["size"] // 2)
    return sorted(cuts)


def test_analyze_qemu_truncated_in_ram_names_the_section(stream, analyzed_json, layout,
                                                         run_migcert, tmp_path):
    want = f"section 'ram' (id {layout.ram_section_id})"
    bad = []
    for cut in _ram_cuts(analyzed_json):
        f = tmp_path / "cut.mig"
        f.write_bytes(stream.data[:cut])
        r = run_migcert("analyze", f)
        if r.returncode != 1 or want not in r.stderr or "truncated" not in r.stderr:
            bad.append(f"cut {cut}: {describe_exit(r)}: {r.stderr.strip()}")
    assert not bad, "\n".join(bad)


# -- truncated in the device sections or the trailer: where it ends is named ------

SECTION_RE = re.compile(r"section '([^']*)' \(id (\d+)\)")


def _header_len(sec):
    """FULL section header: type, be32 id, u8 len, idstr, be32 instance, be32 version."""
    return 1 + 4 + 1 + len(sec["name"]) + 4 + 4


def _device_cuts(doc, file_len):
    """(cut, what) for cuts in the first, the cpu, a middle and the last device
    section, at their boundaries, in the trailer and after the EOF marker.
    what: ("in", section) inside its payload or footer; ("after", section)
    right after its footer; ("header", offset) inside the header at offset;
    ("eof",) right after the EOF marker; ("trailer", offset) inside it."""
    full = [x for x in doc["sections"] if x["type"] == "full"]
    picks = {0, len(full) // 2, len(full) - 1}
    picks |= {i for i, x in enumerate(full) if x["name"] == "cpu"}
    cuts = []
    for i in sorted(picks):
        sec = full[i]
        payload = sec["offset"] + _header_len(sec)
        cuts += [(payload + 1, ("in", sec)), (payload + sec["size"] // 2, ("in", sec)),
                 (payload + sec["size"] + 2, ("in", sec)),           # inside its footer
                 (payload + sec["size"] + 5, ("after", sec))]
        if i + 1 < len(full):
            cuts.append((full[i + 1]["offset"] + 3, ("header", full[i + 1]["offset"])))
    eof = doc["eof_offset"]
    trailer = doc["vmdescription"]["offset"]
    assert trailer == eof + 1
    cuts.append((eof + 1, ("eof",)))
    for cut in (trailer + 3, trailer + 5, trailer + 5 + doc["vmdescription"]["size"] // 2,
                file_len - 5, file_len - 1):
        cuts.append((cut, ("trailer", trailer)))
    return cuts


def _check_device_cut(cut, what, r):
    """'' when r reports the cut at `cut` as `what` says, else why not."""
    msg = r.stderr
    if r.returncode != 1 or "truncated" not in msg:
        return f"{describe_exit(r)}, expected exit 1 and 'truncated'"
    offs = offsets_in(msg)
    if cut not in offs:
        return f"the input's end {cut} is not among the offsets {offs}"
    named = {(n, int(i)) for n, i in SECTION_RE.findall(msg)}
    kind = what[0]
    if kind in ("in", "after"):
        sec = what[1]
        want = (sec["name"], sec["section_id"])
        if named != {want}:
            return f"names sections {sorted(named)}, expected only {want}"
        if kind == "in":
            phrase = f"stream ended at offset {cut} inside section '{sec['name']}' " \
                     f"(id {sec['section_id']})"
            if phrase not in msg or sec["offset"] not in offs:
                return f"expected {phrase!r} and the section's start {sec['offset']}"
        elif f"after section '{sec['name']}'" not in msg:
            return "does not say which section the input ends after"
    elif kind == "header":
        if what[1] not in offs or "header" not in msg:
            return f"expected the header's start {what[1]} and 'header'"
    elif kind == "eof":
        if "EOF marker" not in msg:
            return "does not say that the input ends with its EOF marker"
    elif kind == "trailer":
        if what[1] not in offs or "VMDESCRIPTION trailer" not in msg:
            return f"expected the VMDESCRIPTION trailer and its start {what[1]}"
    return ""


def test_analyze_qemu_truncated_in_devices_names_where_it_ends(stream, analyzed_json,
                                                               run_migcert, tmp_path):
    bad = []
    f = tmp_path / "cut.mig"
    for cut, what in _device_cuts(analyzed_json, len(stream.data)):
        f.write_bytes(stream.data[:cut])
        r = run_migcert("analyze", f)
        why = _check_device_cut(cut, what, r)
        if why:
            bad.append(f"cut {cut} ({what[0]}): {why}: {r.stderr.strip()}")
    assert not bad, "\n".join(bad)


def test_analyze_qemu_every_cut_after_ram_says_truncated(stream, analyzed_json, run_migcert,
                                                         tmp_path):
    """Cuts spread over the device sections (every 61st byte) and the trailer
    (every 4099th): exit 1, "truncated", the input's end among the offsets."""
    first = next(x for x in analyzed_json["sections"] if x["type"] == "full")["offset"]
    trailer = analyzed_json["vmdescription"]["offset"]
    cuts = list(range(first + 1, trailer + 1, 61)) + \
        list(range(trailer + 1, len(stream.data), 4099))
    bad = []
    f = tmp_path / "cut.mig"
    for cut in cuts:
        f.write_bytes(stream.data[:cut])
        r = run_migcert("analyze", f)
        if r.returncode != 1 or "truncated" not in r.stderr or cut not in offsets_in(r.stderr):
            bad.append(f"cut {cut}: {describe_exit(r)}: {r.stderr.strip()}")
    assert not bad, "\n".join(bad[:20])


def test_analyze_pipe_truncated_in_devices_reports_like_the_file(stream, analyzed_json,
                                                                 migcert_bin, run_migcert,
                                                                 tmp_path):
    cpu = next(x for x in analyzed_json["sections"] if x["name"] == "cpu")
    cut = cpu["offset"] + _header_len(cpu) + cpu["size"] // 2
    f = tmp_path / "cut.mig"
    f.write_bytes(stream.data[:cut])
    from_file = run_migcert("analyze", f)
    m = run_piped(migcert_bin, ["head", "-c", str(cut), stream.path])
    assert (m.returncode, from_file.returncode) == (1, 1)
    assert m.stderr.replace("analyze: -:", "analyze: F:") == \
        from_file.stderr.replace(f"analyze: {f}:", "analyze: F:")
    assert f"inside section 'cpu' (id {cpu['section_id']})" in m.stderr, m.stderr


# -- names from the wire are escaped ----------------------------------------------

def _rename_timer(data, doc, desc, new_name, in_trailer):
    """The stream with device "timer" renamed (same length) in its section
    header and, when in_trailer, in the VMDESCRIPTION too."""
    timer = next(x for x in doc["sections"] if x["name"] == "timer")
    at = timer["offset"] + 6                         # type, be32 id, u8 len
    assert data[at:at + 5] == b"timer"
    b = bytearray(data)
    b[at:at + 5] = new_name
    if not in_trailer:
        return bytes(b)
    trailer_at = data.rfind(b"\x06\x00")           # 0x06, be32 len (< 16 MiB), JSON
    while struct.unpack_from(">I", data, trailer_at + 1)[0] + trailer_at + 5 != len(data):
        trailer_at = data.rfind(b"\x06\x00", 0, trailer_at)
        assert trailer_at > 0, "no VMDESCRIPTION trailer"
    d = json.loads(json.dumps(desc))
    for dev in d["devices"]:
        if dev["name"] == "timer":
            dev["name"] = new_name.decode("latin-1")
    j = json.dumps(d).encode()
    return bytes(b[:trailer_at]) + b"\x06" + struct.pack(">I", len(j)) + j


def test_analyze_qemu_wire_idstr_is_escaped_in_output_and_errors(stream, analyzed_json, desc,
                                                                 run_migcert, tmp_path):
    odd = b"t\x01m\x1br"
    shown = "t\\x01m\\x1br"
    f = tmp_path / "renamed.mig"
    f.write_bytes(_rename_timer(stream.data, analyzed_json, desc, odd, True))
    r = run_migcert("analyze", f)
    assert r.returncode == 0, f"{describe_exit(r)}: {r.stderr.strip()}"
    assert shown in r.stdout
    assert "\x01" not in r.stdout and "\x1b" not in r.stdout
    r = run_migcert("analyze", f, "--json")
    doc = json.loads(r.stdout)
    assert shown in [x["name"] for x in doc["sections"]]

    f.write_bytes(_rename_timer(stream.data, analyzed_json, desc, odd, False))
    r = run_migcert("analyze", f)
    assert r.returncode == 1, describe_exit(r)
    timer_id = next(x["section_id"] for x in analyzed_json["sections"] if x["name"] == "timer")
    assert f"section '{shown}' (id {timer_id})" in r.stderr, r.stderr
    assert "\x01" not in r.stderr and "\x1b" not in r.stderr


# -- inputs that are not regular files ---------------------------------------------

Measured = namedtuple("Measured", "returncode stdout stderr seconds maxrss_kib")


def run_measured(argv, stdin=subprocess.DEVNULL, timeout=30):
    """Run argv: exit status, output, wall time and the peak RSS of that one
    process, killed after `timeout` s.  The peak comes from GNU time, which
    starts the process itself: the kernel counts into a process's peak RSS
    the memory of whatever exec'd it, so a child of this (pytest) process
    would report pytest's own size once a test before it made pytest big."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as peak:
        t0 = time.monotonic()
        p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", peak.name,
                              *[str(a) for a in argv]],
                             stdin=stdin, stdout=out, stderr=err, start_new_session=True)
        killer = threading.Timer(timeout, os.killpg, (p.pid, signal.SIGKILL))
        killer.start()
        try:
            p.wait()
        finally:
            killer.cancel()
        secs = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        # the last line; before it, "Command exited with non-zero status N"
        # or "Command terminated by signal N"
        lines = peak.read().split()
        code = p.returncode
        m = re.search(r"Command terminated by signal (\d+)", " ".join(lines))
        if m:
            code = -int(m.group(1))
        return Measured(code, out.read().decode(errors="replace"),
                        err.read().decode(errors="replace"), secs,
                        int(lines[-1]) if lines else 0)


def run_piped(migcert_bin, producer, *args, timeout=30):
    """`producer | migcert analyze - ARGS`, measured; the producer is reaped."""
    prod = subprocess.Popen(producer, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        return run_measured([migcert_bin, "analyze", "-", *args], stdin=prod.stdout,
                            timeout=timeout)
    finally:
        prod.stdout.close()
        prod.kill()
        prod.wait()


SMALL_RSS_KIB = 64 << 10


def test_analyze_dev_zero_fails_at_once_in_small_memory(migcert_bin):
    for argv, stdin in ((["/dev/zero"], subprocess.DEVNULL), (["-"], "zero")):
        with open("/dev/zero", "rb") as z:
            m = run_measured([migcert_bin, "analyze", *argv], stdin=z if stdin == "zero" else stdin)
        assert m.returncode == 1, f"{argv}: exit {m.returncode}: {m.stderr}"
        assert "not a migration stream" in m.stderr.lower(), m.stderr
        # an endless input: exiting by itself (not killed at run_measured's
        # hang guard) at offset 0 is failing at once
        assert 0 in offsets_in(m.stderr), m.stderr
        assert m.maxrss_kib < SMALL_RSS_KIB, f"{argv}: peak RSS {m.maxrss_kib} KiB"


def test_analyze_pipe_header_then_endless_zeros_fails_at_once(stream, migcert_bin):
    m = run_piped(migcert_bin, ["sh", "-c", f"head -c 8 '{stream.path}'; exec cat /dev/zero"])
    assert m.returncode == 1, f"exit {m.returncode}: {m.stderr}"
    assert "vmdescription" in m.stderr.lower(), m.stderr
    assert m.maxrss_kib < SMALL_RSS_KIB, m  # endless zeros: exit 1 is failing at once


def test_analyze_pipe_gives_what_the_file_gives(stream, analyzed_json, migcert_bin):
    m = run_piped(migcert_bin, ["cat", stream.path], "--json")
    assert m.returncode == 0, f"exit {m.returncode}: {m.stderr}"
    assert json.loads(m.stdout) == analyzed_json
    assert m.maxrss_kib < SMALL_RSS_KIB, f"peak RSS {m.maxrss_kib} KiB"


def test_analyze_fifo_gives_what_the_file_gives(stream, analyzed_json, run_migcert, tmp_path):
    fifo = tmp_path / "stream.fifo"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as w:
            try:
                w.write(stream.data)
            except BrokenPipeError:
                pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    r = run_migcert("analyze", fifo, "--json", timeout=30)
    t.join(5)
    assert r.returncode == 0, f"{describe_exit(r)}: {r.stderr}"
    assert json.loads(r.stdout) == analyzed_json


def test_analyze_pipe_truncated_reports_like_the_file(stream, layout, migcert_bin, run_migcert,
                                                      tmp_path):
    cut = len(stream.data) // 2
    f = tmp_path / "half.mig"
    f.write_bytes(stream.data[:cut])
    from_file = run_migcert("analyze", f)
    m = run_piped(migcert_bin, ["head", "-c", str(cut), stream.path])
    assert (m.returncode, from_file.returncode) == (1, 1)
    assert m.stderr.replace("analyze: -:", "analyze: F:") == \
        from_file.stderr.replace(f"analyze: {f}:", "analyze: F:")
    assert f"section 'ram' (id {layout.ram_section_id})" in m.stderr


def test_analyze_pipe_endless_device_data_stops_at_the_tail_limit(stream, analyzed_json,
                                                                  migcert_bin):
    """From the first device section on, a pipe's rest is kept in memory: at
    most 256 MiB, then a clear refusal (exit 2), never unbounded growth."""
    first = next(x for x in analyzed_json["sections"] if x["type"] == "full")
    cut = first["offset"] + 20
    m = run_piped(migcert_bin,
                  ["sh", "-c", f"head -c {cut} '{stream.path}'; exec cat /dev/zero"],
                  timeout=60)
    assert m.returncode == 2, f"exit {m.returncode}: {m.stderr}"
    assert "256 MiB" in m.stderr and "regular file" in m.stderr, m.stderr
    assert f"section '{first['name']}'" in m.stderr, m.stderr
    assert m.maxrss_kib < (400 << 10), f"peak RSS {m.maxrss_kib} KiB"


def test_analyze_file_over_64_gib_is_refused(migcert_bin, tmp_path):
    f = tmp_path / "huge.mig"
    with open(f, "wb") as w:
        w.truncate((64 << 30) + 1)        # sparse: no disk used
    m = run_measured([migcert_bin, "analyze", f])
    assert m.returncode == 2, f"exit {m.returncode}: {m.stderr}"
    assert "64 GiB" in m.stderr and "huge.mig" in m.stderr, m.stderr
    assert m.maxrss_kib < SMALL_RSS_KIB, m


def test_analyze_directory_is_refused_before_parsing(migcert_bin, run_migcert, tmp_path):
    for args in ((tmp_path,), (tmp_path, "--json")):
        r = run_migcert("analyze", *args)
        assert r.returncode == 2, f"{args}: {describe_exit(r)}: {r.stderr}"
        assert r.stderr.strip() == f"migcert analyze: {tmp_path}: is a directory", r.stderr
        assert r.stdout == "", f"{args}: printed a report: {r.stdout[:200]!r}"
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        m = run_measured([migcert_bin, "analyze", "-"], stdin=fd)
    finally:
        os.close(fd)
    assert m.returncode == 2, f"stdin: exit {m.returncode}: {m.stderr}"
    assert m.stderr.strip() == "migcert analyze: -: is a directory", m.stderr
    assert m.stdout == ""


def test_analyze_unreadable_input_prints_nothing(run_migcert):
    """A read that fails (procfs /proc/self/mem at offset 0: EIO) is the
    input's problem, not a verdict on a stream."""
    r = run_migcert("analyze", "/proc/self/mem")
    assert r.returncode == 2, f"{describe_exit(r)}: {r.stderr}"
    assert "/proc/self/mem: cannot read at offset 0" in r.stderr, r.stderr
    assert r.stdout == ""


def test_analyze_help_names_the_limits(run_migcert):
    r = run_migcert("analyze", "--help")
    assert r.returncode == 0
    assert "64 GiB" in r.stdout and '"-"' in r.stdout
