"""MMLU-format multiple-choice accuracy, in one of two formats (`mmlu.format`):

- `mc`, the letter format of Open-Instruct and the official SemEval evaluation: the k dev examples of the subject
  with their options and answer letters, then the question ending "Answer:"; the prediction is the letter A-D
  whose token has the highest next-token logit.
- `rc`, ranked classification (the cloze formulation, "CF") of OLMES (Gu et al. 2024, "OLMES: A Standard for
  Language Model Evaluations", arXiv 2406.08446; its code, allenai/olmes, oe_eval/tasks/oe_eval_tasks/mmlu.py:
  the MMLU RC task's prompt from `make_cloze_prompt` and its primary metric `acc_per_char`). Each option's text is
  scored as the continuation of the prompt: the sum of its tokens' log-probabilities divided by its length in
  characters (the continuation " " + option, leading space included), and the prediction is the option with the
  highest score. The prompt of a real MMLU row is OLMES's: the instruction line "The following are multiple
  choice questions (with answers) about <subject>.", blank line, then the k dev examples as
  "Question: <question>\\nAnswer: <correct option>" separated by blank lines, then "Question: <question>\\nAnswer:".
  A row with `"cloze": true` (the builtin set) is a statement stem in the wording the model was trained on: its
  prompt is the stem alone (zero-shot, whatever `mmlu.k`).
- `auto` (the default): rc for `mmlu.source: builtin`, mc for real MMLU.

`mmlu.source`: `builtin` (the synthetic default's general-knowledge set, from data/prepared/mmlu), a local
directory in the original Hendrycks layout (dev/<subject>_dev.csv, test/<subject>_test.csv; no header: question,
A, B, C, D, answer), or a Hugging Face id with the `cais/mmlu` schema. `mmlu.subjects` and `mmlu.limit`
(questions per subject) run a subset. In both formats dev examples are dropped from the end of a prompt until the
prompt (and, in rc, its longest continuation) fits the model's context.
"""
from collections import defaultdict
from pathlib import Path

import pandas as pd
import torch

from ..errors import PipelineError
from ..files import atomic_output, read_jsonl, write_json, write_jsonl
from ..numerics import FILE as FINGERPRINT
from ..progress import progress
from .generation import cache_arguments, cached_keys_values, full_attention_only

CHOICES = ("A", "B", "C", "D")
CSV_COLUMNS = ["question", *CHOICES, "answer"]
BUILTIN = "builtin general-knowledge set (synthetic, MMLU format)"
FORMATS = ("mc", "rc")  # what mmlu_accuracy scores; `auto` resolves to one of them per source
# near_ties' margin, in units in the last place of the model's dtype at the letters' logit scale. Measured between the
# cached and whole-prompt passes at the OLMo-1B shape (benchmarks/README.md, "MMLU's shared prefix"): at most 30.4 ulps
# in float32 and 4.4 in bfloat16, as large as the whole-prompt pass's own change from batch 8 to batch 1 (31.8, 4.6).
# A 16-bit model's logits are rounded to 16 bits, so its differences are fewer of its (coarser) ulps.
RESCORE_ULPS = {torch.float64: 256, torch.float32: 256, torch.bfloat16: 16, torch.float16: 16}


