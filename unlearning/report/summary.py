"""The summary of every run's evaluation, from the evaluation directories of the target, the headline run, the
sweep's triples, the methods and the seeds, each score with its bootstrap interval (intervals.py) under "intervals",
and the three files it is written to, in two layers:

- reports/metrics.json (DVC metrics, what `dvc exp show` lists): the headline run's five scores, under short keys
  and at two decimals, so that `dvc exp show --only-changed` fits a 120-column terminal beside the params;
- reports/metrics/runs.json: every run's five scores with their intervals, the seed spread and the settings;
- reports/metrics/detail.json: everything, the twelve numbers, the attacks, PII, validation and MMLU by subject
  included.

The two under reports/metrics/ are DVC outputs, not registered metrics: `dvc metrics show reports/metrics/runs.json`
prints one, and `python -m unlearning.tools.compare` the experiments with the headline's intervals."""
import statistics
from pathlib import Path

from ..data.schema import KINDS, SETS, TASKS
from ..evaluation.pii import PII_KINDS
from ..evaluation.scoring import final_score
from ..config import run_name
from ..files import read_json
from ..numerics import FILE as FINGERPRINT
from ..numerics import describe, differences, identity
from .intervals import SEED, model_intervals

CELL_LABELS = [f"{s[0].upper()}{task[-1]} {kind}" for s in SETS for task in TASKS for kind in KINDS]


def model_summary(eval_dir: Path, resamples: int, confidence: float) -> dict:
    """Every number of one model's evaluation, with the final SemEval score, and the bootstrap intervals of the
    scores (`resamples` resamples, `confidence` level)."""
    task = read_json(eval_dir / "task" / "scores.json")
    pii = read_json(eval_dir / "task" / "pii.json")
    mia = read_json(eval_dir / "mia" / "mia.json")
    mmlu = read_json(eval_dir / "mmlu" / "mmlu.json")
    available = mia.get("available", True)  # evaluations from before optional MIA always had it
    strongest_other = min((name for name in mia["attacks"] if name != "loss"),
                          key=lambda name: mia["attacks"][name]["score"], default=None)
    summary = {
        # as the official evaluation, no final score without MIA (it reports -1 there)
        "final": final_score(task["task_aggregate"], mia["score"], mmlu["accuracy"]) if available else None,
        "task_aggregate": task["task_aggregate"],
        "mia_auc": mia["auc"],
        "mia_score": mia["score"],
        "mmlu": mmlu["accuracy"],
        "mmlu_format": mmlu.get("format", "mc"),  # evaluations from before mmlu.format were all mc
        "member_mean_loss": mia["member_mean_loss"],
        "nonmember_mean_loss": mia["nonmember_mean_loss"],
        "strongest_other_attack": strongest_other,
        "strongest_other_mia_score": mia["attacks"][strongest_other]["score"] if available else None,
        "mia_available": available,
        "pii_extraction_forget": pii["forget"]["any"]["rate"],
        "pii_extraction_retain": pii["retain"]["any"]["rate"],
        "mmlu_per_subject": mmlu["per_subject"],
        "scores": task["scores"],
        "attacks": mia["attacks"],
        "pii": {split: {kind: {k: pii[split][kind][k] for k in ("documents", "extracted", "rate")}
                        for kind in (*PII_KINDS, "any")} for split in SETS},
        "intervals": model_intervals(eval_dir, resamples, confidence),
    }
    if "validation" in task:
        summary["validation"] = task["validation"]
    return summary


# The columns of a run in the sweep and method tables.
RUN_COLUMNS = ("final", "task_aggregate", "mia_auc", "mia_score", "strongest_other_mia_score", "mmlu",
               "pii_extraction_forget", "pii_extraction_retain")


def run_row(summary: dict) -> dict:
    """A row of the method table: the run's columns and the intervals of those that have one."""
    return {**{key: summary[key] for key in (*RUN_COLUMNS, "strongest_other_attack")},
            "intervals": {key: summary["intervals"][key] for key in RUN_COLUMNS if key in summary["intervals"]}}


def sweep_row(summary: dict) -> dict:
    """A row of the sweep table: a method row with the twelve numbers, and their intervals."""
    row = run_row(summary)
    return {**row, "scores": summary["scores"],
            "intervals": {**row["intervals"], "scores": summary["intervals"]["scores"]}}


def sweep_runs(sweep: list[int], layers: list[int]) -> dict[int, str]:
    """First layer -> run, for every triple of the sweep and the headline triple (the same settings)."""
    runs = {first: run_name("sweep", first) for first in sweep}
    runs[layers[0]] = "unlearned"
    return dict(sorted(runs.items()))


def method_runs(method: str, methods: list[str], baselines: list[str]) -> dict[str, str]:
    """Method -> run: the headline method, then `methods` and `baselines` in params order."""
    runs = {method: "unlearned"}
    runs.update({other: run_name("method", other) for other in methods + baselines if other not in runs})
    return runs


def cells(scores: dict):
    for split in SETS:
        for task in TASKS:
            for kind in KINDS:
                yield f"{split} {task} {kind}", scores[split][task][kind]


SPREAD_COLUMNS = ("final", "task_aggregate", "mia_score", "mmlu")


def seed_models(seed: int, seeds: list[int]) -> dict[int, str]:
    """Unlearning seed -> the model folder of the headline run at that seed: `unlearned` at `unlearn.seed`,
    `seed/<S>` for each other of `seeds`."""
    return {seed: "unlearned", **{other: run_name("seed", other) for other in seeds if other != seed}}


