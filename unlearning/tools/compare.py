"""Compare DVC experiments: the alpha curve and the spread over random-vector seeds, from `dvc exp show --json`.

python -m unlearning.tools.compare [--json FILE] [--out reports/compare]

Not a pipeline stage: it reads the experiments DVC keeps in git, which a stage cannot depend on. Run experiments
first, e.g. `dvc exp run --queue -S alpha=0.5,1,2,4,8 -S unlearn.seed=0,1,2 && dvc queue start`. Every experiment
and commit whose params equal the reference's (the current commit's, or --reference REV's) except for `alpha` and
`unlearn.seed` (and `sweep`, `methods` and `baselines`, which do not change the headline run) enters: the alpha
table and plot give the mean and spread over seeds of the final score and its parts for each alpha; the seed table
gives them at the reference's alpha.
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from ..errors import PipelineError, exit_on_error
from ..files import atomic_output, write_json
from ..report.plots import plt, save_figure

METRICS_FILE, PARAMS_FILE = "reports/metrics.json", "params.yaml"
PARTS = {"final": "final score", "task_aggregate": "task aggregate", "mia_score": "MIA score", "mmlu": "MMLU"}
FREE = ("alpha", "unlearn.seed")
IGNORED = ("sweep", "methods", "baselines")  # which further runs an experiment makes does not change its headline `after`


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"unlearn": {"seed": 0}} -> {"unlearn.seed": 0}; lists stay values."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def experiment_records(exp_show: list) -> list[dict]:
    """One record per commit or experiment with results: {"name", "rev", "params" (flat), "after" (the unlearned
    model's final score and parts)}. The workspace and anything that failed or has no metrics are left out."""
    records = []

    def add(entry, name):
        data = entry.get("data") or {}
        metrics = (((data.get("metrics") or {}).get(METRICS_FILE) or {}).get("data") or {}).get("after")
        params = ((data.get("params") or {}).get(PARAMS_FILE) or {}).get("data")
        if entry.get("error") is None and metrics and params and entry.get("rev") != "workspace":
            records.append({"name": name or entry["rev"][:7], "rev": entry["rev"], "params": flatten(params),
                            "after": {key: metrics[key] for key in PARTS}})

    for commit in exp_show:
        add(commit, commit.get("name"))
        for experiment in commit.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                add(rev, experiment.get("name") or rev.get("name"))
    return records


def comparable(records: list[dict], reference: dict) -> list[dict]:
    """Records whose params equal the reference's except for `alpha` and `unlearn.seed` (and `sweep`, `methods`)."""
    def fixed(params):
        return {key: value for key, value in params.items() if key not in FREE + IGNORED}
    return [r for r in records if fixed(r["params"]) == fixed(reference["params"])]


def spread(records: list[dict], by: str) -> dict:
    """Value of param `by` -> {part: {"mean", "std", "min", "max"}, "n", "seeds"} over the records with that value."""
    groups = {}
    for record in records:
        groups.setdefault(record["params"][by], []).append(record)
    table = {}
    for value, group in sorted(groups.items()):
        row = {"n": len(group), "seeds": sorted(r["params"]["unlearn.seed"] for r in group)}
        for part in PARTS:
            values = [r["after"][part] for r in group]
            row[part] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                         "min": min(values), "max": max(values)}
        table[value] = row
    return table


def markdown(alpha_table: dict, seed_row: dict, reference: dict) -> str:
    lines = ["# Experiments compared", "",
             f"Reference: {reference['name']} ({reference['rev'][:7]}); experiments with the same params except "
             "`alpha` and `unlearn.seed`. Mean ± sample standard deviation over seeds (n = number of experiments).",
             "", "## Alpha", "", "| alpha | n | " + " | ".join(PARTS.values()) + " |",
             "|---:|---:|" + "---:|" * len(PARTS)]
    for alpha, row in alpha_table.items():
        lines.append(f"| {alpha} | {row['n']} | "
                     + " | ".join(f"{row[p]['mean']:.3f} ± {row[p]['std']:.3f}" for p in PARTS) + " |")
    lines += ["", f"## Seeds at alpha {reference['params']['alpha']}", "",
              f"Seeds {seed_row['seeds']}.", "", "| part | mean | std | min | max |", "|---|---:|---:|---:|---:|"]
    for part, title in PARTS.items():
        s = seed_row[part]
        lines.append(f"| {title} | {s['mean']:.3f} | {s['std']:.3f} | {s['min']:.3f} | {s['max']:.3f} |")
    return "\n".join(lines) + "\n"


def plot_alpha(alpha_table: dict, path: Path) -> None:
    alphas = list(alpha_table)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for part, title in PARTS.items():
        ax.errorbar(alphas, [alpha_table[a][part]["mean"] for a in alphas],
                    yerr=[alpha_table[a][part]["std"] for a in alphas], marker="o", capsize=3, label=title,
                    lw=2.2 if part == "final" else 1.2)
    if len(alphas) > 1 and min(alphas) > 0:
        ax.set_xscale("log")
    ax.set_xlabel("alpha (retain weight)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("After unlearning, mean ± std over seeds", fontsize=10)
    ax.legend(loc="best", fontsize=8)
    save_figure(fig, path)


def dvc_exp_show() -> list:
    result = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], capture_output=True, text=True)
    if result.returncode != 0:
        raise PipelineError(f"`dvc exp show --json` failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout)


@exit_on_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="a saved `dvc exp show --json` output (default: run it)")
    parser.add_argument("--reference", help="the commit or experiment whose params the others must match "
                                            "(default: the current commit)")
    parser.add_argument("--out", default="reports/compare")
    args = parser.parse_args(argv)
    exp_show = json.loads(Path(args.json).read_text(encoding="utf-8")) if args.json else dvc_exp_show()
    records = experiment_records(exp_show)
    if not records:
        raise PipelineError("no commit or experiment with reports/metrics.json and params.yaml; run `dvc repro` or "
                            "`dvc exp run` first")
    wanted = args.reference
    reference = next((r for r in records if wanted in (r["name"], r["rev"]) or (wanted and r["rev"].startswith(wanted))),
                     None) if wanted else records[0]
    if reference is None:
        raise PipelineError(f"--reference {wanted!r}: no commit or experiment of that name or rev with results")
    same = comparable(records, reference)
    alpha_table = spread(same, "alpha")
    seed_row = alpha_table[reference["params"]["alpha"]]
    with atomic_output(Path(args.out)) as out:
        out.mkdir()
        (out / "compare.md").write_text(markdown(alpha_table, seed_row, reference), encoding="utf-8")
        write_json(out / "compare.json", {"reference": reference["name"], "alpha": {str(a): row for a, row in
                                                                                   alpha_table.items()}})
        plot_alpha(alpha_table, out / "alpha.png")
    print(f"compare: {len(same)} of {len(records)} experiments comparable with {reference['name']}: "
          f"{len(alpha_table)} alpha values, {seed_row['n']} seed(s) at alpha {reference['params']['alpha']}; "
          f"written to {args.out}/")


if __name__ == "__main__":
    main()
