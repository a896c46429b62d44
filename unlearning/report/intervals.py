"""Bootstrap intervals of one model's scores: the twelve task cells, the task aggregate, the MIA AUC and score, general
knowledge (the MMLU-format accuracy), the final score, and the members' and non-members' mean NLL.

Every score is a mean over few documents, so each gets a percentile bootstrap interval (scipy.stats.bootstrap) over
documents. These samples are resampled independently, each keeping its size:

- the documents of each (set, task) stratum, each drawn document with all of its rows (its sc and qa rows);
- the MIA members, and the MIA non-members;
- the general-knowledge test questions (mmlu/questions.jsonl; an evaluation without that file gets no interval for
  general knowledge, and so none for the final score).

Without MIA data (mia.json `"available": false`) the MIA scores, the members' and non-members' NLL and the final
score have no interval, as they have no value.

Each resample is scored as the official evaluation scores the data: a cell is the mean of its rows' scores, then
scoring.py's task_aggregate, mia_score and final_score. The loss attack's AUC of a resample is computed in the
Mann-Whitney form of scoring.mia_auc, from how often each member and non-member is drawn: the same number (the tests
check it against mia_auc), without a scikit-learn call per resample (about a millisecond each, seconds per report).
A sample of one document cannot vary and stays as it is (its interval is the point). The seed is fixed, so the
same evaluation gives the same intervals, byte for byte.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from ..data.schema import KINDS, SETS, TASKS, document_id
from ..errors import PipelineError
from ..evaluation.scoring import final_score, mia_score, task_aggregate
from ..files import read_jsonl

SEED = 0
CELLS = [(split, task, kind) for split in SETS for task in TASKS for kind in KINDS]
# the scalar scores with an interval, after the twelve cells, in the order the statistic returns them
SCALARS = ("task_aggregate", "mia_auc", "mia_score", "mmlu", "final", "member_mean_loss", "nonmember_mean_loss")


@dataclass
class Samples:
    """One model's evaluation, per document: what a resample draws."""
    strata: list  # per stratum, (row-score sums, row counts): (documents, 12 cells) each
    member_losses: np.ndarray  # the mean NLL of each member document
    nonmember_losses: np.ndarray
    questions: np.ndarray | None  # 1.0 or 0.0 per general-knowledge test question; None without questions.jsonl

    def sizes(self) -> list[int]:
        return ([len(sums) for sums, _ in self.strata] + [len(self.member_losses), len(self.nonmember_losses)]
                + ([] if self.questions is None else [len(self.questions)]))


def task_strata(rows: list[dict]) -> list:
    """The documents of each (set, task) stratum: per document, the sum and the count of its row scores in each of
    the twelve cells. Where some document of a stratum has no row of one kind, each kind is a stratum of its own, so
    that no resample draws a cell without rows."""
    documents = {}  # (set, task) -> document id -> (sums, counts)
    for row in rows:
        key = (row["split"], row["task"], row["kind"])
        if key not in CELLS:
            raise PipelineError(f"task/generations.jsonl: row {row['id']!r} is {' '.join(map(str, key))}, not one of "
                                "the twelve cells")
        sums, counts = documents.setdefault(key[:2], {}).setdefault(
            document_id(row["id"]), (np.zeros(len(CELLS)), np.zeros(len(CELLS))))
        sums[CELLS.index(key)] += row["score"]
        counts[CELLS.index(key)] += 1
    strata = []
    for by_document in documents.values():
        sums = np.array([s for s, _ in by_document.values()])
        counts = np.array([c for _, c in by_document.values()])
        cells = np.flatnonzero(counts.sum(0))
        if (counts[:, cells] > 0).all():
            strata.append((sums, counts))
            continue
        for cell in cells:
            has_rows, only_this_cell = counts[:, cell] > 0, np.eye(len(CELLS))[cell]
            strata.append((sums[has_rows] * only_this_cell, counts[has_rows] * only_this_cell))
    missing = [" ".join(cell) for i, cell in enumerate(CELLS) if not any(rows[:, i].any() for _, rows in strata)]
    if missing:
        raise PipelineError(f"task/generations.jsonl: no rows of {', '.join(missing)}; every cell needs one")
    return strata


def load_samples(eval_dir: Path) -> Samples:
    """The per-document numbers of the evaluation in `eval_dir` (reports/eval/<run>)."""
    losses = read_jsonl(eval_dir / "mia" / "losses.jsonl")
    questions = eval_dir / "mmlu" / "questions.jsonl"
    return Samples(
        strata=task_strata(read_jsonl(eval_dir / "task" / "generations.jsonl")),
        member_losses=np.array([row["loss"] for row in losses if row["member"] == 1], dtype=float),
        nonmember_losses=np.array([row["loss"] for row in losses if row["member"] == 0], dtype=float),
        questions=(np.array([row["correct"] for row in read_jsonl(questions)], dtype=float)
                   if questions.is_file() else None))


