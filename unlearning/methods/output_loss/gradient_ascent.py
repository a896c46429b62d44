"""Gradient ascent: descend -NLL(forget), no retain term. TOFU's "Gradient Ascent" (Maini et al. 2024,
arXiv 2401.06121); open-unlearning's GradAscent. Descending -NLL raises the forget NLL without bound: the collapse
NPO was made to slow down."""
from .loop import Step, token_nll

TRAINS_ON_RETAIN = False  # its retain NLL is logged, without gradient, to show the damage


def loss(step: Step, cfg: dict):
    """(loss, forget_loss, retain_loss): the loss is the forget loss alone; retain_loss is the plain retain NLL."""
    forget_loss = -token_nll(step.forget_logits, step.forget_ids, step.forget_mask)
    retain_nll = token_nll(step.retain_logits, step.retain_ids, step.retain_mask)
    return forget_loss, forget_loss, retain_nll
