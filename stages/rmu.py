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
    return slice_inputs(model, layer_index, layer_index, input_ids, attention_mask)[2]


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


def fp32_master_weights(params: dict, device) -> tuple:
    """A bf16/fp16 model trains with fp32 master weights (and fp32 AdamW state) under autocast: updates of
    lr x grad would round away in 16-bit weights. Returns the model's dtype and the autocast arguments."""
    model_dtype = next(iter(params.values())).dtype
    for param in params.values():
        param.data = param.data.float()
    return model_dtype, dict(device_type=torch.device(device).type, dtype=model_dtype,
                             enabled=model_dtype != torch.float32)


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


def encode(tokenizer, texts: list[str], max_length: int, device):
    batch = tokenizer(texts, add_special_tokens=False, padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


def mean_token_norm(acts_and_masks) -> float:
    """Mean per-token L2 norm over the real (non-pad) tokens of (activations, mask) batches."""
    norm_sum, token_count = 0.0, 0
    for acts, mask in acts_and_masks:
        norm_sum += (acts.float().norm(dim=-1) * mask).sum().item()
        token_count += mask.sum().item()
    return norm_sum / token_count


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


def steering_coefficients(tasks, frozen_forget_acts, cfg: dict) -> dict[str, float]:
    """`rmu`: the fixed steering_coeff. `adaptive_rmu`: beta x the mean per-token norm of the frozen model's layer-l
    activations over all of a task's forget batches; `frozen_forget_acts(task)` yields their (acts, mask)."""
    if cfg["method"] == "rmu":
        return {task: float(cfg["steering_coeff"]) for task in tasks}
    return {task: cfg["beta"] * mean_token_norm(frozen_forget_acts(task)) for task in tasks}


def full_forward_acts(model, layer_index: int, input_ids, attention_mask) -> torch.Tensor:
    """Layer-l output from a forward through the whole model, logits included, as the public RMU code runs it."""
    captured = {}

    def capture(module, args, output):
        captured["acts"] = output[0] if isinstance(output, tuple) else output

    handle = decoder_layers(model)[layer_index].register_forward_hook(capture)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    finally:
        handle.remove()
    return captured["acts"]


@torch.no_grad()
def slice_inputs(model, first: int, last: int, input_ids, attention_mask) -> tuple:
    """What decoder layer `first` receives (hidden states, and the mask and rotary embeddings the model built for
    them) and what layer `last` returns, from one forward that stops after `last`."""
    captured = {}

    def capture_input(module, args, kwargs):
        kwargs = dict(kwargs)
        captured["hidden"] = args[0] if args else kwargs.pop("hidden_states")
        captured["kwargs"] = kwargs

    def capture_output(module, args, output):
        captured["acts"] = output[0] if isinstance(output, tuple) else output
        raise _StopForward

    layers = decoder_layers(model)
    handles = [layers[first].register_forward_pre_hook(capture_input, with_kwargs=True),
               layers[last].register_forward_hook(capture_output)]
    try:
        model.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return captured["hidden"], captured["kwargs"], captured["acts"]


def run_slice(model, first: int, last: int, hidden, layer_kwargs: dict) -> torch.Tensor:
    """Layers first..last on cached inputs: all that changes when only their down_proj trains."""
    for layer in decoder_layers(model)[first:last + 1]:
        output = layer(hidden, **layer_kwargs)
        hidden = output[0] if isinstance(output, tuple) else output
    return hidden


def run_rmu(model, tokenizer, forget: dict[str, list[str]], retain: dict[str, list[str]], layers: list[int],
            alpha: float, cfg: dict, device, log_step=None) -> dict:
    """Unlearn in place. `forget`/`retain` map a task to its texts (see batch_schedule). Returns coefficients,
    the trained tensors' names and the per-step losses.

    cfg["engine"] `fast`: the hidden states entering layer l-2, the mask and rotary embeddings the layers get, and
    the frozen layer-l targets of every batch are computed once (nothing below l-2 changes); each step then runs
    layers l-2..l alone, forward and backward, with no frozen copy of the model. `reference`: every step runs
    the whole model on forget and retain and a frozen copy on retain, as the public implementations do. Both
    give the same losses and weights (tests/test_rmu.py)."""
    first, steered = layers[0], layers[-1]
    directions = control_vectors(forget, model.config.hidden_size, cfg["direction"], cfg["seed"])
    batches, steps = batch_schedule(forget, retain, cfg)
    forget_keys = {task: [key for key in sorted(batches) if key[:2] == ("forget", task)] for task in forget}
    if cfg["engine"] == "reference":
        frozen_model = copy.deepcopy(model).eval().requires_grad_(False)

        def frozen_forget_acts(task):
            for key in forget_keys[task]:
                input_ids, mask = encode(tokenizer, batches[key], cfg["max_length"], device)
                yield layer_output(frozen_model, steered, input_ids, mask), mask

        def updated_acts(key):
            input_ids, mask = encode(tokenizer, batches[key], cfg["max_length"], device)
            return full_forward_acts(model, steered, input_ids, mask), mask

        def frozen_acts(key):
            with torch.no_grad():
                return full_forward_acts(frozen_model, steered, *encode(tokenizer, batches[key], cfg["max_length"],
                                                                        device))
    else:
        cache = {}
        for key in tqdm(sorted(batches), desc="unlearn: cache layer inputs", unit="batch"):
            input_ids, mask = encode(tokenizer, batches[key], cfg["max_length"], device)
            hidden, layer_kwargs, acts = slice_inputs(model, first, steered, input_ids, mask)
            cache[key] = (hidden, layer_kwargs, mask, acts)

        def frozen_forget_acts(task):
            return ((cache[key][3], cache[key][2]) for key in forget_keys[task])

        def updated_acts(key):
            hidden, layer_kwargs, mask, _ = cache[key]
            return run_slice(model, first, steered, hidden, layer_kwargs), mask

        def frozen_acts(key):
            return cache[key][3]
    coefficients = steering_coefficients(sorted(forget), frozen_forget_acts, cfg)
    if cfg["engine"] == "fast":
        for key in (key for keys in forget_keys.values() for key in keys):
            cache[key] = cache[key][:3] + (None,)  # the frozen forget activations served their one purpose
    params = trainable_down_proj(model, layers)
    model_dtype, mixed_precision = fp32_master_weights(params, device)
    optimizer = torch.optim.AdamW(params.values(), lr=cfg["lr"])
    history = {"coefficients": coefficients, "tensors": sorted(params), "forget_loss": [], "retain_loss": []}
    model.train()
    for step, (task, forget_key, retain_key) in enumerate(tqdm(steps, desc="unlearn (RMU)", unit="step")):
        steering_target = coefficients[task] * directions[task].to(device)
        with torch.autocast(**mixed_precision):
            updated_forget_acts, forget_mask = updated_acts(forget_key)
            updated_retain_acts, retain_mask = updated_acts(retain_key)
        frozen_retain_acts = frozen_acts(retain_key)
        loss, forget_loss, retain_loss = rmu_loss(updated_forget_acts, forget_mask, steering_target,
                                                  updated_retain_acts, frozen_retain_acts, retain_mask, alpha)
        descend(optimizer, loss, forget_loss, retain_loss, history, step, "lower `unlearn.lr` or `unlearn.beta`")
        if log_step:
            log_step(step, task, forget_loss.item(), retain_loss.item())
    finish_training(model, params, model_dtype)
    return history
