"""Stage `report`: reports/metrics.json (DVC metrics), reports/report.md and the plots, before vs after."""
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from . import io  # noqa: E402
from .errors import exit_on_error  # noqa: E402
from .params import load_validated  # noqa: E402
from .scoring import final_score  # noqa: E402
from .unlearn import LIVE_DIR  # noqa: E402

REPORTS = Path("reports")
EVAL = io.EVAL_DIR
MODELS = {"target": "before (target)", "unlearned": "after (unlearned)"}
SPLITS, TASKS, KINDS = ("forget", "retain"), ("Task1", "Task2", "Task3"), ("sc", "qa")
KIND_NAMES = {"sc": "sentence completion, ROUGE-L recall", "qa": "QA, exact match"}


def model_summary(eval_dir: Path) -> dict:
    """Every number of one model's evaluation, with the final SemEval score."""
    task = io.read_json(eval_dir / "task" / "scores.json")
    mia = io.read_json(eval_dir / "mia" / "mia.json")
    mmlu = io.read_json(eval_dir / "mmlu" / "mmlu.json")
    return {
        "final": final_score(task["task_aggregate"], mia["score"], mmlu["accuracy"]),
        "task_aggregate": task["task_aggregate"],
        "mia_auc": mia["auc"],
        "mia_score": mia["score"],
        "mmlu": mmlu["accuracy"],
        "mmlu_per_subject": mmlu["per_subject"],
        "scores": task["scores"],
    }


def cells(scores: dict):
    for split in SPLITS:
        for task in TASKS:
            for kind in KINDS:
                yield f"{split} {task} {kind}", scores[split][task][kind]


