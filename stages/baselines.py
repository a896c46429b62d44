"""The organizers' baseline unlearning methods, behind run_rmu's interface, readable top to bottom.

Every method trains on output-level losses (next-token log-likelihoods); RMU instead trains on an activation loss at
layer l. `unlearn.baseline_params` chooses what a baseline trains: `layers`, the same three down_proj matrices as
RMU (the default: the methods then differ by their loss alone, and the delta stays three matrices), or `all`, every
weight, as the organizers' and TOFU's baselines fine-tune. Both see the same forget/retain batches and steps
(rmu.batch_schedule) and the same text, input + " " + output. NLL is the mean next-token cross-entropy over the
real (non-pad) tokens of a batch. The loss is forget_loss + retain_weight x retain term:

- gradient_ascent: forget_loss = -NLL(forget), no retain term (its retain NLL is logged, without grad, to show the
  damage). TOFU's "Gradient Ascent" (Maini et al. 2024, arXiv 2401.06121); open-unlearning's GradAscent.
- gradient_difference: -NLL(forget) + retain_weight x NLL(retain). TOFU's "Gradient Difference"; open-unlearning's
  GradDiff (configs/trainer/GradDiff.yaml: gamma 1, alpha 1 -> unlearn.retain_weight 1).
- kl: -NLL(forget) + retain_weight x KL(frozen || updated) of the next-token distributions on retain text. TOFU's
  "KL Minimization"; open-unlearning's GradDiff with retain_loss_type KL, which averages over every position, pads
  included (kl_div "batchmean" on flattened positions); here the mean is over real positions only.
- npo: -(2/beta) mean over forget sequences of log sigmoid(-beta (log pi_theta(y) - log pi_ref(y))), sequence
  log-likelihoods summed over real tokens, + retain_weight x NLL(retain): NPO+RT (Zhang et al. 2024, "Negative
  Preference Optimization", arXiv 2404.05868) as open-unlearning's NPO computes it (src/trainer/utils.py
  compute_dpo_loss with lose inputs only; configs/trainer/NPO.yaml: beta 0.1 -> unlearn.npo_beta, alpha 1, gamma 1).

AdamW with weight decay 0, as open-unlearning's trainer defaults (configs/trainer/finetune.yaml: learning_rate 1e-5,
weight_decay 0): with every weight training, decay would pull all of them toward zero whatever the loss asks.
"""
import copy

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .errors import PipelineError
from .params import BASELINE_METHODS
from .modeling import decoder_layers
from .rmu import (batch_schedule, descend, encode, finish_training, fp32_master_weights, run_slice, slice_inputs,
                  trainable_down_proj)

METHODS = BASELINE_METHODS


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


def kl_retain(updated_logits, frozen_logits, mask) -> torch.Tensor:
    """KL(frozen || updated) of the next-token distributions, summed over the vocabulary, mean over real positions."""
    per_position = F.kl_div(F.log_softmax(updated_logits.float(), dim=-1), F.log_softmax(frozen_logits.float(), dim=-1),
                            log_target=True, reduction="none").sum(dim=-1)
    return (per_position * mask).sum() / mask.sum()


def gradient_ascent_loss(forget_nll) -> torch.Tensor:
    """Descending -NLL raises the forget NLL without bound: the collapse NPO was made to slow down."""
    return -forget_nll


def npo_loss(updated_forget_seq_logprob, frozen_forget_seq_logprob, beta: float) -> torch.Tensor:
    """(2/beta) log 2 where pi_theta = pi_ref, falling toward 0 as the forget likelihood falls below the reference's;
    its gradient is GA's weighted by a factor that fades with it, so the ascent slows instead of running away."""
    log_ratio = updated_forget_seq_logprob - frozen_forget_seq_logprob
    return -(2 / beta) * F.logsigmoid(-beta * log_ratio).mean()


def baseline_loss(method: str, forget_logits, forget_ids, forget_mask, retain_logits, retain_ids, retain_mask,
                  retain_weight: float, beta: float, frozen_forget_seq_logprob=None, frozen_retain_logits=None):
    """(loss, forget_loss, retain_loss) of one step, as rmu_loss: loss = forget_loss + retain_loss, the retain term
    weighted by retain_weight. Gradient ascent's loss is its forget_loss alone; its retain_loss is the plain retain
    NLL, for the log only. `frozen_forget_seq_logprob` is npo's reference, `frozen_retain_logits` kl's."""
    if method == "npo":
        updated_forget_seq_logprob = sequence_logprob(forget_logits, forget_ids, forget_mask)
        forget_loss = npo_loss(updated_forget_seq_logprob, frozen_forget_seq_logprob, beta)
    else:
        forget_loss = gradient_ascent_loss(token_nll(forget_logits, forget_ids, forget_mask))
    if method == "kl":
        retain_term = kl_retain(retain_logits, frozen_retain_logits, retain_mask)
    else:
        retain_term = token_nll(retain_logits, retain_ids, retain_mask)
    if method == "gradient_ascent":
        return forget_loss, forget_loss, retain_term
    retain_loss = retain_weight * retain_term
    return forget_loss + retain_loss, forget_loss, retain_loss


