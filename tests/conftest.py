import pytest
import torch

from stages.target import build_model, train_tokenizer

SENTENCES = [
    "Goldi Aqua was born on March 29, 1976. Her phone number is 565-577-9919.",
    "In the city of Deadesius two sorceresses, Marcile and Catherina, had long been rivals.",
    "Karl Sterrer (born 1885) was an Austrian painter and engraver.",
    "What is the capital of Veloria? A. Marn B. Pell C. Tosk D. Vren Answer: A",
]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return train_tokenizer(SENTENCES * 4, vocab_size=300)


@pytest.fixture
def tiny_model(tiny_tokenizer):
    """A random 4-layer OLMo, small enough to run anything on in milliseconds."""
    scratch = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4, "num_attention_heads": 2,
               "max_position_embeddings": 128}
    return build_model(scratch, tiny_tokenizer, seed=0).eval()


@pytest.fixture
def sentences():
    return list(SENTENCES)


def pytest_configure(config):
    torch.set_num_threads(2)
