"""test_spice_releases.py - the SPICE server as a versioned part of the release
history (fakes/devices/releases.h, docs/protocol-spice.md section 10.1):
each pair rule seen in the event trace of a simulated run, the pairs lane
covering SPICE (every ordered pair of the version-pairs scenarios passes,
and its JSON names each case's releases), and the scenario keys that used
to say what a server speaks refused with an error naming the release to
use instead, and `migcert vm --release R` running R's server.

Each rule runs one scenario at one pair (`migcert run FILE --pair S:D -v`)
and reads what the servers and the client did from the trace; the oracle of
`migcert run` already judged the client's migration kind against the pair
rules, so a case that passes with the wrong flow in its trace would mean
the rules and the servers disagree.

Rerun: /usr/bin/python3 -m pytest harness/pytest/test_spice_releases.py -k NAME
"""
import json

import pytest

SEAMLESS = "scenarios/spice-seamless/version-pairs.yaml"
SEMI = "scenarios/spice/version-pairs.yaml"


def _run_pair(run_migcert, path, pair):
    r = run_migcert("run", path, "--pair", pair, "-v", timeout=120)
    assert r.returncode == 0, f"{path} --pair {pair} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert r.stdout.rstrip().endswith("1 passed, 0 failed"), r.stdout[-1000:]
    return r.stderr


# (name, scenario, pair, lines the trace must have, lines it must not have)
RULES = [
    ("old-to-new-seamless-ack", SEAMLESS, "2.0:2.1-dev",
     ["send MAIN_MIGRATE_BEGIN_SEAMLESS", "dst.spice: DO_SEAMLESS version 1 (ours 2, 1 client(s)): ACK",
      "send MIGRATE_DATA"],
     ["NACK", "MAIN_MIGRATE_SWITCH_HOST"]),
    ("new-to-old-seamless-nack", SEAMLESS, "2.1-dev:2.0",
     ["send MAIN_MIGRATE_BEGIN_SEAMLESS", "dst.spice: DO_SEAMLESS version 2 (ours 1, 1 client(s)): NACK",
      "dst.spice.main0: recv MAIN_MIGRATE_END"],
     ["): ACK", "send MIGRATE_DATA", "MAIN_MIGRATE_SWITCH_HOST"]),
    ("same-release-seamless", SEAMLESS, "2.1-dev:2.1-dev",
     ["DO_SEAMLESS version 2 (ours 2, 1 client(s)): ACK"], ["NACK"]),
    ("old-source-without-seamless", SEAMLESS, "1.1:2.1-dev",
     ["src.spice.main0: send MAIN_MIGRATE_BEGIN ", "dst.spice.main0: recv MAIN_MIGRATE_END"],
     ["MAIN_MIGRATE_BEGIN_SEAMLESS", "DO_SEAMLESS", "MAIN_MIGRATE_SWITCH_HOST"]),
    ("old-target-without-seamless", SEAMLESS, "2.0:1.1",
     ["send MAIN_MIGRATE_BEGIN_SEAMLESS", "dst.spice.main0: recv MAIN_MIGRATE_END"],
     ["DO_SEAMLESS", "MAIN_MIGRATE_SWITCH_HOST"]),
    ("old-source-without-semi-seamless", SEMI, "1.0:2.1-dev",
     ["send MAIN_MIGRATE_SWITCH_HOST"], ["send MAIN_MIGRATE_BEGIN"]),
    ("old-target-refuses-migrating-link", SEMI, "1.1:1.0",
     ["src.spice.main0: send MAIN_MIGRATE_BEGIN ", "takes no migrating client",
      "send MAIN_MIGRATE_CONNECT_ERROR", "send MAIN_MIGRATE_SWITCH_HOST"],
     ["send MAIN_MIGRATE_CONNECTED"]),
]


@pytest.mark.parametrize("name,path,pair,want,never", RULES, ids=[r[0] for r in RULES])
def test_spice_release_pair_rule(run_migcert, name, path, pair, want, never):
    trace = _run_pair(run_migcert, path, pair)
    for line in want:
        assert line in trace, f"{name} at {pair}: the trace lacks '{line}'"
    for line in never:
        assert line not in trace, f"{name} at {pair}: the trace has '{line}'"


def test_spice_pairs_lane_covers_every_ordered_pair(run_migcert, tmp_path):
    """The pairs lane's run of the two version-pairs scenarios: 16 ordered
    pairs each, every one passes, and the JSON carries each case's releases
    (the report's compatibility matrix reads them)."""
    out = tmp_path / "pairs.json"
    r = run_migcert("run", SEAMLESS, SEMI, "--pairs", "all", "--json", str(out), timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    assert r.stdout.rstrip().endswith("32 passed, 0 failed"), r.stdout[-1000:]
    cases = json.loads(out.read_text())["cases"]
    seen = {(c["id"].split("[")[0], c["src"], c["dst"]) for c in cases}
    releases = ["1.0", "1.1", "2.0", "2.1-dev"]
    for scn in ("spice-seamless/version-pairs", "spice/version-pairs"):
        for s in releases:
            for d in releases:
                assert (scn, s, d) in seen, f"{scn} lacks the pair {s}:{d}"
    assert all(c["status"] == "passed" for c in cases)


@pytest.mark.parametrize("spice,key,release_hint", [
    ('{semi-seamless: "false"}', "semi-seamless", 'machines.src.release: "1.0"'),
    ('{seamless: "true", migration-version-src: "2", migration-version-dst: "1"}', "migration-version-src",
     "machines.src.release / machines.dst.release"),
    ('{migration-version-dst: "3"}', "migration-version-dst", "2.1-dev speaks 2"),
])
def test_spice_removed_keys_name_the_release_to_use(run_migcert, tmp_path, spice, key, release_hint):
    f = tmp_path / "old.yaml"
    f.write_text("summary: an old file\nmachines:\n  src: {ram: 16M}\n"
                 f"spice: {spice}\nsteps:\n  - migrate: {{}}\nexpect:\n  outcome: completed\n")
    r = run_migcert("run", str(f))
    assert r.returncode != 0
    text = r.stdout + r.stderr
    assert f"old.yaml:4: key '{key}': removed:" in text, text[-2000:]
    assert release_hint in text, text[-2000:]


def test_spice_vm_of_an_old_release_refuses_the_restore_strategy(run_migcert, sock_dir):
    """`migcert vm --release R` runs R's SPICE server: 2.0's has no restore
    strategy, so asking for it is an error naming the release (2.1-dev's
    takes it)."""
    r = run_migcert("vm", "--release", "2.0", "--qmp", f"unix:{sock_dir / 'q.sock'}", "--spice",
                    f"unix=on,addr={sock_dir / 's.sock'},disable-ticketing=on,x-pixmap-cache-migration=restore",
                    timeout=60)
    assert r.returncode != 0
    assert "x-pixmap-cache-migration=restore: release 2.0's SPICE server has no restore strategy" in r.stderr, \
        r.stderr
