"""test_sweep_own_faults.py - fault sweeps over scenarios that have faults of
their own (a `faults:` list).  A sweep of SIDE:POINT fails hit 1, 2, 3 ...
and must stop at the first hit the run does not reach; the scenario's own
faults fire in every run and must not count as "the swept hit came" (the
sweep used to run on to its 1,000,000-hit guard: dst-stream-read's own
dst:mig/stream/read#10 fired in every case).  Likewise an extra --fault that
does not fire relaxes nothing even when the scenario's own faults fire.

Each run here is a few short simulated cases; the subprocess timeouts are
hang guards only.
Rerun: /usr/bin/python3 -m pytest harness/pytest -k sweep_own_faults
"""
import json
import re

import pytest


def _sweep(run_migcert, tmp_path, scenario, point):
    out = tmp_path / "sweep.json"
    r = run_migcert("run", scenario, "--sweep", "--fault", point, "--json", str(out),
                    timeout=120)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    cases = json.loads(out.read_text())["cases"]
    hits = []
    for c in cases[1:]:
        m = re.search(re.escape("+" + point) + r"#(\d+)$", c["id"])
        assert m, c["id"]
        hits.append(int(m.group(1)))
    return cases, hits


@pytest.mark.parametrize("scenario,point,reached", [
    # the scenario's own dst:mig/stream/read#10 fails the migration: the
    # destination reads 10 times, no more, whatever hit below it fails
    ("scenarios/faults/dst-stream-read.yaml", "dst:mig/stream/read", 10),
    # swept on another point than the scenario's own (dst:mig/vmstate/load
    # fails the second device load): the source saves two devices first
    ("scenarios/faults/dst-vmstate-load.yaml", "src:mig/vmstate/save", 2),
])
def test_sweep_stops_at_the_first_hit_not_reached(run_migcert, tmp_path, scenario, point,
                                                  reached):
    cases, hits = _sweep(run_migcert, tmp_path, scenario, point)
    # the base case, then #1 .. #N+1: the last one reached nothing
    assert hits == list(range(1, len(hits) + 1)), hits
    assert len(hits) == reached + 1, hits
    last = cases[-1]
    assert last["status"] == "passed", last


OWN_FAULT_WRONG_EXPECT = """summary: the scenario's own fault fails the migration, its expect says completed
machines:
  src: {release: "2.1-dev", ram: 16M, devices: [fake-serial]}
steps:
  - migrate: {}
faults:
  - dst:mig/stream/read#10
expect:
  outcome: completed
"""


def test_extra_fault_that_never_fires_relaxes_nothing(run_migcert, tmp_path):
    p = tmp_path / "wrong-expect.yaml"
    p.write_text(OWN_FAULT_WRONG_EXPECT)
    r = run_migcert("run", str(p), timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "outcome failed, expected completed" in r.stdout + r.stderr
    # the extra fault's hit never comes: the outcome is judged as before
    # (it was relaxed to "completed or failed" because the scenario's own
    # fault fired, and the case passed)
    r = run_migcert("run", str(p), "--fault", "src:mig/vmstate/save#999999", timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "outcome failed, expected completed" in out, out
