"""What several test modules share: the project's paths, params built from the schema's defaults, the commands
dvc.yaml gives each stage, and the one-error-line assertion."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from unlearning import config
from unlearning.tools.sync import stage_module

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def threads_per_worker() -> int:
    """This process's share of the cores under pytest-xdist (all of them without it)."""
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def default_sigint() -> None:
    """preexec_fn for a process a test interrupts with SIGINT: a shell's background jobs (`pytest &`) inherit SIGINT
    ignored, and so would every child; a terminal's Ctrl-C reaches a process whose SIGINT is the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def merge(base: dict, override: dict) -> dict:
    """`base` updated in place by `override`, nested dicts merged key by key."""
    for key, value in override.items():
        base[key] = merge(base.get(key) or {}, value) if isinstance(value, dict) else value
    return base


def params_with(overrides: dict) -> dict:
    """The schema's defaults with `overrides`: tests never depend on the workspace's params.yaml. Stages run with
    this worker's share of the cores (`numerics.threads`) unless the overrides say otherwise."""
    return merge(merge(config.defaults(), {"numerics": {"threads": threads_per_worker()}}), overrides)


def write_params(workdir: Path, overrides: dict) -> None:
    (workdir / "params.yaml").write_text(yaml.safe_dump(params_with(overrides)))


def dvc_command(stage: str) -> tuple[str, list[str]]:
    """(module, arguments) of a stage as dvc.yaml runs it, e.g. "evaluate@target" or "unlearn_sweep@2"."""
    name, _, item = stage.partition("@")
    entry = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][name]
    cmd = entry.get("do", entry)["cmd"].replace("${item}", item)
    return stage_module(cmd)


def run_stage(workdir: Path, stage: str, overrides: dict) -> subprocess.CompletedProcess:
    """A dvc.yaml stage as DVC runs it (`python -m stages.<name> ...`) in `workdir`, offline."""
    write_params(workdir, overrides)
    module, argv = dvc_command(stage)
    return subprocess.run([sys.executable, "-m", module, *argv], cwd=workdir, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
                               "HOME": str(workdir.parent)})


def assert_one_error_line(result, expected: str) -> None:
    """`result` is a CompletedProcess or (exit status, stderr)."""
    returncode, stderr = (result.returncode, result.stderr) if hasattr(result, "returncode") else result
    assert returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert expected in lines[0], lines[0]
