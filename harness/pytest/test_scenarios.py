"""test_scenarios.py - the scenario matrix: every scenario under scenarios/ at
its own releases, and scenarios x ordered release pairs, one pytest case per
migcert case id (e.g. `cancel/cancel-mid-ram` and
`cancel/cancel-mid-ram[2.0:1.1]`).  The cases run once per session through
`migcert run --json` (two processes, one per core); each test reads its
case's result, and a failure shows the error and the REPRO line.  Pairs a
scenario cannot run (a device the source machine type lacks, a capability
not known or not offered by both) are no cases at all: `migcert run` leaves
them out of the list and counts them ("N pair combination(s) not
applicable (...)"), so every case's status is passed or failed.

How much of the product runs (MIGCERT_SCENARIO_PAIRS):
  unset / "shard"  `make check`: every scenario at its own releases, plus a
                   deterministic fifth of scenarios x pairs (`--pairs all
                   --shard 1/5`: 16 pairs per scenario and 5 shards, so the
                   chosen pairs rotate from one scenario to the next and every
                   pair is covered by some scenario), about a minute;
  "own"            `make run` (ci/lanes.py --full sets it for this lane):
                   every scenario at its own releases only.  There the
                   whole product of scenarios x pairs runs in
                   ci/lane-full-sanitizers (under ASan, the same cases bit
                   for bit: same trace hashes, same pass rule), so the fifth
                   would run twice;
  "all"            all of it in one session: own releases and shards 1/5
                   to 5/5.
MIGCERT_SCENARIO_JSON_DIR: keep each run's JSON there as run-pairs-N.json,
N the run's number (0 own releases, K the shard K/5): ci/lane-pytest keeps
them for the HTML report's matrix and timelines (with `make run`'s
full-sanitizers-N.json).

Also: a sample runs twice with the same seed and must give the same trace
hashes (determinism); another seed must change them; a REPRO line reproduces
its case's hash.

Rerun one case: the REPRO line, or
  /usr/bin/python3 -m pytest harness/pytest/test_scenarios.py -k 'cancel-mid-ram'
"""
import fcntl
import json
import os
import re
import shlex
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = ["scenarios/precopy/basic.yaml", "scenarios/cancel/cancel-mid-ram.yaml",
          "scenarios/link/drop-mid-ram.yaml"]
SHARD_OF_PAIRS = 1   # of 5: the fifth `make check` runs


def _bin():
    b = Path(os.environ.get("MIGCERT_BUILD", "build"))
    b = b if b.is_absolute() else REPO / b
    return b / "migcert"


def _mode():
    return os.environ.get("MIGCERT_SCENARIO_PAIRS", "shard")


def _runs():
    """The migcert invocations whose cases make the matrix, as (N, argument
    list); each list runs as one process, N names its JSON."""
    own = [(0, ["scenarios"])]
    shards = {"all": range(1, 6), "own": []}.get(_mode(), [SHARD_OF_PAIRS])
    return own + [(k, ["--pairs", "all", "--shard", f"{k}/5", "scenarios"]) for k in shards]


def _list_ids(runs=None):
    if not os.access(_bin(), os.X_OK):
        return ["<migcert not built>"]
    ids = []
    for _, args in runs or _runs():
        r = subprocess.run([str(_bin()), "run", "--list"] + args, cwd=REPO,
                           capture_output=True, text=True, timeout=120)
        ids += [l for l in r.stdout.splitlines() if l.strip()]
    return ids


def pytest_generate_tests(metafunc):
    if "case_id" in metafunc.fixturenames:
        ids = _list_ids()
        metafunc.parametrize("case_id", ids, ids=ids)


