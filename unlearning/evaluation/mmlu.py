"""MMLU-format multiple-choice accuracy, scored as Open-Instruct does (answer-letter logits after "Answer:").

`mmlu.source`: `builtin` (the synthetic default's general-knowledge set, from data/prepared/mmlu), a local
directory in the original Hendrycks layout (dev/<subject>_dev.csv, test/<subject>_test.csv; no header: question,
A, B, C, D, answer), or a Hugging Face id with the `cais/mmlu` schema. `mmlu.subjects` and `mmlu.limit`
(questions per subject) run a subset.
"""
from collections import defaultdict
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from ..errors import PipelineError
from ..files import atomic_output, read_jsonl, write_json

CHOICES = ("A", "B", "C", "D")
CSV_COLUMNS = ["question", *CHOICES, "answer"]
BUILTIN = "builtin general-knowledge set (synthetic, MMLU format)"


def _hendrycks_csv(path: Path) -> list[dict]:
    try:
        frame = pd.read_csv(path, header=None, names=CSV_COLUMNS, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise PipelineError(f"{path}: not a Hendrycks MMLU CSV ({str(err).splitlines()[0]})") from None
    subject = path.name.rsplit("_", 1)[0]
    return check_mmlu_rows([{"subject": subject, **row} for row in frame.to_dict("records")], path)


def check_mmlu_rows(rows: list[dict], where) -> list[dict]:
    """Every row has a subject, a question, four options and an answer letter; errors name the row and column."""
    for n, row in enumerate(rows, 1):
        for column in ("subject", "question", *CHOICES):
            if not isinstance(row.get(column), str):
                raise PipelineError(f"{where} row {n}: column `{column}` is missing or not text")
        if row.get("answer") not in CHOICES:
            raise PipelineError(f"{where} row {n}: column `answer` is {row.get('answer')!r}; expected one of "
                                "A, B, C, D")
    return rows


def _local_mmlu(directory: Path) -> tuple[list[dict], list[dict]]:
    splits = {}
    for split in ("dev", "test"):
        files = sorted((directory / split).glob(f"*_{split}.csv"))
        if not files:
            raise PipelineError(f"{directory / split}: no <subject>_{split}.csv files; mmlu.source must be a "
                                "directory in the Hendrycks layout (dev/, test/)")
        splits[split] = [row for path in files for row in _hendrycks_csv(path)]
    return splits["dev"], splits["test"]


def _hub_mmlu(name: str) -> tuple[list[dict], list[dict]]:
    """A hub dataset with the cais/mmlu schema: question, subject, choices (4), answer (0-3)."""
    import datasets  # only this route needs it, and it adds a second to every stage's start

    def rows(split):
        try:
            dataset = datasets.load_dataset(name, "all", split=split)
        except (OSError, ValueError, FileNotFoundError) as err:
            raise PipelineError(f"mmlu.source {name}: cannot load split {split} ({str(err).splitlines()[0]})") from None
        out = []
        for n, r in enumerate(dataset, 1):
            if len(r["choices"]) != len(CHOICES) or r["answer"] not in range(len(CHOICES)):
                raise PipelineError(f"mmlu.source {name} {split} row {n}: expected 4 `choices` and an `answer` "
                                    f"index 0-3, got {len(r['choices'])} and {r['answer']!r}")
            out.append({"subject": r["subject"], "question": r["question"], **dict(zip(CHOICES, r["choices"])),
                        "answer": CHOICES[r["answer"]]})
        return check_mmlu_rows(out, f"mmlu.source {name} {split}")
    return rows("dev"), rows("test")


def load_mmlu(source: str, subjects, limit: int | None, prepared) -> tuple[list[dict], list[dict], str]:
    """(dev rows, test rows, a description of the source) for `subjects` (all or a list) and `limit` questions per
    subject; the builtin set is read from the prepared directory."""
    if source == "builtin":
        if not (Path(prepared) / "mmlu" / "test.jsonl").is_file():
            raise PipelineError(f"mmlu.source builtin is the synthetic general-knowledge set, and {prepared} has none "
                                "(the data source is not synthetic); set mmlu.source to a Hendrycks directory "
                                "(e.g. ../shared/data/mmlu) or cais/mmlu")
        paths = [Path(prepared) / "mmlu" / f"{split}.jsonl" for split in ("dev", "test")]
        (dev, test), description = [check_mmlu_rows(read_jsonl(path), path) for path in paths], BUILTIN
    elif Path(source).is_dir():
        (dev, test), description = _local_mmlu(Path(source)), f"MMLU (Hendrycks CSV, {source})"
    else:
        (dev, test), description = _hub_mmlu(source), f"MMLU ({source})"
    if subjects != "all":
        unknown = sorted(set(subjects) - {row["subject"] for row in test})
        if unknown:
            raise PipelineError(f"params.yaml: `mmlu.subjects` names {unknown}, not in {source}; "
                                "use all or subjects such as anatomy, astronomy")
        dev = [row for row in dev if row["subject"] in subjects]
        test = [row for row in test if row["subject"] in subjects]
    if limit is not None:
        by_subject = defaultdict(list)
        for row in test:
            by_subject[row["subject"]].append(row)
        test = [row for rows in by_subject.values() for row in rows[:limit]]
    return dev, test, description


def format_subject(subject: str) -> str:
    return subject.replace("_", " ")


def format_example(row: dict, include_answer: bool = True) -> str:
    prompt = row["question"] + "".join(f"\n{c}. {row[c]}" for c in CHOICES) + "\nAnswer:"
    if include_answer:
        prompt += f" {row['answer']}\n\n"
    return prompt


def build_prompt(dev_rows: list[dict], row: dict, k: int, tokenizer=None, max_tokens: int | None = None) -> str:
    """k-shot prompt from the dev examples of the row's subject; with a tokenizer, shots are dropped to fit max_tokens."""
    header = f"The following are multiple choice questions (with answers) about {format_subject(row['subject'])}.\n\n"
    shots = [format_example(d) for d in dev_rows if d["subject"] == row["subject"]][:k]
    question = format_example(row, include_answer=False)
    while True:
        prompt = header + "".join(shots) + question
        if tokenizer is None or max_tokens is None or len(tokenizer.encode(prompt, add_special_tokens=False)) <= max_tokens:
            return prompt
        if not shots:
            raise PipelineError(f"MMLU question {row['question'][:60]!r}... does not fit in {max_tokens} tokens "
                                "even with no examples")
        shots.pop()


def answer_token_ids(tokenizer) -> list[int]:
    """Token id of each letter as it follows "Answer:" -- with a leading space, last token of the encoding."""
    ids = [tokenizer.encode(" " + c, add_special_tokens=False)[-1] for c in CHOICES]
    if len(set(ids)) != len(CHOICES):
        raise PipelineError(f"the tokenizer maps the answer letters {CHOICES} to non-distinct tokens {ids}")
    return ids


@torch.inference_mode()
def mmlu_accuracy(model, tokenizer, dev_rows: list[dict], test_rows: list[dict], k: int, batch_size: int) -> dict:
    if not test_rows:
        raise PipelineError("no MMLU test questions; rerun `python -m stages.prepare`")
    max_tokens = model.config.max_position_embeddings
    prompt_ids = [tokenizer.encode(build_prompt(dev_rows, row, k, tokenizer, max_tokens), add_special_tokens=False)
                  for row in test_rows]
    letter_ids = torch.tensor(answer_token_ids(tokenizer), device=model.device)
    saved_side = tokenizer.padding_side
    tokenizer.padding_side = "right"  # the prediction is read at each prompt's last real token
    predictions = []
    try:
        for start in tqdm(range(0, len(prompt_ids), batch_size), desc="mmlu", unit="batch"):
            batch = tokenizer.pad({"input_ids": prompt_ids[start:start + batch_size]}, return_tensors="pt")
            input_ids = batch["input_ids"].to(model.device)
            attention_mask = batch["attention_mask"].to(model.device)
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
            last_position = attention_mask.sum(1) - 1
            next_token_logits = logits[torch.arange(len(input_ids), device=model.device), last_position]
            predictions.extend(next_token_logits[:, letter_ids].argmax(1).tolist())
    finally:
        tokenizer.padding_side = saved_side
    correct_by_subject = defaultdict(list)
    for row, choice in zip(test_rows, predictions):
        correct_by_subject[row["subject"]].append(CHOICES[choice] == row["answer"])
    correct = [c for subject in correct_by_subject.values() for c in subject]
    return {"accuracy": sum(correct) / len(correct),
            "per_subject": {s: sum(c) / len(c) for s, c in sorted(correct_by_subject.items())},
            "n": len(correct)}


def load_inputs(prepared, source: str, subjects, limit: int | None) -> dict:
    """The dev and test questions of `mmlu.source`, read and checked before any model loads."""
    dev_rows, test_rows, description = load_mmlu(source, subjects, limit, prepared)
    return {"dev": dev_rows, "test": test_rows, "source": description}


def run(model, tokenizer, inputs: dict, k: int, batch_size: int) -> dict:
    result = mmlu_accuracy(model, tokenizer, inputs["dev"], inputs["test"], k, batch_size)
    return {"source": inputs["source"], "k": k, **result}


def write(out, result: dict, name: str) -> None:
    """mmlu.json (accuracy, per subject, the source and k) in the directory `out`."""
    with atomic_output(out) as out_dir:
        out_dir.mkdir()
        write_json(out_dir / "mmlu.json", result)
    print(f"{name}: MMLU-format accuracy {result['accuracy']:.4f} over {result['n']} questions")
