#!/usr/bin/python3
"""Sum test results over every JUnit/cmocka XML file in a folder and print
the failures, then the line `N passed, N failed` (the last line of CI)."""
import glob
import os
import sys
import xml.etree.ElementTree as ET


def main(folder):
    passed = failed = 0
    failures = []
    for path in sorted(glob.glob(os.path.join(folder, "*.xml"))):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            failed += 1
            failures.append(f"{os.path.basename(path)}: unreadable XML ({e})")
            continue
        for case in root.iter("testcase"):
            bad = case.find("failure") is not None or case.find("error") is not None
            if case.find("skipped") is not None:
                continue
            if bad:
                failed += 1
                failures.append(f"{os.path.basename(path)}: {case.get('classname', '')}::{case.get('name')}")
            else:
                passed += 1
    for f in failures:
        print("FAILED", f)
    print(f"{passed} passed, {failed} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "reports/out"))