def _hendrycks_csv(path: Path) -> list[dict]:
    try:
        frame = pd.read_csv(path, header=None, names=CSV_COLUMNS, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise PipelineError(f"{path}: not a Hendrycks MMLU CSV ({str(err).splitlines()[0]})") from None
    subject = path.name.rsplit("_", 1)[0]
    return check_mmlu_rows([{"subject": subject, **row} for row in frame.to_dict("records")], path)


def check_mmlu_rows(rows: list[dict], where) -> list[dict]:
    """Every row has a subject, a question, four options and an answer letter, and optionally a boolean `cloze`;
    errors name the row and column."""
    for n, row in enumerate(rows, 1):
        for column in ("subject", "question", *CHOICES):
            if not isinstance(row.get(column), str):
                raise PipelineError(f"{where} row {n}: column `{column}` is missing or not text")
        if row.get("answer") not in CHOICES:
            raise PipelineError(f"{where} row {n}: column `answer` is {row.get('answer')!r}; expected one of "
                                "A, B, C, D")
        if "cloze" in row and not isinstance(row["cloze"], bool):
            raise PipelineError(f"{where} row {n}: column `cloze` is {row['cloze']!r}; expected true or false "
                                "(or no such column)")
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


def resolve_format(fmt: str, source: str) -> str:
    """`mmlu.format` as scored: `auto` is rc (cloze) for the builtin set, whose questions are statements in the
    wording the model learned them in, and mc (letters, the official way) for real MMLU."""
    if fmt == "auto":
        return "rc" if source == "builtin" else "mc"
    return fmt  # mc or rc: config.py's schema has refused anything else


def format_subject(subject: str) -> str:
    return subject.replace("_", " ")


def _header(subject: str) -> str:
    return f"The following are multiple choice questions (with answers) about {format_subject(subject)}.\n\n"


def _fit(row: dict, header: str, shots: list[str], question: str, tokenizer, max_tokens: int | None) -> str:
    """header + shots + question, dropping shots from the end until it has at most max_tokens tokens."""
    while True:
        prompt = header + "".join(shots) + question
        if tokenizer is None or max_tokens is None or len(tokenizer.encode(prompt, add_special_tokens=False)) <= max_tokens:
            return prompt
        if not shots:
            raise PipelineError(f"MMLU question {row['question'][:60]!r}... does not fit in {max_tokens} tokens "
                                "even with no examples")
        shots.pop()


def format_example(row: dict, include_answer: bool = True) -> str:
    prompt = row["question"] + "".join(f"\n{c}. {row[c]}" for c in CHOICES) + "\nAnswer:"
    if include_answer:
        prompt += f" {row['answer']}\n\n"
    return prompt


def build_prompt(dev_rows: list[dict], row: dict, k: int, tokenizer=None, max_tokens: int | None = None) -> str:
    """The mc prompt: k-shot from the dev examples of the row's subject; with a tokenizer, shots are dropped to fit
    max_tokens."""
    shots = [format_example(d) for d in dev_rows if d["subject"] == row["subject"]][:k]
    return _fit(row, _header(row["subject"]), shots, format_example(row, include_answer=False), tokenizer, max_tokens)


def continuations(row: dict) -> list[str]:
    """What rc scores after the prompt: each option's text after one space, in the order A-D."""
    return [" " + row[c] for c in CHOICES]


def build_rc_prompt(dev_rows: list[dict], row: dict, k: int, tokenizer=None, max_tokens: int | None = None) -> str:
    """The rc prompt: for a `cloze` row, the stem alone, whatever k; for any other row OLMES's MMLU RC prompt, the instruction line and
    the k dev examples as "Question: …\\nAnswer: <correct option>" blocks, then "Question: <question>\\nAnswer:".
    With a tokenizer, shots are dropped to fit max_tokens."""
    if row.get("cloze"):
        # No shots: statements about other countries in a row are a context the model never saw. Measured on the
        # default target, 5 such shots brought 0.62 down to 0.22, chance (docs/scoring.md).
        return _fit(row, "", [], row["question"], tokenizer, max_tokens)
    same_subject = [d for d in dev_rows if d["subject"] == row["subject"]][:k]
    shots = [f"Question: {d['question']}\nAnswer: {d[d['answer']]}\n\n" for d in same_subject]
    return _fit(row, _header(row["subject"]), shots, f"Question: {row['question']}\nAnswer:", tokenizer, max_tokens)


def answer_token_ids(tokenizer) -> list[int]:
    """Token id of each letter as it follows "Answer:" -- with a leading space, last token of the encoding."""
    ids = [tokenizer.encode(" " + c, add_special_tokens=False)[-1] for c in CHOICES]
    if len(set(ids)) != len(CHOICES):
        raise PipelineError(f"the tokenizer maps the answer letters {CHOICES} to non-distinct tokens {ids}")
    return ids


def _full_letter_logits(model, tokenizer, prompt_ids: list[list[int]], letter_ids: torch.Tensor,
                        batch_size: int) -> torch.Tensor:
    """The letters' next-token logits after each whole prompt, in batches padded on the right."""
    saved_side = tokenizer.padding_side
    tokenizer.padding_side = "right"  # the prediction is read at each prompt's last real token
    letter_logits = []
    try:
        for start in progress(range(0, len(prompt_ids), batch_size), desc="mmlu", unit="batch"):
            batch = tokenizer.pad({"input_ids": prompt_ids[start:start + batch_size]}, return_tensors="pt")
            input_ids = batch["input_ids"].to(model.device)
            attention_mask = batch["attention_mask"].to(model.device)
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
            last_position = attention_mask.sum(1) - 1
            next_token_logits = logits[torch.arange(len(input_ids), device=model.device), last_position]
            letter_logits.append(next_token_logits[:, letter_ids].float().cpu())
    finally:
        tokenizer.padding_side = saved_side
    return torch.cat(letter_logits) if letter_logits else torch.empty(0, len(CHOICES))


def _letter_logits_after_prefix(model, prefix_ids: list[int], suffix_ids: list[list[int]], letter_ids: torch.Tensor,
                                batch_size: int, pad_id: int) -> torch.Tensor:
    """The letters' next-token logits after prefix_ids + each suffix, the prefix run once: its keys and values are
    copied into every batch's cache, and only the suffixes (left-padded, so that the last position is each one's
    last token) go through the model."""
    arguments, cache = cache_arguments(model, len(prefix_ids))
    model(input_ids=torch.tensor([prefix_ids], device=model.device), **arguments)
    prefix_keys_values = cached_keys_values(cache)
    width_prefix = len(prefix_ids)
    letter_logits = torch.empty(len(suffix_ids), len(CHOICES))
    order = sorted(range(len(suffix_ids)), key=lambda i: -len(suffix_ids[i]))  # batches of similar length
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        width = len(suffix_ids[batch[0]])
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        suffix_mask = torch.zeros_like(input_ids)
        for row, i in enumerate(batch):
            input_ids[row, width - len(suffix_ids[i]):] = torch.tensor(suffix_ids[i])
            suffix_mask[row, width - len(suffix_ids[i]):] = 1
        # each suffix's positions follow the prefix's directly, whatever padding sits between them
        positions = width_prefix + (suffix_mask.cumsum(-1) - 1).clamp(min=0)
        attention_mask = torch.cat([torch.ones(len(batch), width_prefix, dtype=torch.long), suffix_mask], dim=1)
        arguments, batch_cache = cache_arguments(model, width_prefix + width)
        for layer, (keys, values) in enumerate(prefix_keys_values):
            batch_cache.update(keys.expand(len(batch), -1, -1, -1), values.expand(len(batch), -1, -1, -1), layer)
        logits = model(input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device),
                       position_ids=positions.to(model.device), **arguments).logits[:, -1]
        letter_logits[batch] = logits[:, letter_ids].float().cpu()
    return letter_logits


