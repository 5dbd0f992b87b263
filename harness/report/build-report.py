#!/usr/bin/python3
"""build-report.py - the HTML report of a migcert run (docs/report.md).

    migcert report [DIR] [--merge DIR...] [--out DIR] [--history DIR]

Called by `migcert report` (harness/runner/cmd-report.c), which runs it
with /usr/bin/python3; `make run` calls it last (reports/out/index.html).

Reads what the lanes left in DIR (default reports/out), or in every DIR of
--merge (the shards of a CI matrix, each an artifact folder):
  *.xml                    JUnit of every lane (the lane table, failures)
  run-*.json, full-*.json  `migcert run --json` (matrix, fault table,
                           timelines); det-*.json (the determinism lane's
                           repeats) are left out
  certify-*/report.json    `migcert certify` and `certify --spice` (a
                           certificate page each)
  bench/*.json             `make bench`; --history DIR (default
                           reports/history) holds earlier runs' for the trend
  coverage/, *.log         linked (lcov, valgrind, sanitizers)
and writes OUT/index.html (default: DIR, or reports/out with --merge),
OUT/report-data.json (everything the page shows, for tests and tools) and
OUT/certify-<name>/index.html.  One self-contained page: style, script and
plots (matplotlib SVG as data: URIs) inline, no network.

Invariant: the output is a function of the inputs' content only (cases
sorted by id, files by name, no clock): merging the shards of a run gives
the very report of the unsharded run.  Exit 0 written, 1 an input could not
be read, 2 usage.
"""
import argparse
import base64
import glob
import io
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "ci"))

import summary  # noqa: E402  (ci/summary.py: REPRO lines of JUnit failures)

TIMELINE_FAILURES = 20   # failing cases drawn
TIMELINE_SAMPLE = 6      # passing cases drawn, spread over the sorted ids


class InputError(Exception):
    pass


# ---------------------------------------------------------------- loading

def release_key(r):
    nums = [int(x) for x in re.findall(r"\d+", r)]
    return (nums, r)


def lane_of_json(fname):
    stem = fname[:-len(".json")]
    for p in ("run-", "full-"):
        if stem.startswith(p):
            stem = stem[len(p):]
    return re.sub(r"-(s|shard)?\d+$", "", stem) or "run"


def load_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read {path}: {e}")


def is_run_doc(doc):
    return isinstance(doc, dict) and isinstance(doc.get("cases"), list) and all(
        isinstance(c, dict) and "id" in c and "trace_hash" in c for c in doc["cases"])


def load_inputs(dirs):
    """{xml: {lane: [file results]}, runs: {lane: {id: case}}, certs, bench, links}"""
    data = {"lanes": {}, "xml_failures": [], "runs": {}, "certs": {}, "bench": [],
            "logs": [], "coverage": None, "coverage_summary": None}
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise InputError(f"{d} is not a folder")
        for path in sorted(d.glob("*.xml")):
            read_xml(path, data)
        for path in sorted(d.glob("*.json")):
            if path.name.startswith("det-") or path.name == "report-data.json":
                continue
            doc = load_json(path)
            if not is_run_doc(doc):
                continue
            lane = lane_of_json(path.name)
            cases = data["runs"].setdefault(lane, {})
            for c in doc["cases"]:
                cases[c["id"]] = c
        for path in sorted(d.glob("certify-*/report.json")):
            doc = load_json(path)
            if "abi_version" in doc or doc.get("kind") == "spice":
                data["certs"][path.parent.name] = doc
        for path in sorted(d.glob("bench/*.json")):
            data["bench"].append({"file": path.name, "doc": load_json(path)})
        for path in sorted(d.glob("*.log")):
            if path.name.startswith(("valgrind-", "asan-")):
                data["logs"].append(path.name)
        if (d / "coverage" / "index.html").exists():
            data["coverage"] = "coverage/index.html"
        if (d / "coverage-summary.txt").exists():
            data["coverage_summary"] = (d / "coverage-summary.txt").read_text().strip()
    return data


