"""test_vm_soak.py - the soak driver (harness/soak/soak.py, ci/lane-full-soak
in `make run`) in miniature, and what it relies on: a `migcert vm` whose
incoming migration completed runs the guest and may migrate it on (as
QEMU's), while one whose incoming migration failed holds no guest and says
so when asked to migrate.

Rerun: /usr/bin/python3 -m pytest harness/pytest/test_vm_soak.py
"""
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from qmp import QMPError  # noqa: E402
from test_vm_migration import vms, wait_status, status, digest  # noqa: E402,F401

SOAK = HERE.parent / "soak" / "soak.py"


def test_soak_few_rounds_with_cancel_and_kill(migcert_bin, sock_dir):
    """Seed 1 draws a cancel and a kill in its first rounds; every check of
    the long lane runs, the summary line comes last."""
    r = subprocess.run(["/usr/bin/python3", str(SOAK), "--migcert", str(migcert_bin),
                        "--rounds", "4", "--seed", "1", "--dir", str(sock_dir / "soak")],
                       capture_output=True, text=True, timeout=600)
    last = r.stdout.strip().splitlines()[-1]
    assert r.returncode == 0, r.stdout + r.stderr
    assert last == "soak: 4 of 4 rounds completed, 1 cancels, 1 kills, 0 failure(s)", r.stdout
    assert "soak: after round 1: source" in r.stdout and "soak: after round 4: source" in r.stdout


def test_vm_destination_migrates_the_guest_on(vms):
    """A -> B -> C: B received the guest and sends it on whole."""
    a = vms("a", "--ram", "16M", "--fill", "random", "--seed", "3")
    b = vms("b", "--ram", "16M", "--incoming", f"unix:{vms.dir}/b.mig")
    a.cmd("migrate", uri=f"unix:{vms.dir}/b.mig")
    assert wait_status(a, ("completed", "failed"))["status"] == "completed", a.log()
    assert wait_status(b, ("completed", "failed"))["status"] == "completed", b.log()
    c = vms("c", "--ram", "16M", "--incoming", f"unix:{vms.dir}/c.mig")
    b.cmd("migrate", uri=f"unix:{vms.dir}/c.mig")
    assert wait_status(b, ("completed", "failed"))["status"] == "completed", b.log()
    assert wait_status(c, ("completed", "failed"))["status"] == "completed", c.log()
    assert status(b) == (False, "postmigrate") and status(c) == (True, "running")
    assert digest(c) == digest(b) == digest(a)


def test_vm_failed_destination_cannot_migrate_out(vms):
    """A destination whose stream ended early discarded it: nothing to send."""
    a = vms("a", "--ram", "16M", "--fill", "random", "--seed", "3")
    b = vms("b", "--ram", "16M", "--incoming", f"unix:{vms.dir}/b.mig")
    a.cmd("migrate-set-capabilities",
          capabilities=[{"capability": "pause-before-switchover", "state": True}])
    a.cmd("migrate", uri=f"unix:{vms.dir}/b.mig")
    wait_status(a, ("pre-switchover",))
    a.cmd("migrate_cancel")
    assert wait_status(b, ("failed", "cancelled"))["status"] in ("failed", "cancelled")
    with pytest.raises(QMPError) as e:
        b.cmd("migrate", uri=f"unix:{vms.dir}/x.mig")
    assert "waiting for an incoming migration" in e.value.desc
    assert status(b) == (False, "inmigrate")
