#!/usr/bin/python3
"""ci/summary.py [FOLDER] [--build B] [--exit-status N] [--report PATH]
ci/summary.py FOLDER --lane NAME [--seconds S]

Sums the test cases of every JUnit/cmocka XML file in FOLDER (default
reports/out), prints each failure with one `REPRO:` line, and prints as its
very last line `N passed, N failed`.  Skipped cases count in neither.

Nothing is silent: a folder with no XML, an empty or unparsable XML file, or
a file without test cases counts as a failure; so does --exit-status N != 0
(the status of the lanes) when no failing case explains it.
REPRO lines: the first "REPRO: ..." line of the failure text when there is
one (scenario runs print it), else BUILD/unit/test-X NAME for a cmocka case
(file unit-test-X.xml), else /usr/bin/python3 -m pytest 'FILE::NAME'.
Exit status: 0 when nothing failed, 1 otherwise.
--report PATH prints "report: PATH" (the HTML report of `migcert report`)
just before that last line.

--lane NAME: the one line a lane ends with, counting only that lane's
files (lane_of_xml): "lane NAME: N passed, N failed in S s" (not alone on
its line, so never taken for the run's last line); exit 0.
"""
import argparse
import glob
import os
import sys
import xml.etree.ElementTree as ET

PY = "/usr/bin/python3"


def first_line(text, limit=200):
    for line in (text or "").splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[:limit] + "..."
    return ""


def repro_for(fname, case, bad, build):
    text = (bad.text or "") + "\n" + (bad.get("message") or "")
    for line in text.splitlines():
        if line.strip().startswith("REPRO:"):
            return line.strip()
    name = case.get("name", "")
    cls = case.get("classname", "") or ""
    if fname.startswith("unit-") and not fname.endswith("-status.xml"):
        binary = fname[len("unit-"):-len(".xml")]
        return f"REPRO: {build}/unit/{binary} {name}"
    if not cls and "." in name:      # a pytest collection error names the module
        cls, name = name, ""
    parts = cls.split(".")
    mods = [i for i, p in enumerate(parts) if p.startswith("test_")]
    if mods:
        i = mods[0]
        path = "/".join(parts[:i + 1]) + ".py"
        node = "::".join([path] + parts[i + 1:] + ([name] if name else []))
        return f"REPRO: {PY} -m pytest '{node}'"
    return None


def lane_of_xml(fname):
    """The lane an XML result file belongs to: unit-*.xml unit, full-X.xml and
    full-X-N.xml (shard N of a lane run side by side) X, build*.xml build,
    else the name up to its first dash."""
    stem = fname[:-len(".xml")] if fname.endswith(".xml") else fname
    if stem.startswith("unit-"):
        return "unit"
    if stem.startswith("full-"):
        lane, _, shard = stem[len("full-"):].rpartition("-")
        return lane if lane and shard.isdigit() else stem[len("full-"):]
    if stem.startswith("build"):
        return "build"
    return stem.split("-")[0]


def lane_line(folder, lane, seconds=None, out=sys.stdout, cpu=None):
    passed = failed = 0
    for path in sorted(glob.glob(os.path.join(folder, "*.xml"))):
        if lane_of_xml(os.path.basename(path)) != lane:
            continue
        try:
            cases = list(ET.parse(path).getroot().iter("testcase"))
        except (OSError, ET.ParseError):
            failed += 1
            continue
        for case in cases:
            if case.find("skipped") is not None:
                continue
            bad = case.find("failure") is not None or case.find("error") is not None
            failed += bad
            passed += not bad
    took = f" in {seconds} s" if seconds is not None else ""
    took += f" ({cpu} CPU s)" if cpu is not None else ""
    print(f"lane {lane}: {passed} passed, {failed} failed{took}", file=out, flush=True)


def summarize(folder, build="build", exit_status=0, out=sys.stdout, report=None):
    passed = failed = 0
    lines = []
    files = sorted(glob.glob(os.path.join(folder, "*.xml")))
    if not files:
        failed += 1
        lines.append(f"FAILED no test results in {folder}/ (did the build fail?)")
    for path in files:
        fname = os.path.basename(path)
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as e:
            failed += 1
            lines.append(f"FAILED {fname}: unreadable results ({e})")
            continue
        cases = list(root.iter("testcase"))
        if not cases:
            failed += 1
            lines.append(f"FAILED {fname}: holds no test case")
            continue
        for case in cases:
            if case.find("skipped") is not None:
                continue
            bad = case.find("failure")
            if bad is None:
                bad = case.find("error")
            if bad is None:
                passed += 1
                continue
            failed += 1
            ident = "::".join(x for x in (case.get("classname"), case.get("name")) if x)
            why = first_line(bad.get("message")) or first_line(bad.text)
            lines.append(f"FAILED {fname}: {ident}" + (f": {why}" if why else ""))
            repro = repro_for(fname, case, bad, build)
            if repro:
                lines.append("  " + repro)
    if exit_status and failed == 0:
        failed += 1
        lines.append(f"FAILED the lanes exited with status {exit_status} but no failing case was recorded")
    for line in lines:
        print(line, file=out)
    if report:
        print(f"report: {report}", file=out)
    out.flush()
    print(f"{passed} passed, {failed} failed", file=out)
    out.flush()
    return passed, failed


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default="reports/out")
    ap.add_argument("--build", default="build")
    ap.add_argument("--exit-status", type=int, default=0)
    ap.add_argument("--report")
    ap.add_argument("--lane")
    ap.add_argument("--seconds", type=int)
    a = ap.parse_args(argv)
    if a.lane:
        lane_line(a.folder, a.lane.removeprefix("full-"), a.seconds)
        return 0
    _, failed = summarize(a.folder, a.build, a.exit_status, report=a.report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
