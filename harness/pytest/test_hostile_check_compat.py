"""test_hostile_check_compat.py - `migcert check-compat` given dumps an
attacker or a careless user would hand it (issue 12, "check-compat"): each
is refused with exit 2 and a message naming the file, the place and what
is wrong (limits: docs/limits.md), never taken as a valid dump.

The dumps are migcert's own (`migcert dump-vmstate`), altered in one place.
"""
import copy
import json

import pytest


@pytest.fixture
def dump(run_migcert, tmp_path):
    p = tmp_path / "ours.json"
    r = run_migcert("dump-vmstate", str(p))
    assert r.returncode == 0, r.stderr
    return json.loads(p.read_text())


def refused(run_migcert, tmp_path, good, bad_text, *needles):
    g = tmp_path / "good.json"
    g.write_text(json.dumps(good))
    b = tmp_path / "bad.json"
    b.write_text(bad_text)
    for args in ((g, b), (b, g)):
        r = run_migcert("check-compat", str(args[0]), str(args[1]), timeout=60)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "bad.json" in r.stderr, r.stderr
        for n in needles:
            assert n in r.stderr, f"{n!r} not in {r.stderr!r}"


def test_check_compat_negative_field_size_refused(run_migcert, tmp_path, dump):
    bad = copy.deepcopy(dump)
    bad["fake-nic"]["Description"]["Fields"][0]["size"] = -4
    refused(run_migcert, tmp_path, dump, json.dumps(bad), 'Fields[0]: "size" -4 is negative')


def test_check_compat_minimum_above_version_refused(run_migcert, tmp_path, dump):
    bad = copy.deepcopy(dump)
    bad["fake-nic"]["minimum_version_id"] = bad["fake-nic"]["version_id"] + 3
    refused(run_migcert, tmp_path, dump, json.dumps(bad), 'section "fake-nic"',
            '"minimum_version_id" 5 is above "version_id" 2')


def test_check_compat_name_differing_from_key_refused(run_migcert, tmp_path, dump):
    bad = copy.deepcopy(dump)
    bad["fake-nic"]["Name"] = "fake-serial"
    refused(run_migcert, tmp_path, dump, json.dumps(bad),
            '"Name" "fake-serial" is not the section\'s key')


def test_check_compat_duplicate_key_refused(run_migcert, tmp_path, dump):
    text = json.dumps(dump)
    text = text[:-1] + ', "fake-nic": ' + json.dumps(dump["fake-nic"]) + "}"
    refused(run_migcert, tmp_path, dump, text, "duplicate object key")


def test_check_compat_duplicate_subsection_refused(run_migcert, tmp_path, dump):
    bad = copy.deepcopy(dump)
    sub = {"name": "fake-nic/x", "version_id": 1, "minimum_version_id": 1, "Fields": []}
    bad["fake-nic"]["Description"]["Subsections"] = [sub, sub]
    refused(run_migcert, tmp_path, dump, json.dumps(bad), 'a second subsection named "fake-nic/x"')


def test_check_compat_too_many_subsections_refused(run_migcert, tmp_path, dump):
    """50,000 subsections did not finish in 30 s (quadratic matching); the
    limit refuses them, and matching is linear below it (`make bench`)."""
    bad = copy.deepcopy(dump)
    bad["fake-nic"]["Description"]["Subsections"] = [
        {"name": f"fake-nic/s{i}", "version_id": 1, "minimum_version_id": 1, "Fields": []}
        for i in range(50000)]
    refused(run_migcert, tmp_path, dump, json.dumps(bad),
            "50000 subsections, more than the 1000")


def test_check_compat_many_subsections_within_limit_compared(run_migcert, tmp_path, dump):
    d = copy.deepcopy(dump)
    d["fake-nic"]["Description"]["Subsections"] = [
        {"name": f"fake-nic/s{i}", "version_id": 1, "minimum_version_id": 1, "Fields": []}
        for i in range(1000)]
    p = tmp_path / "many.json"
    p.write_text(json.dumps(d))
    r = run_migcert("check-compat", str(p), str(p), timeout=60)
    assert r.returncode == 0, r.stderr
    assert "0 incompatibilities" in r.stderr


def test_check_compat_directory_is_not_a_syntax_error(run_migcert, tmp_path, dump):
    g = tmp_path / "good.json"
    g.write_text(json.dumps(dump))
    r = run_migcert("check-compat", str(tmp_path), str(g), timeout=60)
    assert r.returncode == 2, r.stderr
    assert f"{tmp_path}: is a directory" in r.stderr, r.stderr
    assert "line" not in r.stderr and "syntax" not in r.stderr, r.stderr
