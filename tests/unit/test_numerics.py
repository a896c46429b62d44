"""Portable numerics (unlearning/numerics.py): a stage process pins torch's, MKL's and oneDNN's code paths and the
thread count before torch loads, whatever the caller's environment says, and records what computed its output."""
import hashlib
import json
import shutil
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, assert_one_error_line, write_params

from unlearning import numerics

# A target small enough to train in seconds, on a miniature of the built-in world
TINY = {"data": {"synthetic": {"train_docs": 2, "validation_docs": 1, "nonmember_docs": 2, "background_docs": 3,
                               "gk_countries": 7, "gk_test_per_subject": 2}},
        "model": {"scratch": {"num_hidden_layers": 2, "hidden_size": 32, "intermediate_size": 64,
                              "num_attention_heads": 2, "vocab_size": 300},
                  "train": {"epochs": 3}, "require": None}}
# what a caller may have set: other vector widths for torch's kernels, another MKL path, one thread
CALLER = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "SSE41",
          "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# the stage run the way a caller that imported torch first would: stages/__init__.py can then pin nothing
UNPINNED = ("import sys, runpy, torch; sys.argv = ['stages.target', *sys.argv[1:]]; "
            "runpy.run_module('stages.target', run_name='__main__')")


# the stage in a process that takes this CPU for an AMD one, as stages/__init__.py would on an AMD EPYC
AS_AMD = ("from unlearning import numerics; numerics.cpu_vendor = lambda: 'AuthenticAMD'; "
          "import sys, runpy; sys.argv = ['stages.target', *sys.argv[1:]]; "
          "runpy.run_module('stages.target', run_name='__main__')")


def stage_env(extra=None) -> dict:
    return {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", **(extra or {})}


def train_target(workdir, numerics_mode: str, caller: dict | None = None, unpinned: bool = False):
    """(the weights' SHA-256, fingerprint.json) of the tiny target trained by the stage in a subprocess."""
    write_params(workdir, {**TINY, "numerics": {"mode": numerics_mode, "threads": 2}})
    args = ["--data", "data/prepared", "--out", "models/target"]
    command = [sys.executable, "-c", UNPINNED, *args] if unpinned else [sys.executable, "-m", "stages.target", *args]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=stage_env(caller))
    assert result.returncode == 0, result.stderr
    weights = hashlib.sha256((workdir / "models" / "target" / "model.safetensors").read_bytes()).hexdigest()
    return weights, json.loads((workdir / "models" / "target" / numerics.FILE).read_text())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("numerics")
    write_params(workdir, TINY)
    prepared = subprocess.run([sys.executable, "-m", "stages.prepare", "--out", "data/prepared"], cwd=workdir,
                              capture_output=True, text=True, env=stage_env())
    assert prepared.returncode == 0, prepared.stderr
    return workdir


@pytest.fixture(scope="module")
def portable(workdir):
    """The tiny target's (weights' SHA-256, fingerprint.json), trained under the pins in a plain environment."""
    return train_target(workdir, "portable")


def test_the_pins_hold_whatever_the_caller_sets_and_without_them_the_weights_differ(workdir, portable):
    pinned, record = portable
    assert train_target(workdir, "portable", CALLER)[0] == pinned
    computed = record["computed"]
    assert computed["numerics"] == "portable" and computed["threads"] == 2 and computed["cpu"] == numerics.PORTABLE_CPU
    assert computed["kernels"] == {"aten": "AVX2", "mkl": "AVX2", "onednn": "AVX2", "deterministic": True}
    assert record["role"] == "target" and record["target_sha256"] == pinned  # one safetensors file: its own hash
    # the same training where nothing pins: the caller's variables choose the kernels, and the bits change
    free, free_record = train_target(workdir, "native", unpinned=True)
    assert train_target(workdir, "native", CALLER, unpinned=True)[0] != free
    assert free_record["computed"]["numerics"] == "native" and "model" in free_record["computed"]["cpu"]


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler to build the MKL shim")
def test_on_a_cpu_that_is_not_intels_the_stage_starts_again_with_the_mkl_shim(workdir, portable, tmp_path):
    """Where MKL would take its own code path (an AMD CPU), the stage process builds the shim, starts again with it
    preloaded, and trains the weights an Intel CPU trains (here, on whatever CPU runs the test, the shim changes
    nothing MKL does on an Intel one; benchmarks/cross_cpu.py runs the real thing under an emulated AMD EPYC)."""
    pinned, _ = portable
    write_params(workdir, {**TINY, "numerics": {"mode": "portable", "threads": 2}})
    result = subprocess.run([sys.executable, "-c", AS_AMD, "--data", "data/prepared", "--out", "models/target"],
                            cwd=workdir, capture_output=True, text=True,
                            env=stage_env({"XDG_CACHE_HOME": str(tmp_path), "LD_PRELOAD": ""}))
    assert result.returncode == 0, result.stderr
    shims = list((tmp_path / "unlearning").glob("mkl_intel_cpu_*.so"))
    assert len(shims) == 1
    assert f"MKL runs Intel's AVX2 path on this AuthenticAMD CPU ({shims[0]})" in result.stdout
    assert result.stdout.count("MKL runs Intel's AVX2 path") == 1  # started again once, with the shim loaded
    assert hashlib.sha256((workdir / "models" / "target" / "model.safetensors").read_bytes()).hexdigest() == pinned


