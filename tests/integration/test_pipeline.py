"""The DVC pipeline end to end on a tiny configuration, in a temporary git repository built once per module, and a
copy of it for every test that changes something, so that each test passes alone and in any order."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dvc_repos import (ENV, HEADLINE_STAGES, METRICS_FILES, TINY, git_commit, make_repo, run, set_params,
                       stages_ran)
from helpers import default_sigint, dvc_command, merge
from unlearning.models.delta import weights_sha256
from unlearning.report.attacks import MIN_GAP

pytestmark = pytest.mark.integration


# The module's repository: the headline run, one sweep triple, one RMU variant and one baseline, on a 6-layer model.
RUNS = {"sweep": [0], "methods": ["rmu"], "baselines": ["npo"], "model": {"scratch": {"num_hidden_layers": 6}},
        "attack": {"models": ["target", "unlearned", "method/npo"], "steps": [2, 4]}}


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory):
    """The module's repository after its first `dvc repro`; tests that change it take a copy (`repo`)."""
    return make_repo(tmp_path_factory.mktemp("pipeline") / "repo", merge(json.loads(json.dumps(TINY)), RUNS))


@pytest.fixture
def repo(base_repo, tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(base_repo, copy, symlinks=True)
    return copy


def test_repro_runs_every_stage_and_writes_the_report(base_repo):
    repo = base_repo
    ran = stages_ran((repo.parent / "first_run.log").read_text())
    assert ran == HEADLINE_STAGES | {"unlearn_sweep@0", "score_sweep@0", "unlearn_method@rmu", "score_method@rmu",
                                     "unlearn_baseline@npo", "score_baseline@npo", "attack@target",
                                     "attack@unlearned", "attack@method/npo"}
    metrics = json.loads((repo / "reports" / "metrics" / "detail.json").read_text())
    for key in ("before", "after"):
        summary = metrics[key]
        for name in ("final", "task_aggregate", "mia_auc", "mia_score", "mmlu"):
            assert 0.0 <= summary[name] <= 1.0
        assert len([v for split in summary["scores"].values() for task in split.values() for v in task.values()]) == 12
    # what `dvc exp show` lists: the headline run's five scores, and which target and numerics made them
    headline = json.loads((repo / "reports" / "metrics.json").read_text())
    after = metrics["after"]
    assert headline == {"final": round(after["final"], 2), "task": round(after["task_aggregate"], 2),
                        "auc": round(after["mia_auc"], 2), "mia": round(after["mia_score"], 2),
                        "mmlu": round(after["mmlu"], 2), "target": weights_sha256(repo / "models" / "target")[:8],
                        "numerics": metrics["computed"]["numerics"]}
    assert metrics["computed"]["apart"] == {} and metrics["computed"]["description"].startswith("portable (AVX2")
    def metrics_show(*targets) -> dict:
        (workspace,) = json.loads(run([sys.executable, "-m", "dvc", "metrics", "show", "--json", *targets],
                                      repo).stdout).values()
        return workspace["data"]
    assert list(metrics_show()) == ["reports/metrics.json"]
    runs = metrics_show("reports/metrics/runs.json")["reports/metrics/runs.json"]["data"]
    assert set(runs["runs"]) == {"target", "headline", "sweep/0", "sweep/1", "method/adaptive_rmu", "method/rmu",
                                 "method/npo", "seed/0"}
    assert (repo / "reports" / "report.md").read_text().startswith("# Adaptive RMU unlearning report")
    for png in ("scores.png", "roc.png", "training.png"):
        assert (repo / "reports" / "plots" / png).stat().st_size > 1000
    assert (repo / "models" / "target" / "model.safetensors").is_file()
    assert run([sys.executable, "-m", "dvc", "status", "-q"], repo, check=False).returncode == 0
    # the whole default pipeline ran with HF_HUB_OFFLINE=1 and every socket refused, and tried none
    assert not (repo.parent / "network_attempts.log").exists()


def test_the_attacks_reach_the_report_with_ablation_for_rmu_only_and_no_pii_value(base_repo):
    detail = json.loads((base_repo / "reports" / "metrics" / "detail.json").read_text())
    attacks = detail["attacks"]
    assert list(attacks) == ["target", "unlearned", "method/npo"]
    assert set(attacks["unlearned"]["attacks"]) == {"relearn@2", "relearn@4", "benign@2", "benign@4", "ablation"}
    assert set(attacks["method/npo"]["attacks"]) == {"relearn@2", "relearn@4", "benign@2", "benign@4"}
    took = attacks["unlearned"]["target"]["forget"] - attacks["unlearned"]["unlearned"]["forget"]
    for attacked in attacks["unlearned"]["attacks"].values():
        assert 0 <= attacked["forget"] <= 1
        assert (attacked["recovery"] is None) == (took < MIN_GAP)   # the tiny target may know nothing of half B
    report = (base_repo / "reports" / "report.md").read_text()
    assert "## Is it really forgotten?" in report and "| method/npo | none |" in report
    assert (base_repo / "reports" / "plots" / "attack_recovery.png").stat().st_size > 1000
    raw = (base_repo / "reports" / "eval" / "attack" / "unlearned" / "attack.json").read_text()
    assert "generation" not in raw and "@" not in raw.replace('"', "")   # ids and numbers: no e-mail, no text


def test_every_stage_read_exactly_the_params_dvc_yaml_lists_for_it(base_repo):
    """The first run logged, per stage process, the keys the stage declared (its dvc.yaml params: test_sync.py)
    and those it read; reading an undeclared key would have stopped it."""
    reads = [json.loads(line) for line in (base_repo.parent / "params_read.jsonl").read_text().splitlines()]
    assert len(reads) == len(stages_ran((base_repo.parent / "first_run.log").read_text()))
    for record in reads:
        assert record["read"] == record["declared"], record["argv"]


def changed_stages(repo: Path) -> set[str]:
    status = json.loads(run([sys.executable, "-m", "dvc", "status", "--json"], repo).stdout)
    return set(status)


@pytest.mark.parametrize("module, importers", [
    ("unlearning/methods/output_loss/npo.py", {"unlearn_baseline@npo"}),
    ("unlearning/methods/rmu.py", {"unlearn", "unlearn_sweep@0", "unlearn_method@rmu"}),
    ("unlearning/evaluation/pii.py", {"target", "evaluate@target", "evaluate@unlearned", "score_sweep@0",
                                      "score_method@rmu", "score_baseline@npo", "attack@target", "attack@unlearned",
                                      "attack@method/npo", "report"}),
])
def test_editing_a_library_module_makes_exactly_the_stages_that_import_it_stale(repo, module, importers):
    assert changed_stages(repo) == set()
    with (repo / module).open("a") as f:
        f.write("\n# edited\n")
    assert changed_stages(repo) == importers


def test_a_baseline_key_reruns_only_the_baselines(repo):
    set_params(repo, {"unlearn": {"npo_beta": 0.2}})
    assert stages_ran(run([sys.executable, "-m", "dvc", "repro"], repo).stdout) == {
        "check_params", "unlearn_baseline@npo", "score_baseline@npo", "attack@method/npo", "report"}


def test_forced_reruns_reproduce_every_output_byte_for_byte(repo):
    first = {name: (repo / name).read_bytes() for name in METRICS_FILES}
    forced = ["prepare", "target", "unlearn", "unlearn_baseline@npo", "evaluate@unlearned", "mia@unlearned"]
    ran = stages_ran(run([sys.executable, "-m", "dvc", "repro", "-f", "-s", *forced], repo).stdout)
    assert ran == set(forced)
    # every forced stage wrote what dvc.lock recorded, so nothing downstream is out of date
    assert run([sys.executable, "-m", "dvc", "status", "-q"], repo, check=False).returncode == 0
    assert {name: (repo / name).read_bytes() for name in METRICS_FILES} == first


def interrupt_repro_during_unlearning(repo: Path, sig: signal.Signals) -> None:
    """Start `dvc repro`, wait until unlearning is under way, then send `sig` to DVC and its stage process."""
    log = repo.parent / f"interrupted_{sig.name}.log"
    with log.open("w") as out:
        repro = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=repo, stdout=out, stderr=out, env=ENV,
                                 start_new_session=True, preexec_fn=default_sigint)
        deadline = time.monotonic() + 120
        while "unlearn (RMU)" not in log.read_text() and time.monotonic() < deadline and repro.poll() is None:
            time.sleep(0.1)
        assert "unlearn (RMU)" in log.read_text(), log.read_text()
        os.killpg(repro.pid, sig)
        repro.wait(timeout=60)
    assert repro.returncode != 0
    assert not (repo / "models" / "unlearned").exists()  # DVC removed the old output; the stage wrote none
    assert not list((repo / "models").glob(".unlearned.*"))


