import copy
import math

import pytest
import torch

from unlearning.methods.output_loss import OUTPUT_LOSS_METHODS as METHODS
from unlearning.methods.output_loss.kl import kl_retain
from unlearning.methods.output_loss.loop import (Step, forward_logits, logits_from_layer, run_output_loss,
                                                 sequence_logprob, token_nll)
from unlearning.methods.output_loss.npo import npo_loss
from unlearning.methods.training import batch_schedule, encode
from unlearning.models.layers import slice_inputs

LAYERS = [1, 2, 3]
DOWN_PROJ = sorted(f"model.layers.{i}.mlp.down_proj.weight" for i in LAYERS)
CFG = {"method": "gradient_ascent", "baseline_params": "all", "baseline_lr": 1e-3, "retain_weight": 0.5, "npo_beta": 0.1,
       "steps": 6, "batch_size": 2, "max_length": 64, "seed": 0}
CPU = torch.device("cpu")


def batch_logits(model, tokenizer, texts):
    """(logits, input_ids, mask) of `texts` as one batch, padded as run_output_loss pads it."""
    input_ids, mask = encode(tokenizer, texts, 64, CPU)
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=mask).logits, input_ids, mask


def hand_scores(model, tokenizer, text):
    """One text alone, no padding: log p of each next token picked out of torch.log_softmax one by one, and the
    log-softmax at every position (for KL)."""
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids[None]).logits[0], dim=-1)
    return torch.stack([logprobs[t, ids[t + 1]] for t in range(len(ids) - 1)]), logprobs


def hand_nll(model, tokenizer, texts):
    """Token-level mean NLL over all the texts' next tokens."""
    return -torch.cat([hand_scores(model, tokenizer, text)[0] for text in texts]).mean()


def hand_kl(frozen_model, updated_model, tokenizer, texts):
    """KL(frozen || updated) at every position of every text, as explicit sums p_f (log p_f - log p_u)."""
    per_position = []
    for text in texts:
        frozen, updated = hand_scores(frozen_model, tokenizer, text)[1], hand_scores(updated_model, tokenizer, text)[1]
        per_position += [(frozen[t].exp() * (frozen[t] - updated[t])).sum() for t in range(len(frozen))]
    return torch.stack(per_position).mean()


def method_loss(method, forget, retain, retain_weight, beta, reference_forget_seq_logprob, frozen_retain_logits):
    """(loss, forget_loss, retain_loss) of one step of `method`, given the reference its REFERENCE asks for."""
    module = METHODS[method]
    reference = {"forget_sequence_logprob": reference_forget_seq_logprob,
                 "frozen_retain_logits": frozen_retain_logits}.get(getattr(module, "REFERENCE", None))
    return module.loss(Step(*forget, *retain, reference), {"retain_weight": retain_weight, "npo_beta": beta})


def run_baseline(model, tokenizer, forget, retain, layers, cfg, device, log_step=None):
    return run_output_loss(model, tokenizer, forget, retain, layers, METHODS[cfg["method"]], cfg, device, log_step)


def perturbed(model, scale=0.05):
    """A copy of `model` with every weight nudged: a reference that differs from the model being scored."""
    other = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in other.parameters():
            param.add_(scale * torch.randn(param.shape, generator=generator))
    return other


@pytest.fixture
def two_batches(tiny_model, tiny_tokenizer, sentences):
    """Forget and retain batches of two texts of different lengths each (so each has a padded row)."""
    forget_texts, retain_texts = sentences[:2], sentences[2:]
    forget, retain = (batch_logits(tiny_model, tiny_tokenizer, texts) for texts in (forget_texts, retain_texts))
    assert (forget[2] == 0).any() and (retain[2] == 0).any()
    return forget_texts, forget, retain_texts, retain


def test_token_nll_and_sequence_logprob_match_per_sequence_hand_sums(tiny_model, tiny_tokenizer, two_batches):
    forget_texts, (logits, input_ids, mask), _, _ = two_batches
    hand = [hand_scores(tiny_model, tiny_tokenizer, text)[0] for text in forget_texts]
    torch.testing.assert_close(token_nll(logits, input_ids, mask), -torch.cat(hand).mean())
    torch.testing.assert_close(sequence_logprob(logits, input_ids, mask), torch.stack([h.sum() for h in hand]))


