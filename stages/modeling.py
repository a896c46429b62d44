"""Loading models the Hugging Face way, device choice, and decoder layers by index for any Llama/OLMo-style model."""
import argparse
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as transformers_logging

from .errors import PipelineError

# Loading a checkpoint takes seconds; its per-tensor bar would bury a stage's one error line.
transformers_logging.disable_progress_bar()

MODEL_DIRS = {"target": Path("models/target"), "unlearned": Path("models/unlearned")}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_model_arg(description: str, argv=None) -> str:
    """`--model target|unlearned`: which model an evaluation stage scores."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True, choices=sorted(MODEL_DIRS))
    return parser.parse_args(argv).model


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
    """The pipeline's `target` or `unlearned` model, on params' device and dtype."""
    device = resolve_device(params["device"])
    return load_model(MODEL_DIRS[name], device, resolve_dtype(params["model"]["dtype"], device),
                      params["model"]["trust_remote_code"])


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
