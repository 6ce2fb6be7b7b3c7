"""The GitHub Actions workflow: it lints, and its pull-request commands run as it runs them.

The commands are read from `.github/workflows/benchmark.yml` itself and run in a scratch clone
on a branch whose merge base with main is not its parent, at the smoke budget instead of ci
(the one substitution, checked to apply: a smaller run and a wide threshold, since at the
smoke budget the machine's noise could leave the verdict "cannot tell", as it once did in CI).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scratch_repo import commit, git, harness_repo

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "benchmark.yml"
ACTIONLINT = Path(sys.executable).with_name("actionlint")


def all_steps():
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]["gate"]["steps"]


def steps():
    """The steps with an id, by id."""
    return {s["id"]: s for s in all_steps() if "id" in s}


def lint(path):
    if not ACTIONLINT.exists():
        pytest.skip("actionlint is not installed here (./run.sh setup installs it)")
    return subprocess.run([str(ACTIONLINT), str(path)], capture_output=True, text=True,
                          check=False, timeout=120)  # fmt: skip


def test_the_workflow_passes_actionlint_and_a_broken_one_does_not(tmp_path):
    assert lint(WORKFLOW).returncode == 0, lint(WORKFLOW).stdout
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("steps.compare.conclusion",
                                                   "steps.comparison.conclusion"))  # fmt: skip
    result = lint(broken)
    assert result.returncode == 1 and 'property "comparison" is not defined' in result.stdout


def test_pull_requests_compare_their_head_with_the_merge_base_from_a_full_clone():
    found = steps()
    checkout = next(s for s in all_steps() if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    assert "pull_request.head.sha" in checkout["with"]["ref"]
    assert found["compare"]["if"] == "github.event_name == 'pull_request'"
    assert '--base "merge-base:origin/$BASE_REF"' in found["compare"]["run"]
    assert "${{" not in found["compare"]["run"]  # the branch name comes through the environment


def venv_flags(repo):
    """The environment under which ./run.sh finds the linked .venv set up, or skip."""
    stamp = ROOT / ".venv" / ".installed"
    if not stamp.is_file():
        pytest.skip("no .venv set up by ./run.sh here")
    text = stamp.read_text()
    pins = (repo / "pyproject.toml").read_text() + (repo / "constraints.txt").read_text()
    if not text.startswith(pins):
        pytest.skip("the .venv was set up from other pins: run ./run.sh setup")
    flags = dict(word.split("=") for word in text.removeprefix(pins).split())
    return {"CNNBENCH_BACKENDS": flags["backends"], "CNNBENCH_CLUSTER": flags["cluster"]}


def run(step, repo, env, swap=None, extra=""):
    command = step["run"]
    if swap:
        assert swap[0] in command, f"the workflow no longer runs {swap[0]!r}: mend this test"
        command = command.replace(*swap)
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", command + extra], cwd=repo, env=env,
                          capture_output=True, text=True, check=False, timeout=900)  # fmt: skip
    assert done.returncode == 0, f"{command + extra}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
@pytest.mark.timed
@pytest.mark.real_data
def test_the_pull_request_commands_pass_on_a_branch_whose_merge_base_is_not_its_parent(tmp_path):
    upstream = tmp_path / "upstream"
    fork_point = harness_repo(upstream)
    git(upstream, "checkout", "-q", "-b", "feature")
    parent = commit(upstream, "feature: first")
    commit(upstream, "feature: second")
    git(upstream, "checkout", "-q", "main")
    commit(upstream, "main moves on")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(upstream), str(clone)], check=True, timeout=120)
    git(clone, "checkout", "-q", "feature")
    (clone / ".venv").symlink_to(ROOT / ".venv")
    env = {**os.environ, **venv_flags(clone), "BASE_REF": "main"}
    env.pop("PYTEST_ADDOPTS", None)
    found = steps()

    # What is tested is the command and its base, not the gate's power (docs/comparison.md):
    # 64 steps a side and a wide threshold, so that the same code on both sides passes here
    # however this shared machine's speed moves.
    smoke = (
        "--archs model_1_a,model_1_b --budget ci",
        "--archs model_1_a --budget smoke --epochs 4 --train-samples 2048 --threshold 50%",
    )
    run(found["compare"], clone, env, smoke)
    document = json.loads((clone / "results" / "ci" / "compare" / "comparison.json").read_text())
    assert document["base"]["commit"] == fork_point != parent
    assert document["base"]["label"].startswith("merge base of HEAD and origin/main")
    assert f"merge base of HEAD and origin/main ({fork_point[:7]})" in (
        clone / "results" / "ci" / "summary.md").read_text()  # fmt: skip

    at_smoke = " --cnnbench-budget=smoke --cnnbench-archs=model_1_a --cnnbench-gate=off"
    run(found["gate"], clone, env, extra=at_smoke)
    history = run(found["history"], clone, env)
    assert "1 commits" in history.stdout
    assert (clone / "results" / "history-report" / "history_model_1_a.png").is_file()
