"""test_sweep_wraps.py - a sweep does not fail twice what is one failure.

Every read of the migration stream fires dst:mig/stream/read and then asks
its transport for one read, which fires dst:mig/transport/read
(MIG_FAULT_WRAPS in impl/common/faults.h).  When a run hits both equally
often, failing hit k of the one or of the other is the same failure of the
same read, so `migcert run --sweep` fails every hit of the transport's
point and only the first 16 of the stream's.  These tests check the claim
the shortcut rests on (same outcome, same errors, same virtual time, the
same events but for the point's name, at hits spread over the whole
stream) and that the sweep does what it says.

Each run is a short simulated case; the subprocess timeouts are hang guards
only.
Rerun: /usr/bin/python3 -m pytest harness/pytest -k sweep_wraps
"""
import json
import re

SMALL = """summary: a small guest migrated once, for sweeps
machines:
  src: {release: "2.1-dev", ram: 2M, devices: [fake-serial]}
steps:
  - migrate: {}
expect:
  outcome: completed
"""

WRAPPED_SWEPT = 16  # MIG_FAULT_WRAP_SWEPT


def _scenario(tmp_path):
    p = tmp_path / "small.yaml"
    p.write_text(SMALL)
    return str(p)


def _run(run_migcert, tmp_path, *args):
    out = tmp_path / "run.json"
    r = run_migcert("run", *args, "--json", str(out), timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return r, json.loads(out.read_text())["cases"]


def _reads(run_migcert, tmp_path, scn):
    """dst hits of the stream's read in a plain run (both points' counts)."""
    _, cases = _run(run_migcert, tmp_path, scn)
    reached = cases[0]["reached"]
    assert "dst:mig/stream/read" in reached and "dst:mig/transport/read" in reached, reached
    r, cases = _run(run_migcert, tmp_path, scn, "--sweep", "--fault", "dst:mig/stream/read")
    return len(cases) - 2  # the base case and the first hit not reached


def test_failing_stream_read_k_is_failing_transport_read_k(run_migcert, tmp_path):
    scn = _scenario(tmp_path)
    n = _reads(run_migcert, tmp_path, scn)
    assert n > 4 * WRAPPED_SWEPT, n
    for k in sorted({1, 2, n // 4, n // 2, 3 * n // 4, n - 1, n}):
        seen = {}
        for point in ("mig/stream/read", "mig/transport/read"):
            _, cases = _run(run_migcert, tmp_path, scn, "--fault", f"dst:{point}#{k}")
            c = cases[0]
            timeline = json.dumps(c["timeline"]).replace(point, "POINT")
            seen[point] = (c["status"], c["outcome"], c["mig_error"], c["error"],
                           c["virtual_ns"], c["fired"], timeline)
        assert seen["mig/stream/read"] == seen["mig/transport/read"], (k, seen)


def test_sweep_fails_every_transport_read_and_the_first_stream_reads(run_migcert, tmp_path):
    scn = _scenario(tmp_path)
    r, cases = _run(run_migcert, tmp_path, scn, "--sweep")
    hits = {"mig/stream/read": [], "mig/transport/read": []}
    for c in cases[1:]:
        m = re.search(r"\+dst:(mig/(?:stream|transport)/read)#(\d+)$", c["id"])
        if m:
            hits[m.group(1)].append(int(m.group(2)))
        assert c["status"] == "passed", c
    n = len(hits["mig/transport/read"]) - 1  # the last case reached nothing
    assert hits["mig/transport/read"] == list(range(1, n + 2))
    assert hits["mig/stream/read"] == list(range(1, WRAPPED_SWEPT + 1))
    assert (f"sweep: dst:mig/stream/read to hit {WRAPPED_SWEPT} of {n}: each hit is one of "
            "mig/transport/read" in r.stderr), r.stderr[-2000:]
    # named on the command line, the wrapping point is swept in full
    _, cases = _run(run_migcert, tmp_path, scn, "--sweep", "--fault", "dst:mig/stream/read")
    assert len(cases) == n + 2
