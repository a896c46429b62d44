"""The summary of every run's evaluation: what reports/metrics.json holds (DVC metrics), from the evaluation
directories of the target, the headline run, the sweep's triples and the methods."""
from pathlib import Path

from ..data.schema import KINDS, SETS, TASKS
from ..evaluation.pii import PII_KINDS
from ..evaluation.scoring import final_score
from ..files import read_json

CELL_LABELS = [f"{s[0].upper()}{task[-1]} {kind}" for s in SETS for task in TASKS for kind in KINDS]


def model_summary(eval_dir: Path) -> dict:
    """Every number of one model's evaluation, with the final SemEval score."""
    task = read_json(eval_dir / "task" / "scores.json")
    pii = read_json(eval_dir / "task" / "pii.json")
    mia = read_json(eval_dir / "mia" / "mia.json")
    mmlu = read_json(eval_dir / "mmlu" / "mmlu.json")
    strongest_other = min((name for name in mia["attacks"] if name != "loss"),
                          key=lambda name: mia["attacks"][name]["score"])
    summary = {
        "final": final_score(task["task_aggregate"], mia["score"], mmlu["accuracy"]),
        "task_aggregate": task["task_aggregate"],
        "mia_auc": mia["auc"],
        "mia_score": mia["score"],
        "mmlu": mmlu["accuracy"],
        "strongest_other_attack": strongest_other,
        "strongest_other_mia_score": mia["attacks"][strongest_other]["score"],
        "pii_extraction_forget": pii["forget"]["any"]["rate"],
        "pii_extraction_retain": pii["retain"]["any"]["rate"],
        "mmlu_per_subject": mmlu["per_subject"],
        "scores": task["scores"],
        "attacks": mia["attacks"],
        "pii": {split: {kind: {k: pii[split][kind][k] for k in ("documents", "extracted", "rate")}
                        for kind in (*PII_KINDS, "any")} for split in SETS},
    }
    if "validation" in task:
        summary["validation"] = task["validation"]
    return summary


# The columns of a run in the sweep and method tables (and in metrics.json, where `dvc exp show` lists them).
RUN_COLUMNS = ("final", "task_aggregate", "mia_auc", "mia_score", "strongest_other_mia_score", "mmlu",
               "pii_extraction_forget", "pii_extraction_retain")


def run_row(summary: dict) -> dict:
    return {key: summary[key] for key in (*RUN_COLUMNS, "strongest_other_attack")}


def sweep_runs(sweep: list[int], layers: list[int]) -> dict[int, str]:
    """First layer -> run, for every triple of the sweep and the headline triple (the same settings)."""
    runs = {first: f"sweep/{first}" for first in sweep}
    runs[layers[0]] = "unlearned"
    return dict(sorted(runs.items()))


def method_runs(method: str, methods: list[str], baselines: list[str]) -> dict[str, str]:
    """Method -> run: the headline method, then `methods` and `baselines` in params order."""
    runs = {method: "unlearned"}
    runs.update({other: f"method/{other}" for other in methods + baselines if other not in runs})
    return runs


def cells(scores: dict):
    for split in SETS:
        for task in TASKS:
            for kind in KINDS:
                yield f"{split} {task} {kind}", scores[split][task][kind]


def build_metrics(eval_dir: Path, split: str, layers: list[int], alpha, method: str, beta, steps: int, min_k: float,
                  sweep: list[int], methods: list[str], baselines: list[str]) -> dict:
    """metrics.json: the settings the report names, the target ("before") and the headline run ("after") in full,
    a row per method and per triple."""
    triples, method_table = sweep_runs(sweep, layers), method_runs(method, methods, baselines)
    summaries = {run: model_summary(Path(eval_dir) / run)
                 for run in {"target", *triples.values(), *method_table.values()}}
    return {
        "split": split, "layers": layers, "alpha": alpha, "method": method, "beta": beta, "steps": steps,
        "min_k": min_k, "before": summaries["target"], "after": summaries["unlearned"],
        "methods": {name: run_row(summaries[run]) for name, run in method_table.items()},
        # keys are strings so that metrics.json round-trips through JSON unchanged
        "sweep": {str(first): {**run_row(summaries[run]), "scores": summaries[run]["scores"]}
                  for first, run in triples.items()},
    }
