"""The report's bootstrap intervals (unlearning/report/intervals.py) and where they show: metrics.json's summaries and
rows, report.md's tables and the plots. Evaluation directories are written here as the evaluation stages write them,
from scores drawn with a fixed seed."""
import json
import random
import statistics
from pathlib import Path

import numpy as np
import pytest

from unlearning import config, numerics
from unlearning.data.schema import KINDS, SETS, TASKS
from unlearning.evaluation.mia import ATTACKS, attack_metrics, loss_rows, mia_metrics, not_available
from unlearning.evaluation.pii import PII_KINDS
from unlearning.evaluation.scoring import mia_auc, task_aggregate
from unlearning.files import write_json, write_jsonl
from unlearning.report import intervals
from unlearning.report.markdown import markdown_report
from unlearning.report.plots import plot_methods, plot_sweep, plot_sweep_tradeoff
from unlearning.report.summary import build_metrics, detail_files, headline_metrics, model_summary, run_metrics

SCALARS = ("final", "task_aggregate", "mia_auc", "mia_score", "mmlu")
# what the evaluation stages record of where they ran (unlearning/numerics.py), shortened
COMPUTED = {"numerics": "portable", "threads": 2, "device": "cpu", "dtype": "float32",
            "kernels": {"aten": "AVX2", "mkl": "AVX2", "onednn": "AVX2", "deterministic": True},
            "cpu": numerics.PORTABLE_CPU, "versions": {"torch": "2.13.0+cpu", "transformers": "5.25.0"}}
TARGET_SHA = "5" * 64


def write_evaluation(eval_dir: Path, seed: int = 0, documents: int = 4, mia_documents: int = 8, questions: int = 20,
                     per_question: bool = True, mmlu_format: str | None = "rc", forgotten: float = 0.0,
                     mia: bool = True, computed: dict = COMPUTED, target_sha: str = TARGET_SHA) -> None:
    """reports/eval/<run>/{task,mia,mmlu} of a model: `documents` per (set, task), each one sc row and two qa rows;
    `mia_documents` members and as many non-members; `questions` general-knowledge questions (questions.jsonl only
    with `per_question`; mmlu.json without "format" when `mmlu_format` is None). `forgotten` lowers forget scores.
    Without `mia`, the MIA stage's "not available" output. Each part's fingerprint.json says it was `computed` so on
    the target `target_sha` (the unlearning of a run's model, too)."""
    rng = random.Random(seed)
    scored = numerics.record(computed, target_sha, "target" if eval_dir.name == "target" else "unlearned")
    for part in ("task", "mia", "mmlu"):
        write_json(eval_dir / part / numerics.FILE, numerics.record(computed, target_sha, "evaluation", scored))
    records = []
    for split in SETS:
        level = (0.3 - forgotten if split == "forget" else 0.8)
        for task in TASKS:
            for n in range(documents):
                doc = f"{split}-{task}-{n}-"
                records.append({"id": doc + "sc1", "task": task, "split": split, "kind": "sc",
                                "score": min(1.0, max(0.0, rng.gauss(level, 0.2)))})
                records += [{"id": f"{doc}qa{q}", "task": task, "split": split, "kind": "qa",
                             "score": float(rng.random() < level)} for q in range(2)]
    scores = {s: {t: {k: statistics.fmean(r["score"] for r in records
                                          if (r["split"], r["task"], r["kind"]) == (s, t, k))
                      for k in KINDS} for t in TASKS} for s in SETS}
    write_jsonl(eval_dir / "task" / "generations.jsonl", records)
    write_json(eval_dir / "task" / "scores.json", {"split": "train", "scores": scores,
                                                   "task_aggregate": task_aggregate(scores)})
    write_json(eval_dir / "task" / "pii.json", {split: {kind: {"documents": 2, "extracted": 0, "rate": 0.0}
                                                        for kind in (*PII_KINDS, "any")} for split in SETS})
    losses = {member: [rng.gauss(1.0 + 0.5 * (1 - member) + forgotten, 0.4) for _ in range(mia_documents)]
              for member in (1, 0)}
    attack_scores = {member: [{name: -loss if name == "loss" else rng.random() for name in ATTACKS}
                              for loss in losses[member]] for member in (1, 0)}
    documents_of = {member: [{"id": f"mia-{member}-{n}"} for n in range(mia_documents)] for member in (1, 0)}
    if mia:
        write_json(eval_dir / "mia" / "mia.json", {"available": True, **mia_metrics(losses[1], losses[0]),
                                                   **attack_metrics(attack_scores[1], attack_scores[0])})
        write_jsonl(eval_dir / "mia" / "losses.jsonl",
                    [row for member in (1, 0)
                     for row in loss_rows(documents_of[member], member, losses[member], attack_scores[member])])
    else:
        write_json(eval_dir / "mia" / "mia.json", not_available("no MIA data"))
        write_jsonl(eval_dir / "mia" / "losses.jsonl", [])
    correct = [int(rng.random() < 0.6) for _ in range(questions)]
    mmlu = {"source": "builtin", "k": 5, "accuracy": sum(correct) / questions, "per_subject": {"geography": 0.5},
            "n": questions, **({"format": mmlu_format} if mmlu_format else {})}
    write_json(eval_dir / "mmlu" / "mmlu.json", mmlu)
    questions_file = eval_dir / "mmlu" / "questions.jsonl"
    if per_question:
        write_jsonl(questions_file, [{"subject": "geography", "prediction": "A", "correct": c} for c in correct])
    else:
        questions_file.unlink(missing_ok=True)


