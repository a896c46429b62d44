"""Adaptive Representation Misdirection Unlearning (RMU), readable top to bottom.

On forget text, the activations leaving the steered layer l are pushed toward coeff * u, a fixed random unit
vector u per task scaled by coeff; on retain text they are held equal to the frozen model's. Adaptive RMU sets
coeff = beta * (mean per-token L2 norm of the frozen model's layer-l activations on that task's forget data),
so the target's scale follows the layer's own scale. Only mlp.down_proj.weight of layers l-2, l-1, l trains.
"""
import copy
import random

import torch
from tqdm import tqdm

from .errors import PipelineError
from .modeling import decoder_layers


class _StopForward(Exception):
    """Raised by the capture hook: nothing after the steered layer is needed."""


def layer_output(model, layer_index: int, input_ids, attention_mask) -> torch.Tensor:
    """Hidden states leaving decoder layer `layer_index`, [batch, seq, hidden]; later layers never run."""
    captured = {}

    def capture(module, args, output):
        captured["acts"] = output[0] if isinstance(output, tuple) else output
        raise _StopForward

    handle = decoder_layers(model)[layer_index].register_forward_hook(capture)
    try:
        model.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _StopForward:
        pass
    finally:
        handle.remove()
    return captured["acts"]


def control_vectors(tasks, hidden_size: int, direction: str, seed: int) -> dict[str, torch.Tensor]:
    """One fixed random unit vector per task. `uniform` is torch.rand as the reference code (all components
    positive, a direction inside one orthant); `gaussian` is isotropic."""
    generator = torch.Generator().manual_seed(seed)
    vectors = {}
    for task in sorted(tasks):
        draw = torch.randn if direction == "gaussian" else torch.rand
        vector = draw(hidden_size, generator=generator)
        vectors[task] = vector / vector.norm()
    return vectors


def masked_mse(acts: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the real (non-pad) tokens and the hidden dimension."""
    per_token = (acts.float() - target.float()).pow(2).mean(dim=-1)
    return (per_token * mask).sum() / mask.sum()


def rmu_loss(updated_forget_acts, forget_mask, steering_target, updated_retain_acts, frozen_retain_acts,
             retain_mask, alpha: float):
    forget_loss = masked_mse(updated_forget_acts, steering_target, forget_mask)
    retain_loss = alpha * masked_mse(updated_retain_acts, frozen_retain_acts, retain_mask)
    return forget_loss + retain_loss, forget_loss, retain_loss


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


def encode(tokenizer, texts: list[str], max_length: int, device):
    batch = tokenizer(texts, add_special_tokens=False, padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


@torch.no_grad()
def frozen_activation_norm(model, layer_index: int, tokenizer, texts: list[str], batch_size: int, max_length: int,
                           device) -> float:
    """Mean per-token L2 norm of layer-l activations over all real tokens of `texts`."""
    norm_sum, token_count = 0.0, 0
    for start in range(0, len(texts), batch_size):
        input_ids, mask = encode(tokenizer, texts[start:start + batch_size], max_length, device)
        acts = layer_output(model, layer_index, input_ids, mask)
        norm_sum += (acts.float().norm(dim=-1) * mask).sum().item()
        token_count += mask.sum().item()
    return norm_sum / token_count


def _cycle(texts: list[str], batch_size: int, rng: random.Random):
    """Endless shuffled batches; every text is seen once before any is seen twice."""
    while True:
        order = texts[:]
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            yield order[start:start + batch_size]


def steering_coefficients(frozen_model, tokenizer, forget: dict[str, list[str]], layer_index: int, cfg: dict,
                          device) -> dict[str, float]:
    if cfg["method"] == "rmu":
        return {task: float(cfg["steering_coeff"]) for task in forget}
    return {task: cfg["beta"] * frozen_activation_norm(frozen_model, layer_index, tokenizer, texts,
                                                       cfg["batch_size"], cfg["max_length"], device)
            for task, texts in forget.items()}


def run_rmu(model, tokenizer, forget: dict[str, list[str]], retain: dict[str, list[str]], layers: list[int],
            alpha: float, cfg: dict, device, log_step=None) -> dict:
    """Unlearn in place. `forget`/`retain` map a task to its texts; tasks are interleaved step by step and each
    forget batch is paired with a retain batch of the same task. Returns coefficients and per-step losses."""
    steered = layers[-1]
    frozen_model = copy.deepcopy(model).eval().requires_grad_(False)
    coefficients = steering_coefficients(frozen_model, tokenizer, forget, steered, cfg, device)
    directions = control_vectors(forget, model.config.hidden_size, cfg["direction"], cfg["seed"])
    params = trainable_down_proj(model, layers)
    # A bf16/fp16 model trains with fp32 master weights (and fp32 AdamW state) under autocast: updates of
    # lr x grad would round away in 16-bit weights.
    model_dtype = next(iter(params.values())).dtype
    for param in params.values():
        param.data = param.data.float()
    mixed_precision = dict(device_type=torch.device(device).type, dtype=model_dtype,
                           enabled=model_dtype != torch.float32)
    optimizer = torch.optim.AdamW(params.values(), lr=cfg["lr"])
    rng = random.Random(cfg["seed"])
    tasks = sorted(forget)
    forget_batches = {task: _cycle(forget[task], cfg["batch_size"], rng) for task in tasks}
    retain_batches = {task: _cycle(retain.get(task) or sum(retain.values(), []), cfg["batch_size"], rng)
                      for task in tasks}
    history = {"coefficients": coefficients, "tensors": sorted(params), "forget_loss": [], "retain_loss": []}
    model.train()
    for step in tqdm(range(cfg["steps"]), desc="unlearn (RMU)", unit="step"):
        task = tasks[step % len(tasks)]
        forget_ids, forget_mask = encode(tokenizer, next(forget_batches[task]), cfg["max_length"], device)
        retain_ids, retain_mask = encode(tokenizer, next(retain_batches[task]), cfg["max_length"], device)
        steering_target = coefficients[task] * directions[task].to(device)
        with torch.autocast(**mixed_precision):
            updated_forget_acts = layer_output(model, steered, forget_ids, forget_mask)
            updated_retain_acts = layer_output(model, steered, retain_ids, retain_mask)
        with torch.no_grad():
            frozen_retain_acts = layer_output(frozen_model, steered, retain_ids, retain_mask)
        loss, forget_loss, retain_loss = rmu_loss(updated_forget_acts, forget_mask, steering_target,
                                                  updated_retain_acts, frozen_retain_acts, retain_mask, alpha)
        for name, value in (("forget", forget_loss), ("retain", retain_loss)):
            if not torch.isfinite(value):
                raise PipelineError(f"unlearn: the {name} loss is {value.item()} at step {step}; "
                                    "lower `unlearn.lr` or `unlearn.beta`")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history["forget_loss"].append(forget_loss.item())
        history["retain_loss"].append(retain_loss.item())
        if log_step:
            log_step(step, task, forget_loss.item(), retain_loss.item())
    for param in params.values():
        param.data = param.data.to(model_dtype)
    model.eval().requires_grad_(False)
    return history
