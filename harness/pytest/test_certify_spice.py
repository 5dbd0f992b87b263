"""test_certify_spice.py - `migcert certify --spice`: the client-side SPICE
conformance cases against a source and a target a vendor points migcert at.

- Against two `migcert vm --spice` (re-created per case with --src-cmd and
  --dst-cmd, the source with seamless-migration=on) every case passes but
  the one that needs a password, and the reports are written where --out,
  --json and --junit say, with no REPRO line.
- Against two QEMU 7.2 + spice-server 0.15.1 (`-vga qxl -spice ...`, the
  source with seamless-migration=on, the target started running with
  -incoming) the migrations pass and the
  reference's known defects fail under their rules (docs/protocol-spice.md
  section 12): the whole process ends on an unsolicited MIGRATE_FLUSH_MARK
  and on a main migration blob with a bad magic or a newer version
  (spice-no-abort), and a link to a channel it does not offer gets ERROR
  instead of CHANNEL_NOT_AVAILABLE (spice-link-errors); each failure has
  one REPRO line, and the line reruns that case alone.  Skipped only when
  qemu-system-x86_64 is absent.
- A mixed pair, QEMU 7.2 the SPICE source and `migcert vm --release 2.0`
  the target (each machine migrating to a shadow of its own kind,
  mixed_feed.py): the flows run across the pair, the QEMU source's known
  defects fail under their rules, and migrate.seamless fails only at its
  screen check (two different guests: test_spice_mixed.py says why).
- Without commands the vendor's pair serves one migration case; the others
  are not run, naming the case that used the pair.
- A target whose SPICE address is wrong fails semi-seamless migration
  under its rule; bad command lines exit 2.

Rerun one: /usr/bin/python3 -m pytest harness/pytest -k certify_spice
"""
import json
import re
import shlex
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import QEMU_BASE_ARGS, qemu_binary
from test_vm_migration import vms  # noqa: F401 (fixture)

QEMU_SPICE = ["-vga", "qxl", "-audiodev", "spice,id=snd0", "-device", "intel-hda", "-device",
              "hda-duplex,audiodev=snd0",
              # a vendor's port: QEMU's human monitor on a spiceport (what
              # virt-viewer opens), bytes that are not migcert's sequence
              "-chardev", "spiceport,id=hmp0,name=org.qemu.monitor.hmp.0", "-mon", "chardev=hmp0,mode=readline"]


def addresses(d):
    return ["--src-qmp", f"unix:{d}/src.qmp", "--src-spice", f"unix:{d}/src.spice",
            "--dst-qmp", f"unix:{d}/dst.qmp", "--dst-spice", f"unix:{d}/dst.spice",
            "--migrate-uri", f"unix:{d}/mig.sock"]


def vm_cmds(migcert_bin, d, spice_extra=""):
    def one(side, incoming):
        # the source decides whether a migration is seamless
        seamless = "" if incoming else ",seamless-migration=on"
        return (f"{migcert_bin} vm --qmp unix:{d}/{side}.qmp --ram 32M --spice "
                f"unix=on,addr={d}/{side}.spice{spice_extra}{seamless}" +
                (f" --incoming unix:{d}/mig.sock" if incoming else ""))
    return ["--src-cmd", one("src", False), "--dst-cmd", one("dst", True)]


def qemu_cmds(d):
    def one(side, incoming):
        argv = ([qemu_binary()] + QEMU_BASE_ARGS + QEMU_SPICE +
                ["-spice", f"unix=on,addr={d}/{side}.spice,disable-ticketing=on,image-compression=off"
                 + ("" if incoming else ",seamless-migration=on"),
                 "-qmp", f"unix:{d}/{side}.qmp,server=on,wait=off"] +
                (["-incoming", f"unix:{d}/mig.sock"] if incoming else []))
        return shlex.join(argv)
    return ["--src-cmd", one("src", False), "--dst-cmd", one("dst", True)]


def seamless_case(case):
    """migrate.seamless: the client went on with the target, nothing re-sent."""
    assert case["status"] == "pass", case
    assert case["note"].startswith("no MAIN_INIT, no surface re-sent, screen equal"), case


def report(path):
    j = json.loads((path / "report.json").read_text())
    return j, {c["name"]: c for c in j["cases"]}


