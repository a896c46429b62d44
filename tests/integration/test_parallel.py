"""Several experiments at once on the tiny configuration: two DVC queue workers on one machine, and a two-task Slurm
job array (slurm/sweep.sbatch) on a one-node cluster on loopback, gathered by unlearning.tools.collect."""
import json
import shutil
import subprocess
import sys
import time

import pytest
from dvc_repos import ENV, TINY, experiments, git_commit, make_repo, run, stages_ran
from helpers import ROOT
from services import start_slurm, stop_slurm

pytestmark = pytest.mark.integration

DVC = [sys.executable, "-m", "dvc"]


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory):
    repo = make_repo(tmp_path_factory.mktemp("parallel") / "repo", json.loads(json.dumps(TINY)))
    shutil.copytree(ROOT / "slurm", repo / "slurm")
    git_commit(repo, "the Slurm scripts")
    return repo


@pytest.fixture
def repo(base_repo, tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(base_repo, copy, symlinks=True)
    return copy


def test_two_queue_workers_run_two_experiments_at_once(repo):
    # two alphas, neither the commit's: each has its unlearning and evaluations to run
    for alpha in (2, 3):
        run([*DVC, "exp", "run", "--queue", "-n", f"alpha-{alpha}", "-S", f"alpha={alpha}"], repo)
    # its workers detach and outlive it, holding whatever stdout it had: a pipe would never close
    with (repo.parent / "queue.log").open("w") as log:
        subprocess.run([*DVC, "queue", "start", "-j", "2"], cwd=repo, env=ENV, stdout=log, stderr=log, check=True)
    most_running, deadline = 0, time.monotonic() + 600
    while True:
        status = run([*DVC, "queue", "status"], repo).stdout
        rows = [line.split() for line in status.splitlines() if "alpha-" in line]
        most_running = max(most_running, sum("Running" in row for row in rows))
        if rows and not any("Running" in row or "Queued" in row for row in rows):
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    run([*DVC, "queue", "stop"], repo, check=False)
    assert all("Success" in row for row in rows), status
    assert most_running == 2, "the two workers never ran at the same time"
    rows = experiments(repo)
    assert rows["alpha-2"]["params"]["alpha"] == 2 and rows["alpha-3"]["params"]["alpha"] == 3   # both with scores
    print(run([*DVC, "exp", "show", "--only-changed"], repo, env={**ENV, "COLUMNS": "120"}).stdout)


def test_a_slurm_array_runs_one_triple_per_task_and_collect_combines_them_without_rerunning(repo, tmp_path):
    cluster = start_slurm(tmp_path / "slurm")
    try:
        remotes = tmp_path / "remotes"
        run(["git", "init", "-q", "--bare", "--initial-branch=main", str(remotes / "project.git")], tmp_path)
        run([*DVC, "remote", "add", "-d", "shared", str(remotes / "dvc")], repo)
        (repo / "slurm" / "triples.txt").write_text("sweep=[0]\nsweep=[1]\n")
        git_commit(repo, "the shared remote and the tasks")
        run(["git", "remote", "add", "origin", str(remotes / "project.git")], repo)
        run(["git", "push", "-q", "origin", "HEAD:main"], repo)
        run([*DVC, "push", "-q", "--run-cache"], repo)
        commit = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()

        env = {**ENV, "OMP_NUM_THREADS": "1", "SWEEP_WORKDIR": str(tmp_path / "nodes")}
        started = time.monotonic()
        submitted = cluster.sbatch("--wait", "--array=0-1", "--cpus-per-task=1", f"--output={tmp_path}/task-%a.out",
                                   str(repo / "slurm" / "sweep.sbatch"), str(remotes / "project.git"), commit,
                                   "slurm/triples.txt", cwd=tmp_path, env=env)
        logs = "\n".join(f"--- task {i}\n{(tmp_path / f'task-{i}.out').read_text()}" for i in (0, 1)
                         if (tmp_path / f"task-{i}.out").is_file())
        assert submitted.returncode == 0, f"{submitted.stdout}{submitted.stderr}\n{logs}"
        print(f"the two-task array took {time.monotonic() - started:.0f} s")
        job = submitted.stdout.split()[-1]
        for task in (0, 1):
            ran = stages_ran((tmp_path / f"task-{task}.out").read_text())
            assert ran == {"check_params", f"unlearn_sweep@{task}", f"score_sweep@{task}", "report"}, logs
    finally:
        stop_slurm(cluster)

    # one command gathers them: the tasks' experiments, and one that combines their triples, with no triple rerun
    collected = run([sys.executable, "-m", "unlearning.tools.collect"], repo, env={**ENV, "PYTHONPATH": str(repo)})
    assert stages_ran(collected.stdout) == {"check_params", "report"}, collected.stdout
    print(collected.stdout)
    rows = experiments(repo)
    assert rows[f"slurm-{job}-0"]["params"]["sweep"] == [0] and rows[f"slurm-{job}-1"]["params"]["sweep"] == [1]
    assert rows["sweep-all"]["params"]["sweep"] == [0, 1]
    combined = json.loads((repo / "reports" / "metrics" / "runs.json").read_text())["runs"]
    for task in (0, 1):
        alone = json.loads(run(["git", "show", f"refs/exps/{commit[:2]}/{commit[2:]}/slurm-{job}-{task}"
                                ":reports/metrics/runs.json"], repo).stdout)["runs"]
        assert combined[f"sweep/{task}"] == alone[f"sweep/{task}"]