def read_xml(path, data):
    lane = summary.lane_of_xml(path.name)
    row = data["lanes"].setdefault(lane, {"lane": lane, "passed": 0, "failed": 0,
                                          "skipped": 0, "files": []})
    row["files"].append(path.name)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        row["failed"] += 1
        data["xml_failures"].append({"lane": lane, "name": path.name,
                                     "why": f"unreadable results ({e})", "repro": None})
        return
    for case in root.iter("testcase"):
        if case.find("skipped") is not None:
            row["skipped"] += 1
            continue
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is None:
            row["passed"] += 1
            continue
        row["failed"] += 1
        ident = "::".join(x for x in (case.get("classname"), case.get("name")) if x)
        why = summary.first_line(bad.get("message")) or summary.first_line(bad.text)
        repro = summary.repro_for(path.name, case, bad, "build")
        data["xml_failures"].append({"lane": lane, "name": ident, "why": why,
                                     "repro": repro[len("REPRO: "):] if repro else None})


# ---------------------------------------------------------------- sections

def all_cases(data):
    seen = {}
    for lane in sorted(data["runs"]):
        for cid, c in data["runs"][lane].items():
            seen.setdefault(cid, dict(c, lane=lane))
    return [seen[k] for k in sorted(seen)]


def lane_rows(data):
    rows = {k: dict(v) for k, v in data["lanes"].items()}
    for lane, cases in data["runs"].items():
        if lane in rows:        # the lane's JUnit already counts these cases
            continue
        st = [c["status"] for c in cases.values()]
        rows[lane] = {"lane": lane, "passed": st.count("passed"),
                      "failed": len(st) - st.count("passed"), "skipped": 0,
                      "files": []}
    out = []
    for k in sorted(rows):
        r = rows[k]
        r["verdict"] = "failed" if r["failed"] else "passed"
        r.pop("files", None)
        out.append(r)
    return out


def refusal(c):
    """(rule, the device it names or None) when the case was a clean refusal
    by the pair rules (pre-flight), else None."""
    err = c.get("mig_error") or ""
    if c["status"] != "passed" or c.get("outcome") != "failed" or "pre-flight:" not in err:
        return None
    rule = err.split("pre-flight:", 1)[1].strip()
    short = rule.split(" (")[0]
    head = short.split(":")[0].strip()
    return short, (None if head.startswith("machine type") else head)


def channel_status(c, name):
    """(status, why) of SPICE channel `name` in case c: the SPICE oracle's
    verdict of that channel (spice_channel_verdicts, `migcert run --json`)
    when it gave one, else the case's own (an earlier oracle failed the
    case, or results from before the verdicts).  A channel the oracle could
    not judge in a failing case is not shown passed."""
    v = (c.get("spice_channel_verdicts") or {}).get(name)
    why = (c.get("spice_channel_errors") or {}).get(name)
    if v == "passed":
        return "passed", None
    if v == "failed":
        return "failed", why
    if v == "not judged":
        return c["status"], f"not judged: {why}" if why else "not judged"
    return c["status"], None


def matrix(cases):
    # every case with its releases known, at its own releases or a --pair;
    # not the sweeps' cases (a fault they inject on purpose is no pair fact)
    paired = [c for c in cases if c.get("src") and c.get("dst") and "+" not in c["id"]]
    releases = sorted({c["src"] for c in paired} | {c["dst"] for c in paired}, key=release_key)
    items = {}
    for c in paired:
        for d in c.get("devices") or []:
            items.setdefault(("device", d), []).append(c)
        for ch in c.get("spice_channels") or []:
            items.setdefault(("SPICE channel", ch), []).append(c)
    grids = []
    for (kind, name) in sorted(items):
        cells = {}
        for c in items[(kind, name)]:
            cell = cells.setdefault((c["src"], c["dst"]), {"passed": 0, "failed": 0,
                                                           "refused": 0, "rule": None,
                                                           "example": None, "why": None})
            ref = refusal(c)
            status, why = (channel_status(c, name) if kind == "SPICE channel"
                           else (c["status"], None))
            if status != "passed":
                cell["failed"] += 1
                if not cell["example"]:
                    cell["example"], cell["why"] = c["id"], why
            elif ref and (ref[1] is None or ref[1] == name or kind != "device"):
                cell["refused"] += 1
                cell["rule"] = cell["rule"] or ref[0]
            elif ref:
                continue        # refused because of another device: says nothing of this one
            else:
                cell["passed"] += 1
        rows = []
        for s in releases:
            row = []
            for d in releases:
                cell = cells.get((s, d))
                if not cell or not (cell["passed"] + cell["failed"] + cell["refused"]):
                    row.append({"state": "none", "text": "-", "title": "no case", "rule": None})
                elif cell["failed"]:
                    why = f": {cell['why']}" if cell["why"] else ""
                    row.append({"state": "failed", "text": f"failed {cell['failed']}",
                                "title": f"{cell['failed']} failed, e.g. {cell['example']}{why}",
                                "rule": None})
                elif cell["refused"]:
                    row.append({"state": "refused", "text": "refused",
                                "title": f"refused by rule: {cell['rule']}",
                                "rule": cell["rule"]})
                else:
                    row.append({"state": "passed", "text": f"passed {cell['passed']}",
                                "title": f"{cell['passed']} case(s) passed", "rule": None})
            rows.append({"src": s, "cells": row})
        grids.append({"kind": kind, "name": name, "rows": rows})
    return {"releases": releases, "grids": grids,
            "cells": len(grids) * len(releases) ** 2}