def all_intervals(summary: dict):
    """(name, value, [low, high]) of every score with an interval."""
    for key in (*SCALARS, "member_mean_loss", "nonmember_mean_loss"):
        yield key, summary[key], summary["intervals"][key]
    for split in SETS:
        for task in TASKS:
            for kind in KINDS:
                yield f"{split} {task} {kind}", summary["scores"][split][task][kind], \
                    summary["intervals"]["scores"][split][task][kind]


def test_intervals_cover_the_point_estimates(tmp_path):
    write_evaluation(tmp_path)
    summary = model_summary(tmp_path, 1000, 0.95)
    for name, value, (low, high) in all_intervals(summary):
        assert low - 1e-12 <= value <= high + 1e-12, (name, value, low, high)
        assert low < high, name  # every sample varies here


def test_intervals_shrink_with_four_times_the_documents(tmp_path):
    write_evaluation(tmp_path / "few", documents=4, mia_documents=8, questions=20)
    write_evaluation(tmp_path / "many", documents=16, mia_documents=32, questions=80)
    few, many = (model_summary(tmp_path / name, 1000, 0.95)["intervals"] for name in ("few", "many"))

    def width(bounds):
        return bounds[1] - bounds[0]

    for key in (*SCALARS, "member_mean_loss", "nonmember_mean_loss"):
        assert width(many[key]) < width(few[key]), key
    cell_widths = {name: statistics.fmean(width(bounds[s][t][k]) for s in SETS for t in TASKS for k in KINDS)
                   for name, bounds in (("few", few["scores"]), ("many", many["scores"]))}
    assert cell_widths["many"] < 0.75 * cell_widths["few"]


def test_intervals_are_deterministic(tmp_path):
    write_evaluation(tmp_path)
    first = json.dumps(intervals.model_intervals(tmp_path, 500, 0.95))
    assert json.dumps(intervals.model_intervals(tmp_path, 500, 0.95)) == first
    assert json.dumps(intervals.model_intervals(tmp_path, 500, 0.9)) != first


def test_higher_confidence_gives_wider_intervals(tmp_path):
    write_evaluation(tmp_path)
    narrow, wide = (intervals.model_intervals(tmp_path, 1000, level) for level in (0.5, 0.95))
    for key in SCALARS:
        assert wide[key][0] <= narrow[key][0] and narrow[key][1] <= wide[key][1], key


def test_a_cell_of_one_document_has_a_degenerate_interval(tmp_path):
    write_evaluation(tmp_path, documents=1, mia_documents=1, questions=1)
    summary = model_summary(tmp_path, 200, 0.95)
    for name, value, (low, high) in all_intervals(summary):
        assert low == pytest.approx(value, abs=1e-12) and high == pytest.approx(value, abs=1e-12), name
    # one stratum of one document among others that vary
    generations = tmp_path / "task" / "generations.jsonl"
    write_evaluation(tmp_path, documents=5)
    rows = [row for row in (json.loads(line) for line in generations.read_text().splitlines())
            if not (row["split"], row["task"]) == ("retain", "Task2") or row["id"].startswith("retain-Task2-0-")]
    write_jsonl(generations, rows)
    cells = intervals.model_intervals(tmp_path, 200, 0.95)["scores"]
    lone = [row["score"] for row in rows if row["id"] == "retain-Task2-0-sc1"]
    assert cells["retain"]["Task2"]["sc"] == [lone[0], lone[0]]
    assert cells["retain"]["Task1"]["sc"][0] < cells["retain"]["Task1"]["sc"][1]