def _shared_prefix_length(sequences: list[list[int]]) -> int:
    """How many leading tokens every sequence shares, leaving each at least one token of its own."""
    shortest = min(map(len, sequences))
    length = 0
    while length < shortest - 1 and all(ids[length] == sequences[0][length] for ids in sequences):
        length += 1
    return length


def near_ties(letter_logits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Which rows' two best letters are closer than the rounding a cached prefix can introduce (RESCORE_ULPS units
    in the last place of the model's dtype at the logits' scale, at least 1): where the cached and whole-prompt
    passes could disagree on the argmax."""
    top_two = letter_logits.topk(2, dim=1).values
    scale = letter_logits.abs().amax(dim=1).clamp(min=1.0)
    return top_two[:, 0] - top_two[:, 1] <= RESCORE_ULPS[dtype] * torch.finfo(dtype).eps * scale


def mc_prompts(tokenizer, dev_rows: list[dict], test_rows: list[dict], k: int,
               max_tokens: int) -> tuple[list[str], list[list[int]]]:
    """Each question's whole mc prompt (build_prompt, fitted to max_tokens) and its token ids."""
    prompts = [build_prompt(dev_rows, row, k, tokenizer, max_tokens) for row in test_rows]
    return prompts, [tokenizer.encode(prompt, add_special_tokens=False) for prompt in prompts]


def prefix_groups(test_rows: list[dict], prompts: list[str], prompt_ids: list[list[int]]) -> list[tuple[list[int], int]]:
    """The questions whose prompts share the text before the question (one subject, the same shots), as (their
    indices, how many leading tokens all their prompts share); 0 for a question alone."""
    groups = defaultdict(list)
    for i, (row, prompt) in enumerate(zip(test_rows, prompts)):
        groups[prompt[:len(prompt) - len(format_example(row, include_answer=False))]].append(i)
    return [(members, _shared_prefix_length([prompt_ids[i] for i in members]) if len(members) > 1 else 0)
            for members in groups.values()]


