"""The attacks' table (stages/attack.py): for each attacked model and attack, its forget score on half B of the forget
documents, the Task2 documents of half B whose PII it reproduces, and the recovery

    recovery = (attacked - unlearned) / (target - unlearned)

of the forget score, 0 when the attack gives nothing back and 1 when it gives back all unlearning took. The forget
score of a model on half B is the mean of its six forget cells there (3 tasks x sentence completion / QA; each cell the
mean of its rows' scores, as the official cells), not inverted: higher is more remembered. "Unlearned" and "target"
are the model's and the target's own evaluations (their generations.jsonl) restricted to half B, so the three
numbers of a recovery come from the same rows. Each gets a percentile bootstrap interval over half B's documents,
resampled within each task, the same draws for all three (a paired bootstrap), seeded. Every model is resampled with
the same draws (half B and its documents are the same for all), so "minus the headline's" (a model's recovery less
the headline run's under the same attack) is paired too: which method resists best, by how much.

Where unlearning took less than MIN_GAP of the forget score on half B (the target; fixed-coefficient RMU on the
default), the recovery is a ratio of two small differences whose interval runs to +-infinity; it is n/a.
"""
from pathlib import Path

import numpy as np

from ..data.schema import KINDS, TASKS, document_id
from ..errors import PipelineError
from ..evaluation.pii import pii_extraction
from ..files import read_json, read_jsonl
from ..evaluation.robustness import recovery
from .intervals import bootstrap
from .markdown import fmt_spread
from .summary import spread_of

MIN_GAP = 0.1   # target - unlearned below this: nothing to recover (fixed-coefficient RMU's 0.03 on the default)
HEADLINE = "unlearned"
CELLS = [(task, kind) for task in TASKS for kind in KINDS]


def attack_variants(attack: dict) -> dict[str, dict]:
    """"relearn@10", "benign@50", "ablation" -> {"scores": {row id: score}, "pii": counts}."""
    variants = {}
    for name in ("relearn", "benign"):
        for steps, result in attack["attacks"][name].items():
            variants[f"{name}@{steps}"] = result
    if attack["attacks"].get("ablation") is not None:
        variants["ablation"] = attack["attacks"]["ablation"]
    return variants


def document_sums(records: dict[str, dict], scores: dict[str, float], documents: list[tuple]) -> np.ndarray:
    """(documents, cells) sums of row scores; `documents` are (task, document id) with their row ids."""
    sums = np.zeros((len(documents), len(CELLS)))
    for d, (task, _, ids) in enumerate(documents):
        for row_id in ids:
            sums[d, CELLS.index((task, records[row_id]["kind"]))] += scores[row_id]
    return sums


