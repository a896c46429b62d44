"""One forward per batch of whole documents, and what every membership-inference attack reads from it: each
document's token log-probabilities and the mean and spread of log p under the model's own next-token distribution.
The target's knowledge check reads the mean NLL from here too.

Speed, measured against the official evaluation's loop (one document per forward; benchmarks/README.md):
- documents are batched in order of length, and a batch pads at most 10% (file order padded 87k real tokens to
  116k on the real MIA set), and the results come back in the given order;
- the decoder runs once per batch, but the vocabulary-sized numbers (logits, the distribution's moments) are
  computed over the batch's real positions in chunks of a fixed size: a [batch, length, 50k] logits tensor is
  gigabytes, and allocating and reading it cost more than the model on a small one;
- the statistics are float32, and float64 only for the positions where float32 cannot hold them (below).
"""
from typing import NamedTuple

import torch

from ..errors import PipelineError
from ..progress import progress

# Positions per chunk of the LM head: 128 x 50k float32 logits are 26 MB, and the head's weights are read once per
# chunk.
CHUNK = 128
# Padding a batch of documents may add, as a fraction of its real positions (length_batches).
MAX_PADDING = 0.1
# Positions per block of the statistics' six passes over the vocabulary: 16 x 50k float32 values are 3.2 MB, which
# stay in the CPU's cache from one pass to the next; over a whole 128-position chunk they go to memory at every
# pass (benchmarks/README.md times both).
STATS_ROWS = 16
# Where float32's standard deviation of log p is below this, the position is recomputed in float64: a memorising
# model's peaked distributions underflow the small probabilities to 0 in float32 (below about e^-103), and sigma
# with them, while float64 holds them down to e^-745. Above it, what float32 loses is below 1e-30 of sigma^2.
FLOAT64_BELOW = 1e-3


class TokenStats(NamedTuple):
    """One document's numbers at each predicted position t (tokens 2..n), as 1-D float64 tensors."""
    token_log_probs: torch.Tensor  # log p(x_t | x_<t) of the document's actual next token
    mu: torch.Tensor  # mean of log p over the vocabulary under the model's own next-token distribution
    sigma: torch.Tensor  # standard deviation of log p under that distribution


def _moments(logits: torch.Tensor, next_ids: torch.Tensor) -> tuple:
    """(log p of each next token, mu, sigma) in the dtype of `logits`, STATS_ROWS positions at a time."""
    parts = [_block_moments(logits[start:start + STATS_ROWS], next_ids[start:start + STATS_ROWS])
             for start in range(0, len(next_ids), STATS_ROWS)]
    return tuple(torch.cat(values) for values in zip(*parts))


def _block_moments(logits: torch.Tensor, next_ids: torch.Tensor) -> tuple:
    """With the logits shifted by their maximum, z = x - max x <= 0, log p = z - log S where S = sum e^z, so
    mu = E_p[z] - log S and sigma^2 = Var_p[log p] = Var_p[z] = E_p[z^2] - E_p[z]^2. One exponential over the
    vocabulary instead of two (logsumexp, then p), and z centred at the mode: where p is peaked, E_p[z] is near 0
    and the difference loses nothing; where it is flat, sigma^2 is of the order of E_p[z]^2 and float32 keeps it to
    ~1e-6 relative (tests/unit/test_attacks.py). The weights are multiplied by z in place twice, so every pass after
    the exponential reads and writes tensors the block has already touched."""
    shifted = logits - logits.amax(dim=-1, keepdim=True)
    weighted = torch.exp(shifted)
    total = weighted.sum(dim=-1)
    mean_shifted = weighted.mul_(shifted).sum(dim=-1) / total
    mean_square = weighted.mul_(shifted).sum(dim=-1) / total
    log_total = total.log()
    sigma = (mean_square - mean_shifted.square()).clamp(min=0).sqrt()
    return shifted.gather(-1, next_ids[:, None]).squeeze(-1) - log_total, mean_shifted - log_total, sigma


