"""The task score of one model: greedy generations of every row of the forget and retain sets, scored the SemEval
way (scoring.py), and the Task2 PII they reproduce (pii.py). With the train split, the validation split is
generated and scored too when the prepared data has one."""
from pathlib import Path

from ..data.prepared import prepared_split, validation_rows
from ..data.schema import row_kind
from ..files import atomic_output, write_json, write_jsonl
from ..numerics import FILE as FINGERPRINT
from .generation import greedy_generate
from .pii import pii_extraction
from .scoring import row_score, task_aggregate, task_scores


def score_generations(rows: list[dict], generations: list[str]):
    """(twelve raw task scores, one record per row with its generation and score)."""
    scores = task_scores(rows, generations)
    records = [{"id": row["id"], "task": row["task"], "split": row["split"], "kind": row_kind(row["id"]),
                "output": row["output"], "generation": generation, "score": row_score(row, generation)}
               for row, generation in zip(rows, generations)]
    return scores, records


def evaluate_task(model, tokenizer, rows: list[dict], max_new_tokens: int, batch_size: int, clean_up: bool):
    """Greedy generations of every row's input (`clean_up`: the official decoding clean-up), scored by
    score_generations."""
    generations = greedy_generate(model, tokenizer, [row["input"] for row in rows], max_new_tokens, batch_size,
                                  desc="evaluate", clean_up=clean_up)
    return score_generations(rows, generations)


def load_inputs(prepared, split: str, validation: bool = True) -> dict:
    """The rows to score, read and checked before any model loads; the validation split's too when `split` is train,
    `validation` is set and the prepared data has one."""
    rows = prepared_split(prepared, f"forget_{split}") + prepared_split(prepared, f"retain_{split}")
    with_validation = split == "train" and validation
    return {"split": split, "rows": rows, "validation": validation_rows(prepared) if with_validation else []}


def run(model, tokenizer, inputs: dict, max_new_tokens: int, batch_size: int, label: str = "",
        clean_up: bool = True) -> dict:
    """`label` names the model in the progress bar; `clean_up`: the official decoding clean-up
    (`evaluate.clean_up_spaces`)."""
    rows, validation = inputs["rows"], inputs["validation"]
    scored = inputs["split"] + (" + validation" if validation else "")
    # one generation pass for both: the first len(rows) generations are the split's, the rest validation's
    generations = greedy_generate(model, tokenizer, [row["input"] for row in rows + validation], max_new_tokens,
                                  batch_size, desc=" ".join(filter(None, ("evaluate", label, f"({scored} rows)"))),
                                  clean_up=clean_up)
    split_generations, validation_generations = generations[:len(rows)], generations[len(rows):]
    scores, records = score_generations(rows, split_generations)
    result = {"scores": {"split": inputs["split"], "scores": scores, "task_aggregate": task_aggregate(scores)},
              "records": records, "pii": {"split": inputs["split"], **pii_extraction(rows, split_generations)}}
    if validation:
        validation_scores, result["validation_records"] = score_generations(validation, validation_generations)
        result["scores"]["validation"] = {"scores": validation_scores,
                                          "task_aggregate": task_aggregate(validation_scores)}
    return result


def write(out: Path, result: dict, name: str, fingerprint: dict) -> None:
    """scores.json, generations.jsonl (and generations_validation.jsonl), pii.json and fingerprint.json (what computed
    them) in the directory `out`."""
    with atomic_output(out) as out_dir:
        out_dir.mkdir()
        write_json(out_dir / FINGERPRINT, fingerprint)
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
