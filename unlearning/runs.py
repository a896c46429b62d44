"""One unlearning run, whatever its method: the texts it sees, the target it starts from, and what it leaves (the
delta and its DVCLive training curves). The RMU stage and the output-loss stage both go through here."""
from pathlib import Path

from dvclive import Live

from . import numerics
from .data.prepared import prepared_split
from .files import atomic_output, write_json
from .methods.training import texts_by_task
from .models.delta import load_target_or_delta, save_delta, weights_sha256
from .models.loading import resolve_device

# The params every run reads, whatever its method: how it computes, where and how the target loads, and the batches
# and steps all methods share.
RUN_PARAMS = ("numerics", "device", "model.dtype", "model.trust_remote_code", "data.split", "unlearn.steps", "unlearn.batch_size",
              "unlearn.max_length", "unlearn.seed")


def method_settings(name: str, params, keys) -> dict:
    """The settings a method reads, as unlearn's keys without their prefix (steps, lr, ...), and its name."""
    return {"method": name, **{key.removeprefix("unlearn."): params[key] for key in keys if key.startswith("unlearn.")}}


def load_run(prepared, split: str, target, device: str, dtype: str, trust_remote_code: bool,
             numerics_settings: dict) -> tuple:
    """(model, tokenizer, forget texts by task, retain texts by task): the data is read and checked before the
    model loads, under `numerics_settings` (params' `numerics`)."""
    forget = texts_by_task(prepared_split(prepared, f"forget_{split}"))
    retain = texts_by_task(prepared_split(prepared, f"retain_{split}"))
    numerics.apply(numerics_settings, resolve_device(device))
    model, tokenizer = load_target_or_delta(target, target, device, dtype, trust_remote_code)
    return model, tokenizer, forget, retain


def write_run(history: dict, model, target, out: Path, live: Path) -> None:
    """The run's DVCLive directory (forget and retain loss per step, the steering coefficients) and its delta, with
    the fingerprint of what computed it."""
    with atomic_output(live) as live_path:
        with Live(dir=str(live_path), save_dvc_exp=False, dvcyaml=None, report=None) as logger:
            # step set directly, not next_step(): that rewrites the summary and syncs on every call (seconds a run)
            for step, (forget_loss, retain_loss) in enumerate(zip(history["forget_loss"], history["retain_loss"])):
                logger.step = step
                logger.log_metric("forget_loss", forget_loss, plot=True)
                logger.log_metric("retain_loss", retain_loss, plot=True)
            logger.summary["steering_coeff"] = dict(sorted(history["coefficients"].items()))
    with atomic_output(out) as delta:
        save_delta(model, history["tensors"], target, delta, history.get("steering"))
        fingerprint = numerics.fingerprint(model.device, model.dtype)
        write_json(delta / numerics.FILE, numerics.record(fingerprint, weights_sha256(target), "unlearned"))
