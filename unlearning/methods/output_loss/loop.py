"""The training loop of the output-loss methods (the other modules of this package, found through its
OUTPUT_LOSS_METHODS table), and the next-token quantities their losses are made of.

Every such method trains on next-token log-likelihoods; RMU instead trains on an activation loss at layer l.
`unlearn.baseline_params` chooses what they train: `layers`, the same three down_proj matrices as RMU (the
default: the methods then differ by their loss alone, and the delta stays three matrices), or `all`, every weight,
as the organizers' and TOFU's baselines fine-tune. They see the same forget/retain batches and steps as RMU
(training.batch_schedule) and the same text, input + " " + output. NLL is the mean next-token cross-entropy over
the real (non-pad) tokens of a batch.

A method module defines `loss(step, cfg) -> (loss, forget_loss, retain_loss)`, loss = forget_loss + the weighted
retain term, and may ask for what it needs beyond the step's logits:
- `REFERENCE = "forget_sequence_logprob"`: log pi_ref(y) of each forget sequence under the model before any step;
- `REFERENCE = "frozen_retain_logits"`: a frozen copy's retain logits at every step;
- `TRAINS_ON_RETAIN = False`: the retain forward runs without gradient (its NLL is only logged).

AdamW with weight decay 0, as open-unlearning's trainer defaults (configs/trainer/finetune.yaml: learning_rate 1e-5,
weight_decay 0): with every weight training, decay would pull all of them toward zero whatever the loss asks.
"""
import copy
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ...models.layers import decoder_layers, run_slice, slice_inputs
from ...progress import progress
from ..training import batch_schedule, descend, encode, finish_training, fp32_master_weights, trainable_down_proj


class Step(NamedTuple):
    """One step's batches as a loss sees them: logits [batch, seq, vocab], token ids and masks [batch, seq]."""
    forget_logits: torch.Tensor
    forget_ids: torch.Tensor
    forget_mask: torch.Tensor
    retain_logits: torch.Tensor
    retain_ids: torch.Tensor
    retain_mask: torch.Tensor
    reference: torch.Tensor | None = None  # what the method's REFERENCE names, for this step's batch


def forward_logits(model, input_ids, attention_mask) -> torch.Tensor:
    return model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


def logits_from_layer(model, first: int, hidden, layer_kwargs: dict) -> torch.Tensor:
    """The logits of a forward that starts at decoder layer `first` from its cached input (RMU's fast engine
    caches the same thing): when only layers >= first train, nothing below them changes."""
    hidden = run_slice(model, first, len(decoder_layers(model)) - 1, hidden, layer_kwargs)
    return model.lm_head(model.model.norm(hidden))


def next_token_nll(logits, input_ids, mask):
    """Cross-entropy of every next token [batch, seq - 1] and the mask of those that count: a target counts when it
    and the position predicting it are both real tokens (so either padding side is right)."""
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), input_ids[:, 1:], reduction="none")
    return nll, mask[:, 1:] * mask[:, :-1]


def token_nll(logits, input_ids, mask) -> torch.Tensor:
    """Mean next-token cross-entropy over the real target tokens of the batch: the usual LM loss, pads out."""
    nll, target_mask = next_token_nll(logits, input_ids, mask)
    return (nll * target_mask).sum() / target_mask.sum()


def sequence_logprob(logits, input_ids, mask) -> torch.Tensor:
    """log pi(y) of each sequence [batch]: its next-token log-probabilities summed over its real tokens."""
    nll, target_mask = next_token_nll(logits, input_ids, mask)
    return -(nll * target_mask).sum(dim=-1)


def run_output_loss(model, tokenizer, forget: dict[str, list[str]], retain: dict[str, list[str]], layers: list[int],
                    method, cfg: dict, device, log_step=None) -> dict:
    """Unlearn in place with `method` (a module of this package: its loss, REFERENCE and TRAINS_ON_RETAIN) on the
    batches and steps RMU would use, training the down_proj matrices of `layers` or every weight
    (cfg["baseline_params"]). Returns the trained tensors' names and the per-step losses; `coefficients` is empty
    (no steering)."""
    name = method.__name__.rsplit(".", 1)[-1]
    reference_kind = getattr(method, "REFERENCE", None)
    trains_on_retain = getattr(method, "TRAINS_ON_RETAIN", True)
    batches, steps = batch_schedule(forget, retain, cfg)
    encoded = {key: encode(tokenizer, texts, cfg["max_length"], device) for key, texts in batches.items()}
    if cfg["baseline_params"] == "layers":
        # Only layers >= layers[0] change: their input is computed once per fixed batch, and each forward starts
        # there (near the top of the model, a small part of it), as RMU's fast engine.
        first = layers[0]
        cache = {key: slice_inputs(model, first, first, *encoded[key])[:2]
                 for key in progress(sorted(encoded), desc="unlearn: cache layer inputs", unit="batch")}

        def logits(some_model, key):
            return logits_from_layer(some_model, first, *cache[key])
    else:
        def logits(some_model, key):
            return forward_logits(some_model, *encoded[key])
    # The reference is the model as given, in its own dtype, before any step.
    frozen_model, reference_forget_logprobs = None, {}
    if reference_kind == "frozen_retain_logits":
        # Per step, no grad: caching its retain distributions would hold batch x length x vocab floats per retain
        # batch (GBs at a 50k vocabulary); the copy is one model.
        frozen_model = copy.deepcopy(model).eval().requires_grad_(False)
    if reference_kind == "forget_sequence_logprob":
        # One number per forget sequence and the batches are fixed: computed once per forget batch by the model
        # itself, which is the reference until its first step, so no frozen copy is kept.
        with torch.no_grad():
            for key in progress([key for key in sorted(batches) if key[0] == "forget"],
                                desc="unlearn: reference log-likelihoods", unit="batch"):
                reference_forget_logprobs[key] = sequence_logprob(logits(model, key), *encoded[key])
    if cfg["baseline_params"] == "all":
        params = dict(model.named_parameters())
        model.requires_grad_(True)
    else:
        params = trainable_down_proj(model, layers)
    model_dtype, mixed_precision = fp32_master_weights(params, device)
    optimizer = torch.optim.AdamW(params.values(), lr=cfg["baseline_lr"], weight_decay=0.0)
    history = {"coefficients": {}, "tensors": sorted(params), "forget_loss": [], "retain_loss": []}
    model.train()
    for step, (task, forget_key, retain_key) in enumerate(progress(steps, desc=f"unlearn ({name})", unit="step")):
        forget_ids, forget_mask = encoded[forget_key]
        retain_ids, retain_mask = encoded[retain_key]
        with torch.autocast(**mixed_precision):
            forget_logits = logits(model, forget_key)
            with torch.set_grad_enabled(trains_on_retain):
                retain_logits = logits(model, retain_key)
        reference = reference_forget_logprobs.get(forget_key)
        if frozen_model is not None:
            with torch.no_grad():
                reference = logits(frozen_model, retain_key)
        loss, forget_loss, retain_loss = method.loss(
            Step(forget_logits, forget_ids, forget_mask, retain_logits, retain_ids, retain_mask, reference), cfg)
        descend(optimizer, loss, forget_loss, retain_loss, history, step, "lower `unlearn.baseline_lr`")
        if log_step:
            log_step(step, task, forget_loss.item(), retain_loss.item())
    finish_training(model, params, model_dtype)
    return history
