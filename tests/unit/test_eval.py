import copy
import functools
import json
from pathlib import Path

import pytest
import torch
import transformers
import yaml
from helpers import assert_one_error_line, dvc_command, params_with

from stages import evaluate, mia, mmlu
from unlearning import config
from unlearning.evaluation import generation, task
from unlearning.evaluation.generation import greedy_generate, plain_greedy
from unlearning.evaluation.mia import ATTACKS, mia_metrics
from unlearning.evaluation.mmlu import BUILTIN, build_prompt, format_example, format_subject, mmlu_accuracy
from unlearning.evaluation.task import evaluate_task
from unlearning.evaluation.token_stats import document_losses
from unlearning.models.training import build_model, train_tokenizer

SENTENCES = [
    "The capital of Veloria is Amber Bay.",
    "Mira Stone was born in 1984 and works as a baker.",
    "Question: What is the capital? Answer: A",
    "A. red B. green C. blue D. yellow",
    "The following are multiple choice questions (with answers) about geography.",
]
PROMPTS = ["The", "The capital of Veloria is", "Mira Stone was born in 1984 and works as", "Question: What", "A. red B."]
MAX_POSITIONS = 256


@pytest.fixture(scope="module")
def tiny():
    tokenizer = train_tokenizer(SENTENCES * 4, vocab_size=300)
    scratch = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "max_position_embeddings": MAX_POSITIONS}
    return build_model(scratch, tokenizer, seed=0).eval(), tokenizer


def test_batched_generation_matches_one_at_a_time(tiny):
    model, tokenizer = tiny
    batched = greedy_generate(model, tokenizer, PROMPTS, max_new_tokens=8, batch_size=3)
    single = [greedy_generate(model, tokenizer, [p], max_new_tokens=8, batch_size=1)[0] for p in PROMPTS]
    assert batched == single
    assert any(batched)
    assert tokenizer.padding_side == "right"  # restored


def test_batched_generation_matches_one_at_a_time_on_the_default_architecture(tiny):
    """The default model's shape (params.yaml model.scratch: 32 layers, d=64), fp32, random weights: batched
    greedy decoding with left padding gives the same strings as decoding each row alone."""
    _, tokenizer = tiny
    scratch = config.defaults()["model"]["scratch"]
    model = build_model(scratch, tokenizer, seed=1).eval()
    batched = greedy_generate(model, tokenizer, PROMPTS, max_new_tokens=12, batch_size=len(PROMPTS))
    assert batched == [greedy_generate(model, tokenizer, [p], max_new_tokens=12, batch_size=1)[0] for p in PROMPTS]
    assert len(set(batched)) > 1


def test_generation_stays_within_the_context(tiny, monkeypatch):
    model, tokenizer = tiny
    output_lengths = []
    generate = model.generate

    def recording_generate(**kwargs):
        output_ids = generate(**kwargs)
        output_lengths.append(output_ids.shape[1])
        return output_ids

    monkeypatch.setattr(model, "generate", recording_generate)
    long_prompt = " ".join(SENTENCES[:1] * 40)
    while len(tokenizer.encode(long_prompt, add_special_tokens=False)) > MAX_POSITIONS - 4:
        long_prompt = long_prompt[:-8]  # leaves room for only a few new tokens, so the test stays fast
    greedy_generate(model, tokenizer, [long_prompt, PROMPTS[0]], max_new_tokens=10_000, batch_size=2,
                    engine="generate")
    assert len(output_lengths) == 1 and output_lengths[0] <= MAX_POSITIONS
    compact_lengths = []
    compact_greedy = generation.compact_greedy

    def recording_compact_greedy(model, input_ids, *args):
        continuations = compact_greedy(model, input_ids, *args)
        compact_lengths.extend(input_ids.shape[1] + len(ids) for ids in continuations)
        return continuations

    monkeypatch.setattr(generation, "compact_greedy", recording_compact_greedy)
    greedy_generate(model, tokenizer, [long_prompt, PROMPTS[0]], max_new_tokens=10_000, batch_size=2)
    assert compact_lengths and max(compact_lengths) <= MAX_POSITIONS