def test_changing_alpha_reruns_only_unlearning_and_its_evaluations(repo):
    # interrupted twice in the middle of unlearning (a long run), by Ctrl-C and by SIGKILL ...
    set_params(repo, {"alpha": 7, "unlearn": {"steps": 100_000}})
    for sig in (signal.SIGINT, signal.SIGKILL):
        interrupt_repro_during_unlearning(repo, sig)
    # ... after which the next `dvc repro` completes cleanly
    set_params(repo, {"unlearn": {"steps": 3}})
    ran = stages_ran(run([sys.executable, "-m", "dvc", "repro"], repo).stdout)
    # the RMU runs unlearn again; the baselines do not depend on alpha
    assert ran == {"check_params", "unlearn", "evaluate@unlearned", "mia@unlearned", "mmlu@unlearned",
                   "unlearn_sweep@0", "score_sweep@0", "unlearn_method@rmu", "score_method@rmu", "attack@unlearned",
                   "report"}
    assert json.loads((repo / "reports" / "metrics" / "detail.json").read_text())["alpha"] == 7
    assert run([sys.executable, "-m", "dvc", "status", "-q"], repo, check=False).returncode == 0


def test_changing_layers_reruns_only_unlearning_and_its_evaluations(repo):
    set_params(repo, {"layers": [0, 1, 2]})
    ran = stages_ran(run([sys.executable, "-m", "dvc", "repro"], repo).stdout)
    # the methods run on `layers`; the sweep's triples do not depend on it
    assert ran == {"check_params", "unlearn", "evaluate@unlearned", "mia@unlearned", "mmlu@unlearned",
                   "unlearn_method@rmu", "score_method@rmu", "unlearn_baseline@npo", "score_baseline@npo",
                   "attack@target", "attack@unlearned", "attack@method/npo", "report"}
    assert json.loads((repo / "reports" / "metrics" / "detail.json").read_text())["layers"] == [0, 1, 2]


