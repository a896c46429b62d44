"""`mmlu.format`: the letter format (mc) and OLMES's ranked classification / cloze format (rc), the prompts of each,
what `auto` resolves to, and what the stage writes (mmlu.json with the format, questions.jsonl)."""
import json
import math
from types import SimpleNamespace

import pytest
import torch
from helpers import SHARED_DATA, assert_one_error_line

from unlearning.errors import PipelineError
from unlearning.evaluation.mmlu import (BUILTIN, CHOICES, build_prompt, build_rc_prompt, check_mmlu_rows,
                                        continuations, load_inputs, load_mmlu, mmlu_accuracy, option_log_likelihoods,
                                        rc_scores, resolve_format)
from unlearning.models.training import build_model

MMLU = SHARED_DATA / "mmlu"
needs_mmlu = pytest.mark.skipif(not MMLU.is_dir(), reason=f"real MMLU not found at {MMLU}")


class BigramLM(torch.nn.Module):
    """A causal LM whose next-token logits depend on the current token only, from a table we choose: log p(x_t |
    x_<t) = log_softmax(table[x_{t-1}])[x_t], computable by hand. Records the widest batch it saw."""

    def __init__(self, table: torch.Tensor, max_positions: int = 512):
        super().__init__()
        self.table = table
        self.config = SimpleNamespace(max_position_embeddings=max_positions)
        self.widest = 0

    @property
    def device(self):
        return torch.device("cpu")

    def forward(self, input_ids, attention_mask):
        self.widest = max(self.widest, input_ids.shape[1])
        return SimpleNamespace(logits=self.table[input_ids])


def cloze_row(subject, stem, options, answer):
    return {"subject": subject, "question": stem, **dict(zip(CHOICES, options)), "answer": answer, "cloze": True}


def real_row(subject, question, options, answer):
    return {"subject": subject, "question": question, **dict(zip(CHOICES, options)), "answer": answer}


DEV = [cloze_row("geography", "Veloria is a country whose capital city is", ["Marn", "Amber Bay", "Pell", "Tosk"], "B"),
       cloze_row("economics", "The currency of Veloria is the", ["zq", "Vren", "Marcile", "x"], "C"),
       cloze_row("geography", "Deadesius is a country whose capital city is", ["Tosk", "Vren", "Pell", "Marn"], "D")]
TEST = [cloze_row("geography", "Zoravia is a country whose capital city is",
                  ["Amber Bay", "Bratonville", "Catherina", "Pell"], "B"),
        cloze_row("economics", "The currency of Deadesius is the", ["x", "Marcile", "zq", "Tosk"], "B")]


def by_hand(table: torch.Tensor, tokenizer, prompt: str, continuation: str) -> float:
    """Sum of log p over the continuation's tokens after the prompt's, one token at a time, per character."""
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    ids = prompt_ids + tokenizer.encode(continuation, add_special_tokens=False)
    total = 0.0
    for t in range(len(prompt_ids), len(ids)):
        total += torch.log_softmax(table[ids[t - 1]].double(), dim=-1)[ids[t]].item()
    return total / len(continuation)


def test_rc_scores_are_the_per_character_log_likelihood_of_each_option(tiny_tokenizer):
    table = torch.randn(len(tiny_tokenizer), len(tiny_tokenizer), generator=torch.Generator().manual_seed(0)) * 3
    model = BigramLM(table)
    scores = rc_scores(model, tiny_tokenizer, DEV, TEST, k=2, batch_size=3)  # batches mix questions
    expected = [[by_hand(table, tiny_tokenizer, build_rc_prompt(DEV, row, 2), c) for c in continuations(row)]
                for row in TEST]
    assert scores == [pytest.approx(e, abs=1e-9) for e in expected]
    result = mmlu_accuracy(model, tiny_tokenizer, DEV, TEST, k=2, batch_size=3, fmt="rc")
    winners = [CHOICES[max(range(4), key=e.__getitem__)] for e in expected]
    assert [q["prediction"] for q in result["questions"]] == winners
    assert result["format"] == "rc" and result["n"] == 2


def test_per_character_normalisation_can_change_the_winner(tiny_tokenizer):
    """Every token equally likely (log p = -log V): the unnormalised sum prefers the option with fewest tokens, the
    per-character score the one with most characters per token."""
    model = BigramLM(torch.zeros(len(tiny_tokenizer), len(tiny_tokenizer)))
    row = TEST[1]  # options " x", " Marcile", " zq", " Tosk"
    log_v = math.log(len(tiny_tokenizer))
    n_tokens = [len(tiny_tokenizer.encode(c, add_special_tokens=False)) for c in continuations(row)]
    sums = option_log_likelihoods(model, tiny_tokenizer, [build_rc_prompt(DEV, row, 5)], [continuations(row)], 4)[0]
    assert sums == pytest.approx([-n * log_v for n in n_tokens])
    scores = rc_scores(model, tiny_tokenizer, DEV, [row], k=5, batch_size=4)[0]
    assert scores == pytest.approx([s / len(c) for s, c in zip(sums, continuations(row))])
    assert max(range(4), key=sums.__getitem__) == 0  # " x": 2 tokens
    assert max(range(4), key=scores.__getitem__) == 1  # " Marcile": 4 tokens over 8 characters
    result = mmlu_accuracy(model, tiny_tokenizer, DEV, [row], k=5, batch_size=4, fmt="rc")
    assert result["questions"] == [{"n": 0, "subject": "economics", "answer": "B", "prediction": "B", "correct": 1}]


