"""Stage: generate answers to the split in `data.split` (forget + retain) and score them the SemEval way.

python -m stages.evaluate --model {target|unlearned}
"""

from .errors import exit_on_error
from .generation import greedy_generate
from .checks import prepared_split
from .io import EVAL_DIR, atomic_output, write_json, write_jsonl
from .modeling import load_stage_model, parse_model_arg
from .params import load_validated
from .scoring import row_kind, row_score, task_aggregate, task_scores



def evaluate_task(model, tokenizer, rows: list[dict], max_new_tokens: int, batch_size: int):
    """(twelve raw task scores, one record per row with its generation and score)."""
    generations = greedy_generate(model, tokenizer, [row["input"] for row in rows], max_new_tokens, batch_size,
                                  desc="evaluate")
    scores = task_scores(rows, generations)
    records = [{"id": row["id"], "task": row["task"], "split": row["split"], "kind": row_kind(row["id"]),
                "output": row["output"], "generation": generation, "score": row_score(row, generation)}
               for row, generation in zip(rows, generations)]
    return scores, records


@exit_on_error
def main(argv=None):
    name = parse_model_arg(__doc__.splitlines()[0], argv)
    params = load_validated()
    split = params["data"]["split"]
    rows = prepared_split(f"forget_{split}") + prepared_split(f"retain_{split}")
    model, tokenizer = load_stage_model(name, params)
    scores, records = evaluate_task(model, tokenizer, rows, params["evaluate"]["max_new_tokens"],
                                    params["evaluate"]["batch_size"])
    aggregate = task_aggregate(scores)
    with atomic_output(EVAL_DIR / name / "task") as out_dir:
        out_dir.mkdir()
        write_json(out_dir / "scores.json", {"split": split, "scores": scores, "task_aggregate": aggregate})
        write_jsonl(out_dir / "generations.jsonl", records)
    print(f"{name}: task aggregate {aggregate:.4f} over {len(rows)} {split} rows")


if __name__ == "__main__":
    main()
