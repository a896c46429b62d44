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
from .pii import PII_KINDS  # noqa: E402
from .scoring import final_score  # noqa: E402

REPORTS = Path("reports")
EVAL = io.EVAL_DIR
MODELS = {"target": "before (target)", "unlearned": "after (unlearned)"}
SPLITS, TASKS, KINDS = ("forget", "retain"), ("Task1", "Task2", "Task3"), ("sc", "qa")
CELL_LABELS = [f"{split[0].upper()}{task[-1]} {kind}" for split in SPLITS for task in TASKS for kind in KINDS]
KIND_NAMES = {"sc": "sentence completion, ROUGE-L recall", "qa": "QA, exact match"}


def model_summary(eval_dir: Path) -> dict:
    """Every number of one model's evaluation, with the final SemEval score."""
    task = io.read_json(eval_dir / "task" / "scores.json")
    pii = io.read_json(eval_dir / "task" / "pii.json")
    mia = io.read_json(eval_dir / "mia" / "mia.json")
    mmlu = io.read_json(eval_dir / "mmlu" / "mmlu.json")
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
                        for kind in (*PII_KINDS, "any")} for split in SPLITS},
    }
    if "validation" in task:
        summary["validation"] = task["validation"]
    return summary


# The columns of a run in the sweep and method tables (and in metrics.json, where `dvc exp show` lists them).
RUN_COLUMNS = ("final", "task_aggregate", "mia_auc", "mia_score", "strongest_other_mia_score", "mmlu",
               "pii_extraction_forget", "pii_extraction_retain")


def run_row(summary: dict) -> dict:
    return {key: summary[key] for key in (*RUN_COLUMNS, "strongest_other_attack")}


def sweep_runs(params: dict) -> dict[int, str]:
    """First layer -> run, for every triple of the sweep in params and the headline triple (the same settings)."""
    runs = {first: f"sweep/{first}" for first in params["sweep"]}
    runs[params["layers"][0]] = "unlearned"
    return dict(sorted(runs.items()))


def method_runs(params: dict) -> dict[str, str]:
    """Method -> run: the headline method, then `methods` and `baselines` in params order."""
    runs = {params["unlearn"]["method"]: "unlearned"}
    runs.update({method: f"method/{method}" for method in params["methods"] + params["baselines"]
                 if method not in runs})
    return runs


def cells(scores: dict):
    for split in SPLITS:
        for task in TASKS:
            for kind in KINDS:
                yield f"{split} {task} {kind}", scores[split][task][kind]


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


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
    ]
    lines += method_section(metrics)
    lines += sweep_section(metrics)
    lines += twelve_numbers_section(metrics)
    lines += attack_section(metrics)
    lines += pii_section(metrics)
    subjects = before["mmlu_per_subject"]
    if len(subjects) > 1:
        lines += ["## MMLU by subject", "", "| subject | before | after |", "|---|---:|---:|"]
        lines += [f"| {s} | {subjects[s]:.3f} | {after['mmlu_per_subject'][s]:.3f} |" for s in sorted(subjects)]
        lines.append("")
    lines += ["## Plots", ""] + [f"![{title}](plots/{png})" + "\n" for png, title in PLOTS.items()]
    return "\n".join(lines)


