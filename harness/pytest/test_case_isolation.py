"""test_case_isolation.py - nothing carries over from one case to the next
in one `migcert run`: a case run after others (in the same process, on
memory and allocator state earlier cases used) gives the same trace hash as
it does alone, every oracle passing; and another seed still changes every
hash.  (Speed work on the runner, e.g. reusing memory between cases, must
keep this.)

Rerun: /usr/bin/python3 -m pytest harness/pytest/test_case_isolation.py
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# 64 MiB guests, one after the other: a random fill, a zero fill, then a
# cancelled migration (its source RAM checked against its own generations)
FIRST = "scenarios/precopy/basic.yaml"
AFTER = ["scenarios/precopy/zero-fill.yaml", "scenarios/cancel/cancel-second-pass.yaml"]


def _bin():
    b = Path(os.environ.get("MIGCERT_BUILD", "build"))
    return (b if b.is_absolute() else REPO / b) / "migcert"


def _run(tmp_path, name, *paths, seed="0x5eed"):
    if not os.access(_bin(), os.X_OK):
        pytest.fail(f"{_bin()} is not built", pytrace=False)
    out = tmp_path / f"{name}.json"
    r = subprocess.run([str(_bin()), "run", *paths, "--seed", seed, "--json", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return {c["id"]: c["trace_hash"] for c in json.loads(out.read_text())["cases"]}


def test_a_case_after_others_hashes_as_it_does_alone(tmp_path):
    together = _run(tmp_path, "together", FIRST, *AFTER)
    for path in AFTER:
        alone = _run(tmp_path, Path(path).stem, path)
        (cid, h), = alone.items()
        assert together[cid] == h, f"{cid}: {together[cid]} after {FIRST}, {h} alone"


def test_another_seed_changes_every_hash(tmp_path):
    a = _run(tmp_path, "a", FIRST, *AFTER)
    b = _run(tmp_path, "b", FIRST, *AFTER, seed="0x1234")
    assert all(a[k] != b[k] for k in a), (a, b)
