"""Gradient difference: -NLL(forget) + retain_weight x NLL(retain). TOFU's "Gradient Difference"; open-unlearning's
GradDiff (configs/trainer/GradDiff.yaml: gamma 1, alpha 1 -> unlearn.retain_weight 1)."""
from .loop import Step, token_nll


def loss(step: Step, cfg: dict):
    forget_loss = -token_nll(step.forget_logits, step.forget_ids, step.forget_mask)
    retain_loss = cfg["retain_weight"] * token_nll(step.retain_logits, step.retain_ids, step.retain_mask)
    return forget_loss + retain_loss, forget_loss, retain_loss
