"""Adaptive Representation Misdirection Unlearning (RMU), readable top to bottom.

On forget text, the activations leaving the steered layer l are pushed toward coeff * u, a fixed random unit
vector u per task scaled by coeff; on retain text they are held equal to the frozen model's. Adaptive RMU sets
coeff = beta * (mean per-token L2 norm of the frozen model's layer-l activations on that task's forget data),
so the target's scale follows the layer's own scale. Only mlp.down_proj.weight of layers l-2, l-1, l trains.
"""
import copy

import torch

from ..models.layers import decoder_layers, fits_cut, frozen_parts, layer_output, run_slice, slice_inputs
from ..progress import progress
from .training import (autocast_for, batch_schedule, descend, encode, finish_training, fp32_master_weights,
                       trainable_down_proj)


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


def mean_token_norm(acts_and_masks) -> float:
    """Mean per-token L2 norm over the real (non-pad) tokens of (activations, mask) batches."""
    norm_sum, token_count = 0.0, 0
    for acts, mask in acts_and_masks:
        norm_sum += (acts.float().norm(dim=-1) * mask).sum().item()
        token_count += mask.sum().item()
    return norm_sum / token_count


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


def run_rmu(model, tokenizer, forget: dict[str, list[str]], retain: dict[str, list[str]], layers: list[int],
            alpha: float, cfg: dict, device, log_step=None) -> dict:
    """Unlearn in place. `forget`/`retain` map a task to its texts (see batch_schedule). Returns coefficients,
    the trained tensors' names and the per-step losses.

    cfg["engine"] `lean`: the hidden states entering layer l-2, the mask and rotary embeddings the layers get, and
    the frozen layer-l targets of every batch are computed once (nothing below l-2 changes); each step then runs
    layers l-2..l alone, forward and backward, with no frozen copy of the model. `fast`: the same, and layer l-2's
    attention output and MLP intermediate activation cached too (frozen weights on cached inputs), so that each
    step runs one matmul of layer l-2 (models/layers.py: the cut), bit-identical to `lean` at the cost of
    (d + MLP width) values per token more. `reference`: every step runs the whole model on forget and retain and
    a frozen copy on retain, as the public implementations do. All three give the same losses and weights
    (tests/unit/test_rmu.py)."""
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
        cache, first_layer = {}, decoder_layers(model)[first]
        cut = cfg["engine"] == "fast"
        # the steps run under autocast (16-bit models): so does what the cut replays
        step_autocast = autocast_for(next(model.parameters()).dtype, device)
        for key in progress(sorted(batches), desc="unlearn: cache layer inputs", unit="batch"):
            input_ids, mask = encode(tokenizer, batches[key], cfg["max_length"], device)
            hidden, layer_kwargs, acts = slice_inputs(model, first, steered, input_ids, mask)
            if cut and not cache and not fits_cut(first_layer, hidden, layer_kwargs):
                cut = False
                print(f"unlearn: layer {first} of {type(model).__name__} does not fit the cut to its down_proj; "
                      "every step runs it whole (engine lean)")
            parts = None
            if cut:
                with torch.autocast(**step_autocast):
                    parts = frozen_parts(first_layer, hidden, layer_kwargs)[0]
            cache[key] = (hidden, layer_kwargs, mask, acts, parts)

        def frozen_forget_acts(task):
            return ((cache[key][3], cache[key][2]) for key in forget_keys[task])

        def updated_acts(key):
            hidden, layer_kwargs, mask, _, parts = cache[key]
            return run_slice(model, first, steered, hidden, layer_kwargs, parts), mask

        def frozen_acts(key):
            return cache[key][3]
    coefficients = steering_coefficients(sorted(forget), frozen_forget_acts, cfg)
    if cfg["engine"] != "reference":
        for key in (key for keys in forget_keys.values() for key in keys):
            hidden, layer_kwargs, mask, _, parts = cache[key]
            cache[key] = (hidden, layer_kwargs, mask, None, parts)  # the frozen forget activations served their purpose
    params = trainable_down_proj(model, layers)
    model_dtype, mixed_precision = fp32_master_weights(params, device)
    optimizer = torch.optim.AdamW(params.values(), lr=cfg["lr"])
    history = {"coefficients": coefficients, "tensors": sorted(params), "forget_loss": [], "retain_loss": [],
               "steering": {"layer": steered, "directions": directions}}
    model.train()
    for step, (task, forget_key, retain_key) in enumerate(progress(steps, desc="unlearn (RMU)", unit="step")):
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


# The RMU variants by name; they differ only in steering_coefficients.
RMU_METHODS = {
    "adaptive_rmu": run_rmu,  # steering coefficient beta x the frozen activations' norm (the paper)
    "rmu": run_rmu,  # the fixed `unlearn.steering_coeff` of the WMDP code
}
