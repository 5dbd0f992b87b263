"""test_report.py - `migcert report` (docs/report.md), as a person opens it.

A small run (a few scenarios, not the matrix: fake-nic-pairs under every
release pair, a case made to fail at one pair, a SPICE case in which only
the port channel breaks, a fault sweep on an idle guest, one certify case,
two SPICE certifications of `migcert vm`, one made to fail, and benchmark
figures) becomes a report; headless Chromium (Debian's `chromium`,
driven over the DevTools protocol with python3-websocket) opens it: no
console error or exception, the compatibility matrix with one cell per
(device or SPICE channel) x source x destination release, the failing
case's REPRO line on the page with its copy button working, the SPICE
grids failing only the channel that broke, the SPICE and simulator
benchmarks drawn with their trend.  The
screenshot stays in reports/out/report-screenshot.png (a CI artifact).
Also: the shards of a run merged (`migcert report --merge`: the small run
with its pairs as two shards) give the very report of the unsharded run,
and a certificate page (device or SPICE
server) names what was certified.

Rerun: /usr/bin/python3 -m pytest harness/pytest/test_report.py
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAIRS = "scenarios/versions/fake-nic-pairs.yaml"
SWEPT = "scenarios/precopy/idle-guest.yaml"
SHOT = REPO / "reports" / "out" / "report-screenshot.png"
# seamless, the target refuses the port channel's migration data; the copy
# in small_run no longer expects that: only its PORT channel fails
PORT_LOST = "scenarios/spice-seamless/blob-port-newer-version.yaml"


def _bin():
    b = Path(os.environ.get("MIGCERT_BUILD", "build"))
    return (b if b.is_absolute() else REPO / b) / "migcert"


def _run(*args, timeout=600):
    return subprocess.run([str(_bin())] + [str(a) for a in args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _failing_scenario(d):
    """basic precopy that expects to fail: it completes, so the case fails."""
    text = (REPO / SWEPT).read_text().replace("outcome: completed", "outcome: failed")
    p = d / "expects-failure.yaml"
    p.write_text(text)
    return p


def _port_lost_scenario(d):
    text = (REPO / PORT_LOST).read_text()
    assert "client-channel-lost: port" in text
    p = d / "port-lost.yaml"
    p.write_text(text.replace("client-channel-lost: port", ""))
    return p


def _certify_spice(out, k, wrong_target=False):
    """`migcert certify --spice` against two `migcert vm --spice` started per
    case (the target at a SPICE address nobody listens on when asked)."""
    d = Path(tempfile.mkdtemp(prefix="mc-rp-", dir="/tmp"))  # unix socket paths are short
    vm = f"{_bin()} vm --ram 32M"
    src = f"{vm} --qmp unix:{d}/src.qmp --spice unix=on,addr={d}/src.spice,disable-ticketing=on"
    dst = (f"{vm} --qmp unix:{d}/dst.qmp --spice unix=on,addr={d}/dst.spice,disable-ticketing=on "
           f"--incoming unix:{d}/mig.sock")
    dst_spice = f"unix:{d}/{'nobody' if wrong_target else 'dst'}.spice"
    try:
        return _run("certify", "--spice", "--src-qmp", f"unix:{d}/src.qmp", "--src-spice",
                    f"unix:{d}/src.spice", "--dst-qmp", f"unix:{d}/dst.qmp", "--dst-spice", dst_spice,
                    "--migrate-uri", f"unix:{d}/mig.sock", "--src-cmd", src, "--dst-cmd", dst,
                    "-k", k, "--out", out, timeout=300)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    if not os.access(_bin(), os.X_OK):
        pytest.fail(f"{_bin()} is not built", pytrace=False)
    d = tmp_path_factory.mktemp("report")
    bad = _failing_scenario(d)
    out = d / "out"
    out.mkdir()
    r = _run("run", PAIRS, "--pairs", "all", "--json", out / "run-pairs.json",
             "--junit", out / "full-pairs.xml")
    assert r.returncode == 0, r.stdout + r.stderr
    r = _run("run", bad, "--pair", "1.1:2.0", "--json", out / "run-bad.json",
             "--junit", out / "full-bad.xml")
    assert r.returncode == 1, r.stdout + r.stderr     # the failing case
    r = _run("run", SWEPT, "--sweep", "--fault", "src:mig/vmstate/save",
             "--json", out / "full-sweeps.json")
    assert r.returncode == 0, r.stdout + r.stderr
    r = _run("certify", "--device", _bin().parent / "fakes/vendor/good.so", "-k", "load",
             "--out", out / "certify-good")
    assert r.returncode == 0, r.stdout + r.stderr
    r = _run("run", _port_lost_scenario(d), "--json", out / "run-spice.json",
             "--junit", out / "full-spice.xml")
    assert r.returncode == 1, r.stdout + r.stderr     # its PORT channel failed
    r = _certify_spice(out / "certify-spice-vm", "link.*")
    assert r.returncode == 0, r.stdout + r.stderr
    r = _certify_spice(out / "certify-spice-bad", "migrate.semi-seamless", wrong_target=True)
    assert r.returncode == 1, r.stdout + r.stderr
    # benchmark figures in the shape `make bench` keeps them (harness/bench/
    # bench.py --json; made-up numbers: this checks the drawing, not a speed)
    (out / "bench").mkdir()
    hist = d / "history"
    hist.mkdir()
    for n, gbps in enumerate((0.9, 1.1)):
        doc = {"rows": [
            {"transport": t, "ram_mib": 64, "status": "ok", "runs": [],
             "median": {"gbps": g, "downtime_ms": dt, "total_time_ms": 60.0}}
            for t, g, dt in (("qemu", 1.0, 10.0), ("unix", gbps, 12.0), ("local", 2.0, 5.0))]}
        (hist / f"bench-2026-01-0{n + 1}.json").write_text(
            json.dumps({"when": f"2026-01-0{n + 1}", "bench": [doc]}))
    (out / "bench" / "bench-unix-64.json").write_text(json.dumps(doc))
    # the SPICE and simulator figures (spice-bench.py, sim-bench --json) and
    # parser-bench.py's list of rows (not drawn, but read); earlier runs'
    # in the history for their trend
    def spice_doc(m, q):
        return {"gaps": {}, "throughput": [], "summary": {
            "semi-seamless migcert": {"gap_ms": m, "min_ms": m - 1, "max_ms": m + 1, "runs": 3},
            "semi-seamless qemu-7.2": {"gap_ms": q, "min_ms": q - 2, "max_ms": q + 2, "runs": 3},
            "seamless migcert": {"gap_ms": m / 2, "min_ms": m / 2, "max_ms": m / 2, "runs": 3},
            "seamless qemu-7.2": {"gap_ms": q / 2, "min_ms": q / 2, "max_ms": q / 2, "runs": 3},
            "throughput": {"per_s": 4321.0, "min": 4000.0, "max": 4500.0, "runs": 3}}}

    def sim_doc(n):
        return {"scenario": "scenarios/precopy/basic.yaml", "runs": 20, "cpu_ms_per_run": 20.0,
                "per_core_minute": n, "goal": 1000}
    (out / "bench" / "spice-bench.json").write_text(json.dumps(spice_doc(12.5, 30.0)))
    (out / "bench" / "sim-bench.json").write_text(json.dumps(sim_doc(2345)))
    (out / "bench" / "parser-bench.json").write_text(json.dumps([{"parser": "x", "ratio": 10.0}]))
    for n in (1, 2):
        h = hist / f"bench-2026-01-0{n}.json"
        old = json.loads(h.read_text())
        old["bench"] += [spice_doc(10.0 + n, 30.0), sim_doc(2000 + n * 100), []]
        h.write_text(json.dumps(old))
    r = _run("report", out, "--history", hist)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"report: {out / 'index.html'}" in r.stdout
    data = json.loads((out / "report-data.json").read_text())
    doc = json.loads((out / "run-pairs.json").read_text())
    failing = json.loads((out / "run-bad.json").read_text())["cases"]
    assert [c["status"] for c in failing] == ["failed"]
    assert failing, "the run has no failing case to look for"
    spice = json.loads((out / "run-spice.json").read_text())["cases"]
    return {"dir": d, "out": out, "data": data, "cases": doc["cases"], "failing": failing,
            "bad": bad, "spice": spice}


class DevTools:
    """A headless Chromium and one page, over the DevTools protocol."""

    def __init__(self, profile):
        import websocket  # python3-websocket
        exe = shutil.which("chromium")
        if not exe:
            pytest.fail("chromium is not installed (ci/deps installs it)", pytrace=False)
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={profile}",
             "--window-size=1280,2000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60   # a hang guard, not a speed figure
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert self.proc.poll() is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.05)
        port, path = port_file.read_text().split("\n")[:2]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=60)
        self.n = 0
        self.events = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]

    def call(self, method, session=None, **params):
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self.n:
                assert "error" not in m, f"{method}: {m['error']}"
                return m.get("result", {})
            self.events.append(m)

    def page(self, method, **params):
        return self.call(method, session=self.session, **params)

    def wait_event(self, name):
        for i, m in enumerate(self.events):
            if m.get("method") == name:
                return self.events.pop(i)
        while True:
            m = json.loads(self.ws.recv())
            if m.get("method") == name:
                return m
            self.events.append(m)

    def eval(self, expr):
        r = self.page("Runtime.evaluate", expression=expr, returnByValue=True,
                      awaitPromise=True)
        assert "exceptionDetails" not in r, r["exceptionDetails"]
        return r["result"].get("value")

    def errors(self):
        out = []
        for m in self.events:
            p = m.get("params", {})
            if m.get("method") == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(f"{d.get('text')} {d.get('exception', {}).get('description', '')}")
            elif m.get("method") == "Runtime.consoleAPICalled" and p.get("type") in (
                    "error", "assert"):
                out.append(str(p.get("args")))
            elif m.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(p["entry"].get("text"))
        return out

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="migcert-chromium-")
    b = DevTools(profile)
    yield b
    b.close()
    shutil.rmtree(profile, ignore_errors=True)


def _open(browser, path):
    browser.events.clear()
    for domain in ("Page", "Runtime", "Log"):
        browser.page(f"{domain}.enable")
    browser.page("Page.navigate", url=path.as_uri())
    browser.wait_event("Page.loadEventFired")


def test_report_opens_in_chromium_with_matrix_and_repro(small_run, browser):
    _open(browser, small_run["out"] / "index.html")
    assert browser.eval("document.getElementById('verdict').textContent") == "failed"
    # the matrix: fake-nic (a device) x 4 source x 4 destination releases
    releases = sorted({c["src"] for c in small_run["cases"]})
    assert len(releases) == 4
    grids = browser.eval("document.querySelectorAll('table.matrix').length")
    assert grids == len(small_run["data"]["matrix"]["grids"]) >= 1
    assert browser.eval("document.querySelectorAll('table.matrix td.cell').length") == \
        grids * len(releases) ** 2
    # a pair the rules refuse shows the rule; a cell of the failing case shows failed
    assert browser.eval("document.querySelectorAll('td.cell.refused small').length") > 0
    assert browser.eval("document.querySelectorAll('td.cell.failed').length") > 0
    text = browser.eval("document.body.innerText")
    for c in small_run["failing"]:
        assert c["repro"] in text, f"no REPRO line for {c['id']}"
    # the fault table lists the swept point; timelines are drawn
    assert "src:mig/vmstate/save" in browser.eval(
        "document.getElementById('faults').nextElementSibling.nextElementSibling.innerText")
    assert browser.eval("document.querySelectorAll('.timeline img').length") >= 2
    # benchmarks: throughput and downtime, migcert beside QEMU, and the trend
    for alt in ("throughput", "downtime", "throughput trend"):
        assert browser.eval(f"document.querySelector('img[alt=\"{alt}\"]').naturalWidth") > 0
    rows = browser.eval("[...document.querySelectorAll('#bench ~ table tr')].map(r => r.innerText)")
    assert any("unix" in r and "qemu-7.2" in r for r in rows), rows
    assert any("unix" in r and "migcert" in r and "1100" in r for r in rows), rows
    # the copy button of a failure: no error, the REPRO line selected or copied
    browser.eval("document.querySelector('#failures ~ .failure button.copy').click()")
    assert not browser.errors(), browser.errors()
    shot = browser.page("Page.captureScreenshot", format="png",
                        captureBeyondViewport=True)["data"]
    SHOT.parent.mkdir(parents=True, exist_ok=True)
    SHOT.write_bytes(base64.b64decode(shot))
    assert SHOT.stat().st_size > 10000


def test_report_certificate_page(small_run, browser):
    page = small_run["out"] / "certify-good" / "index.html"
    assert page.exists()
    _open(browser, page)
    text = browser.eval("document.body.innerText")
    cert = json.loads((small_run["out"] / "certify-good" / "report.json").read_text())
    assert len(cert["plugin_sha256"]) == 64
    for want in (cert["plugin"], cert["plugin_sha256"], cert["suite_version"],
                 cert["releases_tested"][0]["release"], "load"):
        assert want in text
    assert browser.eval("document.getElementById('verdict').textContent") == "certified"
    assert not browser.errors(), browser.errors()


def test_report_matrix_fails_only_the_broken_spice_channel(small_run, browser):
    """The SPICE case lost only its port channel: the oracle's verdict per
    channel is in the run JSON, and the matrix marks that channel's cell
    failed and every other channel's cell of the case passed."""
    [c] = small_run["spice"]
    assert c["status"] == "failed" and "6 of its 7 channels" in c["error"]
    want = {ch: "failed" if ch == "PORT" else "passed" for ch in c["spice_channels"]}
    assert len(want) == 7 and c["spice_channel_verdicts"] == want
    assert list(c["spice_channel_errors"]) == ["PORT"]
    _open(browser, small_run["out"] / "index.html")
    grids = browser.eval("""Object.fromEntries([...document.querySelectorAll('table.matrix')]
        .filter(t => t.dataset.item.startsWith('SPICE channel '))
        .map(t => [t.dataset.item.slice(14), [...t.querySelectorAll('td.cell:not(.none)')]
                   .map(td => [td.className, td.title])]))""")
    assert sorted(grids) == sorted(want), grids
    for ch, cells in grids.items():
        assert [cls for cls, _ in cells] == [f"cell {want[ch]}"], (ch, cells)
    assert "6 of its 7 channels" in grids["PORT"][0][1]
    assert not browser.errors(), browser.errors()


