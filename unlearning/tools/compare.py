"""Compare DVC experiments: the table of every experiment (its layers, alpha, beta and seed, the headline run's four
scores with their intervals), the alpha curve and the spread over random-vector seeds.

python -m unlearning.tools.compare [--json FILE] [--out reports/compare]

Not a pipeline stage: it reads the experiments DVC keeps in git, which a stage cannot depend on. The experiments and
their params come from `dvc exp show --json`, the scores and their intervals from each experiment's
reports/metrics/runs.json (a git-tracked file of the commit DVC made for it; the rounded reports/metrics.json and
no intervals for a commit without it). Run experiments first, e.g. `dvc exp run --queue -S
alpha=0.5,1,2,4,8 -S unlearn.seed=0,1,2 && dvc queue start`. The alpha table and plot take every experiment and
commit whose params equal the reference's (the current commit's, or --reference REV's) except for `alpha` and
`unlearn.seed` (and `sweep`, `methods`, `seeds` and `baselines`, which do not change the headline run): the mean and
spread over seeds of the final score and its parts for each alpha; the seed table gives them at the reference's alpha.

Two experiments are compared only when their headline runs share the target (its weights' SHA-256) and the numerics
that computed them (the fingerprints in runs.json: unlearning/numerics.py). The others are shown apart, each group
with the reason and the hashes, and left out of the alpha and seed tables: a difference between them would mix a
machine's effect into the params'.
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from ..errors import PipelineError, exit_on_error
from ..files import atomic_output, write_json
from ..numerics import differences
from ..report.markdown import with_interval
from ..report.plots import plt, save_figure
from ..report.summary import HEADLINE_KEYS

METRICS_FILE, RUNS_FILE, PARAMS_FILE = "reports/metrics.json", "reports/metrics/runs.json", "params.yaml"
PARTS = {"final": "final score", "task_aggregate": "task aggregate", "mia_score": "MIA score", "mmlu": "MMLU"}
FREE = ("alpha", "unlearn.seed")
# which further runs an experiment makes (and the attacks on them, attack.*) does not change its headline run
IGNORED = ("sweep", "methods", "baselines", "seeds")
SETTINGS = {"layers": "layers", "alpha": "alpha", "unlearn.beta": "beta", "unlearn.seed": "seed"}


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
    """One record per commit or experiment with results: {"name", "rev", "params" (flat), "after" (the headline
    run's final score and parts)}. The workspace and anything that failed or has no metrics are left out."""
    records = []

    def add(entry, name):
        data = entry.get("data") or {}
        metrics = ((data.get("metrics") or {}).get(METRICS_FILE) or {}).get("data")
        params = ((data.get("params") or {}).get(PARAMS_FILE) or {}).get("data")
        if (entry.get("error") is None and metrics and all(HEADLINE_KEYS[part] in metrics for part in PARTS)
                and params and entry.get("rev") != "workspace"):
            records.append({"name": name or entry["rev"][:7], "rev": entry["rev"], "params": flatten(params),
                            "after": {part: metrics[HEADLINE_KEYS[part]] for part in PARTS}})

    for commit in exp_show:
        add(commit, commit.get("name"))
        for experiment in commit.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                add(rev, experiment.get("name") or rev.get("name"))
    return records


def comparable(records: list[dict], reference: dict) -> list[dict]:
    """Records with the reference's target and numerics whose params equal the reference's except for `alpha` and
    `unlearn.seed` (and IGNORED)."""
    def fixed(params):
        return {key: value for key, value in params.items()
                if key not in FREE + IGNORED and not key.startswith("attack.")}
    return [r for r in same_computation(records, reference)[0] if fixed(r["params"]) == fixed(reference["params"])]


def same_computation(records: list[dict], reference: dict) -> tuple[list[dict], list[dict]]:
    """(the records whose headline shares the reference's target and numerics, the groups of the others: each
    {"reasons", "target", "numerics", "records"})."""
    same, apart = [], []
    for record in records:
        reasons = [] if record is reference else differences(record["identity"], reference["identity"])
        if not reasons:
            same.append(record)
            continue
        key = (record["identity"] or {}).get("target"), (record["identity"] or {}).get("numerics")
        group = next((g for g in apart if (g["target"], g["numerics"]) == key), None)
        if group is None:
            group = {"reasons": reasons, "target": key[0], "numerics": key[1], "records": []}
            apart.append(group)
        group["records"].append(record)
    return same, apart


def computed_label(identity: dict | None) -> str:
    return "no fingerprint" if identity is None else f"target {identity['target'][:12]}…, numerics {identity['numerics']}"


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
            if None in values:  # no MIA data: no MIA or final score to spread
                row[part] = {"mean": None, "std": None, "min": None, "max": None}
                continue
            row[part] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                         "min": min(values), "max": max(values)}
        table[value] = row
    return table


def git_runs_file(rev: str) -> dict | None:
    """reports/metrics/runs.json as committed in `rev` (an experiment's commit, or a commit), or None where that
    commit has none (made before the file existed)."""
    result = subprocess.run(["git", "show", f"{rev}:{RUNS_FILE}"], capture_output=True, text=True)
    return json.loads(result.stdout) if result.returncode == 0 else None


def with_intervals(records: list[dict], read_runs=None) -> list[dict]:
    """Each record with "intervals": part -> [low, high] of its headline run, its scores at full precision
    (reports/metrics.json rounds them) and "identity", its target and numerics (None where none was recorded), from
    its commit's runs.json; where that commit has none, the rounded scores and no intervals (None)."""
    out = []
    for record in records:
        runs = (read_runs or git_runs_file)(record["rev"])
        headline = ((runs or {}).get("runs") or {}).get("headline") or {}
        bounds = headline.get("intervals", {})
        after = {part: headline.get(part, value) for part, value in record["after"].items()}
        identity = ((runs or {}).get("computed") or {}).get("identity")
        out.append({**record, "after": after, "intervals": {part: bounds.get(part) for part in PARTS},
                    "identity": identity})
    return out


def setting(params: dict, key: str) -> str:
    value = params.get(key)
    if key == "layers" and isinstance(value, list) and value:
        return f"{value[0]}-{value[-1]}"
    return "-" if value is None else str(value)


def experiment_table(records: list[dict]) -> list[list[str]]:
    """The header and one row per record: name, the settings, each part with its interval."""
    rows = [["experiment", *SETTINGS.values(), *PARTS.values()]]
    for record in records:
        rows.append([record["name"], *(setting(record["params"], key) for key in SETTINGS),
                     *(with_interval(record["after"][part], record["intervals"][part]) for part in PARTS)])
    return rows


def plain_table(rows: list[list[str]]) -> str:
    """Aligned columns for a terminal: names left, numbers right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(rows[0]) + " |", "|---|" + "---:|" * (len(rows[0]) - 1)]
            + ["| " + " | ".join(row) + " |" for row in rows[1:]])


def markdown(table: list[list[str]], apart: list[dict], alpha_table: dict, seed_row: dict, reference: dict) -> str:
    lines = ["# Experiments compared", "",
             f"Every commit and experiment with results computed as {reference['name']}'s "
             f"({computed_label(reference['identity'])}): the headline run's scores, in brackets their 95% bootstrap "
             "intervals over documents (reports/metrics/runs.json; n/a for a commit without it).", "",
             *markdown_table(table), ""]
    for group in apart:
        lines += [f"## Not comparable with {reference['name']}: {'; '.join(group['reasons'])}", "",
                  f"{computed_label(group['records'][0]['identity'])}.", "",
                  *markdown_table(experiment_table(group["records"])), ""]
    lines += [
             f"Reference: {reference['name']} ({reference['rev'][:7]}); experiments with the same params except "
             "`alpha` and `unlearn.seed`. Mean ± sample standard deviation over seeds (n = number of experiments).",
             "", "## Alpha", "", "| alpha | n | " + " | ".join(PARTS.values()) + " |",
             "|---:|---:|" + "---:|" * len(PARTS)]
    for alpha, row in alpha_table.items():
        lines.append(f"| {alpha} | {row['n']} | "
                     + " | ".join("n/a" if row[p]["mean"] is None else f"{row[p]['mean']:.3f} ± {row[p]['std']:.3f}"
                                  for p in PARTS) + " |")
    lines += ["", f"## Seeds at alpha {reference['params']['alpha']}", "",
              f"Seeds {seed_row['seeds']}.", "", "| part | mean | std | min | max |", "|---|---:|---:|---:|---:|"]
    for part, title in PARTS.items():
        s = seed_row[part]
        lines.append(f"| {title} | " + " | ".join("n/a" if s[k] is None else f"{s[k]:.3f}"
                                                  for k in ("mean", "std", "min", "max")) + " |")
    return "\n".join(lines) + "\n"


def plot_alpha(alpha_table: dict, path: Path) -> None:
    alphas = list(alpha_table)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for part, title in PARTS.items():
        if any(alpha_table[a][part]["mean"] is None for a in alphas):
            continue
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
    records = with_intervals(experiment_records(exp_show))
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
    computed_alike, apart = same_computation(records, reference)
    table = experiment_table(computed_alike)
    print(f"computed as {reference['name']} ({computed_label(reference['identity'])}):")
    print(plain_table(table))
    for group in apart:
        print(f"\nnot comparable with {reference['name']}: {'; '.join(group['reasons'])}\n"
              f"({computed_label(group['records'][0]['identity'])}):")
        print(plain_table(experiment_table(group["records"])))
    with atomic_output(Path(args.out)) as out:
        out.mkdir()
        (out / "compare.md").write_text(markdown(table, apart, alpha_table, seed_row, reference), encoding="utf-8")
        write_json(out / "compare.json", {"reference": reference["name"], "alpha": {str(a): row for a, row in
                                                                                   alpha_table.items()}})
        plot_alpha(alpha_table, out / "alpha.png")
    shown_apart = sum(len(group["records"]) for group in apart)
    print(f"compare: {len(same)} of {len(records)} experiments comparable with {reference['name']}: "
          f"{len(alpha_table)} alpha values, {seed_row['n']} seed(s) at alpha {reference['params']['alpha']}"
          + (f"; {shown_apart} computed otherwise, shown apart" if shown_apart else "") + f"; written to {args.out}/")


if __name__ == "__main__":
    main()
