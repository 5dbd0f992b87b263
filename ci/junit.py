#!/usr/bin/python3
"""ci/junit.py - small JUnit XML helpers for the CI lanes.

  ci/junit.py check FILE
      prints "ok N_CASES N_FAILED" when FILE parses and holds at least one
      test case, else "bad REASON"; always exits 0.
  ci/junit.py fail FILE LANE NAME MESSAGE [REPRO]
      writes FILE holding one failing case LANE.NAME whose text is MESSAGE
      (and a "REPRO: ..." line when REPRO is given): how a lane records a
      crash, a timeout, a build failure or missing results, so that
      ci/summary.py counts it instead of staying silent.
"""
import sys
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr


def check(path):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        return f"bad unreadable XML ({e})"
    cases = list(root.iter("testcase"))
    if not cases:
        return "bad XML holds no test case"
    failed = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
    return f"ok {len(cases)} {failed}"


def fail(path, lane, name, message, repro=None):
    text = message + (f"\nREPRO: {repro}" if repro else "")
    with open(path, "w") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n'
                f'  <testsuite name={quoteattr(lane)} tests="1" failures="1">\n'
                f'    <testcase classname={quoteattr(lane)} name={quoteattr(name)}>\n'
                f'      <failure message={quoteattr(message)}>{escape(text)}</failure>\n'
                '    </testcase>\n  </testsuite>\n</testsuites>\n')


def main(argv):
    if len(argv) == 3 and argv[1] == "check":
        print(check(argv[2]))
        return 0
    if len(argv) in (6, 7) and argv[1] == "fail":
        fail(*argv[2:])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
