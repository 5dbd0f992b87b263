"""test_certify.py - `migcert certify` on every sample vendor plugin
(fakes/vendor): the good plugin passes every case, each broken plugin fails
and its report names the one rule it breaks, peers migrate both ways, a
crashing or hanging plugin fails its case without taking the suite down, and
a plugin of an unknown ABI version is refused by name.

Reports go to a per-test tmp folder (never reports/out).
"""
import json
import xml.etree.ElementTree as ET

import pytest

# broken-<rule>.so -> the rule id the report must name (cmd-certify.c rules[])
BROKEN = {
    "broken-stopcopy-to-precopy": "stopcopy-to-precopy-refused",
    "broken-pending-never-zero": "pending-reaches-zero",
    "broken-abort-loses-data": "abort-keeps-state",
    "broken-reset-keeps-error": "reset-leaves-error",
    "broken-short-read": "read-length",
    "broken-accepts-truncated": "resume-validates",
}


def plugin(migcert_build, stem):
    p = migcert_build / "fakes" / "vendor" / (stem + ".so")
    if not p.exists():
        pytest.fail(f"{p} is not built (make BUILD={migcert_build} all)")
    return p


def certify(run_migcert, migcert_build, tmp_path, stem, *extra, timeout=300):
    out = tmp_path / ("certify-" + stem)
    r = run_migcert("certify", "--device", str(plugin(migcert_build, stem)),
                    "--out", str(out), *extra, timeout=timeout)
    report = json.loads((out / "report.json").read_text())
    return r, out, report


def failed(report):
    return [c for c in report["cases"] if c["status"] == "fail"]


def test_good_plugin_passes_every_case(run_migcert, migcert_build, tmp_path):
    r, out, rep = certify(run_migcert, migcert_build, tmp_path, "good")
    assert r.returncode == 0, r.stderr[-2000:]
    assert failed(rep) == []
    names = {c["name"] for c in rep["cases"]}
    # 8 x 8 per feature set (ERROR and every supported state as the start)
    assert sum(n.startswith("transition.") for n in names) == 5 * 8 + 6 * 8 + 6 * 8 + 8 * 8
    for must in ["round-trip.SC+P2P+PRE", "precopy.SC+PRE", "resume-rejects.truncated",
                 "abort.PRE_COPY", "abort.STOP_COPY", "error-reset", "fault.read",
                 "fault.set_state", "fault.write"]:
        assert must in names
    assert rep["passed"] == len(rep["cases"]) - rep["skipped"]
    assert r.stdout.strip().splitlines()[-1] == f"{rep['passed']} passed, 0 failed"
    # the three report files, consistent with each other
    suite = ET.parse(out / "report.junit.xml").getroot().find("testsuite")
    assert int(suite.get("tests")) == len(rep["cases"])
    assert int(suite.get("failures")) == 0
    assert "PASS transition.SC+P2P+PRE.PRE_COPY.STOP_COPY" in (out / "report.txt").read_text()


def test_good_v1_plugin_passes_through_the_adapter(run_migcert, migcert_build, tmp_path):
    r, out, rep = certify(run_migcert, migcert_build, tmp_path, "good-v1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "protocol v1" in rep["description"]
    assert failed(rep) == []


@pytest.mark.parametrize("stem", sorted(BROKEN))
def test_broken_plugin_fails_naming_its_rule(run_migcert, migcert_build, tmp_path, stem):
    r, out, rep = certify(run_migcert, migcert_build, tmp_path, stem)
    assert r.returncode == 1
    rule = BROKEN[stem]
    fails = failed(rep)
    assert fails, "a broken plugin must fail at least one case"
    # exactly one rule is broken, and it is the plugin's
    assert rep["rules_broken"] == [rule], rep["rules_broken"]
    for c in fails:
        assert c["rule"] == rule
        assert c["repro"].endswith(f"certify --device {plugin(migcert_build, stem)} -k {c['name']}")
    text = (out / "report.txt").read_text()
    assert f"rule {rule}:" in text
    assert "REPRO: " in text
    junit = (out / "report.junit.xml").read_text()
    assert f"rule {rule}:" in junit
    # the REPRO line reruns exactly that case, with the same verdict
    first = fails[0]["name"]
    r2, _, rep2 = certify(run_migcert, migcert_build, tmp_path / "again", stem, "-k", first)
    assert r2.returncode == 1
    assert [c["name"] for c in rep2["cases"]] == [first]
    assert rep2["cases"][0]["rule"] == rule


def test_peer_good_good_both_directions(run_migcert, migcert_build, tmp_path):
    good = str(plugin(migcert_build, "good"))
    r, out, rep = certify(run_migcert, migcert_build, tmp_path, "good", "--peer", good,
                          "-k", "peer.*")
    assert r.returncode == 0, r.stderr
    assert [c["name"] for c in rep["cases"]] == ["peer.good-to-good", "peer.good-to-good"]
    assert all(c["status"] == "pass" for c in rep["cases"])


def test_incompatible_peer_fails_cleanly(run_migcert, migcert_build, tmp_path):
    # a v1 device frames its transactions: a v2 device must refuse that stream
    r, out, rep = certify(run_migcert, migcert_build, tmp_path, "good", "--peer",
                          str(plugin(migcert_build, "good-v1")), "-k", "peer.*")
    assert r.returncode == 1
    assert all(c["status"] == "fail" for c in rep["cases"])


def test_crashing_plugin_fails_its_case_and_the_suite_goes_on(run_migcert, migcert_build,
                                                                tmp_path):
    r, out, rep = certify(run_migcert, migcert_build, tmp_path, "crash-set-state",
                          "-k", "round-trip.*")
    assert r.returncode == 1
    assert len(rep["cases"]) == 4  # every selected case ran
    for c in rep["cases"]:
        assert c["rule"] == "plugin-crash"
        assert "plugin crash-set-state.so crashed (signal 11) in set_state" in c["message"]


def test_hanging_plugin_times_out(run_migcert, migcert_build, tmp_path):
    r, out, rep = certify(run_migcert, migcert_build, tmp_path, "hang-read",
                          "--timeout", "1", "-k", "stop-copy-end.SC")
    assert r.returncode == 1
    (c,) = rep["cases"]
    assert c["rule"] == "plugin-timeout"
    assert "plugin hang-read.so timed out after 1s in read" in c["message"]


def test_unknown_abi_version_is_refused_by_name(run_migcert, migcert_build, tmp_path):
    r, out, rep = certify(run_migcert, migcert_build, tmp_path, "bad-abi")
    assert r.returncode == 1
    (c,) = rep["cases"]
    assert c["name"] == "load" and c["rule"] == "load"
    assert "plugin bad-abi.so: ABI version 99 is not supported" in c["message"]
    assert "ABI version 1" in c["message"]


def test_unknown_case_is_a_usage_error(run_migcert, migcert_build, tmp_path):
    r = run_migcert("certify", "--device", str(plugin(migcert_build, "good")),
                    "--out", str(tmp_path), "-k", "no-such-case")
    assert r.returncode == 2
    assert "no case matches" in r.stderr


def test_pkg_config_file_points_at_the_abi_header(migcert_build, repo_root):
    pc = (migcert_build / "migcert.pc").read_text()
    assert "Cflags: -I${includedir}" in pc
    prefix = next(l.split("=", 1)[1] for l in pc.splitlines() if l.startswith("prefix="))
    assert (repo_root / "include" / "migcert" / "device.h").samefile(
        prefix + "/include/migcert/device.h")