@torch.inference_mode()
def letter_logits(model, tokenizer, dev_rows: list[dict], test_rows: list[dict], k: int, batch_size: int,
                  prefix_cache: bool = True, rescore: bool = True) -> tuple[torch.Tensor, dict]:
    """mc: per question, the next-token logits of the letters A-D after its prompt, and how many questions were
    scored from a cached prefix and how many of those were near ties rescored from the whole prompt.

    Every question of a subject starts with the same instruction line and k examples (about 5/6 of a real 5-shot
    prompt's tokens), so with `prefix_cache` the questions sharing that text run it once (its tokens exactly as the
    whole prompt's tokenization has them: the longest common token prefix). The cached pass can round the letters'
    logits differently in the last bits; with `rescore`, a question whose two best letters are that close
    (near_ties) is rescored from its whole prompt, so that a prediction is the whole prompt's unless rounding moved
    a logit by more than the margin (tests/unit/test_mmlu_prefix.py; benchmarks/README.md measures the
    differences). `rescore` off gives the cached pass's own logits, to measure them."""
    prompts, prompt_ids = mc_prompts(tokenizer, dev_rows, test_rows, k, model.config.max_position_embeddings)
    letter_ids = torch.tensor(answer_token_ids(tokenizer), device=model.device)
    logits = torch.empty(len(test_rows), len(CHOICES))
    whole, cached, rescored = list(range(len(test_rows))), [], []
    if prefix_cache and full_attention_only(model.config):
        whole = []
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        for members, shared in progress(prefix_groups(test_rows, prompts, prompt_ids), desc="mmlu (cached prefix)",
                                        unit="subject"):
            if not shared:
                whole.extend(members)
                continue
            logits[members] = _letter_logits_after_prefix(
                model, prompt_ids[members[0]][:shared], [prompt_ids[i][shared:] for i in members], letter_ids,
                batch_size, pad_id)
            cached.extend(members)
        if rescore and cached:
            rescored = [i for i, tie in zip(cached, near_ties(logits[cached], model.dtype).tolist()) if tie]
        whole = sorted(whole + rescored)
    if whole:
        logits[whole] = _full_letter_logits(model, tokenizer, [prompt_ids[i] for i in whole], letter_ids, batch_size)
    return logits, {"cached_prefix": len(cached) - len(rescored), "rescored": len(rescored)}


@torch.inference_mode()
def option_log_likelihoods(model, tokenizer, prompts: list[str], options: list[list[str]],
                           batch_size: int) -> list[list[float]]:
    """Per prompt, the summed log-probability of each of its continuations (log p(option | prompt), the option's
    tokens encoded on their own after the prompt's). Every (prompt, continuation) sequence is one row of a batch of
    `batch_size`, padded on the right, longest first; the continuation's log-probs are read from that one forward."""
    prompt_ids = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    option_ids = [[tokenizer.encode(o, add_special_tokens=False) for o in opts] for opts in options]
    for prompt, ids in zip(prompts, prompt_ids):
        if not ids:
            raise PipelineError(f"MMLU prompt {prompt[:60]!r} has no tokens; a continuation needs a prompt")
    pairs = [(q, o) for q, opts in enumerate(option_ids) for o in range(len(opts))]
    pairs.sort(key=lambda pair: -(len(prompt_ids[pair[0]]) + len(option_ids[pair[0]][pair[1]])))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    sums = [[0.0] * len(opts) for opts in option_ids]
    for start in progress(range(0, len(pairs), batch_size), desc="mmlu rc", unit="batch"):
        batch = pairs[start:start + batch_size]
        sequences = [prompt_ids[q] + option_ids[q][o] for q, o in batch]
        input_ids = torch.full((len(batch), max(map(len, sequences))), pad_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for row, ids in enumerate(sequences):
            input_ids[row, :len(ids)] = torch.tensor(ids)
            attention_mask[row, :len(ids)] = 1
        logits = model(input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device)).logits
        for row, (q, o) in enumerate(batch):
            first, ids = len(prompt_ids[q]), option_ids[q][o]
            # the token at position t is predicted by the logits at t - 1
            log_probs = torch.log_softmax(logits[row, first - 1:first - 1 + len(ids)].double(), dim=-1)
            sums[q][o] = log_probs.gather(-1, torch.tensor(ids, device=log_probs.device)[:, None]).sum().item()
    return sums