def next_token_stats(logits: torch.Tensor, next_ids: torch.Tensor) -> TokenStats:
    """TokenStats from one document's logits (positions x vocabulary) and the ids that actually follow: float32,
    and float64 where float32's sigma is below FLOAT64_BELOW."""
    token_log_probs, mu, sigma = (t.double() for t in _moments(logits.float(), next_ids))
    peaked = sigma < FLOAT64_BELOW
    if peaked.any():
        exact = _moments(logits[peaked].double(), next_ids[peaked])
        for values, exact_values in zip((token_log_probs, mu, sigma), exact):
            values[peaked] = exact_values
    return TokenStats(token_log_probs.cpu(), mu.cpu(), sigma.cpu())


def length_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices of documents in batches of at most `batch_size`, shortest first, each batch's padding at most
    MAX_PADDING of its real positions: a document that would pad its batch more starts the next one. On a CPU a batch
    saves nothing per token and every padded position is lost; on a GPU batches of similar length keep the batching
    (300 real MIA documents in batches of 16: 1.6% padding either way; 8 random ones in one batch: 23%)."""
    batches = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        batch = batches[-1] if batches else None
        # sorted ascending: document i is the batch's longest, so the batch pads to its length
        if batch and len(batch) < batch_size and \
                (len(batch) + 1) * lengths[i] <= (1 + MAX_PADDING) * (sum(lengths[j] for j in batch) + lengths[i]):
            batch.append(i)
        else:
            batches.append([i])
    return batches


def _positions_stats(model, hidden: torch.Tensor, next_ids: torch.Tensor) -> list[torch.Tensor]:
    """(token log-probs, mu, sigma) at each position of `hidden` (positions x d, the decoder's last hidden states),
    the LM head applied CHUNK positions at a time: every chunk but the last has the same shape, so the allocator
    reuses its memory instead of mapping fresh pages for every document's tensors."""
    head = model.get_output_embeddings()
    parts = [next_token_stats(head(hidden[start:start + CHUNK]), next_ids[start:start + CHUNK])
             for start in range(0, len(next_ids), CHUNK)]
    return [torch.cat(values) for values in zip(*parts)]


@torch.inference_mode()
def document_token_stats(model, tokenizer, texts: list[str], batch_size: int,
                         max_length: int | None = None) -> list[TokenStats]:
    """TokenStats of each whole text (truncated to max_length, default the model's context), in the order of
    `texts`: one decoder forward per batch of documents of similar length; each document's pad positions are cut
    off before any number is computed."""
    max_length = max_length or model.config.max_position_embeddings
    text_ids = [tokenizer(t, add_special_tokens=False)["input_ids"][:max_length] for t in texts]
    for text, ids in zip(texts, text_ids):
        if len(ids) < 2:
            raise PipelineError(f"document {text[:60]!r} has {len(ids)} token(s); a loss needs at least 2")
    batches = length_batches([len(ids) for ids in text_ids], batch_size)
    decoder = model.get_decoder()
    saved_side = tokenizer.padding_side
    tokenizer.padding_side = "right"  # a document's real tokens are then the first len(ids) positions
    stats = [None] * len(texts)
    try:
        for batch_indices in progress(batches, desc="mia forward", unit="batch"):
            batch = tokenizer.pad({"input_ids": [text_ids[i] for i in batch_indices]}, return_tensors="pt")
            input_ids = batch["input_ids"].to(model.device)
            hidden = decoder(input_ids=input_ids, attention_mask=batch["attention_mask"].to(model.device),
                             use_cache=False).last_hidden_state
            # every document's predicting positions one after another, pads cut off
            lengths = [len(text_ids[i]) - 1 for i in batch_indices]
            values = _positions_stats(model, torch.cat([hidden[row, :n] for row, n in enumerate(lengths)]),
                                      torch.cat([input_ids[row, 1:n + 1] for row, n in enumerate(lengths)]))
            for i, *document in zip(batch_indices, *(torch.split(v, lengths) for v in values)):
                stats[i] = TokenStats(*document)
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
