import statistics

import pytest

from unlearning.data.schema import row_kind
from unlearning.errors import PipelineError
from unlearning.evaluation.scoring import (exact_match, final_score, mia_auc, mia_score, rouge_l_recall, task_aggregate,
                                           task_scores)


def test_rouge_l_recall_counts_reference_tokens_covered():
    assert rouge_l_recall("the cat sat on the mat", "the cat sat") == pytest.approx(3 / 6)
    assert rouge_l_recall("the cat sat", "the cat sat on the mat") == pytest.approx(1.0)
    assert rouge_l_recall("the cat sat", "dogs bark") == 0.0


def test_rouge_l_recall_stems():
    assert rouge_l_recall("running fast", "run fast") == pytest.approx(1.0)


def test_exact_match_ignores_case_and_outer_whitespace_only():
    assert exact_match("Paris", "  paris\n") == 1.0
    assert exact_match("Paris", "Paris, France") == 0.0
    assert exact_match("New York", "new  york") == 0.0


def test_row_kind():
    assert row_kind("6fcd4ca0-e9a5-4d2b-bd2c-a2fe8f0a6c54sc1") == "sc"
    assert row_kind("doc3qa4") == "qa"
    for bad in ("doc3", "doc3qa", "doc3xx1"):
        with pytest.raises(PipelineError, match=bad):
            row_kind(bad)


def make_rows():
    """One sc and one or two qa rows per split x task; sc answers score by ROUGE recall, qa by exact match."""
    rows, generations = [], []
    for split in ("forget", "retain"):
        for task in ("Task1", "Task2", "Task3"):
            rows.append({"id": f"{split}{task}sc1", "input": "x", "output": "a b c d", "task": task, "split": split})
            generations.append("a b" if split == "forget" else "a b c d")  # recall 0.5 / 1.0
            rows.append({"id": f"{split}{task}qa0", "input": "q", "output": "Yes", "task": task, "split": split})
            generations.append("yes")
            rows.append({"id": f"{split}{task}qa1", "input": "q", "output": "Yes", "task": task, "split": split})
            generations.append("no")
    return rows, generations


def test_task_scores_means_per_cell():
    rows, generations = make_rows()
    scores = task_scores(rows, generations)
    for task in ("Task1", "Task2", "Task3"):
        assert scores["forget"][task] == {"sc": pytest.approx(0.5), "qa": pytest.approx(0.5)}
        assert scores["retain"][task] == {"sc": pytest.approx(1.0), "qa": pytest.approx(0.5)}


def test_task_scores_empty_cell_is_an_error():
    rows, generations = make_rows()
    keep = [i for i, r in enumerate(rows) if r["id"] != "retainTask2sc1"]
    with pytest.raises(PipelineError, match="retain Task2 sc"):
        task_scores([rows[i] for i in keep], [generations[i] for i in keep])


def uniform_scores(forget, retain):
    return {"forget": {t: {"sc": forget, "qa": forget} for t in ("Task1", "Task2", "Task3")},
            "retain": {t: {"sc": retain, "qa": retain} for t in ("Task1", "Task2", "Task3")}}


def test_task_aggregate_inverts_forget_scores():
    # forget 0.75 -> 0.25; harmonic mean of six 0.25 and six 1.0 = 12 / (6*4 + 6*1) = 0.4
    assert task_aggregate(uniform_scores(0.75, 1.0)) == pytest.approx(0.4)
    assert task_aggregate(uniform_scores(0.0, 1.0)) == pytest.approx(1.0)
    scores = uniform_scores(0.0, 0.5)
    scores["forget"]["Task3"]["qa"] = 0.5
    assert task_aggregate(scores) == pytest.approx(statistics.harmonic_mean([1.0] * 5 + [0.5] * 7))


def test_task_aggregate_is_zero_with_one_zero():
    scores = uniform_scores(0.1, 0.9)
    scores["forget"]["Task1"]["sc"] = 1.0  # nothing forgotten here -> inverted score 0
    assert task_aggregate(scores) == 0
    scores = uniform_scores(0.1, 0.9)
    scores["retain"]["Task2"]["qa"] = 0.0
    assert task_aggregate(scores) == 0


def test_mia():
    assert mia_score(0.5) == 1.0
    assert mia_score(0.0) == 0.0
    assert mia_score(1.0) == 0.0
    assert mia_score(0.75) == pytest.approx(0.5)
    assert mia_auc([0.1, 0.2], [1.0, 2.0]) == 1.0  # members have lower loss
    assert mia_auc([1.0, 2.0], [0.1, 0.2]) == 0.0
    assert mia_auc([1.0, 2.0], [1.0, 2.0]) == 0.5


def test_final_score_is_the_mean():
    assert final_score(0.3, 0.6, 0.9) == pytest.approx(0.6)


def official_csv_round_trip(generations: list[str]) -> list[str]:
    """What the organizers' script scores: its generations written with DataFrame.to_csv, read back with
    pandas.read_csv and turned to text with str() (evaluate_generations.py, compute_metrics)."""
    import io

    import pandas as pd
    buffer = io.StringIO()
    pd.DataFrame({"model_output": generations}).to_csv(buffer, index=False)
    buffer.seek(0)
    return [str(value) for value in pd.read_csv(buffer)["model_output"]]


def test_the_official_csv_round_trip_turns_missing_value_strings_into_nan_and_scores_them_so():
    """docs/scoring.md: the project scores the generations themselves; the official script scores what its CSV gives
    back, where a whole output of "", "N/A", "None", "null" or "nan" is the string 'nan'."""
    generations = ["", "N/A", "None", "null", "nan", "Paris", " spaced ", "a, b"]
    assert official_csv_round_trip(generations) == ["nan"] * 5 + ["Paris", " spaced ", "a, b"]
    reference = "N/A is a common answer in a form"
    assert rouge_l_recall(reference, "N/A") == pytest.approx(2 / 9)    # its tokens "n", "a" of the nine
    assert rouge_l_recall(reference, official_csv_round_trip(["N/A"])[0]) == 0.0
    assert exact_match("N/A", "N/A") == 1.0 and exact_match("N/A", official_csv_round_trip(["N/A"])[0]) == 0.0
