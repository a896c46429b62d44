"""Loading models the Hugging Face way (Auto classes; safetensors unless `allow_pickle`), and the device and dtype
choices of params.yaml."""
import json
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as transformers_logging

from ..errors import PipelineError
from .gpus import claim_gpu

# Loading a checkpoint takes seconds; its per-tensor bar would bury a stage's one error line.
transformers_logging.disable_progress_bar()

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PICKLE_HINT = "or set `model.allow_pickle: true` if you trust the file (unpickling can run code)"


def resolve_device(name) -> torch.device:
    """`auto`: CUDA when present, else the CPU. `auto` and `cuda` on a machine with several GPUs: the first one no
    other stage process holds (claim_gpu); `cuda:N` is that GPU. A torch.device is already resolved."""
    if isinstance(name, torch.device):
        return name
    if name == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PipelineError(f"params.yaml: `device` is {name!r} but CUDA is not available here; use auto or cpu")
    if name in ("auto", "cuda"):
        count = torch.cuda.device_count()
        if count == 1:
            return torch.device("cuda")
        index = claim_gpu(count)
        torch.cuda.set_device(index)   # what asks for "the current device" (memory statistics) means this one
        return torch.device("cuda", index)
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 on CUDA, float32 on CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


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


def save_unstamped(model, tokenizer, out: Path) -> None:
    """save_pretrained (safetensors) without the `transformers_version` the config files record: DVC addresses an
    output by its bytes, so the stamp alone made a target with identical weights, saved under another transformers
    release, rerun every stage below it (docs/reliability.md). The Auto classes load the files without it."""
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    for name in ("config.json", "generation_config.json"):
        path = Path(out) / name
        if path.is_file():
            settings = json.loads(path.read_text(encoding="utf-8"))
            settings.pop("transformers_version", None)
            path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def check_model_dir(path) -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise PipelineError(f"{path}: no Hugging Face model here (config.json missing); run `dvc repro` to build it")
    return path


def load_model(path, device: torch.device, dtype=torch.float32, trust_remote_code: bool = False,
               allow_pickle: bool = False):
    """Model and tokenizer from a local Hugging Face directory (safetensors unless allow_pickle), in eval mode."""
    path = check_model_dir(path)
    if not allow_pickle and not any(path.glob("*.safetensors")):
        raise PipelineError(f"{path}: no .safetensors weights; convert the model with "
                            f"save_pretrained(safe_serialization=True), {PICKLE_HINT}")
    return _from_pretrained(path, device, dtype, trust_remote_code, allow_pickle)


def load_pretrained(name_or_path: str, device: torch.device, dtype, trust_remote_code: bool, allow_pickle: bool):
    """A local directory or a Hugging Face hub id (downloaded by transformers; network and token are the user's)."""
    if Path(name_or_path).is_dir():
        return load_model(name_or_path, device, dtype, trust_remote_code, allow_pickle)
    return _from_pretrained(name_or_path, device, dtype, trust_remote_code, allow_pickle)


def num_decoder_layers(path) -> int:
    """Layer count from config.json alone, so a bad layer triple fails before any weights load."""
    return AutoConfig.from_pretrained(check_model_dir(path)).num_hidden_layers
