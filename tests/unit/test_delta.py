"""Unlearned models as deltas: the three trained tensors plus the target's identity; target + delta = the model."""
import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from unlearning.errors import PipelineError
from unlearning.methods.rmu import run_rmu
from unlearning.methods.rmu import control_vectors
from unlearning.models.delta import DELTA_INFO, DELTA_WEIGHTS, STEERING, load_steering, load_with_delta, save_delta

CFG = {"method": "adaptive_rmu", "engine": "fast",
       "beta": 1.0, "steering_coeff": 20.0, "direction": "gaussian", "lr": 1e-2,
       "steps": 4, "batch_size": 2, "max_length": 32, "seed": 0}


@pytest.fixture
def target_and_unlearned(tmp_path, tiny_model_factory, sentences):
    model, tokenizer = tiny_model_factory()
    target_dir, delta_dir = tmp_path / "models" / "target", tmp_path / "models" / "unlearned"
    model.save_pretrained(target_dir)
    tokenizer.save_pretrained(target_dir)
    history = run_rmu(model, tokenizer, {"Task1": sentences[:2]}, {"Task1": sentences[2:]}, [1, 2, 3], 1.0, CFG,
                      torch.device("cpu"))
    save_delta(model, history["tensors"], target_dir, delta_dir, history["steering"])
    return target_dir, delta_dir, model


def test_target_plus_delta_is_the_unlearned_model(target_and_unlearned):
    target_dir, delta_dir, unlearned = target_and_unlearned
    assert sorted(p.name for p in delta_dir.iterdir()) == [DELTA_INFO, DELTA_WEIGHTS, STEERING]
    assert sorted(load_file(delta_dir / DELTA_WEIGHTS)) == [f"model.layers.{i}.mlp.down_proj.weight" for i in (1, 2, 3)]
    info = json.loads((delta_dir / DELTA_INFO).read_text())
    assert info["target"] == str(target_dir) and len(info["target_sha256"]) == 64
    rebuilt, _ = load_with_delta(target_dir, delta_dir, torch.device("cpu"))
    for name, param in unlearned.named_parameters():
        assert torch.equal(rebuilt.get_parameter(name), param), name
    assert (delta_dir / DELTA_WEIGHTS).stat().st_size < (target_dir / "model.safetensors").stat().st_size / 4


def test_a_delta_refuses_another_target(target_and_unlearned, tiny_model_factory):
    target_dir, delta_dir, _ = target_and_unlearned
    other, _ = tiny_model_factory()
    with torch.no_grad():
        other.get_parameter("model.embed_tokens.weight").add_(1.0)
    other.save_pretrained(target_dir)
    with pytest.raises(PipelineError, match=r"models/unlearned was made from another .*models/target \(weights SHA-256"):
        load_with_delta(target_dir, delta_dir, torch.device("cpu"))


def test_export_writes_a_standalone_model(target_and_unlearned, tmp_path, stage):
    _, _, unlearned = target_and_unlearned
    status, stderr = stage("unlearning.tools.export", {"device": "cpu"}, ["--out", "standalone"], tmp_path)
    assert status == 0, stderr
    standalone = AutoModelForCausalLM.from_pretrained(tmp_path / "standalone")
    for name, param in unlearned.named_parameters():
        assert torch.equal(standalone.get_parameter(name), param), name
    status, stderr = stage("unlearning.tools.export", {"device": "cpu"}, ["--out", "standalone"], tmp_path)
    assert status == 2 and "standalone: already exists; give --out a new directory" in stderr


def test_an_rmu_delta_keeps_its_steered_layer_and_directions(target_and_unlearned):
    target_dir, delta_dir, _ = target_and_unlearned
    layer, directions = load_steering(delta_dir)
    assert layer == 3
    assert torch.equal(directions["Task1"], control_vectors(["Task1"], 32, "gaussian", 0)["Task1"])
    assert load_steering(target_dir) is None


def test_the_saved_target_is_the_same_bytes_under_another_transformers_release(tiny_model_factory, tmp_path,
                                                                                 monkeypatch):
    import transformers.configuration_utils
    import transformers.generation.configuration_utils
    from unlearning.models.loading import load_model, save_unstamped
    model, tokenizer = tiny_model_factory()
    save_unstamped(model, tokenizer, tmp_path / "now")
    for module in (transformers.configuration_utils, transformers.generation.configuration_utils):
        monkeypatch.setattr(module, "__version__", "9.9.9")
    save_unstamped(model, tokenizer, tmp_path / "later")
    names = sorted(p.name for p in (tmp_path / "now").iterdir())
    assert "config.json" in names and names == sorted(p.name for p in (tmp_path / "later").iterdir())
    for name in names:
        assert (tmp_path / "now" / name).read_bytes() == (tmp_path / "later" / name).read_bytes(), name
    assert "transformers_version" not in (tmp_path / "now" / "config.json").read_text()
    reloaded, _ = load_model(tmp_path / "now", torch.device("cpu"))
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.equal(reloaded(ids).logits, model(ids).logits)