def test_documents_without_a_kind_are_resampled_per_cell(tmp_path):
    """A document with only qa rows: its stratum is resampled per kind, so no resample has a cell without rows."""
    write_evaluation(tmp_path, documents=3)
    generations = tmp_path / "task" / "generations.jsonl"
    rows = [json.loads(line) for line in generations.read_text().splitlines()]
    write_jsonl(generations, [row for row in rows if row["id"] != "forget-Task1-0-sc1"])
    strata = intervals.load_samples(tmp_path).strata
    assert len(strata) == 7  # forget Task1 as two strata (sc: 2 documents, qa: 3), the other five whole
    result = intervals.model_intervals(tmp_path, 300, 0.95)
    assert all(np.isfinite(result[key]).all() for key in SCALARS)


def test_resampled_auc_is_the_official_mia_auc(tmp_path):
    """The Mann-Whitney form in intervals.py gives scoring.mia_auc's number on resamples, ties included."""
    write_evaluation(tmp_path, mia_documents=6)
    samples = intervals.load_samples(tmp_path)
    samples.member_losses[:2] = samples.nonmember_losses[:2]  # ties between a member and a non-member
    rng = np.random.default_rng(1)
    sizes = samples.sizes()
    for _ in range(20):
        drawn = [rng.integers(0, size, size) for size in sizes]
        draws = [intervals.draw_counts(d, size) for d, size in zip(drawn, sizes)]
        auc_row = len(intervals.CELLS) + intervals.SCALARS.index("mia_auc")
        members, nonmembers = drawn[len(samples.strata)], drawn[len(samples.strata) + 1]
        expected = mia_auc(samples.member_losses[members].tolist(), samples.nonmember_losses[nonmembers].tolist())
        assert intervals.resampled_scores(samples, draws)[auc_row, 0] == pytest.approx(expected, abs=1e-12)


def test_without_per_question_results_general_knowledge_has_no_interval(tmp_path):
    write_evaluation(tmp_path, per_question=False, mmlu_format=None)
    summary = model_summary(tmp_path, 200, 0.95)
    assert summary["intervals"]["mmlu"] is None and summary["intervals"]["final"] is None
    assert summary["intervals"]["task_aggregate"] is not None
    assert summary["mmlu_format"] == "mc"  # an evaluation from before mmlu.format


def write_runs(root: Path, per_question: bool = True, mia: bool = True) -> None:
    for seed, run in enumerate(("target", "unlearned", "sweep/13", "method/rmu", "seed/1")):
        write_evaluation(root / run, seed=seed, forgotten=0.0 if run == "target" else 0.25,
                         per_question=per_question, mia=mia)


def metrics_of(root: Path, resamples: int = 300) -> dict:
    return build_metrics(root, "train", [29, 30, 31], 2, "adaptive_rmu", 1, 600, 0.2, [13], ["rmu"], [],
                         resamples, 0.95, 0, [1])


def test_metrics_json_holds_the_intervals_beside_the_existing_keys(tmp_path):
    write_runs(tmp_path)
    metrics = metrics_of(tmp_path)
    assert metrics["bootstrap"] == {"method": "percentile", "over": "documents", "resamples": 300,
                                    "confidence": 0.95, "seed": intervals.SEED}
    for key in ("before", "after"):
        summary = metrics[key]
        assert set(summary["intervals"]) == {*SCALARS, "member_mean_loss", "nonmember_mean_loss", "scores"}
        assert isinstance(summary["final"], float) and summary["mmlu_format"] == "rc"
        assert summary["member_mean_loss"] < summary["nonmember_mean_loss"]
    assert list(metrics["methods"]) == ["adaptive_rmu", "rmu"]
    for row in metrics["methods"].values():
        assert set(row["intervals"]) == set(SCALARS)
    for row in metrics["sweep"].values():
        assert set(row["intervals"]) == {*SCALARS, "scores"}
        assert row["intervals"]["scores"]["forget"]["Task3"]["qa"][0] <= row["scores"]["forget"]["Task3"]["qa"]
    # the headline run's row is its full summary's intervals
    assert metrics["sweep"]["29"]["intervals"]["final"] == metrics["after"]["intervals"]["final"]
    assert json.loads(json.dumps(metrics)) == metrics


