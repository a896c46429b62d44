"""MMLU's letter format with each subject's shared prefix run once (mmlu.letter_logits): the same letter logits as
the whole prompts to rounding, the same predictions, near ties rescored from the whole prompt."""
import pytest
import torch
from helpers import SHARED_DATA

from unlearning.evaluation.mmlu import (CHOICES, answer_token_ids, build_prompt, letter_logits, load_mmlu,
                                        mmlu_accuracy, near_ties)
from unlearning.models.training import build_model

MMLU = SHARED_DATA / "mmlu"
needs_mmlu = pytest.mark.skipif(not MMLU.is_dir(), reason=f"real MMLU not found at {MMLU}")


def mc_row(subject, question, answer, options=("red", "green", "blue", "yellow")):
    return {"subject": subject, "question": question, **dict(zip(CHOICES, options)), "answer": answer}


DEV = [mc_row("geo", "Flag colour of Veloria?", "C"), mc_row("geo", "Sea colour?", "B"),
       mc_row("bio", "Leaf colour?", "B"), mc_row("chem", "Flame colour?", "D")]
TEST = [mc_row("geo", "Sun colour?", "D"), mc_row("geo", "Sky colour at noon over the sea?", "C"),
        mc_row("geo", "Sand?", "D", ("sand", "dune", "grain", "stone")), mc_row("bio", "Rose colour?", "A"),
        mc_row("chem", "Copper flame?", "B"), mc_row("chem", "Sodium flame?", "D"),
        # long enough that its prompt drops shots: a group of its own within geo
        mc_row("geo", "Which colour " + "is the flag of the old republic of Veloria " * 8 + "?", "A")]


def whole_and_cached(model, tokenizer, dev, test, k, batch_size, rescore=False):
    whole, whole_counts = letter_logits(model, tokenizer, dev, test, k, batch_size, prefix_cache=False)
    cached, counts = letter_logits(model, tokenizer, dev, test, k, batch_size, rescore=rescore)
    assert whole_counts == {"cached_prefix": 0, "rescored": 0}
    return whole, cached, counts


@pytest.fixture(scope="module")
def model_and_tokenizer(long_context_model):
    """long_context_model's tokenizer and a random 2-layer OLMo of 480 positions: the long question's prompt keeps one
    shot of two (460 tokens; 511 with both)."""
    _, tokenizer = long_context_model
    scratch = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
               "max_position_embeddings": 480}
    return build_model(scratch, tokenizer, seed=0).eval(), tokenizer


def test_the_cached_prefix_gives_the_whole_prompt_s_letter_logits(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompts = [build_prompt(DEV, row, 2, tokenizer, model.config.max_position_embeddings) for row in TEST]
    assert [prompt.count("Answer: ") for prompt in prompts] == [2, 2, 2, 1, 1, 1, 1]
    whole, cached, counts = whole_and_cached(model, tokenizer, DEV, TEST, k=2, batch_size=2)
    # geo's three short questions and chem's two share a prefix; bio's one question runs whole, and so does the long
    # one, whose prompt has a shot fewer than the rest of geo
    assert counts == {"cached_prefix": 5, "rescored": 0}
    torch.testing.assert_close(cached, whole, rtol=0, atol=1e-5)
    assert cached.argmax(1).tolist() == whole.argmax(1).tolist()


def test_exact_ties_are_rescored_from_the_whole_prompt(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    tied = type(model)(model.config).eval()
    tied.load_state_dict(model.state_dict())
    head = tied.get_output_embeddings().weight
    letters = answer_token_ids(tokenizer)
    with torch.no_grad():
        head[letters[1:]] = head[letters[0]].clone()  # the four letters' logits equal in every pass, to the bit
    _, cached, counts = whole_and_cached(tied, tokenizer, DEV, TEST, k=2, batch_size=2, rescore=True)
    assert counts == {"cached_prefix": 0, "rescored": 5}
    assert (cached == cached[:, :1]).all()
    assert mmlu_accuracy(tied, tokenizer, DEV, TEST, k=2, batch_size=2)["prefix_cache"] == counts


def test_near_ties_scale_with_the_dtype_and_the_logits():
    logits = torch.tensor([[10.0, 10.0 + 2e-5, 3.0, 0.0], [10.0, 9.9, 3.0, 0.0], [0.5, 0.5 + 1e-4, 0.0, 0.0],
                           [100.0, 100.0 + 1e-4, 0.0, 0.0], [1.0, 0.95, 0.0, 0.0], [1.0, 0.5, 0.0, 0.0]])
    # 256 float32 ulps: 3.1e-5 at a scale of 1 (the floor), 3.1e-3 at 100; 16 bfloat16 ulps: 0.125 at 1, 1.25 at 10
    assert near_ties(logits, torch.float32).tolist() == [True, False, False, True, False, False]
    assert near_ties(logits, torch.bfloat16).tolist() == [True, True, True, True, True, False]


@needs_mmlu
def test_real_mmlu_prompts_cached_match_whole(long_context_model):
    model, tokenizer = long_context_model
    dev, test, _ = load_mmlu(str(MMLU), ["anatomy", "high_school_mathematics"], 6, prepared="no prepared data")
    whole, cached, counts = whole_and_cached(model, tokenizer, dev, test, k=5, batch_size=4)
    assert counts == {"cached_prefix": len(test), "rescored": 0}
    torch.testing.assert_close(cached, whole, rtol=0, atol=1e-5)