def test_report_spice_certificate_pages(small_run, browser):
    """`certify --spice` against `migcert vm`: the index lists each SPICE
    certificate; its page names the endpoint (each side's addresses, command
    and version), the suite version, every case with its rule and verdict,
    and a failing case's REPRO line with its copy button."""
    out = small_run["out"]
    _open(browser, out / "index.html")
    links = browser.eval("[...document.querySelectorAll('p.cert.spice a')].map(a => a.getAttribute('href'))")
    assert links == ["certify-spice-bad/index.html", "certify-spice-vm/index.html"], links
    for name, verdict in (("certify-spice-vm", "certified"), ("certify-spice-bad", "not certified")):
        cert = json.loads((out / name / "report.json").read_text())
        assert cert["kind"] == "spice" and cert["verdict"] == verdict
        _open(browser, out / name / "index.html")
        assert browser.eval("document.getElementById('verdict').textContent") == verdict
        text = browser.eval("document.body.innerText")
        ep = cert["endpoint"]
        for want in (ep["source"]["qmp"], ep["target"]["spice"], ep["source"]["version"],
                     ep["migrate_uri"], cert["suite_version"]):
            assert want and want in text, want
        rows = browser.eval("[...document.querySelectorAll('table.cases tr')].slice(1)"
                            ".map(r => [...r.cells].map(c => c.innerText))")
        assert [r[0] for r in rows] == [k["name"] for k in cert["cases"]]
        for row, k in zip(rows, cert["cases"]):
            assert row[1] == k["status"] and row[2].startswith(k["rule"] + ": ") and k["rule_text"] in row[2]
        assert not browser.errors(), browser.errors()
    # the failing case: its rule and REPRO line, the copy button works
    assert any(r[0] == "migrate.semi-seamless" and r[1] == "fail" and "spice-semi-seamless" in r[2]
               for r in rows), rows
    bad = json.loads((out / "certify-spice-bad" / "report.json").read_text())["cases"][0]
    assert bad["repro"] in browser.eval("document.body.innerText")
    browser.eval("document.querySelector('button.copy').click()")
    assert not browser.errors(), browser.errors()


