"""test_analyze_ours.py - `migcert analyze` over migcert's own streams with a
VFIO-style device section (fake-gpu through impl/device/device-savevm.c).

The stream is written by the source side of the device section itself:
$(BUILD)/unit/test-analyze-device with MIGCERT_WRITE_STREAM=FILE (the C test
asserts the byte counts against the device's own counter; this file checks
what a user of the CLI sees: exit status, text, --json, and cuts).
"""
import json
import os
import re
import struct
import subprocess

import pytest

IDSTR = "0000:00:05.0/vfio"
# Payload records, impl/device/device-savevm.h
SETUP, DATA, COMPLETE, EOS = 1, 2, 3, 4


@pytest.fixture(scope="module")
def gpu_stream(migcert_build, tmp_path_factory):
    writer = migcert_build / "unit" / "test-analyze-device"
    if not os.access(writer, os.X_OK):
        pytest.fail(f"{writer} is not built: run `make BUILD={migcert_build.name} {writer}`",
                    pytrace=False)
    path = tmp_path_factory.mktemp("ours") / "gpu.mig"
    subprocess.run([str(writer), "test_analyze_device_section_reaches_eof"], check=True,
                   capture_output=True, env=dict(os.environ, MIGCERT_WRITE_STREAM=str(path)),
                   timeout=60)
    return path


def records(data, doc):
    """(offset, tag, length) of every device record, walked from the section
    offsets that analyze reported (header: type, be32 id [, idstr, inst, ver])."""
    out = []
    for s in doc["sections"]:
        at = s["offset"] + 5
        if s["type"] == "start":
            at += 1 + data[at] + 8
        while True:
            tag = data[at]
            n = struct.unpack(">I", data[at + 1:at + 5])[0] if tag in (SETUP, DATA) else 0
            out.append((at, tag, n))
            at += 1 + (4 if tag in (SETUP, DATA) else 0) + (n if tag == DATA else 0)
            if tag == EOS:
                break
    return out


def test_analyze_ours_gpu_stream_reaches_eof(run_migcert, gpu_stream):
    p = run_migcert("analyze", "--json", gpu_stream)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["complete"] is True
    assert doc["eof_offset"] == gpu_stream.stat().st_size - 1
    [d] = doc["device_sections"]
    assert d["name"] == IDSTR and d["format"] == 1 and d["complete"] is True
    data = gpu_stream.read_bytes()
    recs = records(data, doc)
    kinds = {k: sum(1 for r in recs if r[1] == v)
             for k, v in (("SETUP", SETUP), ("DATA", DATA), ("COMPLETE", COMPLETE), ("EOS", EOS))}
    assert d["records"] == kinds
    assert kinds["EOS"] == len(doc["sections"])
    end_at = [s["offset"] for s in doc["sections"] if s["type"] == "end"][0]
    assert d["precopy_bytes"] == sum(n for at, t, n in recs if t == DATA and at < end_at)
    assert d["stopcopy_bytes"] == sum(n for at, t, n in recs if t == DATA and at > end_at)
    # the fake-gpu has 256 KiB of memory: all of it leaves in pre-copy
    assert d["precopy_bytes"] >= 256 * 1024

    t = run_migcert("analyze", gpu_stream)
    assert t.returncode == 0, t.stderr
    assert re.search(r"device section 0000:00:05\.0/vfio .*1 SETUP, %d DATA, 1 COMPLETE, %d EOS "
                     r"records; %d bytes pre-copy, %d bytes stop-copy; COMPLETE seen"
                     % (kinds["DATA"], kinds["EOS"], d["precopy_bytes"], d["stopcopy_bytes"]),
                     t.stdout), t.stdout


def test_analyze_ours_gpu_every_record_cut_is_truncated(run_migcert, gpu_stream, tmp_path):
    data = gpu_stream.read_bytes()
    doc = json.loads(run_migcert("analyze", "--json", gpu_stream).stdout)
    cuts = set()
    for at, tag, n in records(data, doc):
        size = 1 + (4 if tag in (SETUP, DATA) else 0) + (n if tag == DATA else 0)
        for k in (0, 1, 2, 4, 5, 6, size // 2, size - 1):
            if k < size:
                cuts.add(at + k)
    cut = tmp_path / "cut.mig"
    for n in sorted(cuts):
        cut.write_bytes(data[:n])
        p = run_migcert("analyze", cut)
        assert p.returncode == 1, (n, p.stderr)
        assert "truncated" in p.stderr and re.search(r"offset \d+", p.stderr), (n, p.stderr)
        j = json.loads(run_migcert("analyze", "--json", cut).stdout)
        assert j["complete"] is False and j["error"]["offset"] <= n, (n, j["error"])


def test_analyze_ours_gpu_cut_inside_data_names_the_record(run_migcert, gpu_stream, tmp_path):
    data = gpu_stream.read_bytes()
    doc = json.loads(run_migcert("analyze", "--json", gpu_stream).stdout)
    at, tag, n = next(r for r in records(data, doc) if r[1] == DATA)
    cut = tmp_path / "cut.mig"
    cut.write_bytes(data[:at + 5 + n // 2])
    p = run_migcert("analyze", cut)
    assert p.returncode == 1
    assert (f"offset {at}: section '{IDSTR}' (id 2): DATA record of {n} bytes at offset {at}: "
            f"truncated: stream ended at offset {at + 5 + n // 2}") in p.stderr, p.stderr


def test_analyze_ours_gpu_unknown_record(run_migcert, gpu_stream, tmp_path):
    data = bytearray(gpu_stream.read_bytes())
    doc = json.loads(run_migcert("analyze", "--json", gpu_stream).stdout)
    at = [r for r in records(bytes(data), doc) if r[1] == COMPLETE][0][0]
    data[at] = 0x09
    bad = tmp_path / "bad.mig"
    bad.write_bytes(bytes(data))
    p = run_migcert("analyze", bad)
    assert p.returncode == 1
    assert f"unknown device record 0x09 at offset {at}" in p.stderr, p.stderr


def test_analyze_ours_gpu_pipe_equals_file(migcert_bin, run_migcert, gpu_stream):
    data = gpu_stream.read_bytes()
    whole = json.loads(run_migcert("analyze", "--json", gpu_stream).stdout)
    p = subprocess.run([str(migcert_bin), "analyze", "--json", "-"], input=data,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["device_sections"] == whole["device_sections"]
    n = whole["sections"][2]["offset"] + 10  # inside the second PART's first DATA
    p = subprocess.run([str(migcert_bin), "analyze", "-"], input=data[:n], capture_output=True,
                       timeout=60)
    assert p.returncode == 1
    assert b"truncated: stream ended at offset %d" % n in p.stderr, p.stderr
