"""KL minimisation: -NLL(forget) + retain_weight x KL(frozen || updated) of the next-token distributions on retain
text. TOFU's "KL Minimization"; open-unlearning's GradDiff with retain_loss_type KL, which averages over every
position, pads included (kl_div "batchmean" on flattened positions); here the mean is over real positions only."""
import torch.nn.functional as F

from .loop import Step, token_nll

REFERENCE = "frozen_retain_logits"


def kl_retain(updated_logits, frozen_logits, mask):
    """KL(frozen || updated) of the next-token distributions, summed over the vocabulary, mean over real positions."""
    per_position = F.kl_div(F.log_softmax(updated_logits.float(), dim=-1), F.log_softmax(frozen_logits.float(), dim=-1),
                            log_target=True, reduction="none").sum(dim=-1)
    return (per_position * mask).sum() / mask.sum()


def loss(step: Step, cfg: dict):
    """step.reference: the frozen model's logits on the retain batch."""
    forget_loss = -token_nll(step.forget_logits, step.forget_ids, step.forget_mask)
    retain_loss = cfg["retain_weight"] * kl_retain(step.retain_logits, step.reference, step.retain_mask)
    return forget_loss + retain_loss, forget_loss, retain_loss
