"""test_layers.py - ci/check-layers, the include check of make check, fails on
an include that runs against the layering of docs/architecture.md and names
the file, the line and the rule; it passes on a tree that keeps the arrows.

Each test builds a small tree of its own (impl/, include/, fakes/, harness/)
so that the check is shown to fail without breaking the project's sources.

Rerun one: /usr/bin/python3 -m pytest harness/pytest -k layers
"""
import subprocess

import pytest

PY = "/usr/bin/python3"


def _tree(root, files):
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def _check(repo_root, root):
    return subprocess.run([PY, str(repo_root / "ci/check-layers"), "--root", str(root)],
                          capture_output=True, text=True, timeout=60)


BASE = {
    "impl/common/common.h": "#pragma once\n",
    "impl/stream/stream.h": '#include "../common/common.h"\n',
    "impl/ram/ram.h": '#include "../stream/stream.h"\n#include "common/common.h"\n',
    "impl/device/device.h": '#include "migcert/device.h"\n',
    "impl/migration/migration.h": '#include "../ram/ram.h"\n#include "../device/device.h"\n',
    "include/migcert/device.h": "#pragma once\n",
    "fakes/devices/fake-gpu.h": '#include "migcert/device.h"\n#include "device/device.h"\n',
    "harness/runner/exec.c": '#include "devices/fake-gpu.h"\n#include "migration/migration.h"\n',
}


def test_layers_the_project_keeps_the_arrows(repo_root):
    r = _check(repo_root, repo_root)
    assert r.returncode == 0, r.stdout + r.stderr


def test_layers_a_tree_that_keeps_the_arrows_passes(repo_root, tmp_path):
    _tree(tmp_path, BASE)
    r = _check(repo_root, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("src,line,reason", [
    # the engine includes a fake, by a path the compiler would accept
    ("impl/ram/ram.c", '#include "../../fakes/devices/fake-gpu.h"\n',
     "impl/ may not include fakes/"),
    # ... or through an include folder the engine is not given
    ("impl/ram/ram.c", '#include "devices/fake-gpu.h"\n',
     "resolves to no file in the include path of impl/"),
    # a lower module includes a higher one
    ("impl/ram/ram.c", '#include "../migration/migration.h"\n',
     "impl/ram may not include impl/migration, a layer above it"),
    # siblings of one layer
    ("impl/ram/ram.c", '#include "../device/device.h"\n',
     "impl/ram and impl/device are siblings"),
    # the vendor ABI includes the engine
    ("include/migcert/extra.h", '#include "../../impl/common/common.h"\n',
     "include/ may not include impl/"),
    # a fake includes the harness
    ("fakes/devices/fake-nic.c", '#include "../../harness/runner/exec.h"\n',
     "fakes/ may not include harness/"),
])
def test_layers_an_include_against_the_arrows_fails(repo_root, tmp_path, src, line, reason):
    files = dict(BASE)
    files["harness/runner/exec.h"] = "#pragma once\n"
    files[src] = "/* first line */\n" + line
    _tree(tmp_path, files)
    r = _check(repo_root, tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{src}:2: includes" in r.stdout
    assert reason in r.stdout