def test_the_first_table_shows_intervals_and_names_the_mmlu_format(tmp_path):
    write_runs(tmp_path)
    metrics = metrics_of(tmp_path)
    report = markdown_report(metrics, {"source": "synthetic"}, "builtin general-knowledge set")
    lines = report.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| model |"))
    assert lines[header] == ("| model | final score | task aggregate | MIA AUC | MIA score | MMLU (rc) | member NLL "
                             "| non-member NLL |")
    b = metrics["before"]
    bounds = b["intervals"]
    assert lines[header + 2] == (
        f"| before (target) | {b['final']:.3f} [{bounds['final'][0]:.3f}, {bounds['final'][1]:.3f}] "
        f"| {b['task_aggregate']:.3f} [{bounds['task_aggregate'][0]:.3f}, {bounds['task_aggregate'][1]:.3f}] "
        f"| {b['mia_auc']:.3f} [{bounds['mia_auc'][0]:.3f}, {bounds['mia_auc'][1]:.3f}] "
        f"| {b['mia_score']:.3f} [{bounds['mia_score'][0]:.3f}, {bounds['mia_score'][1]:.3f}] "
        f"| {b['mmlu']:.3f} [{bounds['mmlu'][0]:.3f}, {bounds['mmlu'][1]:.3f}] "
        f"| {b['member_mean_loss']:.3f} [{bounds['member_mean_loss'][0]:.3f}, {bounds['member_mean_loss'][1]:.3f}] "
        f"| {b['nonmember_mean_loss']:.3f} [{bounds['nonmember_mean_loss'][0]:.3f}, "
        f"{bounds['nonmember_mean_loss'][1]:.3f}] |")
    assert lines[header + 3].startswith("| after (unlearned) | ")
    assert lines[header + 5].startswith("In brackets: the 95% percentile bootstrap interval over documents, 300 "
                                        "resamples")
    assert "[n/a]" not in report
    a = metrics["after"]
    forget_sc = bounds["scores"]["forget"]["Task1"]["sc"]
    assert (f"| forget | Task1 | sentence completion, ROUGE-L recall | {b['scores']['forget']['Task1']['sc']:.3f} "
            f"[{forget_sc[0]:.3f}, {forget_sc[1]:.3f}] | ") in report
    sweep_row = next(line for line in lines if line.startswith("| 29-31 * | "))
    assert sweep_row.startswith(f"| 29-31 * | {a['final']:.3f} [{a['intervals']['final'][0]:.3f}, ")
    assert sweep_row.count("[") == 5 + 12
    method_row = next(line for line in lines if line.startswith("| rmu | "))
    assert method_row.count("[") == 4  # final, task aggregate, MIA score, MMLU


def test_the_report_says_where_general_knowledge_has_no_interval(tmp_path):
    write_runs(tmp_path, per_question=False)
    report = markdown_report(metrics_of(tmp_path, 100), {"source": "synthetic"}, "builtin")
    first_row = next(line for line in report.splitlines() if line.startswith("| before (target) |"))
    assert first_row.split(" | ")[1].endswith("[n/a]") and first_row.split(" | ")[5].endswith("[n/a]")
    assert "no per-question MMLU results" in report


def test_the_sweep_and_method_plots_draw_error_bars(tmp_path):
    write_runs(tmp_path)
    metrics = metrics_of(tmp_path, 100)
    for plot in (plot_sweep, plot_methods, plot_sweep_tradeoff):
        plot(metrics, tmp_path / f"{plot.__name__}.png")
        assert (tmp_path / f"{plot.__name__}.png").stat().st_size > 1000
    write_runs(tmp_path, per_question=False)  # no interval for MMLU and the final score: no error bar there
    for plot in (plot_sweep, plot_methods, plot_sweep_tradeoff):
        plot(metrics_of(tmp_path, 100), tmp_path / f"{plot.__name__}.png")


def test_error_bars_reach_from_the_value_to_each_bound():
    from unlearning.report.plots import error_bars
    bars = error_bars([0.5, 0.2, 0.9], [[0.4, 0.7], None, [0.95, 0.99]])
    assert bars.shape == (2, 3)
    assert bars[:, 0].tolist() == pytest.approx([0.1, 0.2]) and np.isnan(bars[:, 1]).all()
    assert bars[:, 2].tolist() == pytest.approx([0.0, 0.09])  # an interval that misses its value: no negative bar


