"""One forward per batch of whole documents, and what every membership-inference attack reads from it: each
document's token log-probabilities and the mean and spread of log p under the model's own next-token distribution.
The target's knowledge check reads the mean NLL from here too."""
from typing import NamedTuple

import torch

from ..errors import PipelineError
from ..progress import progress


class TokenStats(NamedTuple):
    """One document's numbers at each predicted position t (tokens 2..n), as 1-D float64 tensors."""
    token_log_probs: torch.Tensor  # log p(x_t | x_<t) of the document's actual next token
    mu: torch.Tensor  # mean of log p over the vocabulary under the model's own next-token distribution
    sigma: torch.Tensor  # standard deviation of log p under that distribution


def next_token_stats(logits: torch.Tensor, next_ids: torch.Tensor) -> TokenStats:
    """TokenStats from one document's logits (positions x vocabulary) and the ids that actually follow."""
    # float64: a memorising model's peaked distributions underflow p to 0 in float32, and sigma with it
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    probs = log_probs.exp()
    mu = (probs * log_probs).sum(-1)
    # sum_v p_v (log p_v - mu)^2 equals sum_v p_v (log p_v)^2 - mu^2 without its cancellation
    sigma = (probs * (log_probs - mu[:, None]).square()).sum(-1).sqrt()
    token_log_probs = log_probs.gather(-1, next_ids[:, None]).squeeze(-1)
    return TokenStats(token_log_probs.cpu(), mu.cpu(), sigma.cpu())


@torch.inference_mode()
def document_token_stats(model, tokenizer, texts: list[str], batch_size: int,
                         max_length: int | None = None) -> list[TokenStats]:
    """TokenStats of each whole text (truncated to max_length, default the model's context): one forward pass per
    batch of documents; each document's pad positions are cut off before any number is computed."""
    max_length = max_length or model.config.max_position_embeddings
    text_ids = [tokenizer(t, add_special_tokens=False)["input_ids"][:max_length] for t in texts]
    for text, ids in zip(texts, text_ids):
        if len(ids) < 2:
            raise PipelineError(f"document {text[:60]!r} has {len(ids)} token(s); a loss needs at least 2")
    saved_side = tokenizer.padding_side
    tokenizer.padding_side = "right"  # a document's real tokens are then the first len(ids) positions
    stats = []
    try:
        for start in progress(range(0, len(texts), batch_size), desc="mia forward", unit="batch"):
            batch_ids = text_ids[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": batch_ids}, return_tensors="pt")
            input_ids = batch["input_ids"].to(model.device)
            logits = model(input_ids=input_ids, attention_mask=batch["attention_mask"].to(model.device)).logits
            for row, ids in enumerate(batch_ids):
                stats.append(next_token_stats(logits[row, :len(ids) - 1], input_ids[row, 1:len(ids)]))
    finally:
        tokenizer.padding_side = saved_side
    return stats


def mean_nll(token_log_probs: torch.Tensor) -> float:
    """The document's mean next-token negative log-likelihood, in nats (the official MIA's 'loss')."""
    return -token_log_probs.mean().item()


def document_losses(model, tokenizer, texts: list[str], batch_size: int, max_length: int | None = None) -> list[float]:
    """Mean next-token NLL over each whole text (truncated to max_length, default the model's context)."""
    return [mean_nll(stats.token_log_probs)
            for stats in document_token_stats(model, tokenizer, texts, batch_size, max_length)]
