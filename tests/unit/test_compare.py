"""unlearning.tools.compare on `dvc exp show --json` output shaped as dvc 3.67 prints it."""
import json
import statistics
import subprocess

import pytest

from unlearning import numerics
from unlearning.tools import compare

# what a headline run's runs.json records of where it was computed (unlearning/numerics.py), for two targets
COMPUTED = {"numerics": "portable", "threads": 2, "kernels": {"aten": "AVX2", "mkl": "AVX2"}, "device": "cpu"}
TARGET, OTHER_TARGET = "7" * 64, "9" * 64


def identity(target=TARGET, computed=COMPUTED):
    unlearned = numerics.record(computed, target, "unlearned")
    return numerics.identity([numerics.record(computed, target, "evaluation", unlearned)])


def entry(rev, name, alpha, seed, final, layers=(29, 30, 31), error=None):
    headline = {"final": final, "task": final + 0.1, "auc": 0.5, "mia": final - 0.1, "mmlu": 0.25}
    return {"rev": rev, "name": name, "error": error, "data": {
        "rev": rev,
        "params": {"params.yaml": {"data": {"alpha": alpha, "layers": list(layers), "sweep": [2],
                                            "unlearn": {"seed": seed, "lr": 0.01, "beta": 2}}}},
        "metrics": {"reports/metrics.json": {"data": headline}}}}


def runs_file(rev):
    """reports/metrics/runs.json of each fake commit; exp-c's commit predates the file, exp-x's ran on another
    target."""
    if rev.startswith("c"):
        return None
    headline = {"intervals": {"final": [0.1, 0.9], "task_aggregate": [0.2, 0.8], "mia_score": None,
                              "mmlu": [0.25, 0.25]}}
    if rev.startswith("a"):
        headline["final"] = 0.40004  # main's score unrounded (reports/metrics.json has 0.40)
    target = OTHER_TARGET if rev.startswith("9") else TARGET
    return {"runs": {"headline": headline}, "computed": {"identity": identity(target)}}


def exp_show():
    head = entry("a" * 40, "main", 2, 0, 0.40)
    experiments = [entry("b" * 40, "exp-b", 2, 1, 0.50), entry("c" * 40, "exp-c", 8, 0, 0.30),
                   entry("d" * 40, "exp-d", 8, 1, 0.34), entry("e" * 40, "exp-e", 2, 2, 0.90, layers=(1, 2, 3)),
                   entry("f" * 40, "exp-f", 2, 3, 0.0, error={"msg": "failed"}), entry("9" * 40, "exp-x", 2, 4, 0.66)]
    head["experiments"] = [{"revs": [e], "name": e["name"], "executor": None} for e in experiments]
    workspace = dict(entry("workspace", None, 2, 0, 0.40), experiments=None)
    return [workspace, head]


def test_records_leave_out_the_workspace_and_failed_experiments():
    records = compare.experiment_records(exp_show())
    assert [r["name"] for r in records] == ["main", "exp-b", "exp-c", "exp-d", "exp-e", "exp-x"]
    assert records[0]["params"]["unlearn.seed"] == 0 and records[0]["after"]["final"] == 0.40


def records_with_intervals():
    return compare.with_intervals(compare.experiment_records(exp_show()), runs_file)


def test_only_experiments_differing_in_alpha_and_seed_on_the_same_target_and_numerics_are_compared():
    records = records_with_intervals()
    same = compare.comparable(records, records[0])
    # exp-c recorded no fingerprint, exp-e trained other layers, exp-x unlearned another target
    assert [r["name"] for r in same] == ["main", "exp-b", "exp-d"]


def test_experiments_computed_otherwise_are_grouped_apart_with_the_reason():
    records = records_with_intervals()
    alike, apart = compare.same_computation(records, records[0])
    assert [r["name"] for r in alike] == ["main", "exp-b", "exp-d", "exp-e"]
    assert [[r["name"] for r in group["records"]] for group in apart] == [["exp-c"], ["exp-x"]]
    assert apart[0]["reasons"] == ["no fingerprint (made before results recorded one)"]
    assert apart[1]["reasons"] == ["another target (999999999999… vs 777777777777…)"]
    native = dict(COMPUTED, numerics="native", kernels={"aten": "AVX512", "mkl": "by CPU"})
    other = dict(records[1], identity=identity(computed=native))
    reasons = compare.same_computation([records[0], other], records[0])[1][0]["reasons"]
    assert reasons == ["evaluation under other numerics (kernels.aten AVX512 vs AVX2; kernels.mkl by CPU vs "
                       "AVX2; numerics native vs portable)",
                       "unlearning under other numerics (kernels.aten AVX512 vs AVX2; kernels.mkl by CPU vs "
                       "AVX2; numerics native vs portable)"]


