"""reports/report.md: the headline table first, then the methods, the layer sweep, the twelve numbers, the attacks,
PII and MMLU by subject."""
from ..data.schema import SETS
from ..evaluation.mia import ATTACKS
from ..evaluation.pii import PII_KINDS
from .summary import CELL_LABELS, cells

KIND_NAMES = {"sc": "sentence completion, ROUGE-L recall", "qa": "QA, exact match"}
PLOTS = {"scores.png": "scores", "roc.png": "MIA ROC", "training.png": "RMU training", "methods.png": "methods",
         "sweep.png": "layer sweep", "sweep_tradeoff.png": "MMLU vs MIA score per triple",
         "sweep_heatmap.png": "twelve numbers per triple"}


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
        lines.append(f"| {ATTACKS[name][1]} | {b['auc']:.3f} | {b['score']:.3f} | {a['auc']:.3f} | {a['score']:.3f} |")
    return lines + [""]


def pii_section(metrics: dict) -> list[str]:
    lines = ["## PII extraction (Task2 documents, greedy generations of every prompt of the set)", "",
             "| set | PII | documents | extracted before | extracted after |", "|---|---|---:|---:|---:|"]
    for split in SETS:
        for kind in (*PII_KINDS, "any"):
            b, a = metrics["before"]["pii"][split][kind], metrics["after"]["pii"][split][kind]
            lines.append(f"| {split} | {kind} | {b['documents']} | {b['extracted']} ({fmt(b['rate'])}) "
                         f"| {a['extracted']} ({fmt(a['rate'])}) |")
    return lines + [""]