def fault_table(cases):
    table = {}
    for c in cases:
        m = re.search(r"\+([^+]*)#(\d+)$", c["id"])
        if not m:
            continue
        base = c["id"][:m.start()]
        key = (m.group(1), base)
        row = table.setdefault(key, {"point": m.group(1), "case": base, "hits": []})
        row["hits"].append({"n": int(m.group(2)), "fired": c.get("fired", 0),
                            "outcome": c.get("outcome") or "-", "status": c["status"],
                            "id": c["id"]})
    rows = []
    for key in sorted(table):
        r = table[key]
        r["hits"].sort(key=lambda h: h["n"])
        r["swept"] = sum(1 for h in r["hits"] if h["fired"])
        r["failed"] = sum(1 for h in r["hits"] if h["status"] != "passed")
        # consecutive hits that produced the same: one run "#1-#385: failed"
        runs = []
        for h in r["hits"]:
            what = (h["outcome"], bool(h["fired"]), h["status"])
            if runs and runs[-1]["what"] == what and runs[-1]["to"] == h["n"] - 1:
                runs[-1]["to"] = h["n"]
            else:
                runs.append({"from": h["n"], "to": h["n"], "what": what, "outcome": h["outcome"],
                             "fired": bool(h["fired"]), "status": h["status"]})
        for x in runs:
            del x["what"]
        r["runs"] = runs
        del r["hits"]
        rows.append(r)
    return rows


PASS_RE = re.compile(r"pass (\d+) done: sent (\d+) bytes, (\d+) pages dirtied, pending (\d+) bytes")
PHASE_RE = re.compile(r"phase (\S+) -> (\S+)")


def timeline_facts(c):
    """What the timeline of a case shows, from its events."""
    ev = c.get("timeline") or []
    end = max([e[0] for e in ev] + [c.get("virtual_ns") or 0, 1])
    phases = {"src": [], "dst": []}
    passes, faults, client, stop, resume = [], [], [], None, None
    for t, who, what in ev:
        m = PHASE_RE.match(what)
        if m and who in phases:
            phases[who].append((t, m.group(2)))
        m = PASS_RE.match(what)
        if m and who == "src":
            passes.append({"t": t, "pass": int(m.group(1)), "sent": int(m.group(2)),
                           "dirtied": int(m.group(3)), "pending": int(m.group(4))})
        if who == "fault":
            faults.append({"t": t, "what": what})
        if who.startswith("client") or (who == "harness" and what.startswith("client")):
            client.append({"t": t, "what": f"{who}: {what}"})
        if who == "src" and what.startswith("run state running -> "):
            stop = stop if stop is not None else t
        if who == "dst" and what.endswith("-> running"):
            resume = t
    spans = {}
    for side, ch in phases.items():
        segs = []
        for i, (t, name) in enumerate(ch):
            t2 = ch[i + 1][0] if i + 1 < len(ch) else end
            if name != "idle":
                segs.append({"start": t, "end": t2, "phase": name})
        spans[side] = segs
    downtime = (resume - stop) if stop is not None and resume is not None and resume >= stop else None
    return {"end": end, "phases": spans, "passes": passes, "faults": faults,
            "client": client, "downtime_ns": downtime, "stop": stop}