def test_padding_does_not_change_any_per_sequence_number(tiny_model, tiny_tokenizer, two_batches):
    """Each row of the padded batch, scored alone with its pads, equals the text scored unpadded."""
    forget_texts, (logits, input_ids, mask), _, _ = two_batches
    frozen_model = perturbed(tiny_model)
    frozen_logits = batch_logits(frozen_model, tiny_tokenizer, forget_texts)[0]
    for row, text in enumerate(forget_texts):
        alone_logits, alone_ids, alone_mask = batch_logits(tiny_model, tiny_tokenizer, [text])
        frozen_alone_logits = batch_logits(frozen_model, tiny_tokenizer, [text])[0]
        padded = slice(row, row + 1)
        torch.testing.assert_close(sequence_logprob(logits[padded], input_ids[padded], mask[padded]),
                                   sequence_logprob(alone_logits, alone_ids, alone_mask))
        torch.testing.assert_close(token_nll(logits[padded], input_ids[padded], mask[padded]),
                                   token_nll(alone_logits, alone_ids, alone_mask))
        torch.testing.assert_close(kl_retain(logits[padded], frozen_logits[padded], mask[padded]),
                                   kl_retain(alone_logits, frozen_alone_logits, alone_mask))


def test_kl_retain_is_zero_at_the_reference_and_matches_a_toy_hand_computation():
    logits = torch.randn(2, 5, 7)
    assert kl_retain(logits, logits, torch.ones(2, 5)).item() == pytest.approx(0.0, abs=1e-6)
    # Position 0: frozen uniform, updated (1/4, 1/2, 1/4). Position 1: frozen (1/2, 1/4, 1/4), updated uniform.
    frozen = torch.log(torch.tensor([[[1 / 3, 1 / 3, 1 / 3], [0.5, 0.25, 0.25]]]))
    updated = torch.log(torch.tensor([[[0.25, 0.5, 0.25], [1 / 3, 1 / 3, 1 / 3]]]))
    kl_0 = (math.log((1 / 3) / 0.25) * 2 + math.log((1 / 3) / 0.5)) / 3
    kl_1 = 0.5 * math.log(0.5 * 3) + 2 * 0.25 * math.log(0.25 * 3)
    assert kl_retain(updated, frozen, torch.tensor([[1, 1]])).item() == pytest.approx((kl_0 + kl_1) / 2)
    assert kl_retain(updated, frozen, torch.tensor([[1, 0]])).item() == pytest.approx(kl_0)   # the pad is out


def test_npo_loss_is_two_over_beta_log_2_at_the_reference_and_matches_a_hand_value():
    seq_logprob = torch.tensor([-3.0, -10.0])
    assert npo_loss(seq_logprob, seq_logprob, beta=0.1).item() == pytest.approx(2 / 0.1 * math.log(2))
    # log ratios -1 and -6, beta 0.5: -(2 / 0.5) * mean(log sigmoid(0.5), log sigmoid(3))
    expected = 4 * (math.log1p(math.exp(-0.5)) + math.log1p(math.exp(-3.0))) / 2
    assert npo_loss(seq_logprob, torch.tensor([-2.0, -4.0]), beta=0.5).item() == pytest.approx(expected)


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_loss_equals_an_independent_computation(tiny_model, tiny_tokenizer, two_batches, method):
    forget_texts, forget, retain_texts, retain = two_batches
    frozen_model, retain_weight, beta = perturbed(tiny_model), 0.5, 0.1
    frozen_forget_seq_logprob = sequence_logprob(*batch_logits(frozen_model, tiny_tokenizer, forget_texts))
    frozen_retain_logits = batch_logits(frozen_model, tiny_tokenizer, retain_texts)[0]
    loss, forget_loss, retain_loss = method_loss(method, forget, retain, retain_weight, beta,
                                                 frozen_forget_seq_logprob, frozen_retain_logits)
    forget_nll, retain_nll = hand_nll(tiny_model, tiny_tokenizer, forget_texts), hand_nll(tiny_model, tiny_tokenizer,
                                                                                          retain_texts)
    if method == "npo":
        log_ratios = [hand_scores(tiny_model, tiny_tokenizer, text)[0].sum() - hand_scores(frozen_model, tiny_tokenizer,
                                                                                          text)[0].sum()
                      for text in forget_texts]
        expected_forget = -(2 / beta) * sum(math.log(1 / (1 + math.exp(beta * r.item()))) for r in log_ratios) / 2
    else:
        expected_forget = -forget_nll.item()
    expected_retain = {"gradient_ascent": retain_nll, "gradient_difference": retain_weight * retain_nll,
                       "kl": retain_weight * hand_kl(frozen_model, tiny_model, tiny_tokenizer, retain_texts),
                       "npo": retain_weight * retain_nll}[method].item()
    expected_loss = expected_forget + (0 if method == "gradient_ascent" else expected_retain)
    assert forget_loss.item() == pytest.approx(expected_forget, rel=1e-5)
    assert retain_loss.item() == pytest.approx(expected_retain, rel=1e-5)
    assert loss.item() == pytest.approx(expected_loss, rel=1e-5)


