"""test_check_compat_qemu.py - `migcert check-compat` on QEMU 7.2's own
`-dump-vmstate` output (docs/protocol-qemu-stream.md sections 10 and 11).

CLI contract:  migcert check-compat OLD.json NEW.json
  checks that state saved by OLD (the source) loads in NEW (the destination);
  prints one line per incompatibility naming the section (top-level key, which
  is also its vmsd "Name") and, when it is about a field or subsection, that
  field or subsection; informational lines are allowed;
  exit 0 compatible, 1 at least one incompatibility, 2 unreadable or malformed
  input (the message names the file).
  Beyond QEMU's checker, a field whose field_exists changed is an error
  without a version change and info with one; `check-compat --help` names
  what no static check can see (needed() semantics, machine-type compat
  properties, array lengths, ...).

Each case edits one copy of the dump and names what it broke.
Rerun one: /usr/bin/python3 -m pytest harness/pytest -k check_compat_qemu_field_size
"""
import copy
import json

import pytest

DEV = "mc146818rtc"          # has fields, unused padding and one subsection
FIELD = "cmos_index"         # size 1
SUBSECTION = "mc146818rtc/irq_reinject_on_ack_count"


@pytest.fixture(scope="module")
def dump(qemu_vmstate_dump):
    d = json.loads(qemu_vmstate_dump.read_text())
    # The chosen device must look as the cases assume (guards against a QEMU
    # update silently turning these tests into no-ops).
    dev = d[DEV]
    assert dev["Name"] == DEV
    assert any(f["field"] == FIELD for f in dev["Description"]["Fields"])
    assert [s["name"] for s in dev["Description"]["Subsections"]] == [SUBSECTION]
    return d


@pytest.fixture
def compat(run_migcert, tmp_path, qemu_vmstate_dump):
    def run(old, new):
        paths = []
        for name, doc in (("old", old), ("new", new)):
            if doc is None:
                paths.append(qemu_vmstate_dump)
                continue
            p = tmp_path / f"{name}.json"
            p.write_text(json.dumps(doc))
            paths.append(p)
        return run_migcert("check-compat", *paths)
    return run


def problem_lines(r):
    return [l for l in (r.stdout + r.stderr).splitlines() if DEV in l]


def test_check_compat_qemu_dump_against_itself_is_compatible(compat):
    r = compat(None, None)
    assert r.returncode == 0, f"exit {r.returncode}: {(r.stdout + r.stderr)[-600:]}"


def test_check_compat_qemu_field_size_change_is_named(compat, dump):
    new = copy.deepcopy(dump)
    for f in new[DEV]["Description"]["Fields"]:
        if f["field"] == FIELD:
            f["size"] = 2
    r = compat(dump, new)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    lines = problem_lines(r)
    assert any(FIELD in l and "size" in l.lower() for l in lines), r.stdout + r.stderr


def test_check_compat_qemu_section_removed_is_named(compat, dump):
    new = copy.deepcopy(dump)
    del new[DEV]
    r = compat(dump, new)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    assert problem_lines(r), r.stdout + r.stderr


def test_check_compat_qemu_source_version_newer_than_dest_is_named(compat, dump):
    old = copy.deepcopy(dump)
    old[DEV]["version_id"] += 1
    old[DEV]["Description"]["version_id"] += 1
    r = compat(old, dump)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    assert any("version" in l.lower() for l in problem_lines(r)), r.stdout + r.stderr


def test_check_compat_qemu_dest_minimum_above_source_is_named(compat, dump):
    new = copy.deepcopy(dump)
    v = dump[DEV]["version_id"] + 1
    new[DEV]["version_id"] = new[DEV]["Description"]["version_id"] = v
    new[DEV]["minimum_version_id"] = new[DEV]["Description"]["minimum_version_id"] = v
    r = compat(dump, new)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    assert any("version" in l.lower() for l in problem_lines(r)), r.stdout + r.stderr


def test_check_compat_qemu_dest_version_bump_alone_is_compatible(compat, dump):
    # A newer destination that still accepts the old version loads old state.
    new = copy.deepcopy(dump)
    new[DEV]["version_id"] += 1
    new[DEV]["Description"]["version_id"] += 1
    r = compat(dump, new)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stdout}{r.stderr}"


def test_check_compat_qemu_subsection_removed_is_named(compat, dump):
    new = copy.deepcopy(dump)
    new[DEV]["Description"]["Subsections"] = []
    r = compat(dump, new)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    assert any(SUBSECTION in l for l in (r.stdout + r.stderr).splitlines()), r.stdout + r.stderr