def test_portable_numerics_refuse_a_process_that_imported_torch_before_the_pins(workdir):
    write_params(workdir, {**TINY, "numerics": {"mode": "portable", "threads": 2}})
    result = subprocess.run([sys.executable, "-c", UNPINNED, "--data", "data/prepared", "--out", "models/refused"],
                            cwd=workdir, capture_output=True, text=True, env=stage_env())
    assert_one_error_line(result, "numerics: torch was imported before the portable pins were set")
    assert not (workdir / "models" / "refused").exists()


def test_pin_overrides_the_environment_and_native_unpins_the_kernels():
    environ = {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "AVX512", "OMP_NUM_THREADS": "16", "HOME": "/h"}
    portable = dict(environ)
    portable.update(numerics.environment("portable", 3))
    assert portable["ATEN_CPU_CAPABILITY"] == "avx2" and portable["MKL_CBWR"] == "AVX2"
    assert portable["OMP_NUM_THREADS"] == portable["MKL_NUM_THREADS"] == "3" and portable["HOME"] == "/h"
    with pytest.raises(RuntimeError, match="after torch was imported"):  # this test process has torch loaded
        numerics.pin("native", 1, dict(environ))


def test_this_process_runs_under_the_pins_and_its_fingerprint_says_so():
    """tests/conftest.py pins before torch loads, as stages/__init__.py does in a stage process."""
    assert torch.backends.cpu.get_cpu_capability() == "AVX2"
    computed = numerics.fingerprint(torch.device("cpu"), torch.float32)
    assert computed["numerics"] == "portable" and computed["dtype"] == "float32"
    assert computed["versions"]["torch"] == torch.__version__ and computed["versions"]["mkl"]
    assert numerics.describe(computed).startswith(f"portable (AVX2 kernels, MKL AVX2, {torch.get_num_threads()} "
                                                  "threads), cpu float32, torch ")


def test_results_compare_only_on_the_same_target_and_numerics():
    computed = numerics.fingerprint(torch.device("cpu"), torch.float32)
    unlearned = numerics.record(computed, "a" * 64, "unlearned")
    evaluation = numerics.record(computed, "a" * 64, "evaluation", unlearned)
    target_evaluation = numerics.record(computed, "a" * 64, "evaluation", numerics.record(computed, "a" * 64, "target"))
    headline = numerics.identity([evaluation] * 3)
    assert numerics.differences(numerics.identity([target_evaluation]), headline) == []
    assert numerics.identity([target_evaluation])["numerics"] == headline["numerics"]
    other_threads = numerics.record(dict(computed, threads=computed["threads"] + 1), "a" * 64, "evaluation", unlearned)
    threads = computed["threads"]
    assert numerics.differences(numerics.identity([evaluation, evaluation, other_threads]), headline) == [
        f"evaluation under other numerics (threads {threads + 1} vs {threads})"]
    other_target = numerics.record(computed, "b" * 64, "evaluation", numerics.record(computed, "b" * 64, "unlearned"))
    assert numerics.differences(numerics.identity([other_target]), headline) == [
        f"another target ({'b' * 12}… vs {'a' * 12}…)"]
    assert numerics.differences(None, headline) == ["no fingerprint (made before results recorded one)"]
