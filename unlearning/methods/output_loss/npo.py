"""NPO+RT: -(2/beta) mean over forget sequences of log sigmoid(-beta (log pi_theta(y) - log pi_ref(y))), sequence
log-likelihoods summed over real tokens, + retain_weight x NLL(retain) (Zhang et al. 2024, "Negative Preference
Optimization", arXiv 2404.05868), as open-unlearning's NPO computes it (src/trainer/utils.py compute_dpo_loss with
lose inputs only; configs/trainer/NPO.yaml: beta 0.1 -> unlearn.npo_beta, alpha 1, gamma 1)."""
import torch.nn.functional as F

from .loop import Step, sequence_logprob, token_nll

REFERENCE = "forget_sequence_logprob"


def npo_loss(updated_forget_seq_logprob, reference_forget_seq_logprob, beta: float):
    """(2/beta) log 2 where pi_theta = pi_ref, falling toward 0 as the forget likelihood falls below the reference's;
    its gradient is gradient ascent's weighted by a factor that fades with it, so the ascent slows instead of
    running away."""
    log_ratio = updated_forget_seq_logprob - reference_forget_seq_logprob
    return -(2 / beta) * F.logsigmoid(-beta * log_ratio).mean()


def loss(step: Step, cfg: dict):
    """step.reference: log pi_ref(y) of each forget sequence, from the model before any step."""
    updated = sequence_logprob(step.forget_logits, step.forget_ids, step.forget_mask)
    forget_loss = npo_loss(updated, step.reference, cfg["npo_beta"])
    retain_loss = cfg["retain_weight"] * token_nll(step.retain_logits, step.retain_ids, step.retain_mask)
    return forget_loss + retain_loss, forget_loss, retain_loss