def rc_scores(model, tokenizer, dev_rows: list[dict], test_rows: list[dict], k: int,
              batch_size: int) -> list[list[float]]:
    """rc: per question, each option's summed log-probability as the continuation of its prompt divided by the
    continuation's length in characters (OLMES's acc_per_char), in the order A-D."""
    options = [continuations(row) for row in test_rows]
    max_positions = model.config.max_position_embeddings
    prompts = []
    for row, opts in zip(test_rows, options):
        longest = max(len(tokenizer.encode(o, add_special_tokens=False)) for o in opts)
        prompts.append(build_rc_prompt(dev_rows, row, k, tokenizer, max_positions - longest))
    sums = option_log_likelihoods(model, tokenizer, prompts, options, batch_size)
    return [[s / len(o) for s, o in zip(row_sums, opts)] for row_sums, opts in zip(sums, options)]


def _cloze_predictions(model, tokenizer, dev_rows: list[dict], test_rows: list[dict], k: int,
                       batch_size: int) -> list[int]:
    """rc: per question, the index of the option with the highest per-character score (the first on a tie)."""
    return [max(range(len(s)), key=s.__getitem__) for s in rc_scores(model, tokenizer, dev_rows, test_rows, k,
                                                                      batch_size)]


@torch.inference_mode()
def mmlu_accuracy(model, tokenizer, dev_rows: list[dict], test_rows: list[dict], k: int, batch_size: int,
                  fmt: str = "mc") -> dict:
    """Accuracy, per subject and over all questions, in format `fmt` (mc or rc, resolved: see resolve_format), and
    `questions`: each test question's index, subject, answer, predicted letter and whether it is correct."""
    if not test_rows:
        raise PipelineError("no MMLU test questions; rerun `python -m stages.prepare`")
    if fmt not in FORMATS:
        raise PipelineError(f"MMLU format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "mc":
        logits, counts = letter_logits(model, tokenizer, dev_rows, test_rows, k, batch_size)
        predictions = logits.argmax(1).tolist()
    else:
        predictions, counts = _cloze_predictions(model, tokenizer, dev_rows, test_rows, k, batch_size), {}
    questions = [{"n": n, "subject": row["subject"], "answer": row["answer"], "prediction": CHOICES[choice],
                  "correct": int(CHOICES[choice] == row["answer"])}
                 for n, (row, choice) in enumerate(zip(test_rows, predictions))]
    correct_by_subject = defaultdict(list)
    for question in questions:
        correct_by_subject[question["subject"]].append(question["correct"])
    correct = [c for subject in correct_by_subject.values() for c in subject]
    return {"format": fmt,
            "accuracy": sum(correct) / len(correct),
            "per_subject": {s: sum(c) / len(c) for s, c in sorted(correct_by_subject.items())},
            "n": len(correct),
            **({"prefix_cache": counts} if counts else {}),
            "questions": questions}


def load_inputs(prepared, source: str, subjects, limit: int | None, fmt: str = "auto") -> dict:
    """The dev and test questions of `mmlu.source`, read and checked before any model loads, and the format
    `mmlu.format` resolves to for that source."""
    dev_rows, test_rows, description = load_mmlu(source, subjects, limit, prepared)
    return {"dev": dev_rows, "test": test_rows, "source": description, "format": resolve_format(fmt, source)}


def run(model, tokenizer, inputs: dict, k: int, batch_size: int) -> dict:
    result = mmlu_accuracy(model, tokenizer, inputs["dev"], inputs["test"], k, batch_size, inputs["format"])
    return {"source": inputs["source"], "k": k, **result}


def write(out, result: dict, name: str, fingerprint: dict) -> None:
    """In the directory `out`: mmlu.json (the source, k, the format, the accuracy, per subject, and n) and
    questions.jsonl (one line per test question: its index n, subject, answer, prediction and correct 0|1), and
    fingerprint.json."""
    summary = {key: value for key, value in result.items() if key != "questions"}
    with atomic_output(out) as out_dir:
        out_dir.mkdir()
        write_json(out_dir / FINGERPRINT, fingerprint)
        write_json(out_dir / "mmlu.json", summary)
        write_jsonl(out_dir / "questions.jsonl", result["questions"])
    print(f"{name}: MMLU-format accuracy ({result['format']}) {result['accuracy']:.4f} over {result['n']} questions")