def as_scores(cells: list[float]) -> dict:
    """The twelve cells in scores.json's shape, {set: {task: {kind: value}}}."""
    values = dict(zip(CELLS, cells))
    return {split: {task: {kind: values[split, task, kind] for kind in KINDS} for task in TASKS} for split in SETS}


def resampled_scores(samples: Samples, draws: list[np.ndarray]) -> np.ndarray:
    """Every score of each resample, from how often it draws each document of each sample (`draws`, in the order of
    Samples.sizes, each (resamples, size), or (1, size) for a sample that stays as it is): (12 + len(SCALARS),
    resamples)."""
    strata = len(samples.strata)
    strata_draws, (member_draws, nonmember_draws), question_draws = (draws[:strata], draws[strata:strata + 2],
                                                                     draws[strata + 2:])
    sums = sum(drawn @ sums for drawn, (sums, _) in zip(strata_draws, samples.strata))
    counts = sum(drawn @ counts for drawn, (_, counts) in zip(strata_draws, samples.strata))
    cells = sums / counts
    aggregate = np.array([task_aggregate(as_scores(values)) for values in cells.tolist()])
    # scoring.mia_auc: P(a member's loss < a non-member's) + P(equal) / 2, over every drawn pair
    wins = ((samples.member_losses[:, None] < samples.nonmember_losses[None, :])
            + 0.5 * (samples.member_losses[:, None] == samples.nonmember_losses[None, :]))
    mia_pairs = len(samples.member_losses) * len(samples.nonmember_losses)
    # no MIA data: placeholders, never reported (model_intervals), as general knowledge's below
    auc = ((member_draws @ wins) * nonmember_draws).sum(-1) / mia_pairs if mia_pairs else np.zeros(1)
    # without per-question results general knowledge has no interval (load_samples): a placeholder, never reported
    general = (question_draws[0] @ samples.questions / len(samples.questions) if question_draws
               else np.zeros(1))
    scalars = {"task_aggregate": aggregate, "mia_auc": auc, "mia_score": mia_score(auc), "mmlu": general,
               "final": final_score(aggregate, mia_score(auc), general),
               "member_mean_loss": (member_draws @ samples.member_losses / len(samples.member_losses)
                                    if mia_pairs else auc),
               "nonmember_mean_loss": (nonmember_draws @ samples.nonmember_losses / len(samples.nonmember_losses)
                                       if mia_pairs else auc)}
    return np.stack(np.broadcast_arrays(*cells.T, *(scalars[name] for name in SCALARS)))


def draw_counts(drawn: np.ndarray, size: int) -> np.ndarray:
    """How often each of `size` items is drawn: (resamples, size), from the drawn indices (resamples, size)."""
    drawn = np.atleast_2d(drawn)
    offsets = np.arange(len(drawn))[:, None] * size
    return np.bincount((drawn + offsets).ravel(), minlength=drawn.size).reshape(len(drawn), size)


def bootstrap(sizes: list[int], statistic, resamples: int, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The report's one bootstrap: scipy.stats.bootstrap's percentile interval, every sample of more than one item
    resampled independently, seeded with SEED (the same sizes give the same draws, so two statistics bootstrapped
    apart are paired). `statistic(counts)` gets, per sample, how often each of its items is drawn ((resamples, size);
    (1, size) ones for a sample of one item, which cannot vary) and returns its k scores, (k, resamples). Returns
    their (low, high), (2, k), and their values over the resamples, (k, resamples)."""
    varying = [size for size in sizes if size > 1]

    def counted(*drawn, axis=-1):
        drawn = iter(drawn)
        return statistic([draw_counts(next(drawn), size) if size > 1 else np.ones((1, size)) for size in sizes])

    if not varying:  # nothing can vary: every interval is its point
        point = counted()
        return np.stack([point[:, 0], point[:, 0]]), point
    result = stats.bootstrap([np.arange(size) for size in varying], counted, n_resamples=resamples,
                             confidence_level=confidence, method="percentile", vectorized=True,
                             rng=np.random.default_rng(SEED))
    return (np.stack([result.confidence_interval.low, result.confidence_interval.high]),
            result.bootstrap_distribution)


def model_intervals(eval_dir: Path, resamples: int, confidence: float) -> dict:
    """[low, high] of every score of one model's evaluation, keyed as in its summary: "final", "task_aggregate",
    "mia_auc", "mia_score", "mmlu" (null, as "final", without per-question results), "member_mean_loss",
    "nonmember_mean_loss" and "scores" ({set: {task: {kind: [low, high]}}})."""
    samples = load_samples(Path(eval_dir))
    bounds = bootstrap(samples.sizes(), lambda counts: resampled_scores(samples, counts), resamples,
                       confidence)[0].T.tolist()
    intervals = dict(zip(SCALARS, bounds[len(CELLS):]))
    if samples.questions is None:
        intervals["mmlu"] = intervals["final"] = None
    if not len(samples.member_losses):
        for name in ("mia_auc", "mia_score", "final", "member_mean_loss", "nonmember_mean_loss"):
            intervals[name] = None
    return {**intervals, "scores": as_scores(bounds[:len(CELLS)])}