def test_rc_on_a_tiny_olmo_matches_one_forward_per_option(tiny_model, tiny_tokenizer):
    """Batched, right-padded, longest first: the same numbers as a separate forward of each prompt + option."""
    scores = rc_scores(tiny_model, tiny_tokenizer, DEV, TEST, k=1, batch_size=3)
    for row, row_scores in zip(TEST, scores):
        prompt_ids = tiny_tokenizer.encode(build_rc_prompt(DEV, row, 1), add_special_tokens=False)
        for continuation, score in zip(continuations(row), row_scores):
            ids = tiny_tokenizer.encode(continuation, add_special_tokens=False)
            with torch.no_grad():
                logits = tiny_model(input_ids=torch.tensor([prompt_ids + ids])).logits[0]
            log_probs = torch.log_softmax(logits.double(), dim=-1)
            total = sum(log_probs[len(prompt_ids) + j - 1, token].item() for j, token in enumerate(ids))
            assert score == pytest.approx(total / len(continuation), abs=1e-5)


def test_rc_drops_shots_to_fit_the_context(tiny_tokenizer):
    # a real row: only the OLMES prompt has shots
    DEV = [{**d, "cloze": False} for d in globals()["DEV"]]
    row = {**TEST[0], "cloze": False}
    full = build_rc_prompt(DEV, row, 5)
    longest = max(len(tiny_tokenizer.encode(c, add_special_tokens=False)) for c in continuations(row))
    budget = len(tiny_tokenizer.encode(full, add_special_tokens=False)) + longest - 1  # one token short
    model = BigramLM(torch.zeros(len(tiny_tokenizer), len(tiny_tokenizer)), max_positions=budget)
    rc_scores(model, tiny_tokenizer, DEV, [row], k=5, batch_size=4)
    assert model.widest <= budget
    assert build_rc_prompt(DEV, row, 5, tiny_tokenizer, budget - longest) == build_rc_prompt(DEV, row, 1)
    with pytest.raises(PipelineError, match="does not fit in 3 tokens even with no examples"):
        build_rc_prompt(DEV, row, 5, tiny_tokenizer, 3)


def test_the_cloze_prompt_of_a_builtin_row():
    row = TEST[0]
    # zero-shot whatever k: the stem alone
    for k in (5, 1, 0):
        assert build_rc_prompt(DEV, row, k) == "Zoravia is a country whose capital city is"
    assert continuations(row) == [" Amber Bay", " Bratonville", " Catherina", " Pell"]
    # the letter format ignores the flag: the stem is its question
    plain = {key: value for key, value in row.items() if key != "cloze"}
    assert build_prompt(DEV, row, 5) == build_prompt(DEV, plain, 5)
    assert build_prompt(DEV, row, 0).endswith("Zoravia is a country whose capital city is\nA. Amber Bay\n"
                                               "B. Bratonville\nC. Catherina\nD. Pell\nAnswer:")


def test_the_olmes_prompt_of_a_real_row():
    dev = [real_row("high_school_geography", "Which is the largest ocean?", ["Atlantic", "Pacific", "Indian", "Arctic"],
                    "B"),
           real_row("anatomy", "How many bones are in the adult human body?", ["206", "201", "212", "198"], "A"),
           real_row("high_school_geography", "Which river is the longest?", ["Nile", "Amazon", "Yangtze", "Volga"],
                    "A")]
    row = real_row("high_school_geography", "What is the capital of France?", ["Lyon", "Nice", "Paris", "Lille"],
                   "C")
    assert build_rc_prompt(dev, row, 5) == (
        "The following are multiple choice questions (with answers) about high school geography.\n\n"
        "Question: Which is the largest ocean?\nAnswer: Pacific\n\n"
        "Question: Which river is the longest?\nAnswer: Nile\n\n"
        "Question: What is the capital of France?\nAnswer:")
    assert build_rc_prompt(dev, row, 0) == (
        "The following are multiple choice questions (with answers) about high school geography.\n\n"
        "Question: What is the capital of France?\nAnswer:")
    assert continuations(row) == [" Lyon", " Nice", " Paris", " Lille"]