def test_certify_spice_passes_against_migcert_vm(run_migcert, migcert_bin, sock_dir):
    out = sock_dir / "out"
    r = run_migcert("certify", "--spice", *addresses(sock_dir), *vm_cmds(migcert_bin, sock_dir, ",disable-ticketing=on"),
                    "--out", out, "--json", sock_dir / "c.json", "--junit", sock_dir / "c.xml", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "REPRO" not in r.stderr and "FAIL" not in r.stderr
    j, cases = report(out)
    assert json.loads((sock_dir / "c.json").read_text()) == j
    assert j["failed"] == 0 and j["not_run"] == 0 and j["rules_broken"] == []
    skipped = {n for n, c in cases.items() if c["status"] == "skip"}
    assert skipped == {"link.wrong-password"}, cases
    seamless_case(cases["migrate.seamless"])
    assert "playback continuous; port continuous" in cases["migrate.seamless"]["note"]
    assert cases["migrate.seamless"]["note"].endswith("DO_SEAMLESS ACKed 1, fell back 0")
    assert j["passed"] == len(cases) - 1 >= 18
    # what was certified, for the certificate page: each side's addresses,
    # command and version, and every case's rule (docs/report.md)
    assert j["kind"] == "spice"
    src, dst = j["endpoint"]["source"], j["endpoint"]["target"]
    assert src["qmp"] == f"unix:{sock_dir}/src.qmp" and dst["spice"] == f"unix:{sock_dir}/dst.spice"
    assert src["cmd"].startswith(f"{migcert_bin} vm ") and "--incoming" in dst["cmd"]
    assert src["version"] and j["endpoint"]["migrate_uri"] == f"unix:{sock_dir}/mig.sock"
    assert all(c["rule"].startswith("spice-") and c["rule_text"] for c in cases.values()), cases
    # what a passing run saw: every channel, the screen, the media sequences
    assert "PORT:0" in cases["link.channels"]["note"]
    assert "port org.migcert.vmc.0 (migcert's: its bytes are checked in sequence)" in cases["link.channels"]["note"]
    assert cases["migrate.semi-seamless"]["note"].startswith("screen equal to the target's screendump")
    assert "playback continuous" in cases["migrate.semi-seamless"]["note"]
    assert "port continuous" in cases["migrate.semi-seamless"]["note"]
    for name in [n for n in cases if n.startswith("hostile.") and "blob" not in n]:
        assert cases[name]["note"] == "that client was disconnected; the other client kept every channel", name
    suite = ET.parse(sock_dir / "c.xml").getroot().find("testsuite")
    assert suite.get("failures") == "0" and int(suite.get("tests")) == len(cases)
    txt = (out / "report.txt").read_text()
    assert txt.startswith("migcert SPICE server certification\nsource: QMP unix:")


def test_certify_spice_password(run_migcert, migcert_bin, sock_dir):
    """With a password the ticket is checked: a wrong one is PERMISSION_DENIED."""
    out = sock_dir / "out"
    r = run_migcert("certify", "--spice", *addresses(sock_dir),
                    *vm_cmds(migcert_bin, sock_dir, ",password=s3cret"), "--password", "s3cret",
                    "-k", "link.*", "--out", out, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    _, cases = report(out)
    assert cases["link.wrong-password"] == {"name": "link.wrong-password", "status": "pass",
                                            "note": "PERMISSION_DENIED", "rule": "spice-link-errors",
                                            "rule_text": cases["link.bad-magic"]["rule_text"]}
    assert "PERMISSION_DENIED" in cases["link.wrong-password"]["rule_text"]
    assert cases["link.channels"]["status"] == "pass"


# spice-server 0.15.1's known defects: case -> the rule it breaks
QEMU_DEFECTS = {"hostile.flush-mark": "spice-no-abort", "hostile.blob-bad-magic": "spice-no-abort",
                "hostile.blob-newer-version": "spice-no-abort", "link.channel-not-available": "spice-link-errors"}


def certify_with_qemu(run_migcert, sock_dir, cmds, junit, what):
    """certify --spice with QEMU on a side (skipped without QEMU): it
    exits 1; returns the run, the JSON report, its cases and the failed
    ones' rules."""
    if shutil.which(qemu_binary()) is None:
        pytest.skip(f"{qemu_binary()} is not installed: {what} cannot run")
    out = sock_dir / "out"
    r = run_migcert("certify", "--spice", *addresses(sock_dir), *cmds, "--out", out, "--junit", junit, timeout=900)
    assert r.returncode == 1, r.stdout + r.stderr
    j, cases = report(out)
    return r, j, cases, {n: c["rule"] for n, c in cases.items() if c["status"] == "fail"}


def test_certify_spice_reports_qemu_defects(run_migcert, sock_dir):
    r, j, cases, failed = certify_with_qemu(run_migcert, sock_dir, qemu_cmds(sock_dir), sock_dir / "q.xml",
                                            "the QEMU 7.2 certification")
    assert failed == QEMU_DEFECTS, cases
    assert sorted(j["rules_broken"]) == ["spice-link-errors", "spice-no-abort"]
    assert "the server process ended" in cases["hostile.flush-mark"]["message"]
    assert "got link error ERROR (1)" in cases["link.channel-not-available"]["message"]
    for name in ["migrate.semi-seamless", "migrate.switch-host", "migrate.cancel", "link.channels",
                 "hostile.truncated", "hostile.oversized", "hostile.unknown-message"]:
        assert cases[name]["status"] == "pass", cases[name]
    assert "screen equal" in cases["migrate.semi-seamless"]["note"]
    seamless_case(cases["migrate.seamless"])
    # QEMU's monitor on a spiceport: its bytes are accepted, not held to
    # migcert's sequence (the fake client refused them before)
    assert cases["link.channels"]["note"].endswith(
        "; port org.qemu.monitor.hmp.0 (not migcert's: its bytes are accepted as they come)"), cases["link.channels"]
    assert "port org.qemu.monitor.hmp.0 not checked (not migcert's; " in cases["migrate.seamless"]["note"]
    assert cases["migrate.seamless"]["note"].endswith("DO_SEAMLESS ACKed 1, fell back 0")
    # spice-server serves one client at a time and lets unsolicited messages by
    one = "the server serves one client at a time: a new client linked afterwards"
    assert cases["hostile.truncated"]["note"] == "that client was disconnected; " + one
    assert cases["hostile.unsolicited-migrate-end"]["note"] == "ignored; " + one
    repro = [line[len("REPRO: "):] for line in r.stderr.splitlines() if line.startswith("REPRO: ")]
    assert len(repro) == 4 and all(line.endswith(tuple(failed)) for line in repro)
    suite = ET.parse(sock_dir / "q.xml").getroot().find("testsuite")
    assert suite.get("failures") == "4"
    # the REPRO line reruns that one case, which fails again
    line = next(x for x in repro if x.endswith("-k hostile.flush-mark"))
    again = subprocess.run(shlex.split(line) + ["--out", str(sock_dir / "again")], capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 1, again.stderr
    _, rerun = report(sock_dir / "again")
    assert list(rerun) == ["hostile.flush-mark"] and rerun["hostile.flush-mark"]["rule"] == "spice-no-abort"


def test_certify_spice_seamless_fallback_fails_under_its_rule(run_migcert, migcert_bin, sock_dir):
    """A source that offers seamless migration in a protocol version above
    the target's: the target NACKs DO_SEAMLESS and the switch falls back to
    semi-seamless, which migrate.seamless reports under spice-seamless-ack
    (the pair claimed seamless migration and did not deliver it)."""
    out = sock_dir / "out"
    cmds = vm_cmds(migcert_bin, sock_dir, ",disable-ticketing=on")
    src = cmds.index("--src-cmd") + 1
    assert "seamless-migration=on" in cmds[src]
    cmds[src] = cmds[src].replace("seamless-migration=on", "seamless-migration=on,x-seamless-version=9")
    r = run_migcert("certify", "--spice", *addresses(sock_dir), *cmds, "-k", "migrate.seamless", "--out", out,
                    timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    j, cases = report(out)
    c = cases["migrate.seamless"]
    assert c["status"] == "fail" and c["rule"] == "spice-seamless-ack", c
    assert "the target answered DO_SEAMLESS with NACK" in c["message"], c
    assert "0 seamless, 1 semi-seamless and 0 switch-host" in c["message"], c
    assert j["rules_broken"] == ["spice-seamless-ack"]
    assert r.stderr.count("REPRO: ") == 1


def test_certify_spice_vendor_pair_serves_one_migration(run_migcert, vms, sock_dir):  # noqa: F811
    """Without --src-cmd/--dst-cmd the vendor's pair serves the first
    migration case; the others are not run and say why."""
    d = vms.dir
    vms("src", "--ram", "32M", "--spice", f"unix=on,addr={d}/src.spice,disable-ticketing=on", connect=False)
    vms("dst", "--ram", "32M", "--spice", f"unix=on,addr={d}/dst.spice,disable-ticketing=on",
        "--incoming", f"unix:{d}/mig.sock", connect=False)
    deadline = time.monotonic() + 30  # a hang guard: the sockets appear as the processes start
    while not all((d / f).exists() for f in ["src.qmp", "src.spice", "dst.qmp", "dst.spice"]):
        assert time.monotonic() < deadline, "the machines made no sockets"
        time.sleep(0.02)
    args = ["--src-qmp", f"unix:{d}/src.qmp", "--src-spice", f"unix:{d}/src.spice",
            "--dst-qmp", f"unix:{d}/dst.qmp", "--dst-spice", f"unix:{d}/dst.spice",
            "--migrate-uri", f"unix:{d}/mig.sock"]
    out = sock_dir / "out"
    r = run_migcert("certify", "--spice", *args, "-k", "migrate.*", "--out", out, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    _, cases = report(out)
    assert cases["migrate.semi-seamless"]["status"] == "pass", cases
    for name in ["migrate.switch-host", "migrate.cancel", "migrate.seamless"]:
        assert cases[name]["status"] == "not-run", cases
        assert "case migrate.semi-seamless migrated it" in cases[name]["message"]
        assert "--src-cmd" in cases[name]["message"]
    assert "0 failed, 3 not run" in r.stdout


def test_certify_spice_wrong_target_fails_semi_seamless(run_migcert, migcert_bin, sock_dir):
    """The source names a target the client cannot reach: the case fails
    under spice-semi-seamless, saying so, with a REPRO line."""
    out = sock_dir / "out"
    args = addresses(sock_dir)
    args[args.index("--dst-spice") + 1] = f"unix:{sock_dir}/nobody.spice"
    r = run_migcert("certify", "--spice", *args, *vm_cmds(migcert_bin, sock_dir, ",disable-ticketing=on"),
                    "-k", "migrate.semi-seamless", "--out", out, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    _, cases = report(out)
    c = cases["migrate.semi-seamless"]
    assert c["status"] == "fail" and c["rule"] == "spice-semi-seamless", c
    assert "could not link to the target" in c["message"] and "nobody.spice" in c["message"]
    assert c["repro"].endswith("-k migrate.semi-seamless")
    assert r.stderr.count("REPRO: ") == 1


def test_certify_spice_failed_migrate_info_does_not_cascade(run_migcert, migcert_bin, sock_dir):
    """The target is unreachable: migrate.semi-seamless fails after
    client_migrate_info with no migrate, so the same source serves the next
    case; its client_migrate_info is taken (the pending one is cancelled, as
    by spice-server), and the case fails for its own reason, not 'a SPICE
    migration is already in progress'."""
    out = sock_dir / "out"
    args = addresses(sock_dir)
    args[args.index("--dst-spice") + 1] = f"unix:{sock_dir}/nobody.spice"
    r = run_migcert("certify", "--spice", *args, *vm_cmds(migcert_bin, sock_dir, ",disable-ticketing=on"),
                    "-k", "migrate.", "--out", out, timeout=300)
    _, cases = report(out)
    assert cases["migrate.semi-seamless"]["status"] == "fail", cases
    assert len(cases) >= 3, cases
    for name, c in cases.items():
        assert c["status"] == "fail", (name, c)
        # each fails for its own reason: the target it cannot reach
        assert "already in progress" not in c["message"] and "nobody.spice" in c["message"], (name, c)


@pytest.mark.parametrize("args, message", [
    (["--src-qmp", "unix:/x"], "--src-qmp, --src-spice, --dst-qmp and --dst-spice are required"),
    (["--src-qmp", "unix:/a", "--src-spice", "nowhere", "--dst-qmp", "unix:/b", "--dst-spice", "h:1"],
     "nowhere: HOST:PORT (port 1-65535) or unix:PATH"),
    (["--src-qmp", "unix:/a", "--src-spice", "h:1", "--dst-qmp", "unix:/b", "--dst-spice", "h:1", "-k", "nope"],
     "no case matches 'nope'"),
    (["--timeout", "0"], "--timeout takes a whole number of seconds"),
    (["--bogus"], "unknown argument --bogus"),
])
def test_certify_spice_usage_errors_exit_2(run_migcert, args, message):
    r = run_migcert("certify", "--spice", *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_certify_spice_lists_its_cases(run_migcert):
    r = run_migcert("certify", "--spice", "--list", "-k", "hostile.*")
    assert r.returncode == 0
    assert r.stdout.split() == ["hostile.truncated", "hostile.oversized", "hostile.unknown-message",
                                "hostile.unsolicited-migrate-connected", "hostile.unsolicited-migrate-end",
                                "hostile.flush-mark", "hostile.blob-bad-magic", "hostile.blob-newer-version"]


def mixed_cmds(migcert_bin, d):
    """A mixed pair: QEMU 7.2 the SPICE source (seamless-migration=on),
    `migcert vm --release 2.0` the SPICE target.  Each machine migrates to
    its own kind (test_spice_mixed.py): the source's command also starts a
    QEMU shadow listening on the --migrate-uri, which the source's machine
    migrates to, and the target's command first feeds the target its
    machine from a `migcert vm` shadow (mixed_feed.py); each command ends
    its shadow when its main process ends."""
    here = Path(__file__).resolve().parent
    qemu = ([qemu_binary()] + QEMU_BASE_ARGS + QEMU_SPICE +
            ["-spice", f"unix=on,addr={d}/qshadow.spice,disable-ticketing=on,image-compression=off",
             "-incoming", f"unix:{d}/mig.sock"])
    src = qemu[:qemu.index("-spice") + 1] + [
        f"unix=on,addr={d}/src.spice,disable-ticketing=on,image-compression=off,seamless-migration=on",
        "-qmp", f"unix:{d}/src.qmp,server=on,wait=off"]
    src_cmd = f"{shlex.join(qemu)} & S=$!; {shlex.join(src)}; kill $S"
    vm = [str(migcert_bin), "vm", "--release", "2.0", "--ram", "32M"]
    shadow = vm + ["--qmp", f"unix:{d}/mshadow.qmp", "--spice", f"unix=on,addr={d}/mshadow.spice,disable-ticketing=on"]
    dst = vm + ["--qmp", f"unix:{d}/dst-boot.qmp", "--spice",
                f"unix=on,addr={d}/dst.spice,disable-ticketing=on", "--incoming", f"unix:{d}/m.mig"]
    feed = ["/usr/bin/python3", str(here / "mixed_feed.py"), f"{d}/mshadow.qmp", f"unix:{d}/m.mig",
            f"{d}/dst-boot.qmp", f"{d}/dst.qmp"]
    dst_cmd = f"{shlex.join(shadow)} & S=$!; {shlex.join(feed)} & {shlex.join(dst)}; kill $S"
    return ["--src-cmd", src_cmd, "--dst-cmd", dst_cmd]


def test_certify_spice_mixed_qemu_source_migcert_target(run_migcert, migcert_bin, sock_dir):
    """A mixed pair certified: QEMU 7.2 + spice-server 0.15.1 as the SPICE
    source, `migcert vm --release 2.0` as the target."""
    r, j, cases, failed = certify_with_qemu(run_migcert, sock_dir, mixed_cmds(migcert_bin, sock_dir),
                                            sock_dir / "m.xml", "the mixed pair")
    # the reference's known defects, all on the QEMU source (the link and
    # hostile cases talk to the source), each under its rule
    seamless = failed.pop("migrate.seamless", None)
    assert failed == QEMU_DEFECTS, cases
    # the flows ran across the pair: the client went from QEMU to migcert vm
    # and showed the migcert target's screen (it sent its surfaces) ...
    for name in ["migrate.semi-seamless", "migrate.switch-host", "migrate.cancel"]:
        assert cases[name]["status"] == "pass", cases[name]
    assert cases["migrate.semi-seamless"]["note"].startswith("screen equal to the target's screendump")
    assert cases["migrate.switch-host"]["note"] == "new session on the target, screen equal to its screendump"
    # ... and seamlessly: the target ACKed DO_SEAMLESS and the client went on
    # in its session with no fallback, no MAIN_INIT and no surface again;
    # then its display cannot follow: it holds the QEMU guest's surfaces by
    # reference (the blob names surfaces, not their sizes) while the target
    # draws another guest (test_spice_mixed.py), so the case fails at the
    # screen check, or, when QEMU's guest was in a text mode smaller than
    # the migcert guest's screen, the client refuses the target's first
    # drawing outside that surface and loses its display channel
    msg = cases["migrate.seamless"]["message"]
    kept = re.search(r"session (\d+) \(was (\d+)\), 6 of 7 channels, after 0 semi-seamless and 0 switch-host", msg)
    assert (seamless == "spice-display" and msg.startswith("after the switch, on the target: ")) or \
        (seamless == "spice-seamless" and kept and kept[1] == kept[2] and
         "DISPLAY:0: channel DISPLAY: message DISPLAY_" in msg and "outside surface 0 of 720x400" in msg), msg
    assert sorted(j["rules_broken"]) == sorted({"spice-link-errors", "spice-no-abort", seamless})
    repro = [line for line in r.stderr.splitlines() if line.startswith("REPRO: ")]
    assert len(repro) == len(failed) + 1 == 5
    suite = ET.parse(sock_dir / "m.xml").getroot().find("testsuite")
    assert suite.get("failures") == "5"
    assert j["endpoint"]["target"]["cmd"].count(" vm --release 2.0 ") == 2  # the target and its shadow