def forget_scores(weights: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The forget score under each resample's document weights (resamples, documents): the mean of the six cells."""
    with np.errstate(invalid="ignore", divide="ignore"):
        cells = (weights @ sums) / (weights @ counts)
    return np.nanmean(cells, axis=-1)


def interval(values: np.ndarray, confidence: float) -> list[float] | None:
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    tail = (1 - confidence) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def pii_on(records: dict[str, dict], ids: list[str]) -> dict:
    rows = [records[row_id] for row_id in ids]
    return pii_extraction(rows, [row["generation"] for row in rows])["forget"]["any"]


def model_attacks(eval_dir: Path, model: str, resamples: int, confidence: float) -> tuple[dict, dict]:
    """The model's attack results, and each attack's resampled recoveries (for the paired comparisons)."""
    attack = read_json(eval_dir / "attack" / model / "attack.json")
    ids = attack["half_b"]
    own = {r["id"]: r for r in read_jsonl(eval_dir / model / "task" / "generations.jsonl")}
    target = {r["id"]: r for r in read_jsonl(eval_dir / "target" / "task" / "generations.jsonl")}
    missing = [row_id for row_id in ids if row_id not in own or row_id not in target]
    if missing:
        raise PipelineError(f"{eval_dir / 'attack' / model}: half B's row {missing[0]} is not in the evaluations' "
                            "generations; rerun `dvc repro`")
    by_document = {}
    for row_id in ids:
        by_document.setdefault((own[row_id]["task"], document_id(row_id)), []).append(row_id)
    documents = [(task, doc, rows) for (task, doc), rows in sorted(by_document.items())]
    counts = document_sums(own, {row_id: 1.0 for row_id in ids}, documents)
    variants = attack_variants(attack)
    # the forget score of the model, of the target and of each attack, on the same draws of documents within tasks
    all_sums = np.stack([document_sums(own, scores, documents) for scores in (
        {i: own[i]["score"] for i in ids}, {i: target[i]["score"] for i in ids},
        *(variant["scores"] for variant in variants.values()))])
    sizes = [sum(doc_task == task for doc_task, _, _ in documents) for task in TASKS]
    sizes = [size for size in sizes if size]  # documents are sorted by task: the draws' columns line up with them

    def forget_of_all(task_counts):
        weights = np.concatenate(task_counts, axis=1).astype(float)
        return np.stack([forget_scores(weights, sums, counts) for sums in all_sums])

    point = forget_of_all([np.ones((1, size)) for size in sizes])[:, 0]
    draws = bootstrap(sizes, forget_of_all, resamples, confidence)[1]
    (unlearned, upper), (unlearned_draws, upper_draws) = point[:2].tolist(), draws[:2]
    recoverable = upper - unlearned >= MIN_GAP
    result = {"half_b_documents": len(documents), "half_b_rows": len(ids), "recoverable": recoverable,
              "unlearned": {"forget": unlearned, "interval": interval(unlearned_draws, confidence),
                            "pii": pii_on(own, ids)},
              "target": {"forget": upper, "interval": interval(upper_draws, confidence), "pii": pii_on(target, ids)},
              "attacks": {}}
    recovery_draws = {}
    for (name, variant), value, variant_draws in zip(variants.items(), point[2:].tolist(), draws[2:]):
        entry = {"forget": value, "interval": interval(variant_draws, confidence), "recovery": None,
                 "recovery_interval": None, "pii": variant["pii"]["any"]}
        if recoverable:
            with np.errstate(invalid="ignore", divide="ignore"):
                recovery_draws[name] = (variant_draws - unlearned_draws) / (upper_draws - unlearned_draws)
            entry["recovery"] = recovery(value, unlearned, upper)
            entry["recovery_interval"] = interval(recovery_draws[name], confidence)
        result["attacks"][name] = entry
    return result, recovery_draws


def attacks_summary(eval_dir: Path, models: list[str], resamples: int, confidence: float) -> dict:
    """model -> its attack results (model_attacks), for every model of `attack.models`; with the headline run among
    them, each other model's recovery less the headline's under each attack both have, paired."""
    summary, draws = {}, {}
    for model in models:
        summary[model], draws[model] = model_attacks(Path(eval_dir), model, resamples, confidence)
    if HEADLINE in summary:
        for model, result in summary.items():
            for name, attacked in result["attacks"].items():
                if model != HEADLINE and name in draws[model] and name in draws[HEADLINE]:
                    headline = summary[HEADLINE]["attacks"][name]["recovery"]
                    attacked["minus_headline"] = {
                        "value": attacked["recovery"] - headline,
                        "interval": interval(draws[model][name] - draws[HEADLINE][name], confidence)}
    return summary


def recovery_seed_spread(summary: dict, seed_models: dict[int, str]) -> dict | None:
    """Each attack's recovery over unlearning seeds (seed -> the attacked model that is the headline run at that
    seed: `unlearned`, `seed/<S>`): mean, sample std and range; what the document intervals leave out. None unless
    at least two of those models were attacked and unlearning took something from each."""
    attacked = {seed: summary[model] for seed, model in seed_models.items()
                if model in summary and summary[model]["recoverable"]}
    if len(attacked) < 2:
        return None
    names = [name for name in attacked[min(attacked)]["attacks"]
             if all(name in result["attacks"] for result in attacked.values())]
    return {"seeds": sorted(attacked),
            "attacks": {name: spread_of([attacked[seed]["attacks"][name]["recovery"] for seed in sorted(attacked)])
                        for name in names}}


def most_resistant(summary: dict) -> dict[str, str]:
    """attack -> the attacked model with the lowest recovery under it (models unlearning took something from)."""
    lowest = {}
    for model, result in summary.items():
        for name, attacked in result["attacks"].items():
            if attacked["recovery"] is not None and (
                    name not in lowest or attacked["recovery"] < summary[lowest[name]]["attacks"][name]["recovery"]):
                lowest[name] = model
    return lowest


def _with_interval(value, bounds) -> str:
    if value is None or value != value:   # None or NaN
        return "n/a"
    return f"{value:.3f}" + (f" [{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else " [n/a]")


def _pii(counts: dict) -> str:
    return f"{counts['extracted']}/{counts['documents']}" if counts["documents"] else "n/a"


def attacks_markdown(attacks: dict, settings: dict, spread: dict | None = None) -> str:
    """The report's section: one row per model and attack, the unattacked model and the target first; the lowest
    recovery under each attack; the headline's recovery over seeds (`spread`, recovery_seed_spread) where known."""
    if not attacks:
        return ""
    first = next(iter(attacks.values()))
    lines = ["", "## Is it really forgotten? Relearning and direction ablation", "",
             f"Scored on half B of the forget documents ({first['half_b_documents']} documents, "
             f"{first['half_b_rows']} rows; `attack.seed` {settings['seed']}). *relearn@k*: a copy fine-tuned for k "
             f"steps on half A's texts; *benign@k*: on the retain rows only (lr {settings['lr']}, "
             f"trained: {settings['trained']}); *ablation*: the run's RMU steering directions removed from its "
             "steered layer's output (RMU runs only). Forget score: the mean of the six forget cells on half B, "
             "higher is more remembered. Recovery = (attacked - unlearned) / (target - unlearned): 0 gives nothing "
             "back, 1 all that unlearning took; n/a where unlearning took less than "
             f"{MIN_GAP} of the forget score on half B. *Minus the headline's*: the recovery less the headline run's "
             "(`unlearned`) under the same attack; below 0 resists better. PII: half B's Task2 documents with a "
             "value reproduced. Intervals: a paired bootstrap over half B's documents, the same draws for every "
             "model.", "",
             "| model | attack | forget score on half B | PII documents | recovery | minus the headline's |",
             "|---|---|---:|---:|---:|---:|"]
    for model, result in attacks.items():
        unattacked = result["unlearned"]
        lines.append(f"| {model} | none | {_with_interval(unattacked['forget'], unattacked['interval'])}"
                     f" | {_pii(unattacked['pii'])} | {0 if result['recoverable'] else 'n/a'} | |")
        for name, attacked in result["attacks"].items():
            versus = attacked.get("minus_headline")
            lines.append(f"| | {name} | {_with_interval(attacked['forget'], attacked['interval'])} | "
                         f"{_pii(attacked['pii'])} | "
                         f"{_with_interval(attacked['recovery'], attacked['recovery_interval'])} | "
                         f"{_with_interval(versus['value'], versus['interval']) if versus else ''} |")
    target = first["target"]
    lines += ["", f"The target unattacked on half B: {_with_interval(target['forget'], target['interval'])}, PII "
                  f"{_pii(target['pii'])}.", ""]
    lowest = most_resistant(attacks)
    if sum(result["recoverable"] for result in attacks.values()) > 1:   # a choice between models
        lines += ["Lowest recovery under each attack (minus the headline's in brackets where it is not the "
                  "headline):", ""]
        for name, model in lowest.items():
            attacked = attacks[model]["attacks"][name]
            versus = attacked.get("minus_headline")
            lines.append(f"- {name}: `{model}`, {_with_interval(attacked['recovery'], attacked['recovery_interval'])}"
                         + (f" ({_with_interval(versus['value'], versus['interval'])})" if versus else ""))
        lines.append("")
    if spread:
        lines += [f"The headline run's recovery over unlearning seeds {', '.join(map(str, spread['seeds']))} "
                  "(each seed's run attacked): mean ± sample std [min, max]; a difference between two models must "
                  "beat this too.",
                  "", "| attack | recovery over seeds |", "|---|---:|"]
        lines += [f"| {name} | {fmt_spread(values)} |" for name, values in spread["attacks"].items()]
        lines.append("")
    return "\n".join(lines) + "\n"


def plot_recovery(attacks: dict, path: Path) -> None:
    """Recovery against fine-tuning steps, one line per model, a panel per relearning attack."""
    from .plots import plt, save_figure
    fig, (*axes, legend_ax) = plt.subplots(1, 3, figsize=(12.5, 4), gridspec_kw={"width_ratios": [1, 1, 0.45]})
    axes[1].sharey(axes[0])
    for ax, kind, title in zip(axes, ("relearn", "benign"), ("relearning on half A", "benign: retain rows only")):
        for model, result in attacks.items():
            points = [(int(name.split("@")[1]), a) for name, a in result["attacks"].items()
                      if name.startswith(kind + "@") and a["recovery"] is not None]
            if not points:
                continue
            # 0 steps: the unlearned model itself, recovery 0 by definition
            steps = [0] + [s for s, _ in points]
            values = [0.0] + [a["recovery"] for _, a in points]
            bounds = [[0.0, 0.0]] + [a["recovery_interval"] or [a["recovery"]] * 2 for _, a in points]
            ax.errorbar(steps, values, yerr=[[v - b[0] for v, b in zip(values, bounds)],
                                             [b[1] - v for v, b in zip(values, bounds)]],
                        marker="o", capsize=3, label=model)
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(1, color="grey", lw=0.8, ls="--")
        ax.set_title(title)
        ax.set_xlabel("fine-tuning steps")
    axes[0].set_ylabel("recovery of the forget score (1: the target's)")
    legend_ax.axis("off")
    handles, labels = axes[0].get_legend_handles_labels()
    if labels:
        legend_ax.legend(handles, labels, loc="center left", fontsize=8, frameon=False)
    save_figure(fig, path)
