"""test_dest_completeness.py - the destination's completeness rule
(docs/protocol-qemu-stream.md, "The completeness rule"; issue 12): a
destination that completes has loaded every section its machine has and
every page of RAM; otherwise the incoming migration fails naming what is
missing and where the stream ended.  QEMU 7.2 runs the guest on whatever it
got; migcert does not.

The streams are a real `migcert vm` source's (file: transport), altered the
way a careless or hostile peer would: the RAM pages left out, fake-nic's
section byte turned into the end-of-stream marker.  The unaltered stream
completes, so each failure below is the alteration's.
"""
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qmp import QMP  # noqa: E402

RAM = "16M"
DEVICES = "fake-serial,fake-nic"
EOS = 0x10
FOOTER = 0x7E


class Vm:
    def __init__(self, binary, folder, name, *args):
        self.sock = Path(folder) / f"{name}.qmp"
        self.log_path = Path(folder) / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(binary), "vm", "--qmp", f"unix:{self.sock}", "--ram",
                                      RAM, "--devices", DEVICES] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.qmp = QMP.connect(self.sock, timeout=20, cmd_timeout=30,
                               alive=lambda: self.proc.poll() is None)

    def log(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self):
        self.qmp.close()
        self.proc.kill()
        self.proc.wait(10)
        self._log.close()


def incoming(migcert_bin, folder, stream, caps=None):
    """Load `stream` into a fresh destination; its final query-migrate.
    With `caps`, those capabilities are set before the load starts
    (`--incoming defer`, then migrate-incoming)."""
    uri = f"file:{stream}"
    dst = Vm(migcert_bin, folder, "dst", "--incoming", uri if caps is None else "defer")
    try:
        if caps is not None:
            dst.qmp.execute("migrate-set-capabilities", {"capabilities": [
                {"capability": c, "state": True} for c in caps]})
            dst.qmp.execute("migrate-incoming", {"uri": uri})
        deadline = time.monotonic() + 60
        while True:
            info = dst.qmp.execute("query-migrate")
            if info.get("status") in ("completed", "failed"):
                return info, dst.log()
            assert time.monotonic() < deadline, f"{info}\n{dst.log()}"
            time.sleep(0.01)
    finally:
        dst.stop()


