"""slurm/sweep.sbatch run directly with Slurm's variables set: its bad inputs stop it with one error line before any
DVC work; and collect's union of the experiments' triples."""
import os
import subprocess

import pytest
from helpers import ROOT

from unlearning.errors import PipelineError
from unlearning.tools.collect import swept_triples

SCRIPT = ROOT / "slurm" / "sweep.sbatch"


@pytest.fixture
def origin(tmp_path):
    """A git repository whose commit holds a two-line tasks file."""
    repo = tmp_path / "origin"
    repo.mkdir()
    (repo / "tasks.txt").write_text("sweep=[0]\nalpha=2 unlearn.seed=1\n")
    for cmd in (["init", "-q"], ["add", "tasks.txt"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm",
                                                        "tasks"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True)
    return repo


def task(*args, cwd, **slurm) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "SWEEP_WORKDIR": str(cwd / "nodes"), **slurm}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True)


def one_error_line(result) -> str:
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_bad_arguments_and_a_missing_array_index_each_get_one_line(origin, tmp_path):
    assert "expected <git-url> <commit> <tasks-file>, got 1 arguments" in one_error_line(
        task(str(origin), cwd=tmp_path, SLURM_ARRAY_TASK_ID="0"))
    assert "SLURM_ARRAY_TASK_ID is not set" in one_error_line(task(str(origin), "HEAD", "tasks.txt", cwd=tmp_path))


def test_a_task_past_the_tasks_file_and_a_missing_file_say_which(origin, tmp_path):
    past = task(str(origin), "HEAD", "tasks.txt", cwd=tmp_path, SLURM_ARRAY_TASK_ID="2", SLURM_ARRAY_JOB_ID="7")
    assert "tasks.txt has no line 3 for array task 2; its 2 lines make --array=0-1" in one_error_line(past)
    missing = task(str(origin), "HEAD", "other.txt", cwd=tmp_path, SLURM_ARRAY_TASK_ID="0")
    assert "other.txt: no such file in commit HEAD" in one_error_line(missing)
    assert not (tmp_path / "nodes" / "slurm-7-2").exists()   # its clone removed


def test_collect_combines_every_experiments_triples():
    records = [{"params": {"sweep": [3]}}, {"params": {"sweep": [1]}}, {"params": {"sweep": [0, 1]}},
               {"params": {"alpha": 2}}]
    assert swept_triples(records) == ([3], [0, 1, 3])
    with pytest.raises(PipelineError, match="run `dvc repro`"):
        swept_triples([])
