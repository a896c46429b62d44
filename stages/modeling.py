"""Loading models the Hugging Face way (and unlearned ones as target + delta), device choice, and decoder layers by
index for any Llama/OLMo-style model."""
import argparse
import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as transformers_logging

from .errors import PipelineError
from .params import check_run

# Loading a checkpoint takes seconds; its per-tensor bar would bury a stage's one error line.
transformers_logging.disable_progress_bar()

MODELS = Path("models")
TARGET_DIR = MODELS / "target"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def model_dir(name: str) -> Path:
    """models/target, or the delta of a run: models/unlearned, models/sweep/<first layer>, models/method/<method>."""
    return MODELS / name


def parse_model_arg(description: str, argv=None) -> str:
    """`--model target|<run>`: which model an evaluation stage scores."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True, help="target, unlearned, sweep/<first layer> or method/<method>")
    name = parser.parse_args(argv).model
    return name if name == "target" else check_run(name)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PipelineError(f"params.yaml: `device` is {name!r} but CUDA is not available here; use auto or cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 on CUDA, float32 on CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


PICKLE_HINT = "or set `model.allow_pickle: true` if you trust the file (unpickling can run code)"


def _from_pretrained(name_or_path, device, dtype, trust_remote_code: bool, allow_pickle: bool):
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, trust_remote_code=trust_remote_code,
                                                     use_safetensors=None if allow_pickle else True)
    except (OSError, ValueError) as err:
        only = "" if allow_pickle else f"; only safetensors weights are loaded, {PICKLE_HINT}"
        raise PipelineError(f"{name_or_path}: cannot load the model ({str(err).splitlines()[0]}){only}") from None
    if tokenizer.eos_token is None:
        raise PipelineError(f"{name_or_path}: the tokenizer has no EOS token; generation could not stop")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer


def load_model(path, device: torch.device, dtype=torch.float32, trust_remote_code: bool = False,
               allow_pickle: bool = False):
    """Model and tokenizer from a local Hugging Face directory (safetensors unless allow_pickle), in eval mode."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise PipelineError(f"{path}: no Hugging Face model here (config.json missing); run `dvc repro` to build it")
    if not allow_pickle and not any(path.glob("*.safetensors")):
        raise PipelineError(f"{path}: no .safetensors weights; convert the model with "
                            f"save_pretrained(safe_serialization=True), {PICKLE_HINT}")
    return _from_pretrained(path, device, dtype, trust_remote_code, allow_pickle)


def load_pretrained(name_or_path: str, device: torch.device, dtype, model_params: dict):
    """A local directory or a Hugging Face hub id (downloaded by transformers; network and token are the user's)."""
    trust, allow_pickle = model_params["trust_remote_code"], model_params["allow_pickle"]
    if Path(name_or_path).is_dir():
        return load_model(name_or_path, device, dtype, trust, allow_pickle)
    return _from_pretrained(name_or_path, device, dtype, trust, allow_pickle)


def load_stage_model(name: str, params: dict):
    """The pipeline's `target`, or a run's unlearned model (target + delta), on params' device and dtype."""
    device = resolve_device(params["device"])
    settings = (device, resolve_dtype(params["model"]["dtype"], device), params["model"]["trust_remote_code"])
    if name == "target":
        return load_model(TARGET_DIR, *settings)
    return load_with_delta(TARGET_DIR, model_dir(name), *settings)


def evaluate_stage_model(name: str, params: dict, evaluations) -> None:
    """Each evaluation is (load_inputs, run, write): every input is read and checked before the model loads, every
    number computed before anything is written, and the model loads once for all of them."""
    inputs = [load_inputs(params) for load_inputs, _, _ in evaluations]
    model, tokenizer = load_stage_model(name, params)
    results = [run(model, tokenizer, given, params) for (_, run, _), given in zip(evaluations, inputs)]
    for (_, _, write), result in zip(evaluations, results):
        write(name, result)


def decoder_layers(model) -> torch.nn.ModuleList:
    """The decoder blocks of a Llama/OLMo/OLMo2-style causal LM (model.model.layers)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise PipelineError(f"{type(model).__name__}: no `model.layers` list of decoder blocks; "
                            "use a Llama/OLMo-style causal LM")
    return layers


def num_decoder_layers(path) -> int:
    """Layer count from config.json alone, so a bad layer triple fails before any weights load."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise PipelineError(f"{path}: no Hugging Face model here (config.json missing); run `dvc repro` to build it")
    return AutoConfig.from_pretrained(path).num_hidden_layers


# An unlearned model is stored as a delta: only the tensors unlearning changed, plus the identity of the target
# they apply to. The DVC cache and a shared remote then grow by three matrices per run, not by a whole model.
DELTA_WEIGHTS, DELTA_INFO = "delta.safetensors", "delta.json"


def weights_sha256(model_dir) -> str:
    """The identity of a saved model: SHA-256 over its safetensors files, in name order."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 24), b""):
                digest.update(chunk)
    return digest.hexdigest()


def save_delta(model, tensor_names: list[str], target_dir, out_dir) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {name: model.get_parameter(name).detach().contiguous().cpu() for name in sorted(tensor_names)}
    save_file(tensors, out_dir / DELTA_WEIGHTS)
    (out_dir / DELTA_INFO).write_text(json.dumps(
        {"target": str(target_dir), "target_sha256": weights_sha256(target_dir), "tensors": sorted(tensors)},
        indent=2) + "\n", encoding="utf-8")


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
