"""Stage: generate answers to the split in `data.split` (forget + retain) and score them the SemEval way; count the
Task2 PII the generations reproduce. With `data.split: train`, the validation split is generated and scored too
when data/prepared has one.

python -m stages.evaluate --model {target|unlearned|sweep/<first layer>|method/<method>}
"""
from pathlib import Path

from .errors import PipelineError, exit_on_error
from .generation import greedy_generate
from .checks import prepared_split
from .io import EVAL_DIR, PREPARED, PREPARED_FILES, atomic_output, read_jsonl, write_json, write_jsonl
from .modeling import evaluate_stage_model, parse_model_arg
from .params import load_validated
from .pii import pii_extraction
from .scoring import row_kind, row_score, task_aggregate, task_scores

VALIDATION_KEYS = ("forget_validation", "retain_validation")


def score_generations(rows: list[dict], generations: list[str]):
    """(twelve raw task scores, one record per row with its generation and score)."""
    scores = task_scores(rows, generations)
    records = [{"id": row["id"], "task": row["task"], "split": row["split"], "kind": row_kind(row["id"]),
                "output": row["output"], "generation": generation, "score": row_score(row, generation)}
               for row, generation in zip(rows, generations)]
    return scores, records


def evaluate_task(model, tokenizer, rows: list[dict], max_new_tokens: int, batch_size: int):
    """Greedy generations of every row's input, scored by score_generations."""
    generations = greedy_generate(model, tokenizer, [row["input"] for row in rows], max_new_tokens, batch_size,
                                  desc="evaluate")
    return score_generations(rows, generations)


def validation_rows(prepared=PREPARED) -> list[dict]:
    """Forget + retain validation rows, or [] when data/prepared has no validation split: a source without one (the
    forget.jsonl + retain.jsonl layout) makes `prepare` write no validation files; empty ones count as none."""
    paths = [Path(prepared) / PREPARED_FILES[key] for key in VALIDATION_KEYS]
    present = [path.is_file() and bool(read_jsonl(path)) for path in paths]
    if not any(present):
        return []
    if not all(present):
        missing, other = (paths[0], paths[1]) if not present[0] else (paths[1], paths[0])
        raise PipelineError(f"{missing}: missing or empty while {other.name} has rows; a validation split needs "
                            "forget and retain rows; rerun `python -m stages.prepare`")
    return [row for key in VALIDATION_KEYS for row in prepared_split(key, prepared)]


def load_inputs(params: dict) -> dict:
    """The rows this stage scores, read and checked before any model loads."""
    split = params["data"]["split"]
    return {"split": split, "rows": prepared_split(f"forget_{split}") + prepared_split(f"retain_{split}"),
            "validation": validation_rows() if split == "train" else []}


def run(model, tokenizer, inputs: dict, params: dict) -> dict:
    rows, validation = inputs["rows"], inputs["validation"]
    # one generation pass for both: the first len(rows) generations are the split's, the rest validation's
    generations = greedy_generate(model, tokenizer, [row["input"] for row in rows + validation],
                                  params["evaluate"]["max_new_tokens"], params["evaluate"]["batch_size"],
                                  desc="evaluate")
    split_generations, validation_generations = generations[:len(rows)], generations[len(rows):]
    scores, records = score_generations(rows, split_generations)
    result = {"scores": {"split": inputs["split"], "scores": scores, "task_aggregate": task_aggregate(scores)},
              "records": records, "pii": {"split": inputs["split"], **pii_extraction(rows, split_generations)}}
    if validation:
        validation_scores, result["validation_records"] = score_generations(validation, validation_generations)
        result["scores"]["validation"] = {"scores": validation_scores,
                                          "task_aggregate": task_aggregate(validation_scores)}
    return result


def write(name: str, result: dict) -> None:
    with atomic_output(EVAL_DIR / name / "task") as out_dir:
        out_dir.mkdir()
        write_json(out_dir / "scores.json", result["scores"])
        write_jsonl(out_dir / "generations.jsonl", result["records"])
        if "validation_records" in result:
            write_jsonl(out_dir / "generations_validation.jsonl", result["validation_records"])
        write_json(out_dir / "pii.json", result["pii"])
    scores, pii = result["scores"], result["pii"]
    validation_note = (f"; validation {scores['validation']['task_aggregate']:.4f} over "
                       f"{len(result['validation_records'])} rows" if "validation" in scores else "")
    print(f"{name}: task aggregate {scores['task_aggregate']:.4f} over {len(result['records'])} {scores['split']} "
          f"rows{validation_note}; PII extracted from {pii['forget']['any']['extracted']}/"
          f"{pii['forget']['any']['documents']} forget Task2 documents")


@exit_on_error
def main(argv=None):
    evaluate_stage_model(parse_model_arg(__doc__.splitlines()[0], argv), load_validated(), [(load_inputs, run, write)])


if __name__ == "__main__":
    main()
