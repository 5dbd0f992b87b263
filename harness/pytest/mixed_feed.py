"""mixed_feed.py - gives a `migcert vm --incoming` its machine for a mixed
SPICE pair (test_certify_spice.py): a SPICE client crosses between a QEMU and
a `migcert vm`, but a machine only migrates to its own kind, so the
`migcert vm` target is fed by a second `migcert vm` (the shadow) before it
is shown to `migcert certify`.

    mixed_feed.py SHADOW_QMP MIGRATE_URI BOOT_QMP FINAL_QMP

waits for the shadow's and the target's QMP sockets (20 ms retries, 60 s hang
guard), migrates the shadow to MIGRATE_URI (the target's --incoming) and waits
for completion, then renames the target's QMP socket BOOT_QMP to FINAL_QMP,
the address certify was given: certify connects only to a target that holds
its machine.  Exits 0, or 1 with the reason on stderr.
Called by: test_certify_spice.py's --dst-cmd (through /bin/sh).
"""
import os
import sys
import time

from qmp import QMP


def main(shadow, uri, boot, final):
    end = time.monotonic() + 60
    while not (os.path.exists(shadow) and os.path.exists(boot)):
        if time.monotonic() > end:
            sys.exit(f"mixed_feed: no QMP socket at {shadow} or {boot} after 60 s")
        time.sleep(0.02)
    with QMP.connect(shadow, timeout=60) as q:
        q.execute("migrate", uri=uri)
        info = q.wait_migration(timeout=60)
        if info.get("status") != "completed":
            sys.exit(f"mixed_feed: the shadow's migration to {uri} ended {info}")
    with QMP.connect(boot, timeout=60) as d:  # the target runs the machine it loaded
        while not d.execute("query-status").get("running"):
            if time.monotonic() > end:
                sys.exit("mixed_feed: the target did not run after its incoming migration")
            time.sleep(0.02)
    os.rename(boot, final)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: mixed_feed.py SHADOW_QMP MIGRATE_URI BOOT_QMP FINAL_QMP")
    main(*sys.argv[1:])