def test_a_misspelt_experiment_key_fails_before_any_work_with_the_nearest_key(repo):
    """`-S +key=value` adds a key no stage reads: check_params, which depends on the whole file, still runs."""
    result = run([sys.executable, "-m", "dvc", "exp", "run", "-S", "+unlearn.stpes=10"], repo, check=False)
    assert result.returncode != 0
    assert ("error: params.yaml: unknown key `unlearn.stpes`; did you mean `unlearn.steps`? Every key is in "
            "docs/params.md") in result.stderr
    assert "recover: `git checkout params.yaml reports && dvc checkout`" in result.stderr
    assert stages_ran(result.stdout) == {"check_params"}
    run(["git", "checkout", "--", "params.yaml", "reports"], repo)
    run([sys.executable, "-m", "dvc", "checkout", "-q"], repo)
    assert "Data and pipelines are up to date" in run([sys.executable, "-m", "dvc", "status"], repo).stdout


def test_layers_past_the_model_fail_before_any_work(repo):
    set_params(repo, {"layers": [24, 25, 26]})
    before = (repo / "models" / "unlearned" / "delta.safetensors").stat().st_mtime_ns
    module, argv = dvc_command("unlearn")
    result = run([sys.executable, "-m", module, *argv], repo, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: params.yaml: `layers` [24, 25, 26] does not fit the model, which has 6 decoder layers "
        "(valid indices 0..5); pick a triple within them, e.g. [2, 3, 4]"]
    assert (repo / "models" / "unlearned" / "delta.safetensors").stat().st_mtime_ns == before