def test_check_compat_qemu_subsection_added_in_dest_is_compatible(compat, dump):
    new = copy.deepcopy(dump)
    new[DEV]["Description"]["Subsections"].append(
        {"name": f"{DEV}/new_thing", "version_id": 1, "minimum_version_id": 1,
         "Fields": [{"field": "x", "version_id": 0, "field_exists": False, "size": 4}]})
    r = compat(dump, new)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stdout}{r.stderr}"


def test_check_compat_qemu_field_renamed_is_named(compat, dump):
    new = copy.deepcopy(dump)
    for f in new[DEV]["Description"]["Fields"]:
        if f["field"] == FIELD:
            f["field"] = "cmos_index_renamed"
    r = compat(dump, new)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    assert any(FIELD in l for l in problem_lines(r)), r.stdout + r.stderr


def test_check_compat_qemu_malformed_input_names_the_file(run_migcert, tmp_path, qemu_vmstate_dump):
    bad = tmp_path / "broken.json"
    bad.write_text('{"mc146818rtc": {"Name": ')
    r = run_migcert("check-compat", qemu_vmstate_dump, bad)
    assert r.returncode == 2, f"exit {r.returncode}"
    assert "broken.json" in r.stderr
    r = run_migcert("check-compat", qemu_vmstate_dump, tmp_path / "absent.json")
    assert r.returncode == 2, f"exit {r.returncode}"
    assert "absent.json" in r.stderr


# -- beyond QEMU's checker: field_exists changes (rule 13) ---------------------

def _field(doc, dev, name):
    return next(f for f in doc[dev]["Description"]["Fields"] if f["field"] == name)


def _bump(doc, dev):
    doc[dev]["version_id"] += 1
    doc[dev]["Description"]["version_id"] += 1


def test_check_compat_qemu_field_became_conditional_is_named(compat, dump):
    """QEMU's checker ignores field_exists; without a version change a field
    that became conditional is an error: OLD always sends it."""
    assert _field(dump, DEV, FIELD)["field_exists"] is False
    new = copy.deepcopy(dump)
    _field(new, DEV, FIELD)["field_exists"] = True
    r = compat(dump, new)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    assert any(FIELD in l and "field_exists" in l and "conditional" in l
               for l in problem_lines(r)), r.stdout + r.stderr


def test_check_compat_qemu_field_became_unconditional_is_named(compat, dump):
    old = copy.deepcopy(dump)
    _field(old, DEV, FIELD)["field_exists"] = True
    r = compat(old, dump)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    assert any(FIELD in l and "unconditional" in l for l in problem_lines(r)), r.stdout + r.stderr


def test_check_compat_qemu_real_conditional_field_dropped_is_named(run_migcert, tmp_path, dump):
    """A field QEMU itself declares with a field_exists test (nested in a
    struct), turned into a plain field: named with its path."""
    def find(desc, path):
        for f in desc.get("Fields", []):
            if f.get("field_exists"):
                return f, path + [f["field"]]
            if "Description" in f:
                hit = find(f["Description"], path + [f["field"]])
                if hit:
                    return hit
        return None
    dev, (field, path) = next((k, hit) for k, v in dump.items()
                              if isinstance(v, dict) and "Description" in v
                              for hit in [find(v["Description"], [])] if hit)
    new = copy.deepcopy(dump)
    (_, npath) = find(new[dev]["Description"], [])
    assert npath == path
    nf, _ = find(new[dev]["Description"], [])
    nf["field_exists"] = False
    p_old, p_new = tmp_path / "old.json", tmp_path / "new.json"
    p_old.write_text(json.dumps(dump))
    p_new.write_text(json.dumps(new))
    r = run_migcert("check-compat", p_old, p_new)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    want = ".".join(path)
    assert any(dev in l and want in l and "unconditional" in l for l in r.stdout.splitlines()), \
        f"{dev} {want}: {r.stdout}"


def test_check_compat_qemu_field_exists_change_with_version_bump_is_info(run_migcert, tmp_path,
                                                                          dump):
    new = copy.deepcopy(dump)
    _bump(new, DEV)
    _field(new, DEV, FIELD)["field_exists"] = True
    p_old, p_new = tmp_path / "old.json", tmp_path / "new.json"
    p_old.write_text(json.dumps(dump))
    p_new.write_text(json.dumps(new))
    r = run_migcert("check-compat", "--info", p_old, p_new)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stdout}{r.stderr}"
    assert any(l.startswith("info:") and FIELD in l and "conditional" in l
               for l in r.stdout.splitlines()), r.stdout


def test_check_compat_help_names_what_no_static_check_sees(run_migcert):
    r = run_migcert("check-compat", "--help")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    for words in ("Beyond QEMU's checker", "field_exists", "needed() semantics",
                  "machine-type compat properties", "array length changes", "Cannot detect"):
        assert words in text, f"--help lacks {words!r}:\n{text}"