@pytest.fixture(scope="module")
def stream(migcert_bin, tmp_path_factory):
    """(bytes, analyze --json document) of a source's complete stream."""
    folder = tmp_path_factory.mktemp("complete")
    path = folder / "src.mig"
    src = Vm(migcert_bin, folder, "src", "--seed", "7")
    try:
        src.qmp.execute("migrate", {"uri": f"file:{path}"})
        info = src.qmp.wait_migration(timeout=60)
        assert info["status"] == "completed", f"{info}\n{src.log()}"
    finally:
        src.stop()
    r = subprocess.run([str(migcert_bin), "analyze", "--json", str(path)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return path.read_bytes(), json.loads(r.stdout)


def section(doc, name, kind):
    return next(s for s in doc["sections"] if s["name"] == name and s["type"] == kind)


def test_complete_stream_completes(migcert_bin, tmp_path, stream):
    p = tmp_path / "whole.mig"
    p.write_bytes(stream[0])
    info, log = incoming(migcert_bin, tmp_path, p)
    assert info["status"] == "completed", f"{info}\n{log}"


def test_stream_without_ram_pages_fails(migcert_bin, tmp_path, stream):
    data, doc = stream
    ram = [s for s in doc["sections"] if s["name"] == "ram"]
    parts = [s for s in ram if s["type"] == "part"]
    end = section(doc, "ram", "end")
    assert parts, "the source sent pages in PART sections"
    # drop every PART; the END carries only its EOS record
    sid = end["section_id"]
    after_end = end["offset"] + 5 + end["size"] + 5
    cut = (data[:parts[0]["offset"]] + bytes([0x03]) + struct.pack(">I", sid)
           + struct.pack(">Q", EOS) + bytes([FOOTER]) + struct.pack(">I", sid)
           + data[after_end:])
    p = tmp_path / "no-pages.mig"
    p.write_bytes(cut)
    info, log = incoming(migcert_bin, tmp_path, p)
    assert info["status"] == "failed", f"{info}\n{log}"
    err = info.get("error-desc", "")
    assert "RAM incomplete: ramblock \"pc.ram\": 4096 of its 4096 pages never arrived" in err, err
    assert "stream ends at offset" in err, err


def test_stream_missing_a_device_section_fails(migcert_bin, tmp_path, stream):
    data, doc = stream
    nic = section(doc, "fake-nic", "full")
    cut = bytearray(data)
    cut[nic["offset"]] = 0x00  # fake-nic's section byte becomes end-of-stream
    p = tmp_path / "no-nic.mig"
    p.write_bytes(bytes(cut))
    info, log = incoming(migcert_bin, tmp_path, p)
    assert info["status"] == "failed", f"{info}\n{log}"
    err = info.get("error-desc", "")
    assert "incomplete stream: section 'fake-nic' (instance 0) never arrived" in err, err
    assert f"stream ends at offset {nic['offset'] + 1}" in err, err


def test_stream_missing_a_needed_subsection_fails(migcert_bin, tmp_path, stream):
    """fake-nic's offload subsection has a needed(), true on this source (its
    checksum flags are set): the section loads without it, but the source's
    VMDESCRIPTION lists it, so the destination knows it was left out.
    Before the VMDESCRIPTION check this stream completed."""
    data, doc = stream
    sub = b"\x05\x10fake-nic/offload" + struct.pack(">I", 1)
    at = data.find(sub)
    assert at > 0 and data.find(sub, at + 1) < 0, "one offload subsection in the stream"
    size = len(sub) + 4 + 2  # csum_flags (u32), tso_mss (u16)
    assert data[at + size] == FOOTER, "the subsection ends fake-nic's section"
    vmdesc = data.rfind(b'"fake-nic/offload"')
    assert vmdesc > at, "the VMDESCRIPTION lists the subsection"
    p = tmp_path / "no-offload.mig"
    p.write_bytes(data[:at] + data[at + size:])
    info, log = incoming(migcert_bin, tmp_path, p)
    assert info["status"] == "failed", f"{info}\n{log}"
    err = info.get("error-desc", "")
    assert ("device 'fake-nic' (instance 0): subsection fake-nic/offload, which the source "
            "wrote (its VMDESCRIPTION lists it), never arrived") in err, err
    assert "stream offset" in err, err


def _without_offload_and_trailer(data):
    """The stream with fake-nic's offload subsection and the VMDESCRIPTION
    trailer (after the EOF byte) both cut out."""
    sub = b"\x05\x10fake-nic/offload" + struct.pack(">I", 1)
    at = data.find(sub)
    size = len(sub) + 4 + 2
    assert at > 0 and data[at + size] == FOOTER
    trailer = len(data)
    while trailer > 0:  # 0x06, be32 len, len bytes of JSON to the end
        trailer = data.rfind(b"\x06", 0, trailer)
        if trailer < 0 or struct.unpack(">I", data[trailer + 1:trailer + 5])[0] == \
                len(data) - trailer - 5:
            break
    assert trailer > at, "the stream ends with its VMDESCRIPTION"
    assert data[trailer - 1] == 0, "the EOF byte comes before the trailer"
    return data[:at] + data[at + size:trailer]


def test_stream_missing_a_needed_subsection_and_the_trailer(migcert_bin, tmp_path, stream):
    """Both fake-nic's needed subsection and the VMDESCRIPTION gone: under
    QEMU's rules (the trailer is optional) nothing tells the destination
    the subsection was written, and it completes (docs/limits.md section 1
    says so); with x-require-vmdesc, which management sets when both sides
    are migcert, it fails naming the missing trailer and where it ended.
    Before the capability there was no way to refuse this stream."""
    data, _ = stream
    p = tmp_path / "no-offload-no-trailer.mig"
    p.write_bytes(_without_offload_and_trailer(data))
    info, log = incoming(migcert_bin, tmp_path, p, [])
    assert info["status"] == "completed", f"{info}\n{log}"
    info, log = incoming(migcert_bin, tmp_path, p, ["x-require-vmdesc"])
    assert info["status"] == "failed", f"{info}\n{log}"
    err = info.get("error-desc", "")
    assert ("incomplete stream: no VMDESCRIPTION after its EOF marker (offset "
            f"{p.stat().st_size})") in err, err
    # the whole stream, trailer and all, still completes with the capability
    whole = tmp_path / "whole.mig"
    whole.write_bytes(data)
    info, log = incoming(migcert_bin, tmp_path, whole, ["x-require-vmdesc"])
    assert info["status"] == "completed", f"{info}\n{log}"
