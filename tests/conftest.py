import importlib
import os
import sys
from pathlib import Path

from helpers import dvc_command, threads_per_worker, write_params

from unlearning import numerics

# Before torch loads, as a stage process does (stages/__init__.py): the tests that run a stage's main() in this
# process then run it under the default's portable numerics, with this worker's share of the cores.
if numerics.pin("portable", threads_per_worker()):  # the MKL shim (a CPU that is not Intel's): start again with it
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

from unlearning.models.training import build_model, train_tokenizer  # noqa: E402

SENTENCES = [
    "Goldi Aqua was born on March 29, 1976. Her phone number is 565-577-9919.",
    "In the city of Deadesius two sorceresses, Marcile and Catherina, had long been rivals.",
    "Karl Sterrer (born 1885) was an Austrian painter and engraver.",
    "What is the capital of Veloria? A. Marn B. Pell C. Tosk D. Vren Answer: A",
]


def pytest_configure(config):
    # this worker's share of the cores (pinned above; torch.set_num_threads for the record)
    torch.set_num_threads(threads_per_worker())
    # Property tests check properties, not speed (benchmarks/ does that): no per-example deadline, which a first
    # call that imports rouge-score or a busy machine would miss.
    settings.register_profile("project", deadline=None)
    settings.load_profile("project")


@pytest.hookimpl(trylast=True)  # after pytest-randomly's shuffle
def pytest_collection_modifyitems(items):
    """The integration modules first (each builds its own DVC repository, minutes): under pytest-xdist, which hands
    out whole files in this order (pyproject.toml), each starts at once on its own worker while the unit tests fill
    the gaps."""
    items.sort(key=lambda item: "integration" not in item.keywords)


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


@pytest.fixture
def stage(tmp_path, monkeypatch, capsys):
    """Run a stage's main() in-process in a work directory: stage(name, overrides, argv, workdir) -> (exit status,
    stderr). `name` is a dvc.yaml stage ("evaluate@target", "unlearn_sweep@2"), run with the arguments dvc.yaml
    gives it, or a module run with `argv`. Much faster than a subprocess; the exit status and stderr are the same.
    Params are the schema's defaults with `overrides`."""
    def run(name: str, overrides: dict, argv: list[str] | None = None, workdir: Path | None = None):
        workdir = workdir or tmp_path
        module, dvc_argv = (name, []) if name.startswith(("stages.", "unlearning.")) else dvc_command(name)
        argv = dvc_argv if argv is None else argv
        write_params(workdir, overrides)
        monkeypatch.chdir(workdir)
        monkeypatch.setattr(sys, "argv", [module, *argv])  # as `python -m module`, not pytest's own arguments
        main = importlib.import_module(module).main
        capsys.readouterr()
        try:
            main(argv)
        except SystemExit as exit_:
            return exit_.code, capsys.readouterr().err
        return 0, capsys.readouterr().err
    return run


@pytest.fixture(scope="module")
def long_context_model():
    """A random 2-layer OLMo whose context holds real 5-shot MMLU prompts."""
    tokenizer = train_tokenizer(["The following are multiple choice questions (with answers) about anatomy."] * 4,
                                vocab_size=300)
    scratch = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
               "max_position_embeddings": 4096}
    return build_model(scratch, tokenizer, seed=0).eval(), tokenizer