def timelines(cases):
    failed = [c for c in cases if c["status"] != "passed"][:TIMELINE_FAILURES]
    # the sample: passing cases that copied RAM (a refused pair has nothing to draw)
    passed = [c for c in cases if c["status"] == "passed" and
              any(PASS_RE.match(e[2]) for e in c.get("timeline") or [])]
    step = max(1, len(passed) // TIMELINE_SAMPLE)
    sample = passed[::step][:TIMELINE_SAMPLE]
    out = []
    for c in failed + sample:
        f = timeline_facts(c)
        out.append({"id": c["id"], "status": c["status"], "outcome": c.get("outcome"),
                    "error": c.get("error"), "mig_error": c.get("mig_error"),
                    "repro": c.get("repro"), "facts": f})
    return out


def failures(data, cases):
    rows, seen = [], set()
    for f in data["xml_failures"]:
        rows.append(f)
        if f["repro"]:
            seen.add(f["repro"])
    for c in cases:
        if c["status"] != "passed" and c.get("repro") not in seen:
            rows.append({"lane": c["lane"], "name": c["id"], "why": c.get("error") or "",
                         "repro": c.get("repro")})
            seen.add(c.get("repro"))
    return sorted(rows, key=lambda f: (f["lane"], f["name"], f["repro"] or ""))


def bench_points(docs):
    """[(transport, ram_mib, engine, mbps, downtime_ms)] of bench.py JSON."""
    pts = []
    for d in docs:
        doc = d.get("doc", d) if isinstance(d, dict) else d
        if not isinstance(doc, dict):   # parser-bench.py's list of rows: not drawn
            continue
        for row in doc.get("rows") or []:  # bench.py's transport x RAM table
            m = row.get("median")
            if m:
                # QEMU migrates over unix: its bar stands beside migcert's unix one
                qemu = row["transport"] == "qemu"
                pts.append({"transport": "unix" if qemu else row["transport"],
                            "ram_mib": row["ram_mib"], "engine": "qemu-7.2" if qemu else "migcert",
                            "mbps": m["gbps"] * 1000.0, "downtime_ms": m["downtime_ms"]})
        if "summary" not in doc or "runs" not in doc:
            continue
        for engine, s in sorted((doc.get("summary") or {}).items()):
            if s:
                pts.append({"transport": doc.get("transport", "unix"),
                            "ram_mib": doc.get("ram_mib", 1024), "engine": engine,
                            "mbps": s["mbps"], "downtime_ms": s["downtime_ms"]})
    return pts


def spice_bench(docs):
    """spice-bench.py's JSON (the one with "gaps"): the switch-over gap per
    migration kind and engine (median, min, max of the runs) and the display
    throughput; None without one."""
    for d in docs:
        doc = d.get("doc", d) if isinstance(d, dict) else d
        if not isinstance(doc, dict) or "gaps" not in doc:
            continue
        gaps, tput = [], None
        for name, x in sorted((doc.get("summary") or {}).items()):
            if name == "throughput":
                tput = x
            elif " " in name and x:
                kind, engine = name.split(" ", 1)
                gaps.append({"kind": kind, "engine": engine, "gap_ms": x["gap_ms"],
                             "min_ms": x.get("min_ms", x["gap_ms"]),
                             "max_ms": x.get("max_ms", x["gap_ms"]), "runs": x.get("runs")})
        # semi-seamless before seamless, migcert before QEMU
        gaps.sort(key=lambda g: (g["kind"] != "semi-seamless", g["kind"], g["engine"]))
        return {"gaps": gaps, "throughput": tput}
    return None


def sim_bench(docs):
    """sim-bench's JSON (the one with "per_core_minute"): simulated
    migrations one core completes per minute, beside its goal; None
    without one."""
    for d in docs:
        doc = d.get("doc", d) if isinstance(d, dict) else d
        if isinstance(doc, dict) and "per_core_minute" in doc:
            return {"per_core_minute": doc["per_core_minute"], "goal": doc.get("goal"),
                    "scenario": doc.get("scenario"), "runs": doc.get("runs"),
                    "cpu_ms_per_run": doc.get("cpu_ms_per_run")}
    return None


def load_history(folder):
    hist = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        docs = doc.get("bench", [])
        sb, sim = spice_bench(docs), sim_bench(docs)
        hist.append({"when": doc.get("when", Path(path).stem), "points": bench_points(docs),
                     "spice_gaps": {f"{g['kind']} {g['engine']}": g["gap_ms"]
                                    for g in (sb["gaps"] if sb else [])},
                     "sim_per_core_minute": sim["per_core_minute"] if sim else None})
    return hist


# ---------------------------------------------------------------- plots

def plt_mod():
    import matplotlib
    matplotlib.use("svg")
    matplotlib.rcParams["svg.hashsalt"] = "migcert"
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt
    return plt


def svg_uri(fig, plt):
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue().encode()).decode()


