"""The DVC pipeline end to end on a tiny configuration, in temporary git repositories: one built once per module,
and a copy of it for every test that changes something, so that each test passes alone and in any order."""
import json
import os
import re
import signal
import time
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, SHARED_DATA, default_sigint, dvc_command, merge, params_with

from unlearning.data.synthetic import generate
from unlearning.tools.sync import render_params_yaml

pytestmark = pytest.mark.integration

TINY = {
    "device": "cpu",
    "layers": [1, 2, 3],
    "sweep": [],
    "seeds": [],
    "methods": [],
    "baselines": [],
    "data": {"synthetic": {"train_docs": 2, "validation_docs": 1, "nonmember_docs": 2, "background_docs": 2,
                           "gk_countries": 12, "gk_test_per_subject": 2}},
    "model": {"scratch": {"num_hidden_layers": 4, "hidden_size": 32, "intermediate_size": 64,
                          "num_attention_heads": 2, "vocab_size": 400, "max_position_embeddings": 256},
              "train": {"epochs": 2, "batch_size": 16},
              "require": {"sc_rouge": 0, "qa_exact": 0, "mmlu": 0, "mia_auc": 0}},
    "unlearn": {"steps": 3, "batch_size": 2, "max_length": 64},
    "evaluate": {"max_new_tokens": 8},
}


# Loaded by every Python process of the run (DVC and each stage): any attempt to reach the network is logged and
# refused. AF_UNIX sockets (local IPC) stay allowed.
NO_NETWORK = """
import os, socket
def _refuse(what):
    def refuse(*args, **kwargs):
        with open(os.environ["NETWORK_ATTEMPTS"], "a") as log:
            log.write(f"{os.getpid()} {what} {args[1:] if what == 'connect' else args[:1]}\\n")
        raise OSError("network access is blocked in this test")
    return refuse
_connect = socket.socket.connect
def connect(self, address):
    if self.family == socket.AF_UNIX:
        return _connect(self, address)
    return _refuse("connect")(self, address)
socket.socket.connect = connect
socket.getaddrinfo = _refuse("getaddrinfo")
"""
METRICS_FILES = ("reports/metrics.json", "reports/metrics/runs.json", "reports/metrics/detail.json",
                 "reports/unlearn/metrics.json", "reports/eval/target/task/scores.json",
                 "reports/eval/unlearned/task/scores.json", "reports/eval/target/mia/mia.json",
                 "reports/eval/unlearned/mia/mia.json", "reports/eval/target/mmlu/mmlu.json",
                 "reports/eval/unlearned/mmlu/mmlu.json")


# DVC runs each stage's `python -m stages...` through a shell: the `python` found first on PATH must be this one,
# with its packages, also when the tests run from a virtual environment that was never activated.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def run(cmd: list[str], cwd: Path, check=True, env=None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env or ENV)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def stages_ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def set_params(repo: Path, override: dict) -> None:
    path = repo / "params.yaml"
    path.write_text(render_params_yaml(merge(yaml.safe_load(path.read_text()), override)))


def offline_env(workdir: Path) -> dict:
    """The environment of a run with networking disabled (HF_HUB_OFFLINE and a socket layer that refuses), in which
    every stage logs the params it declared and read."""
    (workdir / "no_network").mkdir(exist_ok=True)
    (workdir / "no_network" / "sitecustomize.py").write_text(NO_NETWORK)
    return {**ENV, "PYTHONPATH": str(workdir / "no_network"), "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "NETWORK_ATTEMPTS": str(workdir / "network_attempts.log"),
            "UNLEARNING_PARAMS_LOG": str(workdir / "params_read.jsonl")}


