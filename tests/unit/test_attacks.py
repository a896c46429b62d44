"""Membership-inference attacks: each score on hand-made numbers, the batched forward's per-token numbers against
a direct computation, AUC and MIA score per attack, and the `mia.min_k` check."""
import zlib

from hypothesis import given
from hypothesis import strategies as st
import pytest
import torch
import yaml
from helpers import assert_one_error_line, params_with

from unlearning.config import load_all
from unlearning.errors import PipelineError
from unlearning.evaluation.mia import (ATTACKS, attack_metrics, attack_scores, loss_attack, loss_rows, min_k_attack,
                                       min_k_plus_plus_attack, zlib_attack)
from unlearning.evaluation import token_stats
from unlearning.evaluation.token_stats import TokenStats, document_losses, document_token_stats


def t(values):
    return torch.tensor(values, dtype=torch.float64)


def test_loss_attack_is_minus_the_mean_nll():
    assert loss_attack(t([-1.0, -2.0, -3.0])) == pytest.approx(-2.0)  # mean NLL 2


def test_zlib_attack_divides_the_mean_nll_by_the_compressed_length():
    text = "abcabcabcabcabcabcabcabc"
    assert len(zlib.compress(text.encode("utf-8"))) == 13  # the premise of the numbers below
    assert zlib_attack(t([-1.0, -2.0, -3.0]), text) == pytest.approx(-2.0 / 13)
    # the same loss on less compressible text scores lower (less likely a member)
    assert zlib_attack(t([-1.0, -2.0, -3.0]), "the cat sat on the mat") == pytest.approx(-2.0 / 27)


@pytest.mark.parametrize("k, expected", [
    (0.4, -4.0),          # floor(0.4 * 5) = 2 lowest: (-5 - 3) / 2
    (0.5, -4.0),          # floor(2.5) = 2, not ceil's 3
    (0.2, -5.0),          # 1 lowest
    (0.1, -5.0),          # floor(0.5) = 0, raised to one token
    (1.0, -8.6 / 5),      # every token
])
def test_min_k_attack_means_the_lowest_k_fraction(k, expected):
    assert min_k_attack(t([-0.1, -5.0, -0.2, -3.0, -0.3]), k) == pytest.approx(expected)


def test_min_k_plus_plus_standardises_each_token_then_means_the_lowest():
    log_probs = t([-1.0, -2.0, -0.5, -4.0])
    mu = t([-1.5, -1.0, -1.0, -2.0])
    sigma = t([0.5, 2.0, 1.0, 1.0])
    # z = (log p - mu) / sigma = [0.5/0.5, -1/2, 0.5/1, -2/1] = [1, -0.5, 0.5, -2];
    # k = 0.5 of 4 tokens: the 2 lowest, (-2 + -0.5) / 2 = -1.25
    assert min_k_plus_plus_attack(log_probs, mu, sigma, 0.5) == pytest.approx(-1.25)
    # Min-K% on the same tokens ranks differently: (-4 + -2) / 2
    assert min_k_attack(log_probs, 0.5) == pytest.approx(-3.0)


def test_min_k_plus_plus_is_finite_on_a_one_hot_distribution():
    # sigma 0: the model is certain; the certain token scores 0, another one very low but finite
    assert min_k_plus_plus_attack(t([0.0]), t([0.0]), t([0.0]), 1.0) == 0.0
    score = min_k_plus_plus_attack(t([-800.0]), t([0.0]), t([0.0]), 1.0)
    assert score < -1e10 and torch.isfinite(torch.tensor(score))


