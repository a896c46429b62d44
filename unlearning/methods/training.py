"""What every unlearning method shares: the same text, the same fixed forget/retain batches in the same order for
the same number of steps, the trained tensors selected by name, fp32 master weights for 16-bit models, a NaN guard
and the optimiser step. RMU (rmu.py) and the output-loss methods (output_loss/loop.py) both train through these."""
import random
from collections import defaultdict

import torch

from ..errors import PipelineError


def texts_by_task(rows: list[dict]) -> dict[str, list[str]]:
    """The text unlearning sees for a row is what the model memorised: input + " " + output."""
    texts = defaultdict(list)
    for row in rows:
        texts[row["task"]].append(row["input"] + " " + row["output"])
    return dict(texts)


def batch_schedule(forget: dict[str, list[str]], retain: dict[str, list[str]], cfg: dict):
    """(batches, steps): batches maps a key to its texts; each step is (task, forget batch key, retain batch key).
    Each task's texts are shuffled once into fixed batches; every pass over them visits the batches in a new
    order. Fixed batches let the fast engine compute what never changes once per batch; tasks are interleaved
    step by step, and each forget batch is paired with a retain batch of the same task."""
    rng = random.Random(cfg["seed"])
    batches, cycles = {}, {}
    for kind, by_task in (("forget", forget), ("retain", retain)):
        for task in sorted(forget):
            texts = list(by_task.get(task) or sum(retain.values(), []))  # a task without retain text: all retain
            rng.shuffle(texts)
            keys = [(kind, task, i) for i in range(0, len(texts), cfg["batch_size"])]
            batches.update({key: texts[key[2]:key[2] + cfg["batch_size"]] for key in keys})
            cycles[kind, task] = _passes(keys, rng)
    tasks = sorted(forget)
    steps = []
    for step in range(cfg["steps"]):
        task = tasks[step % len(tasks)]
        steps.append((task, next(cycles["forget", task]), next(cycles["retain", task])))
    return batches, steps


def _passes(keys: list, rng: random.Random):
    while True:
        order = keys[:]
        rng.shuffle(order)
        yield from order


def encode(tokenizer, texts: list[str], max_length: int, device):
    batch = tokenizer(texts, add_special_tokens=False, padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


def trainable_down_proj(model, layers: list[int]) -> dict[str, torch.nn.Parameter]:
    """Freeze everything but mlp.down_proj.weight of the given layers, selected by parameter name."""
    wanted = {f"layers.{i}.mlp.down_proj.weight" for i in layers}
    selected = {}
    for name, param in model.named_parameters():
        param.requires_grad_(any(name == suffix or name.endswith("." + suffix) for suffix in wanted))
        if param.requires_grad:
            selected[name] = param
    if len(selected) != len(layers):
        raise PipelineError(f"{type(model).__name__}: found {sorted(selected)} instead of one mlp.down_proj.weight "
                            f"for each of layers {layers}; use a Llama/OLMo-style decoder")
    return selected


def autocast_for(model_dtype, device) -> dict:
    """torch.autocast's arguments for a model of `model_dtype`: on for 16-bit models (their fp32 master weights
    compute in the model's dtype), off for fp32."""
    return dict(device_type=torch.device(device).type, dtype=model_dtype, enabled=model_dtype != torch.float32)


def fp32_master_weights(params: dict, device) -> tuple:
    """A bf16/fp16 model trains with fp32 master weights (and fp32 AdamW state) under autocast: updates of
    lr x grad would round away in 16-bit weights. Returns the model's dtype and the autocast arguments."""
    model_dtype = next(iter(params.values())).dtype
    for param in params.values():
        param.data = param.data.float()
    return model_dtype, autocast_for(model_dtype, device)


def descend(optimizer, loss, forget_loss, retain_loss, history: dict, step: int, hint: str) -> None:
    """One optimiser step on `loss`, after checking that both terms are finite; logs them in `history`."""
    for name, value in (("forget", forget_loss), ("retain", retain_loss)):
        if not torch.isfinite(value):
            raise PipelineError(f"unlearn: the {name} loss is {value.item()} at step {step}; {hint}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    history["forget_loss"].append(forget_loss.item())
    history["retain_loss"].append(retain_loss.item())


def finish_training(model, params: dict, model_dtype) -> None:
    """The trained weights back in the model's own dtype; the model in eval mode with nothing trainable."""
    for param in params.values():
        param.data = param.data.to(model_dtype)
    model.eval().requires_grad_(False)