KNOWN_PHASES = ["setup", "iterate", "end", "full", "tail", "drain", "return-path-wait",
                "header", "configuration", "section", "vmdescription"]
PHASE_COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
                "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


def timeline_plot(t, plt):
    f = t["facts"]
    ms = 1e-6
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 3.4), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 2]})
    names = sorted({s["phase"] for side in f["phases"].values() for s in side})
    # one colour per phase name in every plot
    color = {n: PHASE_COLORS[(KNOWN_PHASES.index(n) if n in KNOWN_PHASES else
                              zlib.crc32(n.encode())) % len(PHASE_COLORS)] for n in names}
    for y, side in enumerate(("dst", "src")):
        for s in f["phases"][side]:
            ax.broken_barh([(s["start"] * ms, max(s["end"] - s["start"], 1) * ms)],
                           (y * 10 + 1, 8), color=color[s["phase"]])
    for n in names:
        ax.bar(0, 0, color=color[n], label=n)
    if f["downtime_ns"] is not None:
        ax.axvspan(f["stop"] * ms, (f["stop"] + f["downtime_ns"]) * ms, color="#d62728",
                   alpha=0.15, label="downtime")
    for x in f["faults"]:
        ax.axvline(x["t"] * ms, color="#d62728", linestyle="--", linewidth=1)
        ax.annotate("fault", (x["t"] * ms, 19), color="#d62728", fontsize=7)
    for x in f["client"]:
        ax.plot(x["t"] * ms, 21, marker="v", color="#555", markersize=4)
    if not names:
        why = t.get("mig_error") or t.get("error") or "no migration phase"
        ax.text(0.5, 0.5, f"nothing migrated: {why}"[:110], ha="center", va="center",
                transform=ax.transAxes, fontsize=7)
    ax.set_yticks([5, 15])
    ax.set_yticklabels(["dst", "src"])
    ax.set_ylim(0, 23)
    if names or f["downtime_ns"] is not None:
        ax.legend(fontsize=6, ncol=6, loc="upper center", bbox_to_anchor=(0.5, 1.35))
    if f["passes"]:
        xs = [p["t"] * ms for p in f["passes"]]
        ax2.bar(xs, [p["sent"] / 2**20 for p in f["passes"]], width=max(f["end"] * ms / 80, 1e-3),
                color="#4e79a7", label="MiB sent in the pass")
        ax3 = ax2.twinx()
        ax3.plot(xs, [p["dirtied"] for p in f["passes"]], "o-", color="#e15759",
                 label="pages dirtied")
        ax3.set_ylabel("pages", fontsize=7)
        ax2.set_ylabel("MiB", fontsize=7)
        ax2.legend(fontsize=6, loc="upper left")
        ax3.legend(fontsize=6, loc="upper right")
    else:
        ax2.text(0.5, 0.5, "no RAM pass", ha="center", va="center", transform=ax2.transAxes,
                 fontsize=8)
    ax2.set_xlabel("virtual time (ms)")
    ax2.set_xlim(0, f["end"] * ms * 1.02)
    return svg_uri(fig, plt)


