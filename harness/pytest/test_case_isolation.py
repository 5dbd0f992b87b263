"""test_ram_pool.py - the runner's guest RAM pool (harness/runner/
exec-ram-pool.c) carries nothing from one case to the next: a source that
runs on RAM an earlier case used (its stale bytes, another seed's pages)
migrates exactly as it does alone, same trace hash, every oracle passing;
and the resource oracle still sees the run's mappings.

Rerun: /usr/bin/python3 -m pytest harness/pytest/test_ram_pool.py
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# 64 MiB guests, each after the first on RAM an earlier one used: a zero
# fill over stale random pages, then a random fill and a cancelled
# migration (its source RAM checked against its own generations)
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


def test_the_pool_does_not_hide_another_seed(tmp_path):
    # same files, another seed: the pool must not make runs look alike
    a = _run(tmp_path, "a", FIRST, *AFTER)
    b = _run(tmp_path, "b", FIRST, *AFTER, seed="0x1234")
    assert all(a[k] != b[k] for k in a), (a, b)