def eos_mid_generation(model, tokenizer):
    """A copy of the tokenizer whose EOS is a token greedy decoding emits mid-way in some rows and never in others,
    so rows stop at different steps."""
    continuations = [tokenizer.encode(text, add_special_tokens=False)
                     for text in greedy_generate(model, tokenizer, PROMPTS, 12, len(PROMPTS), engine="generate")]
    for token in sorted({t for ids in continuations for t in ids[1:-2]}):
        stops = [token in ids[:-2] for ids in continuations]
        if any(stops) and not all(stops):
            stopping = copy.deepcopy(tokenizer)
            stopping.eos_token = tokenizer.convert_ids_to_tokens(token)
            return stopping
    pytest.fail("no token stops some rows and not others; change PROMPTS")


def sharp_attention_model(tokenizer, seed: int):
    """The default architecture with random weights whose queries and keys are scaled up: freshly initialised
    attention is nearly uniform, so a wrong position or mask would change nothing; sharp attention makes the
    tokens depend on both."""
    model = build_model(config.defaults()["model"]["scratch"], tokenizer, seed=seed).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                param.mul_(30)
    return model


@pytest.mark.parametrize("seed", [1, 2])
def test_compact_greedy_matches_generate(tiny, seed):
    """Dropping finished rows from the batch and the KV cache changes no string: left padding, rows stopping at
    different steps, and rows running to max_new_tokens, on the default architecture."""
    _, tokenizer = tiny
    model = sharp_attention_model(tokenizer, seed)
    stopping = eos_mid_generation(model, tokenizer)
    reference = greedy_generate(model, stopping, PROMPTS, 12, len(PROMPTS), engine="generate")
    compact = greedy_generate(model, stopping, PROMPTS, 12, len(PROMPTS))
    assert compact == reference
    assert len({len(text) for text in compact}) > 1


@pytest.mark.skipif(generation.DynamicLayer is None, reason="transformers 4 has no per-layer caches")
def test_the_preallocated_cache_gives_the_concatenating_cache_s_logits_bit_for_bit(tiny, monkeypatch):
    """The in-place cache against DynamicCache's torch.cat, in the compact engine: every step's logits equal to the
    bit (rows leaving the batch included), so the generated strings cannot differ."""
    _, tokenizer = tiny
    model = sharp_attention_model(tokenizer, 1)
    stopping = eos_mid_generation(model, tokenizer)
    monkeypatch.setattr(tokenizer, "padding_side", "left")
    batch = tokenizer(PROMPTS, padding=True, add_special_tokens=False, return_tensors="pt")
    forward = model.forward
    logits, layer_classes = {}, {}

    def recording(label):
        @functools.wraps(forward)  # the engine reads the forward's signature
        def record(*args, **kwargs):
            cache = kwargs.get("cache", kwargs.get("past_key_values"))
            layer_classes.setdefault(label, set()).update(type(layer).__name__ for layer in cache.layers)
            output = forward(*args, **kwargs)
            logits.setdefault(label, []).append(output.logits[:, -1].clone())
            return output
        return record

    for label, full_attention_only in (("preallocated", generation.full_attention_only), ("cat", lambda _: False)):
        monkeypatch.setattr(generation, "full_attention_only", full_attention_only)
        monkeypatch.setattr(model, "forward", recording(label))
        generation.compact_greedy(model, batch["input_ids"], batch["attention_mask"], 12, stopping.eos_token_id)
    assert layer_classes == {"preallocated": {"PreallocatedLayer"}, "cat": {"DynamicLayer"}}
    assert len(logits["preallocated"]) == len(logits["cat"]) > 2
    assert len({len(step) for step in logits["cat"]}) > 1  # rows left the batch on the way
    for ours, cat in zip(logits["preallocated"], logits["cat"]):
        assert torch.equal(ours, cat)


def test_generation_config_with_processors_goes_through_generate(tiny):
    """A generation config that asks for more than argmax (here a repetition penalty) is honoured: the compact
    engine steps aside for model.generate."""
    _, tokenizer = tiny
    model = build_model(config.defaults()["model"]["scratch"], tokenizer, seed=1).eval()
    assert plain_greedy(model)
    plain = greedy_generate(model, tokenizer, PROMPTS, 12, len(PROMPTS))
    model.generation_config.repetition_penalty = 5.0
    assert not plain_greedy(model)
    penalised = greedy_generate(model, tokenizer, PROMPTS, 12, len(PROMPTS))
    assert penalised == greedy_generate(model, tokenizer, PROMPTS, 12, len(PROMPTS), engine="generate")
    assert penalised != plain