@pytest.fixture(scope="session")
def matrix(tmp_path_factory):
    """Run every invocation once, two at a time; {case id: case dict}.
    Under pytest-xdist a session fixture runs once per worker: the first
    worker runs the matrix and leaves it in the folder the workers of this
    run share (keyed by xdist's run id), the others read it."""
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not uid:
        return _run_matrix(tmp_path_factory)
    shared = tmp_path_factory.getbasetemp().parent
    done = shared / f"matrix-{uid}.json"
    with open(shared / f"matrix-{uid}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            out = _run_matrix(tmp_path_factory)
            tmp = done.with_suffix(".tmp")
            tmp.write_text(json.dumps(out))
            tmp.replace(done)
            return out
    return json.loads(done.read_text())


def _run_matrix(tmp_path_factory):
    b = _bin()
    if not os.access(b, os.X_OK):
        pytest.fail(f"{b} is not built", pytrace=False)
    d = tmp_path_factory.mktemp("run")
    keep = os.environ.get("MIGCERT_SCENARIO_JSON_DIR")
    jobs = []
    for n, args in _runs():
        js = Path(keep) / f"run-pairs-{n}.json" if keep else d / f"run{n}.json"
        log = open(d / f"run{n}.log", "w")
        jobs.append((js, log, args, None))
    out, running, pending = {}, [], list(jobs)
    while pending or running:
        while pending and len(running) < 2:
            js, log, args, _ = pending.pop(0)
            p = subprocess.Popen([str(b), "run", "--json", str(js)] + args, cwd=REPO,
                                 stdout=log, stderr=subprocess.STDOUT)
            running.append((js, log, args, p))
        js, log, args, p = running.pop(0)
        rc = p.wait(timeout=3600)
        log.close()
        if not js.exists():
            tail = Path(log.name).read_text()[-2000:]
            pytest.fail(f"migcert run {' '.join(args)} wrote no JSON (exit {rc}):\n{tail}",
                        pytrace=False)
        for c in json.loads(js.read_text())["cases"]:
            out[c["id"]] = c
    return out


# the first case waits for the session fixture, which runs the whole matrix
# (two minutes on a quiet 2-core machine, more under load): a hang guard
# for that, not the per-case PYTEST_TIMEOUT
@pytest.mark.timeout(1800)
def test_scenario(case_id, matrix):
    c = matrix.get(case_id)
    assert c is not None, f"case {case_id} did not run"
    assert c["status"] in ("passed", "failed"), c["status"]
    assert c["status"] == "passed", f"{c.get('error')}\nREPRO: {c['repro']}"


def test_scenarios_reach_every_fault_point(matrix):
    """Every registered fault point is hit by some scenario of the library at
    its own releases (seed 0x5eed, its own faults: what `migcert list-faults
    --unreached` runs, counted here from the same runs of the matrix,
    `reached` in each case's JSON).  A point no scenario reaches is a
    failure path nothing exercises.  The points that need a real page pipe
    (MIG_FAULT_POINTS_REAL_FDS_ONLY in impl/common/faults.h) are reached by
    the test named there instead (test_faults_registry.py checks it)."""
    own = [c for c in matrix.values() if c["pair"] is None]
    assert own, "no scenario ran at its own releases"
    reached = {p.split(":", 1)[1] for c in own for p in c.get("reached", [])}
    faults_h = (REPO / "impl/common/faults.h").read_text()
    registered = set(re.findall(r'^\s*X\(\s*[A-Z][A-Z0-9_]*\s*,\s*"([^"]+)"', faults_h, re.M))
    assert registered, "no X(...) entries in impl/common/faults.h"
    block = faults_h.split("#define MIG_FAULT_POINTS_REAL_FDS_ONLY(X)", 1)[1].split("\n\n", 1)[0]
    elsewhere = set(re.findall(r'X\("([^"]+)"', block))
    unreached = sorted(registered - reached - elsewhere)
    assert not unreached, (f"{len(unreached)} of {len(registered)} point(s) unreached by "
                           f"{len(own)} scenario(s): {unreached} "
                           f"(REPRO: {_bin()} list-faults --unreached)")


def test_scenarios_matrix_covers_every_pair():
    """The fifth of the pairs `make check` runs covers every ordered release
    pair (whatever this session's mode)."""
    fifth = [(SHARD_OF_PAIRS, ["--pairs", "all", "--shard", f"{SHARD_OF_PAIRS}/5", "scenarios"])]
    seen = {i[i.index("[") + 1:-1] for i in _list_ids(fifth) if i.endswith("]")}
    releases = ["1.0", "1.1", "2.0", "2.1-dev"]
    assert seen == {f"{a}:{b}" for a in releases for b in releases}


def _hashes(*extra):
    with tempfile.TemporaryDirectory() as d:
        js = Path(d) / "h.json"
        subprocess.run([str(_bin()), "run", "--json", str(js)] + list(extra) + SAMPLE,
                       cwd=REPO, capture_output=True, text=True, timeout=600)
        doc = json.loads(js.read_text())
    return {c["id"]: c["trace_hash"] for c in doc["cases"]}


def test_scenarios_same_seed_same_trace_hash():
    first, second = _hashes("--seed", "0x5eed"), _hashes("--seed", "0x5eed")
    assert first and first == second


def test_scenarios_other_seed_other_trace_hash():
    a, b = _hashes("--seed", "1"), _hashes("--seed", "2")
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a), "a seed that changes nothing is not a seed"


def test_scenarios_repro_line_reproduces_the_trace_hash(tmp_path):
    js = tmp_path / "f.json"
    subprocess.run([str(_bin()), "run", "--json", str(js), "--fault",
                    "src:mig/transport/write#3", SAMPLE[0]], cwd=REPO, capture_output=True,
                   text=True, timeout=300)
    case = json.loads(js.read_text())["cases"][0]
    argv = shlex.split(case["repro"])
    r = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert f"trace: {case['trace_hash']}" in r.stdout, r.stdout + r.stderr


def test_scenarios_k_matching_nothing_is_an_error():
    r = subprocess.run([str(_bin()), "run", "-k", "no-such-scenario-anywhere", "scenarios"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "no case matches" in r.stderr


def test_scenarios_pairs_not_applicable_are_no_cases(tmp_path):
    """A pair that cannot run a scenario is left out, counted with its reason,
    and the JSON holds only passed|failed.  fake-gpu-pairs needs fake-gpu, which only 2.0+
    machine types have: of its 16 pairs, the four from 1.0 and the four from
    1.1 cannot run."""
    js = tmp_path / "p.json"
    scn = "scenarios/devices/fake-gpu-pairs.yaml"
    assert (REPO / scn).exists(), f"{scn} is gone: this test needs a scenario with fake-gpu pairs"
    r = subprocess.run([str(_bin()), "run", "--pairs", "all", "--json", str(js), scn],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    doc = json.loads(js.read_text())
    pairs = {c["pair"] for c in doc["cases"]}
    assert all(not p.startswith(("1.0:", "1.1:")) for p in pairs), pairs
    assert {c["status"] for c in doc["cases"]} <= {"passed", "failed"}
    line = ("8 pair combination(s) not applicable "
            "(device not in the source machine type: 8)")
    assert line in r.stderr and line in r.stdout, r.stdout + r.stderr
    lst = subprocess.run([str(_bin()), "run", "--list", "--pairs", "all", scn], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert sorted(lst.stdout.split()) == sorted(c["id"] for c in doc["cases"])


def test_scenarios_run_help_prints_usage():
    r = subprocess.run([str(_bin()), "run", "--help"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: migcert run") and "--pairs all" in r.stdout
    bad = subprocess.run([str(_bin()), "run", "--no-such-option"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown option '--no-such-option'" in bad.stderr