def test_spread_over_seeds_per_alpha():
    records = records_with_intervals()
    table = compare.spread(compare.comparable(records, records[0]), "alpha")
    assert list(table) == [2, 8]
    assert table[2]["n"] == 2 and table[2]["seeds"] == [0, 1]
    assert table[2]["final"]["mean"] == pytest.approx((0.40004 + 0.50) / 2)
    assert table[2]["final"]["std"] == pytest.approx(statistics.stdev([0.40004, 0.50]))
    assert (table[8]["n"], table[8]["final"]["min"], table[8]["final"]["max"]) == (1, 0.34, 0.34)


def test_experiments_without_mia_data_compare_with_n_a_for_the_mia_and_final_scores(tmp_path):
    records = records_with_intervals()
    for record in records:
        record["after"]["final"] = record["after"]["mia_score"] = None
    same = compare.comparable(records, records[0])
    table = compare.spread(same, "alpha")
    assert table[2]["final"]["mean"] is None and table[2]["task_aggregate"]["mean"] == pytest.approx(0.55)
    rows = compare.experiment_table(compare.with_intervals(same, lambda rev: None))
    final_column = 1 + len(compare.SETTINGS)
    assert [row[final_column] for row in rows[1:]] == ["n/a"] * len(same)
    assert rows[1][final_column + 1] == "0.500 [n/a]"  # the task aggregate, without an interval file
    compare.plot_alpha(table, tmp_path / "alpha.png")
    assert (tmp_path / "alpha.png").stat().st_size > 1000


def test_the_experiment_table_gives_settings_and_scores_with_intervals():
    records = compare.with_intervals(compare.experiment_records(exp_show()), runs_file)
    assert records[0]["after"]["final"] == 0.40004 and records[1]["after"]["final"] == 0.50  # runs.json's, if any
    table = compare.experiment_table(records)
    assert table[0] == ["experiment", "layers", "alpha", "beta", "seed", "final score", "task aggregate",
                        "MIA score", "MMLU"]
    assert table[1] == ["main", "29-31", "2", "2", "0", "0.400 [0.100, 0.900]", "0.500 [0.200, 0.800]",
                        "0.300 [n/a]", "0.250 [0.250, 0.250]"]
    assert table[3][0] == "exp-c" and all(cell.endswith("[n/a]") for cell in table[3][5:])
    assert table[5][:2] == ["exp-e", "1-3"]
    lines = compare.plain_table(table).splitlines()
    assert len({len(line) for line in lines[:2]}) == 1  # the rule under the header spans every column
    assert lines[2].startswith("main ") and lines[2].endswith("0.250 [0.250, 0.250]")


def test_the_command_prints_the_table_and_writes_the_curves(tmp_path, monkeypatch, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(exp_show()))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(compare, "git_runs_file", runs_file)
    compare.main(["--json", str(saved), "--out", "out"])
    out = capsys.readouterr().out
    assert ("3 of 6 experiments comparable with main: 2 alpha values, 2 seed(s) at alpha 2; 2 computed otherwise, "
            "shown apart") in out
    lines = out.splitlines()
    assert lines[0] == f"computed as main (target {TARGET[:12]}…, numerics {identity()['numerics']}):"
    assert lines[1].split() == ["experiment", "layers", "alpha", "beta", "seed", "final", "score", "task",
                                "aggregate", "MIA", "score", "MMLU"]
    assert f"not comparable with main: another target ({OTHER_TARGET[:12]}… vs {TARGET[:12]}…)" in out
    text = (tmp_path / "out" / "compare.md").read_text()
    assert "| main | 29-31 | 2 | 2 | 0 | 0.400 [0.100, 0.900] |" in text
    assert "| 2 | 2 | 0.450 ± 0.071 |" in text and "| 8 | 1 | 0.340 ± 0.000 |" in text
    main_table, other_target = text.index("| main |"), text.index("## Not comparable with main: another target")
    assert main_table < other_target < text.index("| exp-x |")
    assert text.index("| exp-x |") > text.index("## Not comparable with main: no fingerprint")
    assert (tmp_path / "out" / "alpha.png").stat().st_size > 1000


def test_no_results_is_one_clear_error(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps([exp_show()[0]]))  # the workspace alone
    with pytest.raises(SystemExit) as exit_:
        compare.main(["--json", str(saved)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == ("error: no commit or experiment with reports/metrics.json and "
                                               "params.yaml; run `dvc repro` or `dvc exp run` first")


def test_intervals_are_read_from_the_runs_file_each_commit_holds(tmp_path, monkeypatch):
    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                              capture_output=True, text=True).stdout.strip()
    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "before the file")
    old = git("rev-parse", "HEAD")
    (tmp_path / "reports" / "metrics").mkdir(parents=True)
    (tmp_path / "reports" / "metrics" / "runs.json").write_text(json.dumps({"runs": {"headline": {"intervals": {
        "final": [0.6, 0.8]}}}}))
    git("add", "reports")
    git("commit", "-q", "-m", "with the file")
    new = git("rev-parse", "HEAD")
    monkeypatch.chdir(tmp_path)
    assert compare.git_runs_file(new)["runs"]["headline"]["intervals"]["final"] == [0.6, 0.8]
    assert compare.git_runs_file(old) is None