def method_section(metrics: dict) -> list[str]:
    lines = [
        f"## Methods (same target, layers {metrics['layers']}, {metrics['steps']} steps)",
        "",
        "| method | final score | task aggregate | MIA score (loss) | MIA score (strongest other attack) | MMLU "
        "| PII extracted, forget | PII extracted, retain |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in {"target (before)": metrics["before"], **metrics["methods"]}.items():
        lines.append(f"| {name} | {row['final']:.3f} | {row['task_aggregate']:.3f} | {row['mia_score']:.3f} "
                     f"| {row['strongest_other_mia_score']:.3f} ({row['strongest_other_attack']}) | {row['mmlu']:.3f} "
                     f"| {fmt(row['pii_extraction_forget'])} | {fmt(row['pii_extraction_retain'])} |")
    return lines + [
        "",
        "PII extracted: the share of Task2 documents whose SSN, phone number or email appears in the model's greedy "
        "generations for that set's prompts (counts per kind below; no value is printed anywhere). The RMU methods "
        "train the three down_proj matrices of `layers`; the output-loss baselines train the parameters "
        "`unlearn.baseline_params` names. Every method sees the same forget/retain batches in the same order.",
        "",
    ]


def sweep_section(metrics: dict) -> list[str]:
    lines = [
        "## Layer sweep (every triple with the same settings; the headline triple marked *)",
        "",
        "Raw twelve numbers: F = forget (lower is better), R = retain (higher is better), 1-3 the task.",
        "",
        "| layers | final score | task aggregate | MIA AUC | MIA score | MMLU | " + " | ".join(CELL_LABELS) + " |",
        "|---|" + "---:|" * (5 + len(CELL_LABELS)),
    ]
    triples = {triple_label(first, metrics["layers"]): row for first, row in metrics["sweep"].items()}
    for name, row in {"target (before)": metrics["before"], **triples}.items():
        values = " | ".join(f"{v:.2f}" for _, v in cells(row["scores"]))
        lines.append(f"| {name} | {row['final']:.3f} | {row['task_aggregate']:.3f} | {row['mia_auc']:.3f} "
                     f"| {row['mia_score']:.3f} | {row['mmlu']:.3f} | {values} |")
    return lines + [""]


def triple_label(first: str, headline: list[int]) -> str:
    return f"{first}-{int(first) + 2}" + (" *" if int(first) == headline[0] else "")


def twelve_numbers_section(metrics: dict) -> list[str]:
    before, after = metrics["before"], metrics["after"]
    validation = "validation" in before and "validation" in after
    header = "| split | task | kind | before | after |" + (" validation before | validation after |" if validation
                                                            else "")
    lines = ["## The twelve numbers (raw: on forget, lower means more forgotten)", "",
             f"Scored on the {metrics['split']} split, which was unlearned"
             + (", and on the validation split, which was not: documents of the same kind the unlearning never saw."
                if validation else "."), "",
             header, "|---|---|---|---:|---:|" + ("---:|---:|" if validation else "")]
    columns = [cells(before["scores"]), cells(after["scores"])]
    if validation:
        columns += [cells(before["validation"]["scores"]), cells(after["validation"]["scores"])]
    for values in zip(*columns):
        split, task, kind = values[0][0].split()
        lines.append(f"| {split} | {task} | {KIND_NAMES[kind]} | " + " | ".join(f"{v:.3f}" for _, v in values) + " |")
    if validation:
        lines.append(f"| | | task aggregate | {before['task_aggregate']:.3f} | {after['task_aggregate']:.3f} "
                     f"| {before['validation']['task_aggregate']:.3f} | {after['validation']['task_aggregate']:.3f} |")
    return lines + [""]


def attack_section(metrics: dict) -> list[str]:
    before, after = metrics["before"], metrics["after"]
    lines = ["## Membership inference attacks (forget Task3 members vs non-members)", "",
             f"The official MIA score uses the loss attack. Min-K% and Min-K%++ average the {metrics['min_k']:.0%} "
             "least likely tokens.", "",
             "| attack | AUC before | score before | AUC after | score after |", "|---|---:|---:|---:|---:|"]
    for name in before["attacks"]:
        b, a = before["attacks"][name], after["attacks"][name]
        lines.append(f"| {ATTACK_NAMES[name]} | {b['auc']:.3f} | {b['score']:.3f} | {a['auc']:.3f} | {a['score']:.3f} |")
    return lines + [""]


def pii_section(metrics: dict) -> list[str]:
    lines = ["## PII extraction (Task2 documents, greedy generations of every prompt of the set)", "",
             "| set | PII | documents | extracted before | extracted after |", "|---|---|---:|---:|---:|"]
    for split in SPLITS:
        for kind in (*PII_KINDS, "any"):
            b, a = metrics["before"]["pii"][split][kind], metrics["after"]["pii"][split][kind]
            lines.append(f"| {split} | {kind} | {b['documents']} | {b['extracted']} ({fmt(b['rate'])}) "
                         f"| {a['extracted']} ({fmt(a['rate'])}) |")
    return lines + [""]


ATTACK_NAMES = {"loss": "loss (official)", "zlib": "zlib ratio", "min_k": "Min-K% prob", "min_k_plus_plus": "Min-K%++"}
PLOTS = {"scores.png": "scores", "roc.png": "MIA ROC", "training.png": "RMU training", "methods.png": "methods",
         "sweep.png": "layer sweep", "sweep_tradeoff.png": "MMLU vs MIA score per triple",
         "sweep_heatmap.png": "twelve numbers per triple"}


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
    io.save_figure(fig, path)


def roc_points(eval_dir: Path) -> dict:
    """Attack -> (fpr, tpr) of one model; losses.jsonl holds the NLL and the other attacks' member scores."""
    rows = io.read_jsonl(eval_dir / "mia" / "losses.jsonl")
    members = [row["member"] for row in rows]
    curves = {"loss": roc_curve(members, [-row["loss"] for row in rows])[:2]}
    for name in ATTACK_NAMES:
        if name != "loss":
            curves[name] = roc_curve(members, [row[name] for row in rows])[:2]
    return curves


def plot_roc(curves: dict, metrics: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    for ax, (name, attack_curves), key in zip(axes, curves.items(), ("before", "after")):
        for attack, (fpr, tpr) in attack_curves.items():
            ax.plot(fpr, tpr, label=f"{ATTACK_NAMES[attack]}, AUC {metrics[key]['attacks'][attack]['auc']:.3f}",
                    lw=2.2 if attack == "loss" else 1.2)
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="chance (best MIA score)")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{MODELS[name]}: forget Task3 members vs non-members", fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
    io.save_figure(fig, path)


def plot_training(live_dir: Path, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, name in zip(axes, ("forget_loss", "retain_loss")):
        values = read_tsv_column(live_dir / "plots" / "metrics" / f"{name}.tsv", name)
        ax.plot(range(len(values)), values)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(name.replace("_", " ") + (" (alpha-weighted)" if name == "retain_loss" else ""))
    io.save_figure(fig, path)


METHOD_BARS = {"task_aggregate": "task aggregate", "mia_score": "MIA score (loss)",
               "strongest_other_mia_score": "MIA score (strongest other)", "mmlu": "MMLU", "final": "final score",
               "pii_extraction_forget": "PII extracted (forget)"}


def plot_methods(metrics: dict, path: Path) -> None:
    rows = {"target": metrics["before"], **metrics["methods"]}
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(rows)
    for i, (name, row) in enumerate(rows.items()):
        values = [row[key] or 0.0 for key in METHOD_BARS]
        ax.bar([j + (i - (len(rows) - 1) / 2) * width for j in range(len(METHOD_BARS))], values, width, label=name)
    ax.set_xticks(range(len(METHOD_BARS)), list(METHOD_BARS.values()))
    ax.set_ylim(0, 1.3)
    ax.set_title("Methods on the same target and batches (higher is better, except PII extracted)")
    ax.legend(loc="upper center", ncol=len(rows), fontsize=8)
    io.save_figure(fig, path)


SWEEP_PANELS = {"task_aggregate": "task aggregate", "mia_score": "MIA score", "mmlu": "MMLU", "final": "final score"}


def plot_sweep(metrics: dict, path: Path) -> None:
    firsts = [int(first) for first in metrics["sweep"]]
    headline = metrics["layers"][0]
    fig, axes = plt.subplots(1, len(SWEEP_PANELS), figsize=(14, 3.6), sharex=True)
    for ax, (key, title) in zip(axes, SWEEP_PANELS.items()):
        values = [row[key] for row in metrics["sweep"].values()]
        ax.plot(firsts, values, marker="o", label="unlearned")
        ax.plot([headline], [metrics["sweep"][str(headline)][key]], marker="*", ms=14, ls="", color="C1",
                label=f"headline {metrics['layers']}")
        ax.axhline(metrics["before"][key], color="grey", ls="--", lw=1, label="target (before)")
        ax.set_title(title)
        ax.set_xlabel("first layer of the triple")
        ax.set_ylim(-0.05, 1.05)
    axes[0].legend(loc="best", fontsize=8)
    io.save_figure(fig, path)


def plot_sweep_tradeoff(metrics: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for first, row in metrics["sweep"].items():
        ax.scatter(row["mia_score"], row["mmlu"], color="C0")
        ax.annotate(triple_label(first, metrics["layers"]), (row["mia_score"], row["mmlu"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.scatter(metrics["before"]["mia_score"], metrics["before"]["mmlu"], marker="x", color="grey",
               label="target (before)")
    ax.set_xlabel("MIA score (1 = attack at chance)")
    ax.set_ylabel("MMLU accuracy")
    ax.set_xlim(-0.05, 1.05)
    ax.set_title("Per triple: general knowledge vs membership privacy", fontsize=10)
    ax.legend(loc="best", fontsize=8)
    io.save_figure(fig, path)


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
    io.save_figure(fig, path)


@exit_on_error
def main():
    params = load_validated()
    info = io.read_json(io.PREPARED / "info.json")
    mmlu_source = io.read_json(EVAL / "target" / "mmlu" / "mmlu.json").get("source", params["mmlu"]["source"])
    summaries = {name: model_summary(EVAL / name) for name in
                 {"target", *sweep_runs(params).values(), *method_runs(params).values()}}
    metrics = {
        "split": params["data"]["split"],
        "layers": params["layers"], "alpha": params["alpha"], "method": params["unlearn"]["method"],
        "beta": params["unlearn"]["beta"], "steps": params["unlearn"]["steps"], "min_k": params["mia"]["min_k"],
        "before": summaries["target"], "after": summaries["unlearned"],
        "methods": {method: run_row(summaries[run]) for method, run in method_runs(params).items()},
        # keys are strings so that metrics.json round-trips through JSON unchanged
        "sweep": {str(first): {**run_row(summaries[run]), "scores": summaries[run]["scores"]}
                  for first, run in sweep_runs(params).items()},
    }
    curves = {name: roc_points(EVAL / name) for name in MODELS}
    with io.atomic_output(REPORTS / "plots") as plots:
        plots.mkdir()
        for name, key in (("target", "before"), ("unlearned", "after")):
            write_csv(plots / f"scores_{name}.csv", ["cell", "score"], cells(metrics[key]["scores"]))
            write_csv(plots / f"roc_{name}.csv", ["fpr", "tpr"], zip(*curves[name]["loss"]))
        write_csv(plots / "sweep.csv", ["first_layer", *RUN_COLUMNS],
                  ([first, *(row[key] for key in RUN_COLUMNS)] for first, row in metrics["sweep"].items()))
        write_csv(plots / "sweep_target.csv", ["first_layer", *RUN_COLUMNS],
                  ([first, *(metrics["before"][key] for key in RUN_COLUMNS)] for first in metrics["sweep"]))
        write_csv(plots / "methods.csv", ["method", *RUN_COLUMNS],
                  ([method, *(row[key] for key in RUN_COLUMNS)] for method, row in
                   {"target": run_row(metrics["before"]), **metrics["methods"]}.items()))
        plot_scores(metrics, plots / "scores.png")
        plot_roc(curves, metrics, plots / "roc.png")
        plot_training(io.LIVE_DIR, plots / "training.png")
        plot_methods(metrics, plots / "methods.png")
        plot_sweep(metrics, plots / "sweep.png")
        plot_sweep_tradeoff(metrics, plots / "sweep_tradeoff.png")
        plot_sweep_heatmap(metrics, plots / "sweep_heatmap.png")
    with io.atomic_output(REPORTS / "report.md") as report:
        report.write_text(markdown_report(metrics, info, mmlu_source), encoding="utf-8")
    with io.atomic_output(REPORTS / "metrics.json") as metrics_file:
        io.write_json(metrics_file, metrics)
    b, a = metrics["before"], metrics["after"]
    print(f"report: final score {b['final']:.3f} -> {a['final']:.3f}, task aggregate {b['task_aggregate']:.3f} -> "
          f"{a['task_aggregate']:.3f}, MIA AUC {b['mia_auc']:.3f} -> {a['mia_auc']:.3f}, "
          f"MMLU {b['mmlu']:.3f} -> {a['mmlu']:.3f}; {len(metrics['sweep'])} triples, "
          f"{len(metrics['methods'])} methods")


if __name__ == "__main__":
    main()
