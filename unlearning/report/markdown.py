"""reports/report.md: the headline table first, then the methods, the layer sweep, the twelve numbers, the attacks,
PII and MMLU by subject. Every score of the first four is shown with its bootstrap interval (intervals.py)."""
from ..data.schema import SETS
from ..evaluation.mia import ATTACKS
from ..evaluation.pii import PII_KINDS
from .summary import CELL_LABELS, cells

KIND_NAMES = {"sc": "sentence completion, ROUGE-L recall", "qa": "QA, exact match"}
FORMAT_NAMES = {"mc": "mc (the answer letter with the highest logit)",
                "rc": "rc (the option with the highest log-likelihood per character)"}
PLOTS = {"scores.png": "scores", "roc.png": "MIA ROC", "training.png": "RMU training", "methods.png": "methods",
         "sweep.png": "layer sweep", "sweep_tradeoff.png": "MMLU vs MIA score per triple",
         "sweep_heatmap.png": "twelve numbers per triple"}


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def with_interval(value: float | None, bounds, digits: int = 3) -> str:
    """"0.935 [0.901, 0.962]": a score and its interval; "[n/a]" where the evaluation gives no interval; "n/a" for
    a score the evaluation could not compute (the MIA and final scores without MIA data)."""
    if value is None:
        return "n/a"
    if bounds is None:
        return f"{value:.{digits}f} [n/a]"
    low, high = bounds
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def row_values(row: dict, keys, digits: int = 3) -> str:
    """The cells of a table row: each key's value with its interval, " | " between them."""
    return " | ".join(with_interval(row[key], row["intervals"].get(key), digits) for key in keys)


def mmlu_label(metrics: dict) -> str:
    """The general-knowledge column's name, with the format it was scored in: "MMLU (mc)" or "MMLU (rc)"."""
    return f"MMLU ({metrics['before']['mmlu_format']})"


def interval_note(metrics: dict) -> str:
    """What the intervals are, for the sentence under the first table."""
    bootstrap = metrics["bootstrap"]
    note = (f"In brackets: the {bootstrap['confidence'] * 100:g}% {bootstrap['method']} bootstrap interval over "
            f"documents, {bootstrap['resamples']} resamples (`report.resamples`, `report.confidence`): the documents "
            "of each (set, task) stratum, the MIA members, the non-members and the MMLU questions are resampled "
            "independently and every score recomputed from them; it shows how much a score could move with other "
            "documents of the same kind, not the spread over seeds.")
    runs = [metrics["before"], metrics["after"], *metrics["methods"].values(), *metrics["sweep"].values()]
    if any(row["intervals"]["mmlu"] is None for row in runs):
        note += (" [n/a]: the evaluation has no per-question MMLU results (mmlu/questions.jsonl; rerun its mmlu "
                 "stage), so MMLU and the final score have no interval there.")
    if not metrics["before"].get("mia_available", True):
        note += (" MIA: n/a, the data source has no MIA files (member.jsonl, nonmember.jsonl), so there is no MIA "
                 "score and no final score; the official evaluation reports the final score as -1 in that case.")
    return note


