"""test_cli_help.py - every `migcert` command answers --help with its usage
on stdout and exit 0 (issue 12, "Small": certify exited 2, dump-vmstate and
list-faults said "unknown option"), and dump-vmstate says why it cannot
write its file.
"""
import pytest


@pytest.mark.parametrize("cmd,usage", [
    ("certify", "usage: migcert certify --device X.so"),
    ("dump-vmstate", "usage: migcert dump-vmstate [--release R] FILE"),
    ("list-faults", "usage: migcert list-faults"),
    ("check-compat", "usage: migcert check-compat"),
    ("run", "usage: migcert run"),
])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_cli_help_prints_usage_and_exits_0(run_migcert, cmd, usage, flag):
    r = run_migcert(cmd, flag, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert usage in r.stdout, r.stdout
    assert "unknown option" not in r.stdout + r.stderr


def test_dump_vmstate_names_why_it_cannot_write(run_migcert, tmp_path):
    target = tmp_path / "missing-folder" / "dump.json"
    r = run_migcert("dump-vmstate", str(target), timeout=60)
    assert r.returncode == 1
    assert f"cannot write '{target}': No such file or directory" in r.stderr, r.stderr
    r = run_migcert("dump-vmstate", "/dev/full", timeout=60)
    assert r.returncode == 1
    assert "cannot write '/dev/full': No space left on device" in r.stderr, r.stderr