def direct_stats(model, tokenizer, text):
    """One document alone, no padding, from the definitions: log p of each next token, mu = sum_v p log p and
    sigma = sqrt(sum_v p (log p)^2 - mu^2)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].double()
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    mu = (probs * log_probs).sum(-1)
    sigma = ((probs * log_probs.square()).sum(-1) - mu.square()).sqrt()
    return log_probs.gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1), mu, sigma


@pytest.mark.parametrize("batch_size, chunk, order", [(1, 512, 1), (4, 512, 1), (4, 3, -1), (2, 1, -1)])
def test_batched_token_stats_equal_a_direct_computation(tiny_model, tiny_tokenizer, sentences, monkeypatch,
                                                        batch_size, chunk, order):
    """In any order of lengths (batches are formed by length, results come back in the given order), with the LM
    head applied a few positions at a time."""
    monkeypatch.setattr(token_stats, "CHUNK", chunk)
    monkeypatch.setattr(token_stats, "MAX_PADDING", float("inf"))   # batches of batch_size, however they pad
    sentences = sentences[::order]
    lengths = {len(tiny_tokenizer(s, add_special_tokens=False)["input_ids"]) for s in sentences}
    assert len(lengths) == len(sentences)  # documents of different lengths: batch_size 4 pads all but one
    stats = document_token_stats(tiny_model, tiny_tokenizer, sentences, batch_size)
    for text, doc_stats in zip(sentences, stats):
        for got, expected in zip(doc_stats, direct_stats(tiny_model, tiny_tokenizer, text)):
            assert got.shape == expected.shape
            assert torch.allclose(got, expected, atol=1e-5)
        assert (doc_stats.sigma > 0).all()
    losses = document_losses(tiny_model, tiny_tokenizer, sentences, batch_size)
    assert losses == pytest.approx([-direct_stats(tiny_model, tiny_tokenizer, s)[0].mean().item() for s in sentences],
                                   abs=1e-5)


@given(st.lists(st.integers(2, 300), max_size=60), st.integers(1, 16))
def test_length_batches_pad_at_most_max_padding(lengths, batch_size):
    """Every document once, shortest first, batches of at most batch_size, and a batch of several documents pads at
    most MAX_PADDING of its real positions."""
    batches = token_stats.length_batches(lengths, batch_size)
    order = [i for batch in batches for i in batch]
    assert sorted(order) == list(range(len(lengths)))
    assert [lengths[i] for i in order] == sorted(lengths)
    for batch in batches:
        assert 1 <= len(batch) <= batch_size
        real = sum(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= (1 + token_stats.MAX_PADDING) * real
    # documents of one length never pad: they fill whole batches
    assert token_stats.length_batches([7] * 10, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_peaked_positions_get_the_float64_statistics():
    """A memorising model's certain positions: float32 underflows the other tokens' probabilities and sigma with
    them; those positions are recomputed in float64 and equal a float64 computation, the others agree to float32."""
    torch.manual_seed(0)
    logits = torch.randn(6, 50)
    logits[1, 7] = 150.0  # every other token below e^-145: 0 in float32, not in float64
    logits[4, 3] = 300.0
    next_ids = torch.tensor([0, 7, 2, 3, 3, 9])
    got = token_stats.next_token_stats(logits, next_ids)
    expected = token_stats._moments(logits.double(), next_ids)
    float32_sigma = token_stats._moments(logits, next_ids)[2]
    assert float32_sigma[1] == 0 and got.sigma[1] > 0  # float32 alone would lose it
    for values, exact in zip(got, expected):
        assert values.dtype == torch.float64
        assert torch.equal(values[[1, 4]], exact[[1, 4]])
        assert torch.allclose(values, exact, rtol=1e-5, atol=1e-6)


def test_float32_moments_over_a_50k_vocabulary_equal_the_float64_definitions():
    """The one-exponential formula in float32, on flat and moderately peaked rows of an OLMo-sized vocabulary,
    against log-softmax and the moments of log p in float64."""
    torch.manual_seed(0)
    logits = torch.randn(8, 50_304) * torch.tensor([0.1, 1, 2, 4, 8, 12, 16, 20])[:, None]
    next_ids = torch.randint(0, 50_304, (8,))
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    mu = (log_probs.exp() * log_probs).sum(-1)
    sigma = ((log_probs.exp() * (log_probs - mu[:, None]).square()).sum(-1)).sqrt()
    got = token_stats._moments(logits, next_ids)
    for values, exact in zip(got, (log_probs.gather(-1, next_ids[:, None]).squeeze(-1), mu, sigma)):
        assert values.dtype == torch.float32
        assert torch.allclose(values.double(), exact, rtol=2e-5, atol=1e-5)


def test_each_attack_separates_a_separable_toy_case():
    def stats(level):
        return TokenStats(t([level, level - 0.5, level - 1.0]), t([-2.0] * 3), t([1.0] * 3))
    text = "abcabcabcabcabcabcabcabc"
    members = [attack_scores(stats(-0.1), text, 0.5), attack_scores(stats(-0.2), text, 0.5)]
    nonmembers = [attack_scores(stats(-3.0), text, 0.5), attack_scores(stats(-4.0), text, 0.5)]
    metrics = attack_metrics(members, nonmembers)
    assert metrics["attacks"] == {name: {"auc": 1.0, "score": 0.0} for name in ATTACKS}
    assert metrics["strongest"] == "loss"  # all tied: the first
    reversed_metrics = attack_metrics(nonmembers, members)
    assert reversed_metrics["attacks"] == {name: {"auc": 0.0, "score": 0.0} for name in ATTACKS}


def test_the_strongest_attack_has_the_lowest_score_first_on_ties():
    def scores(loss, zlib_, min_k, min_k_plus_plus):  # any further attack of the table: 0 for all, at chance
        return {**dict.fromkeys(ATTACKS, 0.0), "loss": loss, "zlib": zlib_, "min_k": min_k,
                "min_k_plus_plus": min_k_plus_plus}
    members = [scores(1, 2, 0, 1), scores(0, 3, 0, 3)]
    nonmembers = [scores(1, 0, 1, 2), scores(0, 1, 1, 0)]
    metrics = attack_metrics(members, nonmembers)
    assert metrics["attacks"] == {
        **{name: {"auc": 0.5, "score": 1.0} for name in ATTACKS},
        "loss": {"auc": 0.5, "score": 1.0},              # identical spreads: chance
        "zlib": {"auc": 1.0, "score": 0.0},              # every member above every non-member
        "min_k": {"auc": 0.0, "score": 0.0},             # every member below: just as informative
        "min_k_plus_plus": {"auc": 0.75, "score": 0.5},  # 3 of the 4 member/non-member pairs ordered
    }
    assert metrics["strongest"] == "zlib"  # tied with min_k at 0, and first


def test_a_nan_attack_score_is_one_clear_error():
    nan_scores = {name: float("nan") for name in ATTACKS}
    with pytest.raises(PipelineError, match="an attack score is nan or inf"):
        attack_metrics([nan_scores], [nan_scores])


def test_loss_rows_keep_the_nll_and_add_the_other_attacks():
    scores = {**dict.fromkeys(ATTACKS, -5.0), "loss": -2.0, "zlib": -0.1, "min_k": -3.0, "min_k_plus_plus": -1.0}
    assert loss_rows([{"id": "d1", "document": "x"}], 1, [2.0], [scores]) == [
        {**dict.fromkeys(ATTACKS, -5.0), "id": "d1", "member": 1, "loss": 2.0, "zlib": -0.1, "min_k": -3.0,
         "min_k_plus_plus": -1.0}]


def params_with_min_k(tmp_path, value):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_with({"mia": {"min_k": value}})))
    return tmp_path / "params.yaml"


@pytest.mark.parametrize("value", [0, -0.2, 1.5, "0.2", True, None, float("nan")])
def test_min_k_must_be_a_fraction(tmp_path, value):
    with pytest.raises(PipelineError, match=r"`mia.min_k` must be a fraction in \(0, 1\], e.g. 0.2, got "):
        load_all(params_with_min_k(tmp_path, value))


@pytest.mark.parametrize("value", [1, 0.2, 1e-3])
def test_min_k_accepts_fractions(tmp_path, value):
    assert load_all(params_with_min_k(tmp_path, value))["mia"]["min_k"] == value


def test_the_mia_stage_refuses_a_bad_min_k_with_one_line(tmp_path, stage):
    assert_one_error_line(stage("mia@target", {"mia": {"min_k": 0}}),
                          "`mia.min_k` must be a fraction in (0, 1], e.g. 0.2, got 0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
