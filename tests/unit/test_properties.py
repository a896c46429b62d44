"""Property-based tests (hypothesis) of the scorer and of the loaders on random malformed input."""
import statistics

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unlearning.data.schema import PREPARED_FILES, SEMEVAL_KEYS, check_dataset
from unlearning.data.synthetic import generate
from unlearning.errors import PipelineError
from unlearning.evaluation.mmlu import _hendrycks_csv
from unlearning.evaluation.scoring import exact_match, final_score, mia_auc, mia_score, rouge_l_recall, task_aggregate
from unlearning.files import read_jsonl

FRACTION = st.floats(0, 1, allow_nan=False)
LOSSES = st.lists(st.floats(0, 20, allow_nan=False), min_size=1, max_size=20)
SMALL = {"train_docs": 1, "validation_docs": 1, "nonmember_docs": 1, "background_docs": 1, "gk_countries": 7,
         "gk_test_per_subject": 2}
VALID = generate(SMALL, 0)


def twelve(values):
    it = iter(values)
    return {s: {t: {k: next(it) for k in ("sc", "qa")} for t in ("Task1", "Task2", "Task3")}
            for s in ("forget", "retain")}


@given(st.text(max_size=80), st.text(max_size=80))
def test_rouge_l_recall_is_a_fraction_and_one_on_itself(reference, prediction):
    assert 0.0 <= rouge_l_recall(reference, prediction) <= 1.0
    assert rouge_l_recall(reference, reference) in (0.0, 1.0)  # 0 only when the reference has no word at all


@given(st.text(max_size=40), st.text(max_size=40))
def test_exact_match_ignores_surrounding_space_only(reference, prediction):
    assert exact_match(reference, f"  {reference}\n") == 1.0
    assert exact_match(reference, prediction) == exact_match(prediction, reference) in (0.0, 1.0)


@given(FRACTION)
def test_mia_score_is_symmetric_around_chance(auc):
    assert 0.0 <= mia_score(auc) <= 1.0
    assert mia_score(auc) == pytest.approx(mia_score(1 - auc))
    assert mia_score(auc) <= mia_score(0.5) == 1.0


@given(LOSSES, LOSSES)
def test_swapping_members_and_non_members_mirrors_the_auc(members, nonmembers):
    auc = mia_auc(members, nonmembers)
    assert 0.0 <= auc <= 1.0
    assert mia_auc(nonmembers, members) == pytest.approx(1 - auc)
    assert mia_score(mia_auc(nonmembers, members)) == pytest.approx(mia_score(auc))


@given(st.lists(FRACTION, min_size=12, max_size=12))
def test_task_aggregate_is_a_harmonic_mean_bounded_by_its_parts(values):
    scores = twelve(values)
    inverted = [1 - v for v in values[:6]] + values[6:]
    aggregate = task_aggregate(scores)
    assert 0.0 <= aggregate <= 1.0
    if min(inverted) == 0:
        assert aggregate == 0.0
    else:
        assert min(inverted) - 1e-12 <= aggregate <= statistics.fmean(inverted) + 1e-12


@given(st.lists(FRACTION, min_size=12, max_size=12), st.integers(0, 11))
def test_one_fully_remembered_forget_or_lost_retain_cell_zeroes_the_aggregate(values, cell):
    values[cell] = 1.0 if cell < 6 else 0.0
    assert task_aggregate(twelve(values)) == 0.0


@given(FRACTION, FRACTION, FRACTION)
def test_final_score_is_the_mean_of_three_fractions(aggregate, mia, mmlu):
    assert final_score(aggregate, mia, mmlu) == pytest.approx((aggregate + mia + mmlu) / 3)
    assert 0.0 <= final_score(aggregate, mia, mmlu) <= 1.0


CELL = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=12),
                 st.sampled_from(["Task1", "Task4", "forget", "retain", "123qa0", "x", "sc1"]))
ROW = st.dictionaries(st.sampled_from(["id", "input", "output", "task", "split", "extra"]), CELL, max_size=6)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=150)
@given(st.sampled_from(SEMEVAL_KEYS), st.integers(0, 5), ROW)
def test_check_dataset_refuses_malformed_rows_by_file_and_row(key, index, row):
    data = {k: list(v) for k, v in VALID.items()}
    index = min(index, len(data[key]) - 1)
    data[key][index] = row
    try:
        check_dataset(data)
    except PipelineError as err:
        assert str(err).startswith(PREPARED_FILES[key]) or "forget set" in str(err), err
        return
    # accepted: then the random row really is a valid one
    assert all(isinstance(row.get(c), str) and row[c] for c in ("id", "input", "output", "task", "split"))


def checked_jsonl(path):
    rows = read_jsonl(path)
    assert all(isinstance(row, dict) for row in rows)


def checked_hendrycks_csv(path):
    rows = _hendrycks_csv(path)
    assert all(row["answer"] in "ABCD" and row["subject"] == "anatomy" for row in rows)


@pytest.mark.parametrize("name, load", [("rows.jsonl", checked_jsonl), ("anatomy_test.csv", checked_hendrycks_csv)])
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=100)
@given(blob=st.binary(max_size=200))
def test_file_readers_return_good_rows_or_one_error_naming_the_file(tmp_path, name, load, blob):
    path = tmp_path / name
    path.write_bytes(blob)
    try:
        load(path)
    except PipelineError as err:
        assert str(err).startswith(str(path)), err