def run_baseline(model, tokenizer, forget: dict[str, list[str]], retain: dict[str, list[str]], layers: list[int],
                 cfg: dict, device, log_step=None) -> dict:
    """Unlearn in place with cfg["method"], one of METHODS, on the batches and steps RMU would use, training the
    down_proj matrices of `layers` or every weight (cfg["baseline_params"]). Returns the trained tensors' names
    and the per-step losses; `coefficients` is empty (no steering)."""
    method = cfg["method"]
    if method not in METHODS:
        raise PipelineError(f"unlearn.method: `{method}` is not a baseline; use one of {', '.join(METHODS)}")
    batches, steps = batch_schedule(forget, retain, cfg)
    encoded = {key: encode(tokenizer, texts, cfg["max_length"], device) for key, texts in batches.items()}
    if cfg["baseline_params"] == "layers":
        # Only layers >= layers[0] change: their input is computed once per fixed batch, and each forward starts
        # there (at layers 29-31 of 32, a tenth of the model), as RMU's fast engine.
        first = layers[0]
        cache = {key: slice_inputs(model, first, first, *encoded[key])[:2]
                 for key in tqdm(sorted(encoded), desc="unlearn: cache layer inputs", unit="batch")}

        def logits(some_model, key):
            return logits_from_layer(some_model, first, *cache[key])
    else:
        def logits(some_model, key):
            return forward_logits(some_model, *encoded[key])
    # The reference of kl and npo is the model as given, in its own dtype, before any step.
    frozen_model, frozen_forget_seq_logprobs = None, {}
    if method == "kl":
        # Per step, no grad: caching its retain distributions would hold batch x length x vocab floats per retain
        # batch (GBs at a 50k vocabulary); the copy is one model.
        frozen_model = copy.deepcopy(model).eval().requires_grad_(False)
    if method == "npo":
        # NPO's reference is one number per forget sequence and the batches are fixed: computed once per forget
        # batch by the model itself, which is the reference until its first step, so no frozen copy is kept.
        with torch.no_grad():
            for key in tqdm([key for key in sorted(batches) if key[0] == "forget"],
                            desc="unlearn: reference log-likelihoods", unit="batch"):
                frozen_forget_seq_logprobs[key] = sequence_logprob(logits(model, key), *encoded[key])
    if cfg["baseline_params"] == "all":
        params = dict(model.named_parameters())
        model.requires_grad_(True)
    else:
        params = trainable_down_proj(model, layers)
    model_dtype, mixed_precision = fp32_master_weights(params, device)
    optimizer = torch.optim.AdamW(params.values(), lr=cfg["baseline_lr"], weight_decay=0.0)
    history = {"coefficients": {}, "tensors": sorted(params), "forget_loss": [], "retain_loss": []}
    model.train()
    for step, (task, forget_key, retain_key) in enumerate(tqdm(steps, desc=f"unlearn ({method})", unit="step")):
        forget_ids, forget_mask = encoded[forget_key]
        retain_ids, retain_mask = encoded[retain_key]
        with torch.autocast(**mixed_precision):
            forget_logits = logits(model, forget_key)
            with torch.set_grad_enabled(method != "gradient_ascent"):  # gradient ascent only logs its retain NLL
                retain_logits = logits(model, retain_key)
        frozen_retain_logits = None
        if frozen_model is not None:
            with torch.no_grad():
                frozen_retain_logits = logits(frozen_model, retain_key)
        loss, forget_loss, retain_loss = baseline_loss(
            method, forget_logits, forget_ids, forget_mask, retain_logits, retain_ids, retain_mask,
            cfg["retain_weight"], cfg["npo_beta"], frozen_forget_seq_logprobs.get(forget_key), frozen_retain_logits)
        descend(optimizer, loss, forget_loss, retain_loss, history, step, "lower `unlearn.baseline_lr`")
        if log_step:
            log_step(step, task, forget_loss.item(), retain_loss.item())
    finish_training(model, params, model_dtype)
    return history
