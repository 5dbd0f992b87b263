"""test_hostile_streams.py - `migcert analyze` given streams an attacker
would write (issue 12, "Streams"): many tiny sections.  The analyzer takes
time and memory linear in its input, and every count has a documented limit
(docs/limits.md) past which it stops with an error naming the limit and the
offset.  Run under an address-space limit, so that memory growth shows as a
failure here, not only as a figure in `make bench`.
"""
import resource
import struct
import subprocess

AS_LIMIT = 256 << 20  # far above what these inputs need now; 100,000
                      # START sections used to cost 423 MB


def header():
    m = b"pc-i440fx-7.2"
    return bytearray(b"QEVM" + struct.pack(">I", 3) + bytes([0x07]) + struct.pack(">I", len(m))
                     + m)


def ram_start(sid):
    return (bytes([0x01]) + struct.pack(">I", sid) + bytes([3]) + b"ram" + struct.pack(">II", 0, 4)
            + struct.pack(">Q", 0x04) + struct.pack(">Q", 0x10) + bytes([0x7E])
            + struct.pack(">I", sid))


def ram_part(sid):
    return (bytes([0x02]) + struct.pack(">I", sid) + struct.pack(">Q", 0x10) + bytes([0x7E])
            + struct.pack(">I", sid))


def analyze(migcert_bin, path):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    return subprocess.run([str(migcert_bin), "analyze", str(path)], capture_output=True,
                          text=True, timeout=120, preexec_fn=limit)


def test_analyze_many_started_sections_refused_at_the_limit(migcert_bin, tmp_path):
    """100,000 START sections (3.8 MB): refused at the 10,001st, in bounded
    memory, naming the limit and the offset of the section past it."""
    b = header()
    first = len(b)
    for i in range(100000):
        b += ram_start(i + 1)
    b += bytes([0x00])
    p = tmp_path / "starts.mig"
    p.write_bytes(bytes(b))
    r = analyze(migcert_bin, p)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr
    at = first + 10000 * len(ram_start(1))
    assert (f"more than 10000 iterative sections (START), the most the analyzer takes "
            f"(docs/limits.md) at offset {at}") in r.stderr, r.stderr


def test_analyze_many_parts_within_limits_complete(migcert_bin, tmp_path):
    """100,000 PART sections of one RAM section: analyzed whole within the
    address-space limit (linear: ~1.1 KB of document per section)."""
    b = header() + ram_start(1)
    for _ in range(100000):
        b += ram_part(1)
    b += bytes([0x03]) + ram_part(1)[1:] + bytes([0x00])
    p = tmp_path / "parts.mig"
    p.write_bytes(bytes(b))
    r = analyze(migcert_bin, p)
    assert r.returncode == 0, r.stderr
    assert "complete: yes" in r.stdout