def make_repo(repo: Path, overrides: dict) -> Path:
    """A git + DVC repository holding the project with the schema's defaults and `overrides` as params.yaml, after
    its first `dvc repro`, which runs with networking disabled, committed."""
    repo.mkdir(parents=True)
    for name in ("stages", "unlearning", "dvc.yaml", ".dvcignore"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, repo / name)
    for cache in repo.rglob("__pycache__"):
        shutil.rmtree(cache)
    (repo / "params.yaml").write_text(render_params_yaml(params_with(overrides)))
    run(["git", "init", "-q"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"], repo)
    run([sys.executable, "-m", "dvc", "init", "-q"], repo)
    run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], repo)
    env = offline_env(repo.parent)
    (repo.parent / "first_run.log").write_text(run([sys.executable, "-m", "dvc", "repro"], repo, env=env).stdout)
    git_commit(repo, "first run")
    return repo


# The module's repository: the headline run, one sweep triple, one RMU variant and one baseline, on a 6-layer model.
RUNS = {"sweep": [0], "methods": ["rmu"], "baselines": ["npo"], "model": {"scratch": {"num_hidden_layers": 6}}}
HEADLINE_STAGES = {"check_params", "prepare", "target", "unlearn", "evaluate@target", "evaluate@unlearned",
                   "mia@target", "mia@unlearned", "mmlu@target", "mmlu@unlearned", "plot_libraries", "report"}


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
                                     "unlearn_baseline@npo", "score_baseline@npo"}
    metrics = json.loads((repo / "reports" / "metrics" / "detail.json").read_text())
    for key in ("before", "after"):
        summary = metrics[key]
        for name in ("final", "task_aggregate", "mia_auc", "mia_score", "mmlu"):
            assert 0.0 <= summary[name] <= 1.0
        assert len([v for split in summary["scores"].values() for task in split.values() for v in task.values()]) == 12
    # what `dvc exp show` lists: the headline run's five scores, and no more
    headline = json.loads((repo / "reports" / "metrics.json").read_text())
    after = metrics["after"]
    assert headline == {"final": round(after["final"], 2), "task": round(after["task_aggregate"], 2),
                        "auc": round(after["mia_auc"], 2), "mia": round(after["mia_score"], 2),
                        "mmlu": round(after["mmlu"], 2)}
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
                                      "score_method@rmu", "score_baseline@npo", "report"}),
])
def test_editing_a_library_module_makes_exactly_the_stages_that_import_it_stale(repo, module, importers):
    assert changed_stages(repo) == set()
    with (repo / module).open("a") as f:
        f.write("\n# edited\n")
    assert changed_stages(repo) == importers


def test_a_baseline_key_reruns_only_the_baselines(repo):
    set_params(repo, {"unlearn": {"npo_beta": 0.2}})
    assert stages_ran(run([sys.executable, "-m", "dvc", "repro"], repo).stdout) == {
        "check_params", "unlearn_baseline@npo", "score_baseline@npo", "report"}


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
                   "unlearn_sweep@0", "score_sweep@0", "unlearn_method@rmu", "score_method@rmu", "report"}
    assert json.loads((repo / "reports" / "metrics" / "detail.json").read_text())["alpha"] == 7
    assert run([sys.executable, "-m", "dvc", "status", "-q"], repo, check=False).returncode == 0


def test_changing_layers_reruns_only_unlearning_and_its_evaluations(repo):
    set_params(repo, {"layers": [0, 1, 2]})
    ran = stages_ran(run([sys.executable, "-m", "dvc", "repro"], repo).stdout)
    # the methods run on `layers`; the sweep's triples do not depend on it
    assert ran == {"check_params", "unlearn", "evaluate@unlearned", "mia@unlearned", "mmlu@unlearned",
                   "unlearn_method@rmu", "score_method@rmu", "unlearn_baseline@npo", "score_baseline@npo", "report"}
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


def git_commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message], repo)


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
         "-S", "baselines=[]"],
        repo)
    printed = run([sys.executable, "-m", "unlearning.tools.compare", "--out", "compare"], repo).stdout
    assert "2 of 2 experiments comparable" in printed, printed
    # the experiment table: both rows, the headline's scores with the intervals each commit's runs.json holds
    table = printed.splitlines()
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