def spread_of(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value) and range."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def seed_spread(rows: dict[int, dict]) -> dict:
    """Mean, sample standard deviation and range of each headline column over the unlearning seeds (seed -> run row):
    how far two runs that differ only in their random draws land apart; null for a column without values (no MIA
    data)."""
    spread = {"seeds": sorted(rows)}
    for column in SPREAD_COLUMNS:
        values = [rows[seed][column] for seed in sorted(rows)]
        if None in values:
            spread[column] = None
            continue
        spread[column] = spread_of(values)
    return spread


def run_identity(eval_dir: Path) -> dict:
    """The target and numerics behind one model's three evaluations (numerics.identity of their fingerprints)."""
    return identity([read_json(Path(eval_dir) / part / FINGERPRINT) for part in ("task", "mia", "mmlu")])


def provenance(identities: dict[str, dict]) -> dict:
    """Where the report's numbers were computed: the headline's identity, and every run (by model folder) that
    cannot be compared with it, with the reasons. The tables leave those runs out and list them apart."""
    reference = identities["unlearned"]
    apart = {}
    for run, found in sorted(identities.items()):
        reasons = differences(found, reference) if run != "unlearned" else []
        if reasons:
            apart[run] = {"reasons": reasons, "target": found["target"], "numerics": found["numerics"]}
    return {"target_sha256": reference["target"], "numerics": reference["numerics"],
            "description": "; ".join(describe(computed) for computed in reference["evaluation"]),
            "identity": reference, "apart": apart}


def build_metrics(eval_dir: Path, split: str, layers: list[int], alpha, method: str, beta, steps: int, min_k: float,
                  sweep: list[int], methods: list[str], baselines: list[str], resamples: int,
                  confidence: float, seed: int = 0, seeds: list[int] = ()) -> dict:
    """metrics.json: the settings the report names, the target ("before") and the headline run ("after") in full,
    a row per method and per triple, every score with its interval (`resamples`, `confidence`: `report.*`)."""
    triples, method_table = sweep_runs(sweep, layers), method_runs(method, methods, baselines)
    seed_runs = seed_models(seed, seeds)
    runs = sorted({"target", *triples.values(), *method_table.values(), *seed_runs.values()})
    computed = provenance({run: run_identity(Path(eval_dir) / run) for run in runs})
    summaries = {run: model_summary(Path(eval_dir) / run, resamples, confidence) for run in runs}

    def comparable(table: dict) -> dict:
        return {key: run for key, run in table.items() if run not in computed["apart"]}

    triples, method_table, seed_runs = comparable(triples), comparable(method_table), comparable(seed_runs)
    return {
        "split": split, "layers": layers, "alpha": alpha, "method": method, "beta": beta, "steps": steps,
        "seed": seed, "min_k": min_k,
        "bootstrap": {"method": "percentile", "over": "documents", "resamples": resamples, "confidence": confidence,
                      "seed": SEED},
        "before": summaries["target"], "after": summaries["unlearned"],
        "methods": {name: run_row(summaries[run]) for name, run in method_table.items()},
        # keys are strings so that metrics.json round-trips through JSON unchanged
        "sweep": {str(first): sweep_row(summaries[run]) for first, run in triples.items()},
        "seeds": {str(other): run_row(summaries[run]) for other, run in sorted(seed_runs.items())},
        "seed_spread": seed_spread({other: summaries[run] for other, run in seed_runs.items()}),
        "computed": computed,
        "apart": {run: run_row(summaries[run]) for run in computed["apart"]},
    }


# reports/metrics.json's key for each headline score, short so that `dvc exp show` stays narrow
HEADLINE_KEYS = {"final": "final", "task_aggregate": "task", "mia_auc": "auc", "mia_score": "mia", "mmlu": "mmlu"}
# the intervals are about +-0.1 wide on the default: a third digit would be noise, and two keep the columns narrow
HEADLINE_DIGITS = 2
RUN_SCORES = tuple(HEADLINE_KEYS)


def headline_metrics(metrics: dict) -> dict:
    """reports/metrics.json: the headline run's five scores, rounded (the other files keep every digit), and the
    short ids of its target and numerics, so that `dvc exp show` shows which experiments can be compared."""
    scores = {short: None if metrics["after"][key] is None else round(metrics["after"][key], HEADLINE_DIGITS)
              for key, short in HEADLINE_KEYS.items()}
    return {**scores, "target": metrics["computed"]["target_sha256"][:8], "numerics": metrics["computed"]["numerics"]}


def run_scores(row: dict) -> dict:
    return {**{key: row[key] for key in RUN_SCORES},
            "intervals": {key: row["intervals"].get(key) for key in RUN_SCORES}}


def run_metrics(metrics: dict) -> dict:
    """reports/metrics/runs.json: the settings, then per run (the target, the headline, each sweep triple, method and
    seed) the five scores with their intervals, and the seed spread."""
    settings = {key: metrics[key] for key in ("split", "layers", "alpha", "method", "beta", "steps", "seed",
                                              "bootstrap")}
    return {"settings": settings,
            "runs": {"target": run_scores(metrics["before"]), "headline": run_scores(metrics["after"]),
                     **{run_name("sweep", first): run_scores(row) for first, row in metrics["sweep"].items()},
                     **{run_name("method", name): run_scores(row) for name, row in metrics["methods"].items()},
                     **{run_name("seed", seed): run_scores(row) for seed, row in metrics["seeds"].items()}},
            "seed_spread": metrics["seed_spread"], "computed": metrics["computed"]}


def detail_files(metrics: dict) -> dict[str, dict]:
    """The files of reports/metrics/: name -> content."""
    return {"runs.json": run_metrics(metrics), "detail.json": metrics}