def test_sweep_triples_come_and_go_and_results_travel_through_a_remote(repo, tmp_path):
    """From the first run: layers [1, 2, 3], sweep [0], methods [rmu], baselines [npo]."""
    def repro(**override) -> set[str]:
        set_params(repo, override)
        return stages_ran(run([sys.executable, "-m", "dvc", "repro"], repo).stdout)

    def metrics() -> dict:
        return json.loads((repo / "reports" / "metrics" / "detail.json").read_text())

    # adding a triple runs that triple and the report, nothing else
    assert repro(sweep=[0, 3]) == {"check_params", "unlearn_sweep@3", "score_sweep@3", "report"}
    assert list(metrics()["sweep"]) == ["0", "1", "3"]  # 1 is the headline triple, [1, 2, 3]
    assert "| 3-5 | " in (repo / "reports" / "report.md").read_text()
    # removing a triple drops it from the report; the report reads the runs in params, not the folders on disk
    assert repro(sweep=[0]) == {"check_params", "report"}
    assert list(metrics()["sweep"]) == ["0", "1"] and "| 3-5 | " not in (repo / "reports" / "report.md").read_text()
    assert list(metrics()["methods"]) == ["adaptive_rmu", "rmu", "npo"]
    # a triple run before comes back from DVC's run-cache, without running
    for stale in ("models/sweep/3", "reports/eval/sweep/3", "reports/unlearn_runs/sweep/3"):
        shutil.rmtree(repo / stale)
    set_params(repo, {"sweep": [0, 3]})
    output = run([sys.executable, "-m", "dvc", "repro"], repo).stdout
    assert stages_ran(output) == {"check_params", "report"}
    assert "Stage 'unlearn_sweep@3' is cached - skipping run" in output
    assert "Stage 'score_sweep@3' is cached - skipping run" in output
    assert (repo / "models" / "sweep" / "3" / "delta.safetensors").is_file()

    # a teammate: push to a shared remote, clone the git repository afresh, pull: nothing to rerun
    run([sys.executable, "-m", "dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote")], repo)
    run([sys.executable, "-m", "dvc", "push", "-q"], repo)
    git_commit(repo, "results")
    run(["git", "clone", "-q", str(repo), str(tmp_path / "clone")], tmp_path)
    clone = tmp_path / "clone"
    run([sys.executable, "-m", "dvc", "pull", "-q"], clone)
    status = run([sys.executable, "-m", "dvc", "status"], clone)
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    assert (clone / "models" / "sweep" / "3" / "delta.safetensors").read_bytes() == (
        repo / "models" / "sweep" / "3" / "delta.safetensors").read_bytes()

    # an experiment on another seed, compared with the commit by the compare tool through `dvc exp show --json`
    run([sys.executable, "-m", "dvc", "exp", "run", "-S", "unlearn.seed=1", "-S", "sweep=[]", "-S", "methods=[]",
         "-S", "baselines=[]", "-S", "attack.models=[]"],
        repo)
    printed = run([sys.executable, "-m", "unlearning.tools.compare", "--out", "compare"], repo).stdout
    assert "2 of 2 experiments comparable" in printed, printed
    # the experiment table: both rows, the headline's scores with the intervals each commit's runs.json holds
    computed, *table = printed.splitlines()
    assert computed.startswith("computed as ") and "not comparable" not in printed, printed
    assert table[0].split()[:5] == ["experiment", "layers", "alpha", "beta", "seed"]
    runs = json.loads((repo / "reports" / "metrics" / "runs.json").read_text())["runs"]["headline"]
    assert sum(f"{runs['final']:.3f} [{runs['intervals']['final'][0]:.3f}, " in line for line in table[2:4]) == 1
    # `dvc exp show --only-changed` in a 120-column terminal: the headline scores that differ (on this tiny model
    # the task aggregate and MMLU do not), in full, beside the changed params; the dependency hashes folded to `…`
    shown = run([sys.executable, "-m", "dvc", "exp", "show", "--only-changed", "--no-pager"], repo,
                env={**ENV, "COLUMNS": "120"}).stdout.splitlines()
    assert max(map(len, shown)) <= 120
    header = next(line for line in shown if "Experiment" in line).split()
    assert {"final", "mia", "unlearn.seed", "sweep", "methods", "baselines"} <= set(header), shown
    assert header[-1] == "…" and header.count("…") == 1, shown
    seeds = json.loads((repo / "compare" / "compare.json").read_text())["alpha"][str(metrics()["alpha"])]
    assert seeds["n"] == 2 and seeds["seeds"] == [0, 1]
    assert seeds["final"]["min"] <= metrics()["after"]["final"] <= seeds["final"]["max"]
    assert (repo / "compare" / "alpha.png").stat().st_size > 1000
