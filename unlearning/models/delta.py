"""Unlearned models as deltas: only the tensors unlearning changed, plus the identity (SHA-256) of the target they
apply to. The DVC cache and a shared remote then grow by three matrices per run, not by a whole model."""
import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import PipelineError
from .loading import load_model, resolve_device, resolve_dtype

DELTA_WEIGHTS, DELTA_INFO = "delta.safetensors", "delta.json"
STEERING = "steering.safetensors"   # an RMU run's per-task steering directions, for the direction-ablation attack


def weights_sha256(model_dir) -> str:
    """The identity of a saved model: SHA-256 over its safetensors files, in name order."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 24), b""):
                digest.update(chunk)
    return digest.hexdigest()


def save_delta(model, tensor_names: list[str], target_dir, out_dir, steering: dict | None = None) -> None:
    """`steering` (RMU runs): {"layer": the steered layer, "directions": {task: unit vector}}, kept beside the
    tensors (steering.safetensors, and the layer in delta.json) so that an attack can remove them."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {name: model.get_parameter(name).detach().contiguous().cpu() for name in sorted(tensor_names)}
    save_file(tensors, out_dir / DELTA_WEIGHTS)
    info = {"target": str(target_dir), "target_sha256": weights_sha256(target_dir), "tensors": sorted(tensors)}
    if steering is not None:
        info["steered_layer"] = steering["layer"]
        save_file({task: vector.contiguous().cpu() for task, vector in sorted(steering["directions"].items())},
                  out_dir / STEERING)
    (out_dir / DELTA_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def load_steering(model_dir) -> tuple[int, dict[str, torch.Tensor]] | None:
    """(steered layer, {task: direction}) of an RMU run's delta; None for the target and the output-loss methods."""
    model_dir = Path(model_dir)
    if not (model_dir / STEERING).is_file():
        return None
    info = json.loads((model_dir / DELTA_INFO).read_text(encoding="utf-8"))
    return info["steered_layer"], load_file(model_dir / STEERING)


def load_with_delta(target_dir, delta_dir, device: torch.device, dtype=torch.float32, trust_remote_code=False):
    """The target model with the delta's tensors put in place; refuses a delta made from another target."""
    target_dir, delta_dir = Path(target_dir), Path(delta_dir)
    if not (delta_dir / DELTA_INFO).is_file() or not (delta_dir / DELTA_WEIGHTS).is_file():
        raise PipelineError(f"{delta_dir}: no {DELTA_INFO} and {DELTA_WEIGHTS}; run `dvc repro` to build it")
    info = json.loads((delta_dir / DELTA_INFO).read_text(encoding="utf-8"))
    model, tokenizer = load_model(target_dir, device, dtype, trust_remote_code)
    if weights_sha256(target_dir) != info.get("target_sha256"):
        raise PipelineError(f"{delta_dir} was made from another {target_dir} (weights SHA-256 differs); "
                            "rerun `dvc repro` to unlearn the current target")
    delta = load_file(delta_dir / DELTA_WEIGHTS)
    with torch.no_grad():
        for name, tensor in delta.items():
            try:
                param = model.get_parameter(name)
            except AttributeError:
                raise PipelineError(f"{delta_dir / DELTA_WEIGHTS}: tensor {name} is not in {target_dir}") from None
            if param.shape != tensor.shape:
                raise PipelineError(f"{delta_dir / DELTA_WEIGHTS}: tensor {name} has shape {tuple(tensor.shape)}, "
                                    f"the target's has {tuple(param.shape)}")
            param.copy_(tensor.to(param.dtype))
    return model, tokenizer


def load_target_or_delta(target_dir, model_dir, device: str, dtype: str, trust_remote_code: bool):
    """The target (`model_dir` is `target_dir`) or a delta made from it, on params.yaml's `device` and `model.dtype`
    (names such as auto, cpu, bfloat16)."""
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    if Path(model_dir) == Path(target_dir):
        return load_model(target_dir, device, dtype, trust_remote_code)
    return load_with_delta(target_dir, model_dir, device, dtype, trust_remote_code)
