"""Loading models the Hugging Face way, device choice, and decoder layers by index for any Llama/OLMo-style model."""
import argparse
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from .errors import PipelineError

MODEL_DIRS = {"target": Path("models/target"), "unlearned": Path("models/unlearned")}


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


def load_model(path, device: torch.device, dtype=torch.float32):
    """Model and tokenizer from a Hugging Face directory (safetensors only), in eval mode on `device`."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise PipelineError(f"{path}: no Hugging Face model here (config.json missing); run `dvc repro` to build it")
    if not any(path.glob("*.safetensors")):
        raise PipelineError(f"{path}: no .safetensors weights; save the model with save_pretrained(safe_serialization=True)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True)
    except (OSError, ValueError) as err:
        raise PipelineError(f"{path}: cannot load the model ({str(err).splitlines()[0]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer


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
