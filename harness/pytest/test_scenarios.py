"""test_scenarios.py - the scenario matrix: every scenario under scenarios/ at
its own releases, and the version scenarios (scenarios/versions/*-pairs.yaml)
over every ordered release pair, each a pytest case named by its migcert case
id.  The cases run once per session through `migcert run --json`; each test
reads its case's result, and a failure shows the error and the REPRO line.

Also: a sample runs twice with the same seed and must give the same trace
hashes (determinism); another seed must change them; a REPRO line reproduces
its case's hash.

Rerun one case: the REPRO line, or
  /usr/bin/python3 -m pytest harness/pytest/test_scenarios.py -k 'cancel-mid-ram'
"""
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAIRS_GLOB = "versions/*-pairs.yaml"
SAMPLE = ["scenarios/precopy/basic.yaml", "scenarios/cancel/cancel-mid-ram.yaml",
          "scenarios/link/drop-mid-ram.yaml"]


def _bin():
    b = Path(os.environ.get("MIGCERT_BUILD", "build"))
    b = b if b.is_absolute() else REPO / b
    return b / "migcert"


def _groups():
    """(args, paths) per group: scenarios at their own releases, pairs."""
    scen = REPO / "scenarios"
    pairs = sorted(str(p.relative_to(REPO)) for p in scen.glob(PAIRS_GLOB))
    own = sorted(str(p.relative_to(REPO)) for p in scen.rglob("*.yaml")
                 if str(p.relative_to(REPO)) not in pairs)
    return [([], own), (["--pairs", "all"], pairs)]


def _list_ids():
    ids = []
    if not os.access(_bin(), os.X_OK):
        return ["<migcert not built>"]
    for args, paths in _groups():
        if not paths:
            continue
        r = subprocess.run([str(_bin()), "run", "--list"] + args + paths, cwd=REPO,
                           capture_output=True, text=True, timeout=120)
        ids += [l for l in r.stdout.splitlines() if l.strip()]
    return ids


def pytest_generate_tests(metafunc):
    if "case_id" in metafunc.fixturenames:
        ids = _list_ids()
        metafunc.parametrize("case_id", ids, ids=ids)


@pytest.fixture(scope="session")
def matrix(tmp_path_factory):
    """Run every group once; {case id: case dict}."""
    b = _bin()
    if not os.access(b, os.X_OK):
        pytest.fail(f"{b} is not built", pytrace=False)
    out = {}
    for n, (args, paths) in enumerate(_groups()):
        if not paths:
            continue
        js = tmp_path_factory.mktemp("run") / f"group{n}.json"
        r = subprocess.run([str(b), "run", "--json", str(js)] + args + paths, cwd=REPO,
                           capture_output=True, text=True, timeout=1800)
        if not js.exists():
            pytest.fail(f"migcert run wrote no JSON (exit {r.returncode}):\n{r.stderr[-2000:]}",
                        pytrace=False)
        for c in json.loads(js.read_text())["cases"]:
            out[c["id"]] = c
    return out


def test_scenario(case_id, matrix):
    c = matrix.get(case_id)
    assert c is not None, f"case {case_id} did not run"
    if c["status"] == "skipped":
        pytest.skip(c.get("error") or "not applicable to this pair")
    assert c["status"] == "passed", f"{c.get('error')}\nREPRO: {c['repro']}"


def _hashes(*extra):
    import tempfile
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
