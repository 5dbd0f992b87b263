"""test_faults_registry.py - engine code injects faults only through the
registry in impl/common/faults.h (by point id, so an unregistered point does
not compile and the errno comes from the registry), every registered point is
used in engine code, and `migcert list-faults` prints each with its errno and
sentence.

Rerun one: /usr/bin/python3 -m pytest harness/pytest -k faults_registry
"""
import re

import pytest

# the point is the first argument, or the second after a gate (the gated forms)
USE_RE = re.compile(r'\b(?:(?:MIG_FAULT_RETURN(?:_ERR)?|mig_fault_fire)\s*\('
                    r'|(?:MIG_FAULT_RETURN_GATED|mig_fault_fire_gated)\s*\([^;]*?,)'
                    r'\s*MIG_FAULT_([A-Z0-9_]+)\b')
RAW_FIU_RE = re.compile(r'\bfiu_(?:return_on|return_errno_on|do_on|exit_on|fail)\s*\(')
REG_RE = re.compile(r'^\s*X\(\s*([A-Z][A-Z0-9_]*)\s*,\s*"([^"]*)"\s*,\s*([A-Z][A-Z0-9]*)\s*,'
                    r'[\s\\]*"((?:[^"\\]|\\.)*)"\s*\)', re.M)
NAME_RE = re.compile(r"^[a-z0-9_-]+(/[a-z0-9_-]+){2,3}$")


def _strip_comments(src):
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", src, flags=re.S)


@pytest.fixture(scope="module")
def registry(repo_root):
    text = (repo_root / "impl/common/faults.h").read_text()
    reg = [(m.group(2), m.group(3), m.group(4)) for m in REG_RE.finditer(text)]
    assert reg, "no X(...) entries found in impl/common/faults.h"
    return reg


@pytest.fixture(scope="module")
def ids(repo_root):
    """point id (the X's first argument) -> name"""
    text = (repo_root / "impl/common/faults.h").read_text()
    return {m.group(1): m.group(2) for m in REG_RE.finditer(text)}


@pytest.fixture(scope="module")
def used(repo_root, ids):
    """name -> [file:line, ...] for every fault point injected under impl/; a
    direct fiu_* call (which would bypass the registry) counts as the point
    "<fiu_* called directly>"."""
    uses = {}
    for path in sorted((repo_root / "impl").rglob("*.[ch]")):
        if path.name in ("fiu-local.h", "faults.h"):
            continue  # define the fiu_* fallbacks and the registry's own macros
        src = _strip_comments(path.read_text(errors="replace"))
        for m in USE_RE.finditer(src):
            line = src.count("\n", 0, m.start()) + 1
            name = ids.get(m.group(1), f"<unknown id MIG_FAULT_{m.group(1)}>")
            uses.setdefault(name, []).append(f"{path.relative_to(repo_root)}:{line}")
        for m in RAW_FIU_RE.finditer(src):
            line = src.count("\n", 0, m.start()) + 1
            uses.setdefault("<fiu_* called directly>", []).append(f"{path.relative_to(repo_root)}:{line}")
    return uses


def test_faults_registry_every_used_point_is_registered(registry, used):
    names = {n for n, _, _ in registry}
    missing = {n: where for n, where in used.items() if n not in names}
    assert not missing, "fault points used but not in impl/common/faults.h: " + \
        "; ".join(f"{n} ({', '.join(w)})" for n, w in sorted(missing.items()))


def test_faults_registry_every_registered_point_is_used(registry, used):
    unused = [n for n, _, _ in registry if n not in used]
    assert not unused, f"registered in impl/common/faults.h but not injected under impl/: {unused}"


def test_faults_registry_is_sorted_unique_and_well_named(registry):
    names = [n for n, _, _ in registry]
    assert names == sorted(names), "impl/common/faults.h: keep the X(...) list sorted by name"
    assert len(names) == len(set(names)), "duplicate fault point names"
    bad = [n for n in names if not NAME_RE.match(n)]
    assert not bad, f"names not <area>/<module>/<op>[/<variant>] in lower case: {bad}"
    assert all(s.strip() for _, _, s in registry), "every point needs a sentence"


def test_faults_registry_list_faults_prints_each_point(registry, used, run_migcert):
    r = run_migcert("list-faults")
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    rows = {}
    for line in r.stdout.splitlines():
        parts = line.split(None, 2)
        if parts:
            rows[parts[0]] = parts[1:]
    for name, err, sentence in registry:
        assert name in rows, f"list-faults does not print {name}"
        assert rows[name][0] == err, f"{name}: list-faults prints {rows[name][0]}, registry says {err}"
        assert rows[name][1].strip() == sentence, f"{name}: sentence differs"
    not_listed = sorted(set(used) - set(rows))
    assert not not_listed, f"used in impl/ but not printed by list-faults: {not_listed}"


def test_faults_registry_list_unreached_names_what_one_scenario_misses(run_migcert, registry):
    """`migcert list-faults --unreached PATH` runs the scenarios under PATH
    and prints the points none of them hit, one per line with its errno and
    sentence, exit 1 (here: one scenario, which cannot reach them all), and
    the count on stderr.  Whether the whole library reaches every point is
    test_scenarios.py's test_scenarios_reach_every_fault_point (from the
    runs of the scenario matrix, not a second run of every scenario)."""
    r = run_migcert("list-faults", "--unreached", "scenarios/precopy/basic.yaml", timeout=120)
    assert r.returncode == 1, f"exit {r.returncode}\n{r.stdout}{r.stderr}"
    names = {n for n, _, _ in registry}
    listed = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
    assert listed and set(listed) <= names, r.stdout
    # a point basic.yaml reaches on the way (it migrates) is not listed
    assert "mig/transport/write" not in listed
    assert f" {len(listed)} of {len(names)} point(s) unreached by 1 scenario(s)" in r.stderr, r.stderr


def test_faults_registry_points_outside_scenarios_are_tested(repo_root, registry):
    """A point no scenario can reach (MIG_FAULT_POINTS_REAL_FDS_ONLY in
    impl/common/faults.h: it needs a real page pipe) is registered and named
    by the test the registry says reaches it."""
    text = (repo_root / "impl/common/faults.h").read_text()
    block = text.split("#define MIG_FAULT_POINTS_REAL_FDS_ONLY(X)", 1)[1].split("\n\n", 1)[0]
    pairs = re.findall(r'X\("([^"]+)",\s*"([^"]+)"\)', block)
    assert pairs, "no entries in MIG_FAULT_POINTS_REAL_FDS_ONLY"
    names = {n for n, _, _ in registry}
    for point, test in pairs:
        assert point in names, f"{point} is not a registered point"
        assert point in (repo_root / test).read_text(), f"{test} does not name {point}"
