"""Stage: membership inference on whole documents (members: forget Task3 bios of `data.split`; non-members:
documents of the same kind the model never saw). The official score is the loss attack's; the zlib, Min-K% and
Min-K%++ attacks are reported beside it, and the strongest of the four is named.

python -m stages.mia --model {target|unlearned|sweep/<first layer>|method/<method>}
"""
import statistics
import zlib
from typing import NamedTuple

import torch
from tqdm import tqdm

from .errors import PipelineError, exit_on_error
from .checks import prepared_split
from .io import EVAL_DIR, atomic_output, write_json, write_jsonl
from .modeling import evaluate_stage_model, parse_model_arg
from .params import load_validated
from .scoring import attack_auc, mia_auc, mia_score

ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus")  # also the tie-break order for the strongest attack
# sigma is 0 only where the next-token distribution is one-hot even in float64; this floor keeps Min-K%++'s z
# finite there (0 when the actual token is the certain one, very negative otherwise)
MIN_SIGMA = 1e-12


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
        for start in tqdm(range(0, len(texts), batch_size), desc="mia forward", unit="batch"):
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


def loss_attack(token_log_probs: torch.Tensor) -> float:
    """The official attack: -(mean NLL); low loss means 'member'."""
    return -mean_nll(token_log_probs)


def zlib_attack(token_log_probs: torch.Tensor, text: str) -> float:
    """Carlini et al. (2021): the log-perplexity (mean NLL, nats per token) over the zlib entropy (bytes of
    zlib.compress of the whole text as UTF-8, default level), negated: -(mean NLL) / len(zlib.compress(text)).
    Text that is easy to compress is easy to predict without having been seen, so the ratio discounts it."""
    return -mean_nll(token_log_probs) / len(zlib.compress(text.encode("utf-8")))


def lowest_fraction_mean(values: torch.Tensor, k: float) -> float:
    """Mean of the floor(k * n) lowest of n values (at least one): floor as both papers' code, int(n * k)."""
    count = max(1, int(len(values) * k))
    return values.sort().values[:count].mean().item()


def min_k_attack(token_log_probs: torch.Tensor, k: float) -> float:
    """Min-K% Prob (Shi et al., 2024): the mean log-prob of the document's k least likely tokens."""
    return lowest_fraction_mean(token_log_probs, k)


def min_k_plus_plus_attack(token_log_probs: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, k: float) -> float:
    """Min-K%++ (Zhang et al., 2024): each token's log-prob standardised by the model's own next-token
    distribution, (log p(x_t) - mu_t) / sigma_t, then the mean of the k lowest."""
    z_scores = (token_log_probs - mu) / sigma.clamp_min(MIN_SIGMA)
    return lowest_fraction_mean(z_scores, k)


def attack_scores(stats: TokenStats, text: str, k: float) -> dict[str, float]:
    """Every attack's score of one document (higher means 'member'), by attack name."""
    return {"loss": loss_attack(stats.token_log_probs),
            "zlib": zlib_attack(stats.token_log_probs, text),
            "min_k": min_k_attack(stats.token_log_probs, k),
            "min_k_plus_plus": min_k_plus_plus_attack(stats.token_log_probs, stats.mu, stats.sigma, k)}


def mia_metrics(member_losses: list[float], nonmember_losses: list[float]) -> dict:
    auc = mia_auc(member_losses, nonmember_losses)
    return {"auc": auc, "score": mia_score(auc), "member_mean_loss": statistics.fmean(member_losses),
            "nonmember_mean_loss": statistics.fmean(nonmember_losses)}


def attack_metrics(member_scores: list[dict], nonmember_scores: list[dict]) -> dict:
    """{"attacks": {name: {"auc", "score"}}, "strongest": the attack with the lowest MIA score (first on ties)}."""
    attacks = {}
    for name in ATTACKS:
        auc = attack_auc([s[name] for s in member_scores], [s[name] for s in nonmember_scores])
        attacks[name] = {"auc": auc, "score": mia_score(auc)}
    return {"attacks": attacks, "strongest": min(ATTACKS, key=lambda name: attacks[name]["score"])}


def score_documents(model, tokenizer, docs: list[dict], batch_size: int, k: float) -> tuple[list[float], list[dict]]:
    """(mean NLL, attack scores) of each MIA document."""
    texts = [doc["document"] for doc in docs]
    stats = document_token_stats(model, tokenizer, texts, batch_size)
    return ([mean_nll(s.token_log_probs) for s in stats],
            [attack_scores(s, text, k) for s, text in zip(stats, texts)])


def loss_rows(docs: list[dict], member: int, losses: list[float], scores: list[dict]) -> list[dict]:
    """losses.jsonl rows: the NLL as `loss` (the loss attack's score is its negation) and the other attacks' scores."""
    return [{"id": doc["id"], "member": member, "loss": loss, **{name: s[name] for name in ATTACKS if name != "loss"}}
            for doc, loss, s in zip(docs, losses, scores)]


def load_inputs(params: dict) -> dict:
    """The members and non-members of `data.split`, read and checked before any model loads."""
    suffix = "" if params["data"]["split"] == "train" else "_" + params["data"]["split"]
    members, nonmembers = prepared_split("mia_member" + suffix), prepared_split("mia_nonmember" + suffix)
    if not members or not nonmembers:
        raise PipelineError("data/prepared: MIA member and non-member sets must both be non-empty; "
                            "rerun `python -m stages.prepare`")
    return {"members": members, "nonmembers": nonmembers}


def run(model, tokenizer, inputs: dict, params: dict) -> dict:
    batch_size, k = params["mia"]["batch_size"], params["mia"]["min_k"]
    members, nonmembers = inputs["members"], inputs["nonmembers"]
    member_losses, member_scores = score_documents(model, tokenizer, members, batch_size, k)
    nonmember_losses, nonmember_scores = score_documents(model, tokenizer, nonmembers, batch_size, k)
    return {"metrics": {**mia_metrics(member_losses, nonmember_losses),
                        **attack_metrics(member_scores, nonmember_scores)},
            "rows": (loss_rows(members, 1, member_losses, member_scores)
                     + loss_rows(nonmembers, 0, nonmember_losses, nonmember_scores))}


def write(name: str, result: dict) -> None:
    metrics = result["metrics"]
    with atomic_output(EVAL_DIR / name / "mia") as out_dir:
        out_dir.mkdir()
        write_json(out_dir / "mia.json", metrics)
        write_jsonl(out_dir / "losses.jsonl", result["rows"])
    strongest = metrics["strongest"]
    print(f"{name}: MIA AUC {metrics['auc']:.4f}, score {metrics['score']:.4f}; strongest attack {strongest}: "
          f"AUC {metrics['attacks'][strongest]['auc']:.4f}, score {metrics['attacks'][strongest]['score']:.4f}")


@exit_on_error
def main(argv=None):
    evaluate_stage_model(parse_model_arg(__doc__.splitlines()[0], argv), load_validated(), [(load_inputs, run, write)])


if __name__ == "__main__":
    main()
