"""The report's plots: matplotlib PNGs, with the scores' bootstrap intervals as error bars, and the CSVs behind
DVC's interactive plots (dvc.yaml `plots:`, drawn by the templates in .dvc/plots/).

Each CSV is long: a row per point, a `series` column that the templates colour by, `low` and `high` for the
interval where the score has one, and `run`, the settings of the run ("layers 12-14, alpha 5, beta 2, seed 0"),
which the templates put beside DVC's revision name in the legend, so that `dvc plots diff` says which params each
experiment had."""
import csv
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from ..evaluation.mia import ATTACKS  # noqa: E402
from ..files import read_jsonl  # noqa: E402
from .markdown import mmlu_label, triple_label  # noqa: E402
from .summary import CELL_LABELS, cells, run_row  # noqa: E402

MODELS = {"target": "before (target)", "unlearned": "after (unlearned)"}


def save_figure(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_csv(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def read_tsv_column(path: Path, column: str) -> list[float]:
    with path.open(encoding="utf-8") as f:
        return [float(row[column]) for row in csv.DictReader(f, delimiter="\t")]


def error_bars(values: list, bounds: list) -> np.ndarray:
    """matplotlib's yerr (2, n): how far each interval reaches below and above its value (nan, no bar, where a value
    has no interval; never negative, should an interval miss its value)."""
    return np.array([[max(0.0, value - b[0]), max(0.0, b[1] - value)] if b is not None else [np.nan, np.nan]
                     for value, b in zip(values, bounds)]).reshape(-1, 2).T


def nan_for_none(values: list) -> list:
    """A score the evaluation could not compute (MIA without MIA data) is drawn as nothing."""
    return [np.nan if value is None else value for value in values]


def plot_scores(metrics: dict, path: Path) -> None:
    labels = [cell for cell, _ in cells(metrics["before"]["scores"])]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.4
    for offset, (key, name) in zip((-width / 2, width / 2), (("before", MODELS["target"]),
                                                             ("after", MODELS["unlearned"]))):
        values = [v for _, v in cells(metrics[key]["scores"])]
        bounds = [b for _, b in cells(metrics[key]["intervals"]["scores"])]
        ax.bar([i + offset for i in range(len(labels))], values, width, label=name,
               yerr=error_bars(values, bounds), capsize=2, error_kw={"lw": 0.8})
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_ylim(0, 1.25)  # headroom for the legend above the bars
    ax.set_ylabel("ROUGE-L recall (sc) / exact match (qa)")
    ax.axvline(5.5, color="grey", lw=0.8)
    ax.set_title("Forget (left: lower is better) and retain (right: higher is better); bars: bootstrap intervals",
                 fontsize=10)
    ax.legend(loc="upper center", ncol=2)
    save_figure(fig, path)


def roc_points(eval_dir: Path) -> dict:
    """Attack -> (fpr, tpr) of one model; losses.jsonl holds the NLL and the other attacks' member scores (empty,
    and so no curve, without MIA data)."""
    rows = read_jsonl(eval_dir / "mia" / "losses.jsonl")
    if not rows:
        return {}
    members = [row["member"] for row in rows]
    curves = {"loss": roc_curve(members, [-row["loss"] for row in rows])[:2]}
    for name in ATTACKS:
        if name != "loss":
            curves[name] = roc_curve(members, [row[name] for row in rows])[:2]
    return curves


def plot_roc(curves: dict, metrics: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    for ax, (name, attack_curves), key in zip(axes, curves.items(), ("before", "after")):
        if not attack_curves:
            ax.text(0.5, 0.5, "MIA not available:\nthe data has no MIA files", ha="center", va="center")
        for attack, (fpr, tpr) in attack_curves.items():
            ax.plot(fpr, tpr, label=f"{ATTACKS[attack][1]}, AUC {metrics[key]['attacks'][attack]['auc']:.3f}",
                    lw=2.2 if attack == "loss" else 1.2)
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="chance (best MIA score)")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{MODELS[name]}: forget Task3 members vs non-members", fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)


def plot_training(live_dir: Path, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, name in zip(axes, ("forget_loss", "retain_loss")):
        values = read_tsv_column(live_dir / "plots" / "metrics" / f"{name}.tsv", name)
        ax.plot(range(len(values)), values)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(name.replace("_", " ") + (" (alpha-weighted)" if name == "retain_loss" else ""))
    save_figure(fig, path)


METHOD_BARS = {"task_aggregate": "task aggregate", "mia_score": "MIA score (loss)",
               "strongest_other_mia_score": "MIA score (strongest other)", "mmlu": "MMLU", "final": "final score",
               "pii_extraction_forget": "PII extracted (forget)"}


def plot_methods(metrics: dict, path: Path) -> None:
    rows = {"target": metrics["before"], **metrics["methods"]}
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(rows)
    for i, (name, row) in enumerate(rows.items()):
        values = nan_for_none([row[key] for key in METHOD_BARS])
        bounds = [row["intervals"].get(key) for key in METHOD_BARS]
        bars = ax.bar([j + (i - (len(rows) - 1) / 2) * width for j in range(len(METHOD_BARS))], values, width,
                      label=name, yerr=error_bars(values, bounds), capsize=2, error_kw={"lw": 0.8})
        # every bar's value: a score of 0 (an attack that wins outright, nothing extracted) draws no bar at all
        ax.bar_label(bars, labels=["n/a" if np.isnan(v) else f"{v:.2f}" for v in values], fontsize=5.5,
                     rotation=90, padding=2)
    ax.set_xticks(range(len(METHOD_BARS)), [mmlu_label(metrics) if key == "mmlu" else label
                                            for key, label in METHOD_BARS.items()])
    ax.set_ylim(0, 1.4)
    ax.set_title("Methods on the same target and batches (higher is better, except PII extracted); bars: bootstrap "
                 "intervals", fontsize=10)
    ax.legend(loc="upper center", ncol=len(rows), fontsize=8)
    save_figure(fig, path)


SWEEP_PANELS = {"task_aggregate": "task aggregate", "mia_score": "MIA score", "mmlu": "MMLU", "final": "final score"}


def plot_sweep(metrics: dict, path: Path) -> None:
    firsts = [int(first) for first in metrics["sweep"]]
    headline = metrics["layers"][0]
    fig, axes = plt.subplots(1, len(SWEEP_PANELS), figsize=(14, 3.6), sharex=True)
    for ax, (key, title) in zip(axes, SWEEP_PANELS.items()):
        values = nan_for_none([row[key] for row in metrics["sweep"].values()])
        bounds = [row["intervals"][key] for row in metrics["sweep"].values()]
        ax.errorbar(firsts, values, yerr=error_bars(values, bounds), marker="o", capsize=3, label="unlearned")
        ax.plot([headline], nan_for_none([metrics["sweep"][str(headline)][key]]), marker="*", ms=14, ls="",
                color="C1", label=f"headline {metrics['layers']}")
        before = metrics["before"]
        if before[key] is None:
            ax.text(0.5, 0.5, "n/a: no MIA data", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.axhline(before[key], color="grey", ls="--", lw=1, label="target (before)")
        if before["intervals"][key] is not None:
            ax.axhspan(*before["intervals"][key], color="grey", alpha=0.15, lw=0, label="target's interval")
        ax.set_title(mmlu_label(metrics) if key == "mmlu" else title)
        ax.set_xlabel("first layer of the triple")
        ax.set_ylim(-0.05, 1.05)
    axes[0].legend(loc="best", fontsize=8)
    save_figure(fig, path)


def plot_sweep_tradeoff(metrics: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if metrics["before"]["mia_score"] is None:
        ax.text(0.5, 0.5, "MIA not available:\nthe data has no MIA files", ha="center", va="center")
        save_figure(fig, path)
        return
    for first, row in metrics["sweep"].items():
        ax.errorbar(row["mia_score"], row["mmlu"], marker="o", color="C0", lw=0.8, capsize=2,
                    xerr=error_bars([row["mia_score"]], [row["intervals"]["mia_score"]]),
                    yerr=error_bars([row["mmlu"]], [row["intervals"]["mmlu"]]))
        ax.annotate(triple_label(first, metrics["layers"]), (row["mia_score"], row["mmlu"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.scatter(metrics["before"]["mia_score"], metrics["before"]["mmlu"], marker="x", color="grey",
               label="target (before)")
    ax.set_xlabel("MIA score (1 = attack at chance)")
    ax.set_ylabel(f"{mmlu_label(metrics)} accuracy")
    ax.set_xlim(-0.05, 1.05)
    ax.set_title("Per triple: general knowledge vs membership privacy", fontsize=10)
    ax.legend(loc="best", fontsize=8)
    save_figure(fig, path)


def plot_sweep_heatmap(metrics: dict, path: Path) -> None:
    rows = {"target": metrics["before"],
            **{triple_label(first, metrics["layers"]): row for first, row in metrics["sweep"].items()}}
    grid = [[v for _, v in cells(row["scores"])] for row in rows.values()]
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.45 * len(rows)))
    image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for i, values in enumerate(grid):
        for j, value in enumerate(values):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if value > 0.6 else "white")
    ax.set_xticks(range(len(CELL_LABELS)), CELL_LABELS, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_ylabel("layers")
    ax.set_title("Twelve raw numbers per triple (F: forget, lower is better; R: retain, higher is better)",
                 fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.03)
    save_figure(fig, path)


def run_label(metrics: dict) -> str:
    """The settings that tell one experiment's plots from another's in `dvc plots diff`."""
    layers = metrics["layers"]
    return (f"layers {layers[0]}-{layers[-1]}, {metrics['method']}, alpha {metrics['alpha']}, beta {metrics['beta']}, "
            f"seed {metrics['seed']}")


def _bounds(bounds) -> list:
    return ["", ""] if bounds is None else list(bounds)


def score_rows(metrics: dict, run: str):
    for key, model in (("before", MODELS["target"]), ("after", MODELS["unlearned"])):
        for (cell, value), (_, bounds) in zip(cells(metrics[key]["scores"]), cells(metrics[key]["intervals"]["scores"])):
            yield [cell, value, *_bounds(bounds), model, run]


def roc_rows(curves: dict, metrics: dict, run: str):
    for name, key in (("target", "before"), ("unlearned", "after")):
        if not curves[name]:
            continue
        label = f"{MODELS[name]}, AUC {metrics[key]['attacks']['loss']['auc']:.3f}"
        for fpr, tpr in zip(*curves[name]["loss"]):
            yield [fpr, tpr, label, run]


def training_rows(live_dir: Path, run: str):
    for name, label in (("forget_loss", "forget loss"), ("retain_loss", "retain loss (alpha-weighted)")):
        for step, value in enumerate(read_tsv_column(live_dir / "plots" / "metrics" / f"{name}.tsv", name)):
            yield [step, value, label, run]


def sweep_rows(metrics: dict, run: str):
    headline = metrics["layers"][0]
    for key, title in SWEEP_PANELS.items():
        series = mmlu_label(metrics) if key == "mmlu" else title
        for first, row in metrics["sweep"].items():
            yield [int(first), row[key], *_bounds(row["intervals"][key]), series, int(int(first) == headline),
                   metrics["before"][key], run]


def tradeoff_rows(metrics: dict, run: str):
    for first, row in metrics["sweep"].items():
        yield [triple_label(first, metrics["layers"]), row["mia_score"], *_bounds(row["intervals"]["mia_score"]),
               row["mmlu"], *_bounds(row["intervals"]["mmlu"]), run]


def method_rows(metrics: dict, run: str):
    rows = {"target": run_row(metrics["before"]), **metrics["methods"]}
    for order, (key, title) in enumerate(METHOD_BARS.items()):
        series = mmlu_label(metrics) if key == "mmlu" else title
        for method, row in rows.items():
            yield [method, row[key], *_bounds(row["intervals"].get(key)), series, order, run]


def write_plots(metrics: dict, eval_dir: Path, live_dir: Path, out: Path) -> None:
    """Every plot and CSV of the report into the new directory `out`."""
    curves = {name: roc_points(Path(eval_dir) / name) for name in MODELS}
    out.mkdir()
    run = run_label(metrics)
    # the data of dvc.yaml's `plots:`, each drawn by a template of .dvc/plots/
    for name, header, rows in (
            ("training.csv", ["step", "loss", "series", "run"], training_rows(Path(live_dir), run)),
            ("scores.csv", ["cell", "score", "low", "high", "series", "run"], score_rows(metrics, run)),
            ("roc.csv", ["fpr", "tpr", "series", "run"], roc_rows(curves, metrics, run)),
            ("sweep.csv", ["first_layer", "score", "low", "high", "series", "headline", "target", "run"],
             sweep_rows(metrics, run)),
            ("sweep_tradeoff.csv", ["layers", "mia_score", "mia_low", "mia_high", "mmlu", "mmlu_low", "mmlu_high",
                                    "run"], tradeoff_rows(metrics, run)),
            ("methods.csv", ["method", "score", "low", "high", "series", "order", "run"],
             method_rows(metrics, run))):
        write_csv(out / name, header, rows)
    plot_scores(metrics, out / "scores.png")
    plot_roc(curves, metrics, out / "roc.png")
    plot_training(Path(live_dir), out / "training.png")
    plot_methods(metrics, out / "methods.png")
    plot_sweep(metrics, out / "sweep.png")
    plot_sweep_tradeoff(metrics, out / "sweep_tradeoff.png")
    plot_sweep_heatmap(metrics, out / "sweep_heatmap.png")
