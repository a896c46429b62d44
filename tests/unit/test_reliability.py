"""Interrupted writes and determinism below the pipeline level (the pipeline-level kill, determinism and offline
tests are in test_pipeline.py)."""
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import ROOT, default_sigint

from unlearning.files import atomic_output
from unlearning.methods.rmu import control_vectors, run_rmu

WRITER = textwrap.dedent("""
    import sys, time
    from unlearning.files import atomic_output
    with atomic_output(sys.argv[1]) as tmp:
        tmp.mkdir()
        (tmp / "model.safetensors").write_bytes(b"new" * 1000)
        print("writing", flush=True)
        time.sleep(60)  # killed here, in the middle of writing its output
        (tmp / "config.json").write_text("{}")
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
@pytest.mark.parametrize("previous", [True, False])
def test_a_writer_killed_mid_write_leaves_the_previous_output_or_none(tmp_path, sig, previous):
    out = tmp_path / "models" / "target"
    if previous:
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"old")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              preexec_fn=default_sigint)
    assert writer.stdout.readline() == "writing\n"
    writer.send_signal(sig)
    writer.wait(timeout=30)
    assert writer.returncode != 0
    if previous:
        assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
        assert (out / "model.safetensors").read_bytes() == b"old"
    else:
        assert not out.exists()
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(".target.")]
    # SIGINT unwinds and removes the temporary sibling; SIGKILL cannot, and the next write removes it
    assert leftovers == [] if sig == signal.SIGINT else len(leftovers) == 1
    with atomic_output(out) as tmp:
        tmp.mkdir()
        (tmp / "config.json").write_text("{}")
    assert sorted(p.name for p in out.parent.iterdir()) == ["target"]
    assert [p.name for p in out.iterdir()] == ["config.json"]


CFG = {"method": "adaptive_rmu", "engine": "fast",
       "beta": 1.0, "steering_coeff": 20.0, "direction": "gaussian", "lr": 1e-2,
       "steps": 6, "batch_size": 2, "max_length": 32, "seed": 0}


def unlearned(tiny_model_factory, sentences, seed):
    model, tokenizer = tiny_model_factory()
    history = run_rmu(model, tokenizer, {"Task1": sentences[:2]}, {"Task1": sentences[2:]}, [1, 2, 3], 1.0,
                      dict(CFG, seed=seed), torch.device("cpu"))
    return history, {name: p.detach().clone() for name, p in model.named_parameters()}


def test_same_seed_same_run_other_seed_other_direction_and_numbers(tiny_model_factory, sentences):
    first, first_weights = unlearned(tiny_model_factory, sentences, seed=0)
    again, again_weights = unlearned(tiny_model_factory, sentences, seed=0)
    other, other_weights = unlearned(tiny_model_factory, sentences, seed=1)
    directions = {run: history.pop("steering")["directions"]["Task1"] for run, history in
                  (("first", first), ("again", again), ("other", other))}
    assert first == again and all(torch.equal(first_weights[n], again_weights[n]) for n in first_weights)
    assert torch.equal(directions["first"], directions["again"])
    assert torch.equal(directions["first"], control_vectors(["Task1"], 32, "gaussian", 0)["Task1"])
    assert not torch.equal(directions["first"], directions["other"])
    assert first["forget_loss"] != other["forget_loss"]
    changed = [n for n in first_weights if not torch.equal(first_weights[n], other_weights[n])]
    assert sorted(changed) == [f"model.layers.{i}.mlp.down_proj.weight" for i in (1, 2, 3)]
