"""Temporary git + DVC repositories holding the project on a tiny configuration, for the integration tests: the
params, the offline environment every stage runs in, and the commands' helpers."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from helpers import ROOT, merge, params_with, threads_per_worker
from unlearning.tools.compare import experiment_records
from unlearning.tools.sync import render_params_yaml

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
    "attack": {"models": []},   # tests/integration/test_pipeline.py attacks its own list
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
# with its packages, also when the tests run from a virtual environment that was never activated. Under pytest-xdist
# each worker's stages get their share of the cores: on a tiny model a second thread buys nothing, and two workers
# of two threads each on two cores would fight over them.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
       "OMP_NUM_THREADS": str(threads_per_worker())}


def run(cmd: list[str], cwd: Path, check=True, env=None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env or ENV)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def stages_ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def experiments(repo: Path, env=None) -> dict[str, dict]:
    """name -> the compare tool's record ("params" flat, "after": the headline's scores) of the current commit and
    each of its experiments with results, from `dvc exp show --json`."""
    shown = json.loads(run([sys.executable, "-m", "dvc", "exp", "show", "--json"], repo, env=env).stdout)
    return {record["name"]: record for record in experiment_records(shown)}


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


def git_commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message], repo)


HEADLINE_STAGES = {"check_params", "prepare", "target", "unlearn", "evaluate@target", "evaluate@unlearned",
                   "mia@target", "mia@unlearned", "mmlu@target", "mmlu@unlearned", "plot_libraries", "report"}