def bench_plot(points, key, label, plt):
    fig, ax = plt.subplots(figsize=(5, 2.8))
    groups = sorted({(p["transport"], p["ram_mib"]) for p in points})
    engines = sorted({p["engine"] for p in points})
    width = 0.8 / max(len(engines), 1)
    for i, e in enumerate(engines):
        ys = [next((p[key] for p in points if p["engine"] == e and
                    (p["transport"], p["ram_mib"]) == g), 0) for g in groups]
        ax.bar([j + i * width for j in range(len(groups))], ys, width, label=e)
    ax.set_xticks([j + width * (len(engines) - 1) / 2 for j in range(len(groups))])
    ax.set_xticklabels([f"{t}, {m} MiB" for t, m in groups], fontsize=8)
    ax.set_ylabel(label)
    ax.legend(fontsize=7)
    return svg_uri(fig, plt)


def series_plot(hist, series, ylabel, plt, goal=None):
    """One line per series {name: [(history index, y)]} over the runs of
    reports/history/ (x: each run's time)."""
    fig, ax = plt.subplots(figsize=(9, 2.8))
    for name in sorted(series):
        xs, ys = zip(*series[name])
        ax.plot(xs, ys, "o-", label=name)
    if goal is not None:
        ax.axhline(goal, color="#888", linestyle="--", linewidth=1, label=f"goal {goal}")
    ax.set_xticks(range(len(hist)))
    ax.set_xticklabels([h["when"] for h in hist], rotation=30, fontsize=6, ha="right")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return svg_uri(fig, plt)


def trend_plot(hist, plt):
    series = {}
    for i, h in enumerate(hist):
        for p in h["points"]:
            series.setdefault(f"{p['engine']} {p['transport']} {p['ram_mib']} MiB", []).append(
                (i, p["mbps"]))
    return series_plot(hist, series, "MB/s", plt)


def spice_trend_plot(hist, plt):
    series = {}
    for i, h in enumerate(hist):
        for name, gap in sorted((h.get("spice_gaps") or {}).items()):
            series.setdefault(name, []).append((i, gap))
    return series_plot(hist, series, "switch-over gap ms", plt) if series else None


def sim_trend_plot(hist, plt, goal):
    pts = [(i, h["sim_per_core_minute"]) for i, h in enumerate(hist)
           if h.get("sim_per_core_minute") is not None]
    return (series_plot(hist, {"simulated migrations per core-minute": pts}, "per core-minute",
                        plt, goal) if pts else None)


def spice_gap_plot(sb, plt):
    """The switch-over gap per migration kind, migcert beside QEMU (bars:
    the median; whiskers: min to max of the runs)."""
    fig, ax = plt.subplots(figsize=(5, 2.8))
    kinds = list(dict.fromkeys(g["kind"] for g in sb["gaps"]))
    engines = sorted({g["engine"] for g in sb["gaps"]})
    width = 0.8 / max(len(engines), 1)
    for i, e in enumerate(engines):
        gs = [next((g for g in sb["gaps"] if g["kind"] == k and g["engine"] == e), None)
              for k in kinds]
        ys = [g["gap_ms"] if g else 0 for g in gs]
        err = [[g["gap_ms"] - g["min_ms"] if g else 0 for g in gs],
               [g["max_ms"] - g["gap_ms"] if g else 0 for g in gs]]
        ax.bar([j + i * width for j in range(len(kinds))], ys, width, yerr=err, capsize=3,
               label=e)
    ax.set_xticks([j + width * (len(engines) - 1) / 2 for j in range(len(kinds))])
    ax.set_xticklabels(kinds, fontsize=8)
    ax.set_ylabel("switch-over gap ms")
    ax.legend(fontsize=7)
    return svg_uri(fig, plt)


def sim_plot(sim, plt):
    """Simulated migrations per core-minute against the goal."""
    fig, ax = plt.subplots(figsize=(5, 1.6))
    ax.barh([0], [sim["per_core_minute"]], color="#4e79a7", label="this run")
    if sim.get("goal"):
        ax.axvline(sim["goal"], color="#d62728", linestyle="--", label=f"goal {sim['goal']}")
    ax.set_yticks([])
    ax.set_xlabel("simulated migrations per core-minute")
    ax.legend(fontsize=7, loc="lower right")
    return svg_uri(fig, plt)


