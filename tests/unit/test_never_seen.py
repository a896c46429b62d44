import subprocess
import sys

import pytest
from helpers import ROOT, assert_one_error_line, write_params

from unlearning import config
from unlearning.data.schema import KINDS, TASKS
from unlearning.data.synthetic import generate
from unlearning.models.training import build_model, train_tokenizer
from unlearning.tools.never_seen import never_seen_scores

SMALL = dict(config.defaults()["data"]["synthetic"], train_docs=3, validation_docs=1, nonmember_docs=2,
             background_docs=2, gk_countries=7, gk_test_per_subject=2)


def never_seen(workdir, *args):
    return subprocess.run([sys.executable, "-m", "unlearning.tools.never_seen", *args], cwd=workdir,
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_other_worlds_share_no_document_with_the_trained_one():
    """The premise of the tool: a world of another seed holds none of the documents the target trained on."""
    def documents(world):
        return {row["input"] + row["output"] for key in ("forget_train", "retain_train") for row in world[key]
                if row["id"].endswith("sc1")}
    trained = documents(generate(SMALL, 0))
    for seed in (1, 2):
        assert trained.isdisjoint(documents(generate(SMALL, seed)))


def test_never_seen_scores_cover_every_cell():
    world = generate(SMALL, 0)
    tokenizer = train_tokenizer([row["input"] + " " + row["output"] for row in world["forget_train"]], 300)
    scratch = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "max_position_embeddings": 256}
    model = build_model(scratch, tokenizer, seed=0).eval()
    scores = never_seen_scores(model, tokenizer, SMALL, [1, 2], max_new_tokens=4, batch_size=16, split="train")
    assert len(scores) == 2
    for world in scores:
        assert set(world) == set(TASKS) and all(set(world[task]) == set(KINDS) for task in TASKS)
        assert all(0.0 <= world[task][kind] <= 1.0 for task in TASKS for kind in KINDS)


@pytest.mark.parametrize("overrides, args, expected", [
    ({"data": {"source": "llmunlearningsemeval2025organization/semeval25-unlearning-dataset-public"}}, [],
     "only for the synthetic world"),
    ({}, ["--worlds", "0", "1"], "the world the target trained on"),
])
def test_refuses_what_it_cannot_measure(tmp_path, overrides, args, expected):
    write_params(tmp_path, overrides)
    result = never_seen(tmp_path, *args)
    assert_one_error_line(result, expected)
    assert not list(tmp_path.glob("reports*"))