def test_report_spice_and_simulator_benchmarks(small_run, browser):
    """The SPICE switch-over gap (migcert beside QEMU, per migration kind)
    and the simulator's migrations per core-minute are drawn, with their
    trend over reports/history/."""
    _open(browser, small_run["out"] / "index.html")
    for alt in ("SPICE switch-over gap", "simulator migrations per core-minute",
                "SPICE switch-over gap trend", "simulator trend"):
        assert browser.eval(f"document.querySelector('img[alt=\"{alt}\"]').naturalWidth") > 0, alt
    rows = browser.eval("[...document.querySelectorAll('table.spice-gaps tr')].slice(1)"
                        ".map(r => [...r.cells].map(c => c.innerText))")
    assert [r[:3] for r in rows] == [["semi-seamless", "migcert", "12.50"],
                                     ["semi-seamless", "qemu-7.2", "30.00"],
                                     ["seamless", "migcert", "6.25"], ["seamless", "qemu-7.2", "15.00"]]
    assert browser.eval("document.querySelector('.sim-figure').textContent") == "2345"
    assert "4321 draw messages/s" in browser.eval("document.body.innerText")
    hist = small_run["data"]["history"]
    assert [h["sim_per_core_minute"] for h in hist] == [2100, 2200]
    assert [h["spice_gaps"]["semi-seamless migcert"] for h in hist] == [11.0, 12.0]
    assert not browser.errors(), browser.errors()