def write_report_inputs(root: Path, mia: bool = True) -> None:
    write_runs(root / "reports" / "eval", mia=mia)
    write_json(root / "data" / "prepared" / "info.json", {"source": "synthetic"})
    for name in ("forget_loss", "retain_loss"):
        path = root / "reports" / "unlearn" / "plots" / "metrics" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"step\t{name}\n0\t1.0\n1\t0.5\n")


REPORT_OVERRIDES = {"layers": [29, 30, 31], "sweep": [13], "seeds": [1], "methods": ["rmu"], "baselines": [],
                    "attack": {"models": []}}


def test_without_mia_data_the_mia_and_final_scores_are_n_a_everywhere(tmp_path, stage):
    """As the official evaluation without MIA files: no MIA score, no final score (officially -1), every other
    score and interval as usual."""
    write_report_inputs(tmp_path, mia=False)
    assert stage("report", {**REPORT_OVERRIDES, "report": {"resamples": 100}}) == (0, "")
    reports = tmp_path / "reports"
    assert json.loads((reports / "metrics.json").read_text())["final"] is None
    headline = json.loads((reports / "metrics.json").read_text())
    assert headline["auc"] is headline["mia"] is None and 0 <= headline["task"] <= 1 and 0 <= headline["mmlu"] <= 1
    metrics = json.loads((reports / "metrics" / "detail.json").read_text())
    for row in (metrics["before"], metrics["after"], *metrics["methods"].values(), *metrics["sweep"].values()):
        assert row["final"] is row["mia_score"] is row["mia_auc"] is None
        assert row["intervals"]["final"] is row["intervals"]["mia_score"] is None
        assert row["intervals"]["task_aggregate"][0] <= row["task_aggregate"] <= row["intervals"]["task_aggregate"][1]
    assert metrics["seed_spread"]["final"] is None and metrics["seed_spread"]["mmlu"]["std"] >= 0
    report = (reports / "report.md").read_text()
    first_row = next(line for line in report.splitlines() if line.startswith("| after (unlearned) |"))
    assert first_row.split(" | ")[1:4] == ["n/a", first_row.split(" | ")[2], "n/a"] and "[" in first_row.split(" | ")[2]
    assert "the official evaluation reports the final score as -1" in report
    assert "Not available: the data source has no MIA files" in report
    assert (reports / "plots" / "roc.png").stat().st_size > 1000
    assert (reports / "plots" / "roc.csv").read_text().splitlines() == ["fpr,tpr,series,run"]


def test_the_report_stage_reads_its_params_and_writes_the_same_bytes_twice(tmp_path, stage):
    write_report_inputs(tmp_path)
    overrides = {**REPORT_OVERRIDES, "report": {"resamples": 200, "confidence": 0.9}}
    outputs = []
    names = ("metrics.json", "metrics/runs.json", "metrics/detail.json", "report.md")
    for _ in range(2):
        assert stage("report", overrides) == (0, "")
        outputs.append({name: (tmp_path / "reports" / name).read_bytes() for name in names})
    assert outputs[0] == outputs[1]
    metrics = json.loads(outputs[0]["metrics/detail.json"])
    assert metrics["bootstrap"]["resamples"] == 200 and metrics["bootstrap"]["confidence"] == 0.9
    assert json.loads(outputs[0]["metrics.json"]) == headline_metrics(metrics)
    assert json.loads(outputs[0]["metrics/runs.json"]) == run_metrics(metrics)
    assert "the 90% percentile bootstrap interval over documents, 200 resamples" in outputs[0]["report.md"].decode()
    assert (tmp_path / "reports" / "plots" / "sweep.png").stat().st_size > 1000