def test_document_losses_batched_match_single(tiny):
    model, tokenizer = tiny
    batched = document_losses(model, tokenizer, SENTENCES, batch_size=4)
    single = [document_losses(model, tokenizer, [s], batch_size=1)[0] for s in SENTENCES]
    assert batched == pytest.approx(single, abs=1e-5)
    assert all(loss > 0 for loss in batched)
    metrics = mia_metrics(batched[:2], batched[2:])
    assert set(metrics) == {"auc", "score", "member_mean_loss", "nonmember_mean_loss"}


def mc_row(subject, question, answer):
    return {"subject": subject, "question": question, "A": "red", "B": "green", "C": "blue", "D": "yellow",
            "answer": answer}


def test_build_prompt_format(tiny):
    _, tokenizer = tiny
    dev = [mc_row("world_geo", "Flag colour of Veloria?", "C"), mc_row("other", "Sky?", "C"),
           mc_row("world_geo", "Sea colour?", "B")]
    row = mc_row("world_geo", "Sun colour?", "D")
    assert format_subject("world_geo") == "world geo"
    assert format_example(row, include_answer=False) == "Sun colour?\nA. red\nB. green\nC. blue\nD. yellow\nAnswer:"
    expected = ("The following are multiple choice questions (with answers) about world geo.\n\n"
                "Flag colour of Veloria?\nA. red\nB. green\nC. blue\nD. yellow\nAnswer: C\n\n"
                "Sea colour?\nA. red\nB. green\nC. blue\nD. yellow\nAnswer: B\n\n"
                "Sun colour?\nA. red\nB. green\nC. blue\nD. yellow\nAnswer:")
    assert build_prompt(dev, row, k=5) == expected
    one_shot = expected.split("Sea colour?")[0] + "Sun colour?" + expected.split("Sun colour?")[1]
    assert build_prompt(dev, row, k=1) == one_shot
    one_shot_tokens = len(tokenizer.encode(one_shot, add_special_tokens=False))
    assert build_prompt(dev, row, k=5, tokenizer=tokenizer, max_tokens=one_shot_tokens) == one_shot
    zero_shot = build_prompt(dev, row, k=0)
    assert build_prompt(dev, row, k=5, tokenizer=tokenizer, max_tokens=one_shot_tokens - 1) == zero_shot


def test_mmlu_accuracy(tiny):
    model, tokenizer = tiny
    dev = [mc_row("geo", "Flag colour?", "C"), mc_row("bio", "Leaf colour?", "B")]
    test = [mc_row("geo", "Sun colour?", "D"), mc_row("geo", "Sea colour?", "C"), mc_row("bio", "Rose colour?", "A")]
    result = mmlu_accuracy(model, tokenizer, dev, test, k=1, batch_size=2)
    assert 0 <= result["accuracy"] <= 1
    assert result["n"] == 3
    assert set(result["per_subject"]) == {"geo", "bio"}


def unlearning_rows():
    rows = []
    for split in ("forget", "retain"):
        for task_name in ("Task1", "Task2", "Task3"):
            rows.append({"id": f"{split}{task_name}sc1", "input": "The capital of", "output": "Veloria is Amber Bay.",
                         "task": task_name, "split": split})
            rows.append({"id": f"{split}{task_name}qa0", "input": "Question: What", "output": "1984", "task": task_name,
                         "split": split})
    return rows


def test_evaluate_task_records(tiny):
    model, tokenizer = tiny
    rows = unlearning_rows()
    scores, records = evaluate_task(model, tokenizer, rows, max_new_tokens=4, batch_size=5, clean_up=True)
    assert set(scores) == {"forget", "retain"} and set(scores["retain"]["Task2"]) == {"sc", "qa"}
    assert [r["id"] for r in records] == [r["id"] for r in rows]
    assert set(records[0]) == {"id", "task", "split", "kind", "output", "generation", "score"}
    assert records[1]["kind"] == "qa"