def markdown_report(metrics: dict, info: dict, mmlu_source: str) -> str:
    before, after = metrics["before"], metrics["after"]
    lines = [
        "# Adaptive RMU unlearning report",
        "",
        f"Layers {metrics['layers']} (steered: {metrics['layers'][-1]}), alpha {metrics['alpha']}, "
        f"method {metrics['method']}, beta {metrics['beta']}. Data: {info['source']}, {metrics['split']} split. "
        f"MMLU column: {mmlu_source}.",
        "",
        "| model | final score | task aggregate | MIA AUC | MIA score | MMLU |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in (("before (target)", before), ("after (unlearned)", after)):
        lines.append(f"| {name} | {row['final']:.3f} | {row['task_aggregate']:.3f} | {row['mia_auc']:.3f} "
                     f"| {row['mia_score']:.3f} | {row['mmlu']:.3f} |")
    lines += [
        "",
        "Final score = mean(task aggregate, MIA score, MMLU), as the official SemEval-2025 Task 4 evaluation. "
        "Task aggregate = harmonic mean of the twelve numbers below with every forget value replaced by 1 - x. "
        "MIA score = 1 - 2|AUC - 0.5| for the loss attack (members: forget Task3 documents).",
        "",
        "## The twelve numbers (raw: on forget, lower means more forgotten)",
        "",
        "| split | task | kind | before | after |",
        "|---|---|---|---:|---:|",
    ]
    for (cell, value_before), (_, value_after) in zip(cells(before["scores"]), cells(after["scores"])):
        split, task, kind = cell.split()
        lines.append(f"| {split} | {task} | {KIND_NAMES[kind]} | {value_before:.3f} | {value_after:.3f} |")
    subjects = before["mmlu_per_subject"]
    if len(subjects) > 1:
        lines += ["", "## MMLU by subject", "", "| subject | before | after |", "|---|---:|---:|"]
        lines += [f"| {s} | {subjects[s]:.3f} | {after['mmlu_per_subject'][s]:.3f} |" for s in sorted(subjects)]
    lines += ["", "## Plots", "", "![scores](plots/scores.png)", "", "![MIA ROC](plots/roc.png)", "",
              "![RMU training](plots/training.png)", ""]
    return "\n".join(lines)


def write_csv(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def read_tsv_column(path: Path, column: str) -> list[float]:
    with path.open(encoding="utf-8") as f:
        return [float(row[column]) for row in csv.DictReader(f, delimiter="\t")]


def plot_scores(metrics: dict, path: Path) -> None:
    labels = [cell for cell, _ in cells(metrics["before"]["scores"])]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.4
    for offset, (key, name) in zip((-width / 2, width / 2), (("before", MODELS["target"]),
                                                             ("after", MODELS["unlearned"]))):
        values = [v for _, v in cells(metrics[key]["scores"])]
        ax.bar([i + offset for i in range(len(labels))], values, width, label=name)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_ylim(0, 1.25)  # headroom for the legend above the bars
    ax.set_ylabel("ROUGE-L recall (sc) / exact match (qa)")
    ax.axvline(5.5, color="grey", lw=0.8)
    ax.set_title("Forget (left: lower is better) and retain (right: higher is better)")
    ax.legend(loc="upper center", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def roc_points(eval_dir: Path):
    losses = io.read_jsonl(eval_dir / "mia" / "losses.jsonl")
    fpr, tpr, _ = roc_curve([row["member"] for row in losses], [-row["loss"] for row in losses])
    return fpr, tpr


def plot_roc(curves: dict, metrics: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 5))
    for (name, (fpr, tpr)), key in zip(curves.items(), ("before", "after")):
        ax.plot(fpr, tpr, label=f"{MODELS[name]}, AUC {metrics[key]['mia_auc']:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="chance (best MIA score)")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("Loss-attack MIA: forget Task3 members\nvs non-members", fontsize=10)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training(live_dir: Path, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, name in zip(axes, ("forget_loss", "retain_loss")):
        values = read_tsv_column(live_dir / "plots" / "metrics" / f"{name}.tsv", name)
        ax.plot(range(len(values)), values)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(name.replace("_", " ") + (" (alpha-weighted)" if name == "retain_loss" else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@exit_on_error
def main():
    params = load_validated()
    info = io.read_json(io.PREPARED / "info.json")
    mmlu_source = io.read_json(EVAL / "target" / "mmlu" / "mmlu.json").get("source", params["mmlu"]["source"])
    metrics = {
        "split": params["data"]["split"],
        "layers": params["layers"], "alpha": params["alpha"], "method": params["unlearn"]["method"],
        "beta": params["unlearn"]["beta"],
        "before": model_summary(EVAL / "target"), "after": model_summary(EVAL / "unlearned"),
    }
    curves = {name: roc_points(EVAL / name) for name in MODELS}
    with io.atomic_output(REPORTS / "plots") as plots:
        plots.mkdir()
        for name, key in (("target", "before"), ("unlearned", "after")):
            write_csv(plots / f"scores_{name}.csv", ["cell", "score"], cells(metrics[key]["scores"]))
            write_csv(plots / f"roc_{name}.csv", ["fpr", "tpr"], zip(*curves[name]))
        plot_scores(metrics, plots / "scores.png")
        plot_roc(curves, metrics, plots / "roc.png")
        plot_training(LIVE_DIR, plots / "training.png")
    with io.atomic_output(REPORTS / "report.md") as report:
        report.write_text(markdown_report(metrics, info, mmlu_source), encoding="utf-8")
    with io.atomic_output(REPORTS / "metrics.json") as metrics_file:
        io.write_json(metrics_file, metrics)
    b, a = metrics["before"], metrics["after"]
    print(f"report: final score {b['final']:.3f} -> {a['final']:.3f}, task aggregate {b['task_aggregate']:.3f} -> "
          f"{a['task_aggregate']:.3f}, MIA AUC {b['mia_auc']:.3f} -> {a['mia_auc']:.3f}, "
          f"MMLU {b['mmlu']:.3f} -> {a['mmlu']:.3f}")


if __name__ == "__main__":
    main()