@pytest.mark.parametrize("method", list(METHODS))
def test_run_baseline_trains_every_weight_on_rmus_schedule(tiny_model, tiny_tokenizer, sentences, method):
    forget, retain = {"Task1": sentences[:2], "Task2": sentences[2:]}, {"Task1": sentences[2:], "Task2": sentences[:2]}
    cfg = dict(CFG, method=method, baseline_params="all")
    before = {name: p.detach().clone() for name, p in tiny_model.named_parameters()}
    forget_ids, forget_mask = encode(tiny_tokenizer, sentences[:2], 64, CPU)
    nll_before = token_nll(batch_logits(tiny_model, tiny_tokenizer, sentences[:2])[0], forget_ids, forget_mask)
    logged = []
    history = run_baseline(tiny_model, tiny_tokenizer, forget, retain, LAYERS, cfg, CPU,
                           log_step=lambda step, task, *losses: logged.append(task))
    assert history["tensors"] == sorted(before) and history["coefficients"] == {}
    assert all(not torch.equal(p, before[name]) for name, p in tiny_model.named_parameters())
    assert logged == [task for task, _, _ in batch_schedule(forget, retain, cfg)[1]]
    losses = torch.tensor(history["forget_loss"] + history["retain_loss"])
    assert len(losses) == 2 * cfg["steps"] and torch.isfinite(losses).all()
    if method == "gradient_ascent":
        nll_after = token_nll(batch_logits(tiny_model, tiny_tokenizer, sentences[:2])[0], forget_ids, forget_mask)
        assert nll_after > nll_before + 0.1
    if method == "npo":   # the reference is the model itself before its first step
        assert history["forget_loss"][0] == pytest.approx(2 / cfg["npo_beta"] * math.log(2), rel=1e-5)
    if method == "kl":
        assert history["retain_loss"][0] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("method", list(METHODS))
def test_baseline_on_layers_changes_only_their_down_proj(tiny_model, tiny_tokenizer, sentences, method):
    before = {name: p.detach().clone() for name, p in tiny_model.named_parameters()}
    history = run_baseline(tiny_model, tiny_tokenizer, {"Task1": sentences[:2]}, {"Task1": sentences[2:]}, LAYERS,
                           dict(CFG, method=method, baseline_params="layers", steps=3), CPU)
    assert history["tensors"] == DOWN_PROJ
    changed = sorted(name for name, p in tiny_model.named_parameters() if not torch.equal(p, before[name]))
    assert changed == DOWN_PROJ


@pytest.mark.parametrize("method", list(METHODS))
def test_bf16_model_trains_and_stays_bf16(tiny_model, tiny_tokenizer, sentences, method):
    model = tiny_model.to(torch.bfloat16)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    history = run_baseline(model, tiny_tokenizer, {"Task1": sentences[:2]}, {"Task1": sentences[2:]}, LAYERS,
                           dict(CFG, method=method, steps=3), CPU)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert any(not torch.equal(p, before[name]) for name, p in model.named_parameters())
    assert torch.isfinite(torch.tensor(history["forget_loss"] + history["retain_loss"])).all()


@torch.no_grad()
def test_a_forward_from_a_cached_layer_input_gives_the_full_models_logits(tiny_model, tiny_tokenizer, sentences):
    input_ids, mask = encode(tiny_tokenizer, sentences, 64, CPU)  # padded: the sentences differ in length
    hidden, layer_kwargs = slice_inputs(tiny_model, 2, 2, input_ids, mask)[:2]
    torch.testing.assert_close(logits_from_layer(tiny_model, 2, hidden, layer_kwargs),
                               forward_logits(tiny_model, input_ids, mask))
