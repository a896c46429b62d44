"""Membership inference on whole documents (members: the forget Task3 documents of `data.split`; non-members:
documents of the same kind the model never saw). The official score is the loss attack's; the zlib, Min-K% and
Min-K%++ attacks are reported beside it, and the strongest is named. Every attack reads the same per-token
numbers of one forward per document batch (token_stats.py); adding one is a function and a line in ATTACKS, and
its test.

MIA data is optional, as in the official evaluation: where the prepared data has no members and non-members for
the split, mia.json says `"available": false` with the reason, losses.jsonl is empty, and the MIA and final scores
are n/a downstream (officially the final score is then -1).
"""
import statistics
import zlib
from pathlib import Path

import torch

from ..data.prepared import prepared_split
from ..data.schema import PREPARED_FILES
from ..errors import PipelineError
from ..files import atomic_output, write_json, write_jsonl
from ..numerics import FILE as FINGERPRINT
from .scoring import attack_auc, mia_auc, mia_score
from .token_stats import TokenStats, document_token_stats, mean_nll

# sigma is 0 only where the next-token distribution is one-hot even in float64; this floor keeps Min-K%++'s z
# finite there (0 when the actual token is the certain one, very negative otherwise)
MIN_SIGMA = 1e-12


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


# name -> (one document's score from its TokenStats, its text and `mia.min_k`: higher means 'member'; the name the
# report prints). The order is the report's and the tie-break for the strongest attack.
ATTACKS = {
    "loss": (lambda stats, text, k: loss_attack(stats.token_log_probs), "loss (official)"),
    "zlib": (lambda stats, text, k: zlib_attack(stats.token_log_probs, text), "zlib ratio"),
    "min_k": (lambda stats, text, k: min_k_attack(stats.token_log_probs, k), "Min-K% prob"),
    "min_k_plus_plus": (lambda stats, text, k: min_k_plus_plus_attack(stats.token_log_probs, stats.mu, stats.sigma, k),
                        "Min-K%++"),
}


def attack_scores(stats: TokenStats, text: str, k: float) -> dict[str, float]:
    """Every attack's score of one document (higher means 'member'), by attack name."""
    return {name: attack(stats, text, k) for name, (attack, _) in ATTACKS.items()}


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


def not_available(reason: str) -> dict:
    """mia.json where there is no MIA data: every score null, and why."""
    return {"available": False, "reason": reason, "auc": None, "score": None, "member_mean_loss": None,
            "nonmember_mean_loss": None, "attacks": {}, "strongest": None}


def load_inputs(prepared, split: str) -> dict:
    """The members and non-members of `split`, read and checked before any model loads, or {"members": None,
    "reason": ...} where the data source has neither file for that split."""
    suffix = "" if split == "train" else "_" + split
    paths = [Path(prepared) / PREPARED_FILES[key + suffix] for key in ("mia_member", "mia_nonmember")]
    if not any(path.is_file() for path in paths):
        return {"members": None, "nonmembers": None,
                "reason": f"the data source has no MIA members and non-members for the {split} split"}
    members = prepared_split(prepared, "mia_member" + suffix)
    nonmembers = prepared_split(prepared, "mia_nonmember" + suffix)
    if not members or not nonmembers:
        raise PipelineError(f"{prepared}: MIA member and non-member sets must both be non-empty; "
                            "rerun `python -m stages.prepare`")
    return {"members": members, "nonmembers": nonmembers}


def run(model, tokenizer, inputs: dict, batch_size: int, k: float) -> dict:
    members, nonmembers = inputs["members"], inputs["nonmembers"]
    if members is None:
        return {"metrics": not_available(inputs["reason"]), "rows": []}
    member_losses, member_scores = score_documents(model, tokenizer, members, batch_size, k)
    nonmember_losses, nonmember_scores = score_documents(model, tokenizer, nonmembers, batch_size, k)
    return {"metrics": {"available": True, **mia_metrics(member_losses, nonmember_losses),
                        **attack_metrics(member_scores, nonmember_scores)},
            "rows": (loss_rows(members, 1, member_losses, member_scores)
                     + loss_rows(nonmembers, 0, nonmember_losses, nonmember_scores))}


def write(out, result: dict, name: str, fingerprint: dict) -> None:
    """mia.json (AUC and score of every attack), losses.jsonl (each document's numbers) and fingerprint.json in the
    directory `out`."""
    metrics = result["metrics"]
    with atomic_output(out) as out_dir:
        out_dir.mkdir()
        write_json(out_dir / FINGERPRINT, fingerprint)
        write_json(out_dir / "mia.json", metrics)
        write_jsonl(out_dir / "losses.jsonl", result["rows"])
    if not metrics["available"]:
        print(f"{name}: MIA not available: {metrics['reason']}; the MIA and final scores are n/a")
        return
    strongest = metrics["strongest"]
    print(f"{name}: MIA AUC {metrics['auc']:.4f}, score {metrics['score']:.4f}; strongest attack {strongest}: "
          f"AUC {metrics['attacks'][strongest]['auc']:.4f}, score {metrics['attacks'][strongest]['score']:.4f}")