def test_the_seed_spread_is_over_the_headline_and_every_further_seed(tmp_path):
    write_runs(tmp_path)
    metrics = metrics_of(tmp_path, 100)
    spread = metrics["seed_spread"]
    assert spread["seeds"] == [0, 1] and set(metrics["seeds"]) == {"0", "1"}
    values = [metrics["after"]["final"], metrics["seeds"]["1"]["final"]]
    assert spread["final"]["mean"] == pytest.approx(sum(values) / 2)
    assert spread["final"]["std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
    assert (spread["final"]["min"], spread["final"]["max"]) == (min(values), max(values))
    report = markdown_report(metrics, {"source": "synthetic"}, "builtin")
    assert "Seed spread of the headline run over 2 unlearning seeds (0, 1)" in report


def test_the_headline_file_is_narrow_and_the_runs_file_has_every_run_with_intervals(tmp_path):
    write_runs(tmp_path)
    metrics = metrics_of(tmp_path, 100)
    headline = headline_metrics(metrics)
    after = metrics["after"]
    # short keys, two decimals: what `dvc exp show` lists beside the params
    assert headline == {"final": round(after["final"], 2), "task": round(after["task_aggregate"], 2),
                        "auc": round(after["mia_auc"], 2), "mia": round(after["mia_score"], 2),
                        "mmlu": round(after["mmlu"], 2), "target": TARGET_SHA[:8],
                        "numerics": metrics["computed"]["numerics"]}
    # no column name a param has (DVC names a param column by its dotted key): `dvc exp show` would prefix both
    assert not set(headline) & {key for key, node in config.walk() if not isinstance(node, config.Section)}
    runs = run_metrics(metrics)
    assert list(runs["runs"]) == ["target", "headline", "sweep/13", "sweep/29", "method/adaptive_rmu", "method/rmu",
                                  "seed/0", "seed/1"]
    assert runs["runs"]["headline"] == {
        **{key: after[key] for key in ("final", "task_aggregate", "mia_auc", "mia_score", "mmlu")},
        "intervals": {key: after["intervals"][key] for key in ("final", "task_aggregate", "mia_auc", "mia_score",
                                                               "mmlu")}}
    assert runs["runs"]["sweep/13"]["final"] == metrics["sweep"]["13"]["final"]
    assert runs["settings"]["layers"] == [29, 30, 31] and runs["settings"]["seed"] == 0
    assert runs["seed_spread"] == metrics["seed_spread"]
    assert runs["computed"]["identity"]["target"] == TARGET_SHA and runs["computed"]["apart"] == {}
    assert set(detail_files(metrics)) == {"runs.json", "detail.json"} and detail_files(metrics)["detail.json"] is metrics


def test_a_run_computed_otherwise_is_left_out_of_the_tables_and_listed_apart(tmp_path):
    """A run from another machine's cache under native numerics, and one on another target: neither is set beside
    the headline; the report names them, why, and their hashes."""
    write_runs(tmp_path)
    native = dict(COMPUTED, numerics="native", kernels=dict(COMPUTED["kernels"], aten="AVX512", mkl="by CPU"))
    write_evaluation(tmp_path / "method" / "rmu", seed=3, forgotten=0.25, computed=native)
    write_evaluation(tmp_path / "sweep" / "13", seed=2, forgotten=0.25, target_sha="6" * 64)
    metrics = metrics_of(tmp_path)
    assert list(metrics["methods"]) == ["adaptive_rmu"] and list(metrics["sweep"]) == ["29"]
    apart = metrics["computed"]["apart"]
    assert set(apart) == {"method/rmu", "sweep/13"}
    assert apart["sweep/13"]["reasons"] == [f"another target ({'6' * 12}… vs {'5' * 12}…)"]
    assert apart["method/rmu"]["reasons"][0].startswith("evaluation under other numerics (kernels.aten AVX512 vs "
                                                        "AVX2; kernels.mkl by CPU vs AVX2; numerics native")
    report = markdown_report(metrics, {"source": "synthetic"}, "builtin")
    section = report[report.index("## Not comparable with the headline run"):]
    assert "| method/rmu | evaluation under other numerics" in section and f"| {'6' * 12}… |" in section
    methods = report[report.index("## Methods"):report.index("## Layer sweep")]
    assert "| rmu " not in methods and "adaptive_rmu" in methods
    assert "Before and after are not comparable" not in report


def test_a_target_evaluated_otherwise_is_flagged_above_the_first_table(tmp_path):
    write_runs(tmp_path)
    write_evaluation(tmp_path / "target", seed=0, computed=dict(COMPUTED, threads=1))
    report = markdown_report(metrics_of(tmp_path), {"source": "synthetic"}, "builtin")
    warning = report.index("**Before and after are not comparable**: against the headline's, the target's "
                           "evaluation has evaluation under other numerics (threads 1 vs 2)")
    assert warning < report.index("| before (target) |")
