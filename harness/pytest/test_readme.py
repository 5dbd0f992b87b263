"""test_readme.py - README.md stays true: its first commands are `make run`
and `make check`, its `migcert` command table matches `migcert --help`, and
the files, scripts and test names it tells people to use exist.

Rerun: /usr/bin/python3 -m pytest harness/pytest -k readme
"""
import re

import pytest


@pytest.fixture(scope="module")
def readme(repo_root):
    return (repo_root / "README.md").read_text()


def test_readme_starts_with_make_run_then_make_check(readme):
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    assert blocks, "README.md has no sh block"
    cmds = [l.split("#")[0].strip() for l in blocks[0].splitlines() if l.strip()]
    assert cmds[:2] == ["make run", "make check"]
    assert readme.index("make run") < readme.index("\n## ")


def test_readme_command_table_matches_migcert_help(readme, run_migcert):
    r = run_migcert("--help")
    assert r.returncode == 0, r.stderr
    have = set(re.findall(r"^\s*migcert ([a-z][a-z-]*)", r.stdout, re.M))
    listed = set(re.findall(r"^\| `migcert ([a-z][a-z-]*)", readme, re.M))
    assert listed == have, f"README lists {sorted(listed)}, migcert --help has {sorted(have)}"


def test_readme_named_files_exist(readme, repo_root):
    names = set(re.findall(r"`((?:ci|harness|\.ci)/[\w./-]+)", readme))
    names |= {"Makefile", "README.md", ".ci/run", "impl", "include/migcert", "fakes",
              "harness", "scenarios", "reports", "ci"}
    missing = sorted(n for n in names if not (repo_root / n.split()[0]).exists())
    assert not missing, f"README names files that do not exist: {missing}"


def test_readme_rerun_examples_name_real_tests(readme, repo_root):
    for binary, case in re.findall(r"build/unit/(test-[\w-]+) '?(test_\w+)", readme):
        src = (repo_root / "harness/unit" / f"{binary}.c").read_text()
        assert re.search(rf"\b{case}\w*\s*\(", src), f"{binary}: no test {case}"
    for path, case in re.findall(r"'(harness/pytest/test_\w+\.py)::(test_\w+)'", readme):
        src = (repo_root / path).read_text()
        assert f"def {case}(" in src, f"{path}: no test {case}"
