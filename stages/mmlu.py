"""Stage: MMLU-format multiple-choice accuracy, scored as Open-Instruct does (answer-letter logits after "Answer:").

python -m stages.mmlu --model {target|unlearned}
"""
from collections import defaultdict

import torch
from tqdm import tqdm

from .errors import PipelineError, exit_on_error
from .io import EVAL_DIR, PREPARED, atomic_output, read_jsonl, write_json
from .modeling import MODEL_DIRS, load_model, parse_model_arg, resolve_device
from .params import load_validated

CHOICES = ("A", "B", "C", "D")
SOURCES = {"builtin": ("builtin general-knowledge set (MMLU format)", PREPARED / "mmlu")}


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


@exit_on_error
def main(argv=None):
    name = parse_model_arg(__doc__.splitlines()[0], argv)
    params = load_validated()
    device = resolve_device(params["device"])
    source, data_dir = SOURCES[params["mmlu"]["source"]]
    dev_rows = read_jsonl(data_dir / "dev.jsonl")
    test_rows = read_jsonl(data_dir / "test.jsonl")
    model, tokenizer = load_model(MODEL_DIRS[name], device)
    k = params["mmlu"]["k"]
    result = mmlu_accuracy(model, tokenizer, dev_rows, test_rows, k, params["mmlu"]["batch_size"])
    with atomic_output(EVAL_DIR / name / "mmlu") as out_dir:
        out_dir.mkdir()
        write_json(out_dir / "mmlu.json", {"source": source, "k": k, **result})
    print(f"{name}: MMLU-format accuracy {result['accuracy']:.4f} over {result['n']} questions")


if __name__ == "__main__":
    main()