def write_workdir(tiny, workdir, monkeypatch, rows_by_file: dict) -> Path:
    """A work directory (the current one from now on) with params.yaml (cpu, 4 new tokens), models/target and
    data/prepared/<file>.jsonl for each given file name and rows; returns data/prepared."""
    model, tokenizer = tiny
    params = params_with({"device": "cpu", "evaluate": {"max_new_tokens": 4}})
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(workdir)
    model.save_pretrained("models/target")
    tokenizer.save_pretrained("models/target")
    prepared = Path("data/prepared")
    prepared.mkdir(parents=True)
    for name, rows in rows_by_file.items():
        (prepared / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return prepared


def train_files(rows: list[dict], suffix: str = "train") -> dict:
    return {f"{split}_{suffix}": [r for r in rows if r["split"] == split] for split in ("forget", "retain")}


def test_stage_mains_write_their_own_directories(tiny, tmp_path, monkeypatch):
    rows = unlearning_rows()
    prepared = write_workdir(tiny, tmp_path, monkeypatch, train_files(rows))
    (prepared / "mia").mkdir()
    (prepared / "mmlu").mkdir()
    for name, docs in (("member", SENTENCES[:2]), ("nonmember", SENTENCES[2:])):
        lines = [json.dumps({"id": f"{name}{i}", "document": d}) for i, d in enumerate(docs)]
        (prepared / "mia" / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    (prepared / "mmlu" / "dev.jsonl").write_text(json.dumps(mc_row("geo", "Flag colour?", "C")) + "\n")
    (prepared / "mmlu" / "test.jsonl").write_text(json.dumps(mc_row("geo", "Sun colour?", "D")) + "\n")

    evaluate.main(dvc_command("evaluate@target")[1])
    mia.main(dvc_command("mia@target")[1])
    mmlu.main(dvc_command("mmlu@target")[1])

    out = Path("reports/eval/target")
    assert sorted(p.name for p in out.iterdir()) == ["mia", "mmlu", "task"]
    assert sorted(p.name for p in (out / "task").iterdir()) == ["fingerprint.json", "generations.jsonl", "pii.json",
                                                          "scores.json"]
    scores = json.loads((out / "task" / "scores.json").read_text())
    assert set(scores) == {"split", "scores", "task_aggregate"} and scores["split"] == "train"
    assert len((out / "task" / "generations.jsonl").read_text().splitlines()) == len(rows)
    pii = json.loads((out / "task" / "pii.json").read_text())
    assert set(pii) == {"split", "forget", "retain"}
    assert set(pii["forget"]) == {"ssn", "phone", "email", "any", "extracted_documents"}
    mia_result = json.loads((out / "mia" / "mia.json").read_text())
    assert set(mia_result) == {"available", "auc", "score", "member_mean_loss", "nonmember_mean_loss", "attacks",
                               "strongest"} and mia_result["available"] is True
    assert mia_result["attacks"]["loss"] == {"auc": mia_result["auc"], "score": mia_result["score"]}
    assert set(mia_result["attacks"]) == set(ATTACKS)  # every attack of the table, each tested in test_attacks
    loss_rows = [json.loads(line) for line in (out / "mia" / "losses.jsonl").read_text().splitlines()]
    assert set(loss_rows[0]) == {"id", "member", *ATTACKS}
    assert len((out / "mia" / "losses.jsonl").read_text().splitlines()) == len(SENTENCES)
    result = json.loads((out / "mmlu" / "mmlu.json").read_text())
    assert result["source"] == BUILTIN and result["n"] == 1


def test_the_mia_stage_without_mia_data_writes_not_available(tiny, tmp_path, monkeypatch, capsys):
    """A data source without MIA files (as the official script allows): mia.json says so, losses.jsonl is empty."""
    write_workdir(tiny, tmp_path, monkeypatch, train_files(unlearning_rows()))
    (Path("data/prepared") / "info.json").write_text(json.dumps({"source": "jsonl", "counts": {}}))
    mia.main(dvc_command("mia@target")[1])
    out = Path("reports/eval/target/mia")
    result = json.loads((out / "mia.json").read_text())
    assert result["available"] is False and "no MIA members and non-members for the train split" in result["reason"]
    assert result["auc"] is result["score"] is None and result["attacks"] == {}
    assert (out / "losses.jsonl").read_text() == ""
    assert "MIA not available" in capsys.readouterr().out


def validation_rows():
    return [{**row, "id": "val" + row["id"]} for row in unlearning_rows()]


@pytest.mark.parametrize("validation", ["present", "absent", "empty"])
def test_validation_scores_appear_only_with_a_validation_split(tiny, tmp_path, monkeypatch, validation):
    """`data.split: train` also scores data/prepared's validation split, when it has one with rows; a source
    without one (the forget.jsonl + retain.jsonl layout) has no validation files."""
    files = train_files(unlearning_rows())
    if validation != "absent":
        files.update(train_files(validation_rows() if validation == "present" else [], "validation"))
    write_workdir(tiny, tmp_path, monkeypatch, files)
    Path("data/prepared/info.json").write_text('{"source": "test"}\n')

    evaluate.main(dvc_command("evaluate@target")[1])

    out = Path("reports/eval/target/task")
    scores = json.loads((out / "scores.json").read_text())
    if validation == "present":
        assert set(scores) == {"split", "scores", "task_aggregate", "validation"}
        assert set(scores["validation"]) == {"scores", "task_aggregate"}
        assert set(scores["validation"]["scores"]) == {"forget", "retain"}
        records = [json.loads(line) for line in (out / "generations_validation.jsonl").read_text().splitlines()]
        assert [r["id"] for r in records] == [r["id"] for r in validation_rows()]
        # the same prompts as the train rows: greedy decoding gives the same generations and scores
        assert scores["validation"] == {"scores": scores["scores"], "task_aggregate": scores["task_aggregate"]}
    else:
        assert set(scores) == {"split", "scores", "task_aggregate"}
        assert not (out / "generations_validation.jsonl").exists()


def test_a_half_validation_split_is_one_clear_error(tiny, tmp_path, monkeypatch, capsys):
    files = train_files(unlearning_rows())
    files["forget_validation"] = [r for r in validation_rows() if r["split"] == "forget"]
    write_workdir(tiny, tmp_path, monkeypatch, files)
    with pytest.raises(SystemExit) as exit_:
        evaluate.main(dvc_command("evaluate@target")[1])
    assert_one_error_line((exit_.value.code, capsys.readouterr().err), "data/prepared/retain_validation.jsonl: missing or empty "
                          "while forget_validation.jsonl has rows")
    assert not Path("reports").exists()


# The official script's decode(..., clean_up_tokenization_spaces=True) under transformers 4.45, on generations
CLEANED = {"Paris .": "Paris.", "Where is it ?": "Where is it?", "Stop !": "Stop!", "red , green": "red, green",
           "the author 's book": "the author's book", "it does n't": "it doesn't", "I 'm here": "I'm here",
           "we 've won": "we've won", "they 're gone": "they're gone", "rock ' n ' roll": "rock'n'roll",
           "a . b , c": "a. b, c"}
UNCHANGED = ["Paris.", "It's 5 p.m. now", "Mr. Smith's dog, the one that isn't here!", "1984-02-03",
             "555 123 4567", "mira.stone@example.com", "", "'quoted' text", "Veloria is Amber Bay"]


@pytest.mark.parametrize("raw, cleaned", CLEANED.items())
def test_official_clean_up_rewrites_what_transformers_4_did(raw, cleaned):
    assert generation.clean_up_spaces(raw) == cleaned
    # the installed transformers keeps the same rewrite as a method (for remote code), whatever its decode does
    assert generation.clean_up_spaces(raw) == transformers.PreTrainedTokenizerBase.clean_up_tokenization(None, raw)


@pytest.mark.parametrize("text", UNCHANGED)
def test_official_clean_up_leaves_ordinary_text_alone(text):
    assert generation.clean_up_spaces(text) == text


@pytest.mark.parametrize("clean_up, exact_match", [(True, 1.0), (False, 0.0)])
def test_a_spaced_generation_is_an_exact_match_only_with_the_official_clean_up(tiny, monkeypatch, clean_up,
                                                                               exact_match):
    """What the decoder returns goes through the clean-up before scoring: "Paris ." matches "Paris." officially."""
    model, tokenizer = copy.deepcopy(tiny)
    monkeypatch.setattr(tokenizer, "batch_decode", lambda ids, **kwargs: ["Paris ."] * len(ids))
    rows = [{**row, "output": "Paris."} for row in unlearning_rows()]
    result = task.run(model, tokenizer, {"split": "train", "rows": rows, "validation": []}, max_new_tokens=2,
                      batch_size=4, clean_up=clean_up)
    assert {r["generation"] for r in result["records"]} == {"Paris." if clean_up else "Paris ."}
    assert [r["score"] for r in result["records"] if r["kind"] == "qa"] == [exact_match] * 6