SEMEVAL, MMLU = SHARED_DATA / "semeval25-unlearning-data", SHARED_DATA / "mmlu"


@pytest.mark.skipif(not (SEMEVAL.is_dir() and MMLU.is_dir()), reason=f"real SemEval data / MMLU not found in {SHARED_DATA}")
def test_repro_on_the_real_semeval_data_and_real_mmlu(tmp_path):
    """The same stages on the organizers' files and Hendrycks MMLU, chosen by params alone: one document per task
    and split, a tiny model from scratch, two MMLU subjects."""
    real = merge(json.loads(json.dumps(TINY)), {
        "data": {"source": str(SEMEVAL), "limit": 1},
        "model": {"scratch": {"max_position_embeddings": 2048}, "require": None},
        "mmlu": {"source": str(MMLU), "subjects": ["anatomy", "astronomy"], "limit": 2}})
    repo = make_repo(tmp_path / "repo", real)
    assert len(stages_ran((repo.parent / "first_run.log").read_text())) == len(HEADLINE_STAGES)
    info = json.loads((repo / "data" / "prepared" / "info.json").read_text())
    assert info["source"] == str(SEMEVAL) and info["counts"]["forget_train.jsonl"] == 1 * (2 + 6 + 2)
    metrics = json.loads((repo / "reports" / "metrics" / "detail.json").read_text())
    assert metrics["split"] == "train"
    for key in ("before", "after"):
        assert set(metrics[key]["mmlu_per_subject"]) == {"anatomy", "astronomy"}
        assert 0.0 <= metrics[key]["final"] <= 1.0
    mmlu = json.loads((repo / "reports" / "eval" / "target" / "mmlu" / "mmlu.json").read_text())
    assert mmlu["n"] == 4 and mmlu["source"] == f"MMLU (Hendrycks CSV, {MMLU})"
    assert "## MMLU by subject" in (repo / "reports" / "report.md").read_text()


def test_repro_on_a_jsonl_only_dataset_without_mia_files(tmp_path):
    """The layout the official evaluation script reads, forget.jsonl + retain.jsonl and nothing else (no MIA files,
    no validation split), with a Hendrycks-format MMLU directory: every stage runs, the MIA and final scores are
    n/a (officially -1) and the rest is scored as usual."""
    tiny_world = generate(params_with(TINY)["data"]["synthetic"], 0)
    source = tmp_path / "jsonl"
    source.mkdir()
    for split in ("forget", "retain"):
        rows = [{key: row[key] for key in ("id", "input", "output", "task")} for row in tiny_world[f"{split}_train"]]
        (source / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    for split, questions in (("dev", ["Sky colour?", "Grass colour?"]), ("test", ["Sun colour?", "Snow colour?"])):
        (tmp_path / "mmlu" / split).mkdir(parents=True)
        (tmp_path / "mmlu" / split / f"colours_{split}.csv").write_text(
            "".join(f'"{q}",red,green,blue,yellow,{"ABCD"[i]}\n' for i, q in enumerate(questions)))
    repo = make_repo(tmp_path / "repo", merge(json.loads(json.dumps(TINY)), {
        "data": {"source": str(source)}, "mmlu": {"source": str(tmp_path / "mmlu"), "k": 1}}))
    assert stages_ran((repo.parent / "first_run.log").read_text()) == HEADLINE_STAGES
    assert not (repo / "data" / "prepared" / "mia").exists()
    for model in ("target", "unlearned"):
        mia = json.loads((repo / "reports" / "eval" / model / "mia" / "mia.json").read_text())
        assert mia["available"] is False and mia["auc"] is None
    headline = json.loads((repo / "reports" / "metrics.json").read_text())
    assert headline["final"] is headline["auc"] is headline["mia"] is None
    assert 0 <= headline["task"] <= 1 and 0 <= headline["mmlu"] <= 1
    report = (repo / "reports" / "report.md").read_text()
    assert "| after (unlearned) | n/a | " in report and "reports the final score as -1" in report
