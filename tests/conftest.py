import importlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from stages.target import build_model, train_tokenizer

SENTENCES = [
    "Goldi Aqua was born on March 29, 1976. Her phone number is 565-577-9919.",
    "In the city of Deadesius two sorceresses, Marcile and Catherina, had long been rivals.",
    "Karl Sterrer (born 1885) was an Austrian painter and engraver.",
    "What is the capital of Veloria? A. Marn B. Pell C. Tosk D. Vren Answer: A",
]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return train_tokenizer(SENTENCES * 4, vocab_size=300)


@pytest.fixture(scope="session")
def tiny_model_factory(tiny_tokenizer):
    """Builds a fresh random 4-layer OLMo (and returns it with the tiny tokenizer)."""
    scratch = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4, "num_attention_heads": 2,
               "max_position_embeddings": 128}
    return lambda: (build_model(scratch, tiny_tokenizer, seed=0).eval(), tiny_tokenizer)


@pytest.fixture
def tiny_model(tiny_model_factory):
    """A random 4-layer OLMo, small enough to run anything on in milliseconds."""
    return tiny_model_factory()[0]


@pytest.fixture
def sentences():
    return list(SENTENCES)


def pytest_configure(config):
    torch.set_num_threads(2)


ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def default_sigint() -> None:
    """preexec_fn for a process a test interrupts with SIGINT: a shell's background jobs (`pytest &`) inherit SIGINT
    ignored, and so would every child; a terminal's Ctrl-C reaches a process whose SIGINT is the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def merge(base: dict, override: dict) -> dict:
    """`base` updated in place by `override`, nested dicts merged key by key."""
    for key, value in override.items():
        base[key] = merge(base.get(key) or {}, value) if isinstance(value, dict) else value
    return base


def write_params(workdir: Path, overrides: dict) -> None:
    """The project's params.yaml merged with `overrides`, written to `workdir`."""
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


def run_stage(workdir: Path, command: list[str], overrides: dict) -> subprocess.CompletedProcess:
    """`python -m <command>` in `workdir`, as DVC runs it, offline."""
    write_params(workdir, overrides)
    return subprocess.run([sys.executable, "-m", *command], cwd=workdir, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
                               "HOME": str(workdir.parent)})


@pytest.fixture
def stage(tmp_path, monkeypatch, capsys):
    """Run a stage's main() in-process in a work directory: stage(module, overrides, argv, workdir) ->
    (exit status, stderr). Much faster than a subprocess; the exit status and stderr are the same."""
    def run(module: str, overrides: dict, argv: list[str] | None = None, workdir: Path | None = None):
        workdir = workdir or tmp_path
        write_params(workdir, overrides)
        monkeypatch.chdir(workdir)
        monkeypatch.setattr(sys, "argv", [module])  # as `python -m module`, not pytest's own arguments
        main = importlib.import_module(module).main
        capsys.readouterr()
        try:
            main() if argv is None else main(argv)
        except SystemExit as exit_:
            return exit_.code, capsys.readouterr().err
        return 0, capsys.readouterr().err
    return run


def assert_one_error_line(result, expected: str) -> None:
    """`result` is a CompletedProcess or (exit status, stderr)."""
    returncode, stderr = (result.returncode, result.stderr) if hasattr(result, "returncode") else result
    assert returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert expected in lines[0], lines[0]
