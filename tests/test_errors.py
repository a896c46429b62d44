"""Bad input: one clear error line on stderr, exit status 2, and nothing written."""
import pytest
from conftest import assert_one_error_line, run_stage


@pytest.mark.parametrize("command, overrides, expected", [
    (["stages.prepare"], {"data": {"source": "semeval"}},
     "`data.source` is 'semeval': not 'synthetic', not an existing directory and not a Hugging Face id"),
    (["stages.unlearn"], {"layers": 24}, "`layers` is 24, not a list of three integers"),
    (["stages.unlearn"], {"layers": [24, 26, 27]}, "are not three consecutive"),
    (["stages.unlearn"], {"alpha": -1}, "`alpha` must be >= 0, got -1"),
    (["stages.unlearn"], {}, "models/target: no Hugging Face model here (config.json missing)"),
    (["stages.evaluate", "--model", "unlearned"], {}, "data/prepared/forget_train.jsonl: file not found"),
    (["stages.target"], {"model": {"source": "pretrained"}}, "`model.name_or_path` is None; with model.source "
                                                             "pretrained give a Hugging Face id"),
    (["stages.target"], {"model": {"dtype": "fp8"}}, "`model.dtype` is 'fp8'; choose one of auto, float32"),
    (["stages.target"], {"model": {"trust_remote_code": "yes"}}, "`model.trust_remote_code` must be true or false"),
    (["stages.prepare"], {"data": {"split": "test"}}, "`data.split` is 'test'; choose one of train, validation"),
    (["stages.prepare"], {"data": {"limit": 0}}, "`data.limit` must be >= 1, got 0"),
    (["stages.mmlu", "--model", "target"], {"mmlu": {"subjects": "anatomy"}}, "`mmlu.subjects` is 'anatomy'; use all"),
    (["stages.mmlu", "--model", "target"], {"mmlu": {"source": "no such dir"}},
     "`mmlu.source` is 'no such dir': not 'builtin', not an existing directory"),
])
def test_bad_input_is_refused_with_one_line(tmp_path, stage, command, overrides, expected):
    module, *argv = command
    assert_one_error_line(stage(module, overrides, argv or None), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_the_command_line_exits_2_with_one_line(tmp_path):
    """What DVC sees: the same refusal from `python -m stages.unlearn`, as a process."""
    assert_one_error_line(run_stage(tmp_path, ["stages.unlearn"], {"alpha": -1}), "`alpha` must be >= 0, got -1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