def test_auto_is_rc_for_the_builtin_set_and_mc_for_real_mmlu(tmp_path):
    assert resolve_format("auto", "builtin") == "rc"
    assert resolve_format("auto", str(MMLU)) == "mc"
    assert resolve_format("auto", "cais/mmlu") == "mc"
    assert resolve_format("mc", "builtin") == "mc" and resolve_format("rc", "cais/mmlu") == "rc"
    (tmp_path / "mmlu").mkdir()
    for split, rows in (("dev", DEV), ("test", TEST)):
        (tmp_path / "mmlu" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_inputs(tmp_path, "builtin", "all", None)["format"] == "rc"
    assert load_inputs(tmp_path, "builtin", "all", None, "mc")["format"] == "mc"


def test_a_bad_format_is_one_error_line(tmp_path, stage):
    result = stage("mmlu@target", {"mmlu": {"format": "letters"}})
    assert_one_error_line(result, "`mmlu.format` is 'letters'; choose one of auto, mc, rc")
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]


def test_the_cloze_flag_is_optional_and_boolean():
    assert check_mmlu_rows([TEST[0], {**TEST[0], "cloze": False}, real_row("a", "q?", list("wxyz"), "A")], "t")
    with pytest.raises(PipelineError, match=r"^t row 2: column `cloze` is 'yes'; expected true or false"):
        check_mmlu_rows([TEST[0], {**TEST[0], "cloze": "yes"}], "t")


@pytest.mark.parametrize("fmt, expected", [("auto", "rc"), ("mc", "mc"), ("rc", "rc")])
def test_the_stage_writes_the_format_and_every_question(tmp_path, stage, tiny_tokenizer, fmt, expected):
    scratch = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
               "max_position_embeddings": 512}  # room for the letter format's header and options
    model, tokenizer = build_model(scratch, tiny_tokenizer, seed=0).eval(), tiny_tokenizer
    model.save_pretrained(tmp_path / "models" / "target")
    tokenizer.save_pretrained(tmp_path / "models" / "target")
    (tmp_path / "data" / "prepared" / "mmlu").mkdir(parents=True)
    for split, rows in (("dev", DEV), ("test", TEST)):
        (tmp_path / "data" / "prepared" / "mmlu" / f"{split}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows))
    status, stderr = stage("mmlu@target", {"device": "cpu", "mmlu": {"format": fmt}})
    assert status == 0, stderr
    out = tmp_path / "reports" / "eval" / "target" / "mmlu"
    assert sorted(p.name for p in out.iterdir()) == ["fingerprint.json", "mmlu.json", "questions.jsonl"]
    result = json.loads((out / "mmlu.json").read_text())
    assert result["format"] == expected and result["source"] == BUILTIN and result["n"] == len(TEST)
    # the letter format says how many questions ran from their subject's cached prefix (test_mmlu_prefix.py)
    assert set(result) == {"source", "k", "format", "accuracy", "per_subject", "n"} | ({"prefix_cache"} if expected == "mc" else set())
    questions = [json.loads(line) for line in (out / "questions.jsonl").read_text().splitlines()]
    assert [(q["n"], q["subject"], q["answer"]) for q in questions] == [(n, r["subject"], r["answer"])
                                                                         for n, r in enumerate(TEST)]
    assert all(set(q) == {"n", "subject", "answer", "prediction", "correct"} for q in questions)
    assert all(q["correct"] == int(q["prediction"] == q["answer"]) for q in questions)
    assert result["accuracy"] == sum(q["correct"] for q in questions) / len(questions)


@needs_mmlu
def test_rc_on_real_mmlu(long_context_model):
    model, tokenizer = long_context_model
    dev, test, _ = load_mmlu(str(MMLU), ["astronomy", "virology"], 3, prepared="no prepared data")
    assert len(test) == 6 and not any("cloze" in row for row in test)
    prompt = build_rc_prompt(dev, test[0], 5)
    assert prompt.startswith("The following are multiple choice questions (with answers) about astronomy.\n\n"
                             f"Question: {dev[0]['question']}\nAnswer: {dev[0][dev[0]['answer']]}\n\n")
    assert prompt.endswith(f"\n\nQuestion: {test[0]['question']}\nAnswer:") and prompt.count("\nAnswer:") == 6
    scores = rc_scores(model, tokenizer, dev, test, k=5, batch_size=8)
    assert len(scores) == 6 and all(len(s) == 4 and all(math.isfinite(x) and x < 0 for x in s) for s in scores)
    result = mmlu_accuracy(model, tokenizer, dev, test, k=5, batch_size=8, fmt="rc")
    assert result["format"] == "rc" and result["n"] == 6 and set(result["per_subject"]) == {"astronomy", "virology"}
    assert [q["prediction"] for q in result["questions"]] == [CHOICES[max(range(4), key=s.__getitem__)]
                                                               for s in scores]
