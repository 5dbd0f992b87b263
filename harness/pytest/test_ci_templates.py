"""test_ci_templates.py - the CI templates in ci/ parse (python3-yaml) and
have the shape each CI documents, and split the release-pair matrix the
way `migcert run --shard I/N` and `migcert report --merge` expect:

  ci/github-actions.yml  jobs with runs-on and steps (each `uses` or `run`);
                         a shard job whose strategy.matrix lists shards 1..N
                         and runs `--shard ${{ matrix.shard }}/N`, uploading
                         its results; a report job that `needs` it, runs even
                         when a shard failed, downloads the shards' artifacts
                         and runs `migcert report --merge`, uploading the report.
  ci/gitlab-ci.yml       stages; every job's stage listed; a job with
                         `parallel: N` running `--shard
                         "$CI_NODE_INDEX/$CI_NODE_TOTAL"` with artifacts; a
                         later stage's job that needs it and runs `migcert
                         report --merge`.

Rerun: /usr/bin/python3 -m pytest harness/pytest/test_ci_templates.py
"""
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _load(name):
    return yaml.safe_load((REPO / "ci" / name).read_text())


def _runs(steps):
    return "\n".join(s.get("run", "") for s in steps)


def test_ci_github_actions_shards_and_merge():
    doc = _load("github-actions.yml")
    # YAML 1.1 reads the key `on` as True
    assert doc.get("on", doc.get(True)), "no trigger"
    jobs = doc["jobs"]
    for name, job in jobs.items():
        assert "runs-on" in job, name
        assert job["steps"], name
        for s in job["steps"]:
            assert ("uses" in s) != ("run" in s), f"{name}: a step needs uses or run: {s}"
    shard_jobs = [n for n, j in jobs.items() if "--shard" in _runs(j["steps"])]
    assert len(shard_jobs) == 1
    sj = jobs[shard_jobs[0]]
    shards = sj["strategy"]["matrix"]["shard"]
    m = re.search(r"--shard \$\{\{ matrix\.shard \}\}/(\d+)", _runs(sj["steps"]))
    assert m, "the shard job does not pass its matrix entry to --shard"
    assert shards == list(range(1, int(m.group(1)) + 1))
    assert "--pairs all" in _runs(sj["steps"]) and "--json" in _runs(sj["steps"])
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in sj["steps"])
    merge = [n for n, j in jobs.items() if "migcert report --merge" in _runs(j["steps"])]
    assert len(merge) == 1
    mj = jobs[merge[0]]
    needs = mj["needs"] if isinstance(mj["needs"], list) else [mj["needs"]]
    assert shard_jobs[0] in needs
    assert "always()" in mj.get("if", "")
    assert any(s.get("uses", "").startswith("actions/download-artifact") for s in mj["steps"])
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in mj["steps"])


def test_ci_gitlab_parallel_and_merge_stage():
    doc = _load("gitlab-ci.yml")
    stages = doc["stages"]
    reserved = {"stages", "default", "variables", "include", "workflow", "image"}
    jobs = {k: v for k, v in doc.items() if k not in reserved and not k.startswith(".")}
    for name, job in jobs.items():
        assert job.get("stage") in stages, f"{name}: stage {job.get('stage')} not in {stages}"
        assert isinstance(job["script"], list) and job["script"], name
    par = [n for n, j in jobs.items() if "parallel" in j]
    assert len(par) == 1
    pj = jobs[par[0]]
    assert isinstance(pj["parallel"], int) and 2 <= pj["parallel"] <= 200
    script = "\n".join(pj["script"])
    assert '--shard "$CI_NODE_INDEX/$CI_NODE_TOTAL"' in script and "--pairs all" in script
    assert pj["artifacts"]["paths"]
    merge = [n for n, j in jobs.items() if "migcert report --merge" in "\n".join(j["script"])]
    assert len(merge) == 1
    mj = jobs[merge[0]]
    assert stages.index(mj["stage"]) > stages.index(pj["stage"])
    needs = [x["job"] if isinstance(x, dict) else x for x in mj["needs"]]
    assert par[0] in needs
    assert mj.get("when") == "always"
    assert mj["artifacts"]["paths"]