def test_report_merged_shards_equal_the_unsharded_run(small_run, tmp_path):
    """small_run's folder is the unsharded run; the same inputs with its
    pairs run as two shards (shard 1 in a folder with every other input,
    shard 2 alone), merged, give the very report small_run's gave."""
    out = small_run["out"]
    shards = [tmp_path / "s1", tmp_path / "s2"]
    shutil.copytree(out, shards[0])
    shards[1].mkdir()
    for i, d in enumerate(shards, 1):
        for f in ("run-pairs.json", "full-pairs.xml"):
            (d / f).unlink(missing_ok=True)
        _run("run", PAIRS, "--pairs", "all", "--json", d / "run-pairs.json",
             "--junit", d / "full-pairs.xml", "--shard", f"{i}/2")
    a = json.loads((shards[0] / "run-pairs.json").read_text())["cases"]
    b = json.loads((shards[1] / "run-pairs.json").read_text())["cases"]
    assert a and b and not {c["id"] for c in a} & {c["id"] for c in b}
    assert sorted(c["id"] for c in a + b) == sorted(c["id"] for c in small_run["cases"])
    r = _run("report", "--merge", *shards, "--out", tmp_path / "rm", "--history",
             small_run["dir"] / "history")
    assert r.returncode == 0, r.stderr
    dw = json.loads((out / "report-data.json").read_text())
    dm = json.loads((tmp_path / "rm" / "report-data.json").read_text())
    assert dm == dw
    assert (tmp_path / "rm" / "index.html").read_bytes() == (out / "index.html").read_bytes()
    pages = sorted(p.relative_to(out) for p in out.glob("certify-*/index.html"))
    assert len(pages) == 3, pages
    for p in pages:
        assert (tmp_path / "rm" / p).read_bytes() == (out / p).read_bytes(), p


def test_report_unreadable_input_is_a_clear_error(tmp_path):
    (tmp_path / "run-x.json").write_text("{not json")
    r = _run("report", tmp_path)
    assert r.returncode == 1
    assert "cannot read" in r.stderr and "run-x.json" in r.stderr
    r = _run("report", tmp_path / "missing")
    assert r.returncode == 1 and "is not a folder" in r.stderr
