"""Gather a sweep that ran elsewhere (slurm/sweep.sbatch, or teammates' `dvc exp push`): every experiment of the
current commit from the git remote, with its outputs and the run-cache from the DVC remote; then, if they ran layer
triples (`sweep=[N]` tasks), one experiment whose `sweep` is all of them, which DVC restores from the run-cache
(no triple reruns: the report stage alone runs) and which holds the report of them all; then `dvc exp show`.

python -m unlearning.tools.collect [GIT_REMOTE] [--name NAME]

Not a pipeline stage: it reads experiments, which a stage cannot depend on (as unlearning.tools.compare).
"""
import argparse
import subprocess
import sys

from ..errors import PipelineError, exit_on_error
from .compare import dvc_exp_show, experiment_records

DVC = [sys.executable, "-m", "dvc"]


def dvc(*args: str) -> None:
    """A DVC command with its output shown; its failure is one error line."""
    if subprocess.run([*DVC, *args]).returncode != 0:
        raise PipelineError(f"`dvc {' '.join(args)}` failed (its error is above)")


def swept_triples(records: list[dict]) -> tuple[list[int], list[int]]:
    """(the current commit's `sweep`, the union of every experiment's), from compare's records; the commit is the
    first record."""
    if not records:
        raise PipelineError("no commit or experiment with results here; run `dvc repro` on this commit first")
    union = sorted({first for record in records for first in record["params"].get("sweep") or []})
    return list(records[0]["params"].get("sweep") or []), union


@exit_on_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("git_remote", nargs="?", default="origin", help="the git remote the experiments were pushed "
                                                                        "to (default: origin)")
    parser.add_argument("--name", default="sweep-all", help="the combined experiment's name (default: sweep-all)")
    args = parser.parse_args(argv)
    dvc("exp", "pull", "--run-cache", args.git_remote)   # (with --force, DVC 3.67 says "No experiments to pull")
    records = experiment_records(dvc_exp_show())
    committed, union = swept_triples(records)
    combined = next((record["name"] for record in records if record["params"].get("sweep") == union), None)
    if combined:
        print(f"collect: {combined} already holds every triple the experiments ran ({union})")
    elif set(union) - set(committed):
        print(f"collect: the experiments ran sweep triples {union}; combining them (restored from the run-cache)",
              flush=True)
        dvc("exp", "run", "-n", args.name, "-S", f"sweep={union}")
    dvc("exp", "show", "--only-changed")


if __name__ == "__main__":
    main()