# ---------------------------------------------------------------- output

def build(data, history):
    cases = all_cases(data)
    lanes = lane_rows(data)
    fails = failures(data, cases)
    return {
        "verdict": "failed" if any(r["failed"] for r in lanes) or fails else "passed",
        "lanes": lanes,
        "totals": {"passed": sum(r["passed"] for r in lanes),
                   "failed": sum(r["failed"] for r in lanes)},
        "matrix": matrix(cases),
        "faults": fault_table(cases),
        "timelines": timelines(cases),
        "failures": fails,
        "bench": bench_points(data["bench"]),
        "spice_bench": spice_bench(data["bench"]),
        "sim_bench": sim_bench(data["bench"]),
        "history": history,
        "certs": [{"dir": k, "doc": v, "kind": v.get("kind", "device")}
                  for k, v in sorted(data["certs"].items())],
        "links": {"coverage": data["coverage"], "coverage_summary": data["coverage_summary"],
                  "logs": sorted(data["logs"])},
    }


def render(report, out):
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE)),
                             autoescape=jinja2.select_autoescape(["j2", "html"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["ms"] = lambda ns: "-" if ns is None else f"{ns / 1e6:.1f} ms"
    env.filters["mib"] = lambda b: f"{b / 2**20:.1f} MiB"
    plt = plt_mod()
    plots = {"timelines": [timeline_plot(t, plt) for t in report["timelines"]]}
    if report["bench"]:
        plots["throughput"] = bench_plot(report["bench"], "mbps", "MB/s", plt)
        plots["downtime"] = bench_plot(report["bench"], "downtime_ms", "downtime ms", plt)
    if report["spice_bench"] and report["spice_bench"]["gaps"]:
        plots["spice_gap"] = spice_gap_plot(report["spice_bench"], plt)
    if report["sim_bench"]:
        plots["sim"] = sim_plot(report["sim_bench"], plt)
    if len(report["history"]) > 1:
        if any(h["points"] for h in report["history"]):
            plots["trend"] = trend_plot(report["history"], plt)
        t = spice_trend_plot(report["history"], plt)
        if t:
            plots["spice_trend"] = t
        goal = report["sim_bench"]["goal"] if report["sim_bench"] else None
        t = sim_trend_plot(report["history"], plt, goal)
        if t:
            plots["sim_trend"] = t
    css = (HERE / "report.css").read_text()
    js = (HERE / "report.js").read_text()
    out.mkdir(parents=True, exist_ok=True)
    page = env.get_template("index.html.j2").render(r=report, plots=plots, css=css, js=js)
    (out / "index.html").write_text(page)
    for c in report["certs"]:
        d = out / c["dir"]
        d.mkdir(parents=True, exist_ok=True)
        page = "certificate-spice.html.j2" if c["kind"] == "spice" else "certificate.html.j2"
        (d / "index.html").write_text(env.get_template(page).render(
            c=c["doc"], name=c["dir"], css=css, js=js))
    (out / "report-data.json").write_text(json.dumps(report, indent=1, sort_keys=True))


def main(argv):
    ap = argparse.ArgumentParser(prog="migcert report",
                                 description="the HTML report of a migcert run")
    ap.add_argument("dir", nargs="?", help="the lanes' results (default reports/out)")
    ap.add_argument("--merge", nargs="+", metavar="DIR",
                    help="join the results of these folders (CI shards) into one report")
    ap.add_argument("--out", help="where index.html goes (default: DIR, or reports/out)")
    ap.add_argument("--history", default="reports/history",
                    help="earlier runs' benchmark JSON, for the trend (default reports/history)")
    a = ap.parse_args(argv)
    if a.dir and a.merge:
        ap.error("give DIR or --merge DIR..., not both")
    dirs = a.merge or [a.dir or "reports/out"]
    out = Path(a.out or (dirs[0] if not a.merge else "reports/out"))
    try:
        data = load_inputs(dirs)
    except InputError as e:
        print(f"migcert report: {e}", file=sys.stderr)
        return 1
    report = build(data, load_history(a.history))
    render(report, out)
    print(f"report: {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