def markdown_report(metrics: dict, info: dict, mmlu_source: str) -> str:
    before, after = metrics["before"], metrics["after"]
    lines = [
        "# Adaptive RMU unlearning report",
        "",
        f"Layers {metrics['layers']} (steered: {metrics['layers'][-1]}), alpha {metrics['alpha']}, "
        f"method {metrics['method']}, beta {metrics['beta']}. Data: {info['source']}, {metrics['split']} split. "
        f"{mmlu_label(metrics)} column: {mmlu_source}, scored as {FORMAT_NAMES.get(before['mmlu_format'], 'named')}.",
        "",
        *computed_lines(metrics),
        f"| model | final score | task aggregate | MIA AUC | MIA score | {mmlu_label(metrics)} | member NLL "
        "| non-member NLL |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in (("before (target)", before), ("after (unlearned)", after)):
        lines.append(f"| {name} | " + row_values(row, ("final", "task_aggregate", "mia_auc", "mia_score", "mmlu",
                                                        "member_mean_loss", "nonmember_mean_loss")) + " |")
    lines += [
        "",
        interval_note(metrics),
        "",
        "Final score = mean(task aggregate, MIA score, MMLU), as the official SemEval-2025 Task 4 evaluation. "
        "Task aggregate = harmonic mean of the twelve numbers below with every forget value replaced by 1 - x. "
        "MIA score = 1 - 2|AUC - 0.5| for the loss attack (members: forget Task3 documents); member and non-member "
        "NLL: the mean token NLL of those documents, whose gap the attack reads.",
        "",
    ]
    lines += seed_section(metrics)
    lines += apart_section(metrics)
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


def computed_lines(metrics: dict) -> list[str]:
    """Where every number was computed, and a warning when the target's own evaluation cannot be set beside the
    headline's."""
    computed = metrics["computed"]
    lines = [f"Computed: {computed['description']}; target {computed['target_sha256'][:12]}…, numerics "
             f"{computed['numerics']} (reports/metrics/runs.json has the fingerprints). The tables hold only runs "
             "with this target and these numerics.", ""]
    if "target" in computed["apart"]:
        lines += [f"**Before and after are not comparable**: against the headline's, the target's evaluation has "
                  f"{'; '.join(computed['apart']['target']['reasons'])}.", ""]
    return lines


def apart_section(metrics: dict) -> list[str]:
    """The runs whose target or numerics differ from the headline's, with the reasons and hashes, outside every
    table that compares runs."""
    apart = metrics["computed"]["apart"]
    if not apart:
        return []
    lines = ["## Not comparable with the headline run", "",
             "Computed on another target or under other numerics (a result from another machine's cache, say): "
             "rerun them here (`dvc repro --force` on their stages) to compare them.", "",
             f"| run | why | target | numerics | final score | task aggregate | MIA score | {mmlu_label(metrics)} |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for run, entry in apart.items():
        row = metrics["apart"][run]
        lines.append(f"| {run} | {'; '.join(entry['reasons'])} | {entry['target'][:12]}… | {entry['numerics']} | "
                     + row_values(row, ("final", "task_aggregate", "mia_score", "mmlu")) + " |")
    return lines + [""]


def fmt_spread(spread: dict) -> str:
    """"0.650 ± 0.038 [0.610, 0.684]": mean ± sample std [min, max] (summary.spread_of)."""
    return f"{spread['mean']:.3f} ± {spread['std']:.3f} [{spread['min']:.3f}, {spread['max']:.3f}]"


def seed_section(metrics: dict) -> list[str]:
    """The spread of the headline run over unlearning seeds: what a difference between two rows must beat."""
    spread = metrics.get("seed_spread")
    if not spread or len(spread["seeds"]) < 2:
        return []
    names = {"final": "final score", "task_aggregate": "task aggregate", "mia_score": "MIA score",
             "mmlu": mmlu_label(metrics)}
    lines = [f"Seed spread of the headline run over {len(spread['seeds'])} unlearning seeds "
             f"({', '.join(map(str, spread['seeds']))}) on this target: mean ± sample std [min, max].", "",
             "| | " + " | ".join(names.values()) + " |", "|---|" + "---:|" * len(names)]
    lines.append("| over seeds | " + " | ".join("n/a" if spread[key] is None else fmt_spread(spread[key])
                                                for key in names) + " |")
    return lines + [""]


def method_section(metrics: dict) -> list[str]:
    lines = [
        f"## Methods (same target, layers {metrics['layers']}, {metrics['steps']} steps)",
        "",
        "| method | final score | task aggregate | MIA score (loss) | MIA score (strongest other attack) "
        f"| {mmlu_label(metrics)} | PII extracted, forget | PII extracted, retain |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in {"target (before)": metrics["before"], **metrics["methods"]}.items():
        lines.append(f"| {name} | {row_values(row, ('final', 'task_aggregate', 'mia_score'))} "
                     f"| {strongest_attack(row)} "
                     f"| {row_values(row, ('mmlu',))} "
                     f"| {fmt(row['pii_extraction_forget'])} | {fmt(row['pii_extraction_retain'])} |")
    return lines + [
        "",
        "PII extracted: the share of Task2 documents whose SSN, phone number or email appears in the model's greedy "
        "generations for that set's prompts (counts per kind below; no value is printed anywhere). The RMU methods "
        "train the three down_proj matrices of `layers`; the output-loss baselines train the parameters "
        "`unlearn.baseline_params` names. Every method sees the same forget/retain batches in the same order.",
        "",
    ]


def strongest_attack(row: dict) -> str:
    """"0.412 (min_k)": the strongest other attack's MIA score and name, "n/a" without MIA data."""
    if row["strongest_other_attack"] is None:
        return "n/a"
    return f"{row['strongest_other_mia_score']:.3f} ({row['strongest_other_attack']})"


def sweep_section(metrics: dict) -> list[str]:
    lines = [
        "## Layer sweep (every triple with the same settings; the headline triple marked *)",
        "",
        "Raw twelve numbers: F = forget (lower is better), R = retain (higher is better), 1-3 the task. In brackets "
        "the bootstrap intervals, as in the first table.",
        "",
        f"| layers | final score | task aggregate | MIA AUC | MIA score | {mmlu_label(metrics)} | "
        + " | ".join(CELL_LABELS) + " |",
        "|---|" + "---:|" * (5 + len(CELL_LABELS)),
    ]
    triples = {triple_label(first, metrics["layers"]): row for first, row in metrics["sweep"].items()}
    for name, row in {"target (before)": metrics["before"], **triples}.items():
        values = " | ".join(with_interval(v, bounds, 2) for (_, v), (_, bounds)
                            in zip(cells(row["scores"]), cells(row["intervals"]["scores"])))
        lines.append(f"| {name} | " + row_values(row, ("final", "task_aggregate", "mia_auc", "mia_score", "mmlu"))
                     + f" | {values} |")
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
             + (", and on the validation split, which was not: documents of the same kind the unlearning never saw "
                "(point values only)." if validation else ".")
             + " In brackets the bootstrap intervals, as in the first table.", "",
             header, "|---|---|---|---:|---:|" + ("---:|---:|" if validation else "")]
    columns = [[with_interval(v, bounds) for (_, v), (_, bounds) in zip(cells(row["scores"]),
                                                                       cells(row["intervals"]["scores"]))]
               for row in (before, after)]
    if validation:
        columns += [[f"{v:.3f}" for _, v in cells(row["validation"]["scores"])] for row in (before, after)]
    for (cell, _), *values in zip(cells(before["scores"]), *columns):
        split, task, kind = cell.split()
        lines.append(f"| {split} | {task} | {KIND_NAMES[kind]} | " + " | ".join(values) + " |")
    if validation:
        lines.append(f"| | | task aggregate | {row_values(before, ('task_aggregate',))} "
                     f"| {row_values(after, ('task_aggregate',))} "
                     f"| {before['validation']['task_aggregate']:.3f} | {after['validation']['task_aggregate']:.3f} |")
    return lines + [""]


def attack_section(metrics: dict) -> list[str]:
    before, after = metrics["before"], metrics["after"]
    lines = ["## Membership inference attacks (forget Task3 members vs non-members)", "",
             f"The official MIA score uses the loss attack. Min-K% and Min-K%++ average the {metrics['min_k']:.0%} "
             "least likely tokens.", ""]
    if not before["attacks"]:
        return lines + ["Not available: the data source has no MIA files (member.jsonl, nonmember.jsonl).", ""]
    lines += [
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
