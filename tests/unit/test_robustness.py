"""The attack pieces of unlearning/evaluation/robustness.py: the document split, relearning, direction ablation on a
hand-built steered model, and recovery."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from unlearning.data.schema import document_id
from unlearning.evaluation.robustness import (directions_ablated, recovery, relearn, split_documents,
                                              trained_parameters)
from unlearning.methods.rmu import control_vectors
from unlearning.methods.training import encode
from unlearning.models.layers import decoder_layers


def rows_of(documents: dict[str, int]) -> list[dict]:
    """`documents` maps a task to its number of documents; each document has a sentence completion and two QA."""
    return [{"id": f'"{task}-doc{n}"{kind}', "task": task, "input": "x", "output": "y"}
            for task, count in documents.items() for n in range(count) for kind in ("sc1", "qa0", "qa1")]


@given(st.dictionaries(st.sampled_from(["Task1", "Task2", "Task3"]), st.integers(1, 12), min_size=1),
       st.integers(0, 2**16))
def test_no_document_is_in_both_halves_and_each_task_is_cut_in_two(documents, seed):
    rows = rows_of(documents)
    half_a, half_b = split_documents(rows, seed)
    docs_a = {(r["task"], document_id(r["id"])) for r in half_a}
    docs_b = {(r["task"], document_id(r["id"])) for r in half_b}
    assert not docs_a & docs_b
    assert sorted(map(str, half_a + half_b)) == sorted(map(str, rows))
    for task, count in documents.items():
        assert sum(t == task for t, _ in docs_a) == count // 2
    assert split_documents(rows, seed) == (half_a, half_b)


def test_ablating_the_true_direction_removes_what_steering_added(tiny_model, tiny_tokenizer, sentences):
    """A hand-built "unlearned" model: layer 2's output is exactly the target's plus coeff * u, u a task's steering
    vector. Removing u from that output gives the target's ablated logits; removing another vector does not."""
    layer, coeff = 2, 30.0
    directions = torch.stack(list(control_vectors(["Task1", "Task2"], tiny_model.config.hidden_size, "uniform",
                                                  seed=0).values()))
    wrong = torch.stack(list(control_vectors(["Task1", "Task2"], tiny_model.config.hidden_size, "gaussian",
                                             seed=1).values()))
    input_ids, attention_mask = encode(tiny_tokenizer, sentences, 64, "cpu")

    def logits():
        with torch.no_grad():
            return tiny_model(input_ids=input_ids, attention_mask=attention_mask).logits

    def steer(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        steered = hidden + coeff * directions[0]
        return (steered, *output[1:]) if isinstance(output, tuple) else steered

    target = logits()
    with directions_ablated(tiny_model, layer, directions):
        target_ablated = logits()
    handle = decoder_layers(tiny_model)[layer].register_forward_hook(steer)
    try:
        steered = logits()
        with directions_ablated(tiny_model, layer, directions):
            steered_ablated = logits()
        with directions_ablated(tiny_model, layer, wrong):
            steered_wrong = logits()
    finally:
        handle.remove()
    assert (steered - target).abs().max() > 0.1                            # the steering changed the model
    torch.testing.assert_close(steered_ablated, target_ablated, atol=1e-4, rtol=1e-4)
    assert (steered_wrong - target_ablated).abs().max() > 0.1
    torch.testing.assert_close(logits(), target)                           # no hook left behind


def test_recovery_is_0_for_the_unlearned_model_and_1_for_the_target():
    assert recovery(0.2, unlearned=0.2, target=0.9) == 0.0
    assert recovery(0.9, unlearned=0.2, target=0.9) == 1.0
    assert math.isclose(recovery(0.55, unlearned=0.2, target=0.9), 0.5)
    assert math.isnan(recovery(0.5, unlearned=0.4, target=0.4))


def test_relearning_lowers_the_loss_and_trains_only_what_it_is_given(tiny_model, tiny_tokenizer, sentences):
    input_ids, attention_mask = encode(tiny_tokenizer, sentences, 64, "cpu")

    def loss():
        with torch.no_grad():
            return tiny_model(input_ids=input_ids, attention_mask=attention_mask,
                              labels=input_ids.masked_fill(attention_mask == 0, -100)).loss.item()
    before = {name: param.detach().clone() for name, param in tiny_model.named_parameters()}
    down_proj = [f"model.layers.{i}.mlp.down_proj.weight" for i in (1, 2, 3)]
    losses = {0: loss()}
    relearn(tiny_model, tiny_tokenizer, sentences, [5, 20], lr=1e-2, batch_size=2, max_length=64, seed=0,
            parameters=trained_parameters(tiny_model, "delta", down_proj), device="cpu",
            at_checkpoint=lambda step, model: losses.__setitem__(step, loss()))
    assert list(losses) == [0, 5, 20] and losses[20] < losses[5] < losses[0]
    changed = {name for name, param in tiny_model.named_parameters() if not torch.equal(param, before[name])}
    assert changed == set(down_proj)
    assert not any(param.requires_grad for param in tiny_model.parameters())


def write_evaluation(eval_dir, model, rows, scores):
    from unlearning.files import write_jsonl
    (eval_dir / model / "task").mkdir(parents=True)
    write_jsonl(eval_dir / model / "task" / "generations.jsonl",
                [{"id": r["id"], "task": r["task"], "split": "forget", "kind": r["id"][-3:-1], "output": "y",
                  "generation": "z", "score": s} for r, s in zip(rows, scores)])


def test_the_report_gives_recovery_0_to_the_unlearned_scores_and_1_to_the_targets(tmp_path):
    """model_attacks on hand-built evaluations: an "attack" that reproduces the unlearned model's row scores recovers
    0, one that reproduces the target's recovers 1, both with a point interval (the paired bootstrap), and a halfway
    one 0.5."""
    from unlearning.files import write_json
    from unlearning.report.attacks import model_attacks
    rows = rows_of({"Task1": 6, "Task2": 6, "Task3": 6})
    generator = torch.Generator().manual_seed(0)
    unlearned = torch.rand(len(rows), generator=generator).mul(0.3).tolist()
    target = [0.7 + u for u in unlearned]
    write_evaluation(tmp_path, "method/npo", rows, unlearned)
    write_evaluation(tmp_path, "target", rows, target)
    _, half_b = split_documents(rows, seed=0)
    by_id = {r["id"]: (u, t) for r, u, t in zip(rows, unlearned, target)}
    pii = {"any": {"documents": 0, "extracted": 0, "rate": None}}
    (tmp_path / "attack" / "method" / "npo").mkdir(parents=True)
    write_json(tmp_path / "attack" / "method" / "npo" / "attack.json", {"half_b": [r["id"] for r in half_b], "attacks": {
        "relearn": {"10": {"scores": {r["id"]: by_id[r["id"]][0] for r in half_b}, "pii": pii},
                    "50": {"scores": {r["id"]: by_id[r["id"]][1] for r in half_b}, "pii": pii}},
        "benign": {"10": {"scores": {r["id"]: sum(by_id[r["id"]]) / 2 for r in half_b}, "pii": pii}},
        "ablation": None}})
    result, _ = model_attacks(tmp_path, "method/npo", resamples=200, confidence=0.95)
    attacks = result["attacks"]
    assert set(attacks) == {"relearn@10", "relearn@50", "benign@10"}
    assert attacks["relearn@10"]["recovery"] == 0 and attacks["relearn@10"]["recovery_interval"] == [0, 0]
    assert attacks["relearn@50"]["recovery"] == 1
    assert attacks["relearn@50"]["recovery_interval"] == pytest.approx([1, 1])
    assert attacks["benign@10"]["recovery"] == pytest.approx(0.5)
    low, high = result["unlearned"]["interval"]
    assert low < result["unlearned"]["forget"] < high   # the forget score itself varies over documents
    assert result["half_b_documents"] == 9


def write_attack(eval_dir, model, half_b, relearned_scores):
    from unlearning.files import write_json
    pii = {"any": {"documents": 0, "extracted": 0, "rate": None}}
    (eval_dir / "attack" / model).mkdir(parents=True)
    write_json(eval_dir / "attack" / model / "attack.json", {"half_b": [r["id"] for r in half_b], "attacks": {
        "relearn": {"10": {"scores": {r["id"]: s for r, s in zip(half_b, relearned_scores)}, "pii": pii}},
        "benign": {}, "ablation": None}})


def test_recovery_is_n_a_where_unlearning_took_nothing_and_paired_against_the_headline(tmp_path):
    """The target (and any run that forgot less than MIN_GAP) has no recovery, not a ratio of noise; a method whose
    attacked scores are the headline's plus 0.1 on every row, from the same unattacked scores, recovers 0.1/0.7 more,
    with a point interval because both are resampled with the same draws."""
    from unlearning.report.attacks import MIN_GAP, attacks_summary
    rows = rows_of({"Task1": 6, "Task2": 6, "Task3": 6})
    generator = torch.Generator().manual_seed(1)
    unlearned = torch.rand(len(rows), generator=generator).mul(0.2).tolist()
    target = [0.7 + u for u in unlearned]
    _, half_b = split_documents(rows, seed=0)
    by_id = dict(zip([r["id"] for r in rows], unlearned))
    for model in ("unlearned", "method/npo"):
        write_evaluation(tmp_path, model, rows, unlearned)
    write_evaluation(tmp_path, "method/rmu", rows, [t - MIN_GAP / 2 for t in target])
    write_evaluation(tmp_path, "target", rows, target)
    write_attack(tmp_path, "unlearned", half_b, [by_id[r["id"]] + 0.2 for r in half_b])
    write_attack(tmp_path, "method/npo", half_b, [by_id[r["id"]] + 0.3 for r in half_b])
    write_attack(tmp_path, "method/rmu", half_b, [0.0 for _ in half_b])
    write_attack(tmp_path, "target", half_b, [0.5 for _ in half_b])
    summary = attacks_summary(tmp_path, ["target", "unlearned", "method/npo", "method/rmu"], 200, 0.95)
    for model in ("target", "method/rmu"):
        assert not summary[model]["recoverable"]
        assert summary[model]["attacks"]["relearn@10"]["recovery"] is None
        assert "minus_headline" not in summary[model]["attacks"]["relearn@10"]
    headline = summary["unlearned"]["attacks"]["relearn@10"]
    assert headline["recovery"] == pytest.approx(0.2 / 0.7) and "minus_headline" not in headline
    versus = summary["method/npo"]["attacks"]["relearn@10"]["minus_headline"]
    assert versus["value"] == pytest.approx(0.1 / 0.7)
    assert versus["interval"] == pytest.approx([0.1 / 0.7, 0.1 / 0.7])


def test_the_recovery_over_seeds_and_the_most_resistant_model(tmp_path):
    """Seeds 0 and 1 of the headline recover 0.2/0.7 and 0.4/0.7 under relearn@10: mean 0.3/0.7, sample std
    0.1414/0.7; a model whose unlearning took nothing is left out of both; the lowest recovery is named per attack."""
    from unlearning.report.attacks import attacks_markdown, attacks_summary, most_resistant, recovery_seed_spread
    rows = rows_of({"Task1": 6, "Task2": 6, "Task3": 6})
    unlearned = [0.1] * len(rows)
    _, half_b = split_documents(rows, seed=0)
    for model in ("unlearned", "seed/1", "seed/2", "method/npo"):
        write_evaluation(tmp_path, model, rows, unlearned if model != "seed/2" else [0.75] * len(rows))
    write_evaluation(tmp_path, "target", rows, [0.8] * len(rows))
    write_attack(tmp_path, "unlearned", half_b, [0.3] * len(half_b))
    write_attack(tmp_path, "seed/1", half_b, [0.5] * len(half_b))
    write_attack(tmp_path, "seed/2", half_b, [0.8] * len(half_b))
    write_attack(tmp_path, "method/npo", half_b, [0.15] * len(half_b))
    summary = attacks_summary(tmp_path, ["unlearned", "seed/1", "seed/2", "method/npo"], 50, 0.95)
    spread = recovery_seed_spread(summary, {0: "unlearned", 1: "seed/1", 2: "seed/2", 3: "seed/3"})
    assert spread["seeds"] == [0, 1]
    assert spread["attacks"]["relearn@10"]["mean"] == pytest.approx(0.3 / 0.7)
    assert spread["attacks"]["relearn@10"]["std"] == pytest.approx(2 ** 0.5 * 0.1 / 0.7)
    assert recovery_seed_spread(summary, {0: "unlearned", 2: "seed/2"}) is None
    assert most_resistant(summary) == {"relearn@10": "method/npo"}
    text = attacks_markdown(summary, {"lr": 1e-3, "trained": "all", "seed": 0}, spread)
    assert "- relearn@10: `method/npo`, 0.071" in text and "| relearn@10 | 0.429 ± 0.202 [0.286, 0.571] |" in text
