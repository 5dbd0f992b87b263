"""test_hostile_scenarios.py - `migcert run` given scenario files an attacker
or a careless user would write (issue 12, "Scenario files"): every one is
refused at once with an error naming the file, the key and the limit of
docs/limits.md, or runs with the meaning scenarios/README.md gives it.

Nothing here waits on the clock: each input is either refused by the loader
(no simulated run starts) or is a short simulated run; the subprocess
timeouts are hang guards only (a FIFO used to block the loader for ever).
"""
import os

import pytest

BASE = """summary: hostile input
machines:
  src: {release: "2.1-dev", ram: 16M, devices: [fake-serial]}
steps:
  - migrate: {}
expect:
  outcome: completed
"""


def write(tmp_path, text, name="case.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def refused(run_migcert, path, *needles):
    """The case fails at load time with every needle in its line."""
    r = run_migcert("run", str(path), timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "0 passed, 1 failed" in out, out
    for n in needles:
        assert n in out, f"{n!r} not in:\n{out}"
    return out


@pytest.mark.parametrize("extra,needles", [
    # a dirty rate no simulated run can keep up with: it never ended
    ("workload: {dirty-rate: 1e18}\n",
     ["key 'dirty-rate'", "'1e18' is out of range", "100000 pages/s", "docs/limits.md"]),
    ("workload: {dirty-rate: 100001 pages/s}\n", ["key 'dirty-rate'", "out of range"]),
    # 0/s is not "unlimited": it was taken as unlimited
    ("link: {bandwidth: 0/s}\n", ["key 'bandwidth'", "'0/s' is out of range"]),
    ("parameters: {max-bandwidth: 0/s}\n", ["key 'max-bandwidth'", "'0/s' is out of range"]),
    ("link: {bandwidth: 2000G/s}\n", ["key 'bandwidth'", "out of range", "1T/s"]),
    # durations of virtual time: a day-long run is a hang in wall time
    ("timeout: 1000min\n", ["key 'timeout'", "out of range", "60min"]),
    # a hit number past 64 bits saturated to a fault that never fires
    ("faults:\n  - src:mig/transport/write#99999999999999999999\n",
     ["key 'faults'", "hit number above 1000000000000"]),
    # a second document was silently ignored
    ("---\nsummary: another document\n", ["a second YAML document"]),
])
def test_scenario_value_past_limit_refused(run_migcert, tmp_path, extra, needles):
    refused(run_migcert, write(tmp_path, BASE + extra), "case.yaml:", *needles)


def test_scenario_ram_past_limit_refused(run_migcert, tmp_path):
    refused(run_migcert, write(tmp_path, BASE.replace("ram: 16M", "ram: 2G")),
            "key 'ram'", "'2G' is out of range", "at most 1G")


def test_scenario_too_many_steps_refused(run_migcert, tmp_path):
    steps = "".join("  - heal: {}\n" for _ in range(10001))
    text = BASE.replace("  - migrate: {}\n", "  - migrate: {}\n" + steps)
    refused(run_migcert, write(tmp_path, text), "key 'steps'", "10002 steps",
            "more than the 10000")


def test_scenario_many_steps_within_limit_load(run_migcert, tmp_path):
    """10,000 steps is the limit and loads (the line index is a hash: the
    quadratic lookup took seconds here; `make bench` prints the ratio)."""
    steps = "".join("  - heal: {}\n" for _ in range(9999))
    text = BASE.replace("  - migrate: {}\n", "  - migrate: {}\n" + steps)
    r = run_migcert("run", str(write(tmp_path, text)), "--list", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_scenario_file_too_large_refused(run_migcert, tmp_path):
    text = BASE + "#" + "x" * (1 << 20) + "\n"
    refused(run_migcert, write(tmp_path, text), "larger than the 1048576 bytes")


def test_scenario_fifo_refused_without_blocking(run_migcert, tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    # nobody ever writes: the loader used to block in open() for ever
    refused(run_migcert, fifo, "fifo.yaml: not a regular file")


def test_scenario_device_file_refused(run_migcert):
    # /dev/zero was read until memory ran out
    refused(run_migcert, "/dev/zero", "/dev/zero: not a regular file")


def test_scenario_empty_folder_is_an_error(run_migcert, tmp_path):
    (tmp_path / "empty").mkdir()
    r = run_migcert("run", str(tmp_path / "empty"), timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "no scenario files (*.yaml) in this folder" in out, out
    assert "0 case(s)" not in out, out


def test_scenario_folder_with_an_empty_subfolder_runs(run_migcert, tmp_path):
    """Only a folder named on the command line must hold scenarios."""
    (tmp_path / "d" / "empty").mkdir(parents=True)
    write(tmp_path / "d", BASE)
    r = run_migcert("run", str(tmp_path / "d"), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_scenario_without_device_list_has_no_devices(run_migcert, tmp_path):
    """scenarios/README.md: machines.*.devices defaults to [] - a source that
    lists none has none, under every pair (it used to be taken as every
    device of the release, and pre-flight failed on fake-serial)."""
    text = BASE.replace(", devices: [fake-serial]", "")
    r = run_migcert("run", str(write(tmp_path, text)), "--pairs", "all", "-v", timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "section does not exist" not in out, out
    assert "fake-serial" not in out, out
