"""Bad input, params and files: one clear error line on stderr, exit status 2, and nothing written.

Each case runs a stage's main() in a copy of a small work directory (prepared synthetic data and a tiny target
model), and checks the one line and that no file appeared, vanished or changed (params.yaml aside).
"""
import json
import re
import shutil

import pytest
import torch
import yaml
from helpers import assert_one_error_line, params_with, run_stage

from stages import unlearn
from unlearning.config import load_all
from unlearning.data.schema import PREPARED_FILES
from unlearning.data.synthetic import generate
from unlearning.errors import PipelineError
from unlearning.methods.output_loss import OUTPUT_LOSS_METHODS

SMALL = {"train_docs": 1, "validation_docs": 1, "nonmember_docs": 1, "background_docs": 1, "gk_countries": 7,
         "gk_test_per_subject": 2}


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_model_factory):
    """data/prepared (synthetic, without the validation split) and models/target (a random 4-layer OLMo)."""
    base = tmp_path_factory.mktemp("base")
    data = generate(SMALL, 0)
    for key, name in PREPARED_FILES.items():
        if "validation" not in key:
            path = base / "data" / "prepared" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(row) + "\n" for row in data[key]))
    (base / "data" / "prepared" / "info.json").write_text('{"source": "synthetic"}\n')
    model, tokenizer = tiny_model_factory()
    model.save_pretrained(base / "models" / "target")
    tokenizer.save_pretrained(base / "models" / "target")
    return base


def snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "params.yaml"}


def first_row_without_output(path):
    rows = path.read_text().splitlines()
    row = json.loads(rows[0])
    del row["output"]
    path.write_text("\n".join([json.dumps(row)] + rows[1:]) + "\n")


def pickled_target(path):
    """A checkpoint as older tools wrote it: config + pickled state dict, no safetensors."""
    (path / "model.safetensors").unlink()
    torch.save({"w": torch.zeros(1)}, path / "pytorch_model.bin")


FILE_CORRUPTIONS = {
    "invalid json": lambda w: (w / "data/prepared/forget_train.jsonl").write_text('{"id": 1}\n{"id": \n'),
    "not utf-8": lambda w: (w / "data/prepared/retain_train.jsonl").write_bytes(b'{"id": "caf\xe9"}\n'),
    "row without output": lambda w: first_row_without_output(w / "data/prepared/forget_train.jsonl"),
    "empty member file": lambda w: (w / "data/prepared/mia/member.jsonl").write_text(""),
    "no target model": lambda w: shutil.rmtree(w / "models/target"),
    "pickled target": lambda w: pickled_target(w / "models/target"),
}

CASES = [
    # (dvc.yaml stage, params overrides, file corruption, expected text in the one error line)
    ("prepare", None, {"data": {"source": "semeval"}}, None,
     "`data.source` is 'semeval': not 'synthetic', not an existing directory and not a Hugging Face id"),
    ("unlearn", None, {"layers": 24}, None, "`layers` is 24, not a list of three integers"),
    ("unlearn", None, {"layers": [1, 3, 4]}, None, "are not three consecutive"),
    ("unlearn", None, {"layers": [1.0, 2.0, 3.0]}, None, "not a list of three integers"),
    ("unlearn", None, {"layers": [2, 3, 4]}, None, "does not fit the model, which has 4 decoder layers"),
    ("unlearn", None, {"alpha": -1}, None, "`alpha` must be >= 0, got -1"),
    ("unlearn", None, {"alpha": "two"}, None, "`alpha` must be a number, got 'two'"),
    ("unlearn", None, {"device": "gpu"}, None, "`device` is 'gpu'; use auto, cpu, cuda or cuda:N"),
    ("prepare", None, {"data": {"split": "test"}}, None, "`data.split` is 'test'; choose one of train, validation"),
    ("prepare", None, {"data": {"limit": 0}}, None, "`data.limit` must be >= 1, got 0"),
    ("prepare", None, {"data": {"seed": 1.5}}, None, "`data.seed` must be an integer, got 1.5"),
    ("prepare", None, {"data": {"synthetic": {"train_docs": 0}}}, None, "`data.synthetic.train_docs` must be >= 1"),
    ("target", None, {"model": {"source": "hub"}}, None, "`model.source` is 'hub'; choose one of scratch, pretrained"),
    ("target", None, {"model": {"source": "pretrained"}}, None,
     "`model.name_or_path` is None: not an existing directory and not a Hugging Face id (owner/name); use e.g. "
     "allenai/OLMo-1B-0724-hf"),
    ("target", None, {"model": {"dtype": "fp8"}}, None, "`model.dtype` is 'fp8'; choose one of auto, float32"),
    ("target", None, {"model": {"trust_remote_code": "yes"}}, None, "`model.trust_remote_code` must be true or false"),
    ("target", None, {"model": {"allow_pickle": 1}}, None, "`model.allow_pickle` must be true or false, got 1"),
    ("target", None, {"model": {"finetune": {"epochs": 1, "lr": 0, "batch_size": 1}}}, None,
     "`model.finetune.lr` must be > 0, got 0"),
    ("target", None, {"model": {"finetune": {"epochs": 1}}}, None, "missing key `model.finetune.lr`"),
    ("target", None, {"model": {"scratch": {"hidden_size": 0}}}, None, "`model.scratch.hidden_size` must be >= 1"),
    ("target", None, {"model": {"require": {"sc_rouge": -0.1}}}, None, "`model.require.sc_rouge` must be >= 0"),
    ("unlearn", None, {"unlearn": {"method": "dpo"}}, None,
     "`unlearn.method` is 'dpo', not an RMU variant; use adaptive_rmu, rmu (output-loss methods go in `baselines`)"),
    ("unlearn", None, {"unlearn": {"method": "npo"}}, None, "`unlearn.method` is 'npo', not an RMU variant"),
    ("unlearn", None, {"unlearn": {"method": "Adaptive RMU"}}, None,
     "`unlearn.method` is 'Adaptive RMU'; use a method name such as adaptive_rmu"),
    ("unlearn", None, {"sweep": [0, "8"]}, None, "`sweep` is [0, '8']; use a list of distinct first layers"),
    ("unlearn", None, {"sweep": [4, 4]}, None, "`sweep` is [4, 4]; use a list of distinct first layers"),
    ("unlearn", None, {"seeds": [1, 1]}, None, "`seeds` is [1, 1]; use a list of distinct integers"),
    ("unlearn", None, {"methods": ["rmu", "rmu"]}, None,
     "`methods` is ['rmu', 'rmu']; use a list of distinct method names"),
    ("unlearn_method@ga", None, {"methods": ["rmu", "ga"]}, None,
     "`methods` lists 'ga', not an RMU variant; use adaptive_rmu, rmu (output-loss methods go in `baselines`)"),
    ("unlearn_method@npo", None, {"methods": ["npo"]}, None, "`methods` lists 'npo', not an RMU variant"),
    ("unlearn_baseline@rmu", None, {"baselines": ["rmu"]}, None,
     f"`baselines` lists 'rmu', not an output-loss method; use {', '.join(OUTPUT_LOSS_METHODS)} "
     "(RMU variants go in `methods`)"),
    ("unlearn_sweep@2", None, {"layers": [1, 2, 3]}, None,
     "a `sweep` triple [2, 3, 4] does not fit the model, which has 4 decoder layers (valid indices 0..3)"),
    ("unlearn_baseline@npo", None, {"layers": [2, 3, 4]}, None, "`layers` [2, 3, 4] does not fit the model"),
    ("unlearn", None, {"unlearn": {"baseline_params": "mlp"}}, None,
     "`unlearn.baseline_params` is 'mlp'; choose one of layers, all"),
    ("unlearn", None, {"unlearn": {"npo_beta": 0}}, None, "`unlearn.npo_beta` must be > 0, got 0"),
    ("score_sweep@1", None, {"layers": [1, 2, 3]}, None,
     "models/sweep/1: no delta.json and delta.safetensors; run `dvc repro` to build it"),
    ("unlearn", None, {"unlearn": {"direction": "sphere"}}, None, "`unlearn.direction` is 'sphere'; choose one of"),
    ("unlearn", None, {"unlearn": {"beta": 0}}, None, "`unlearn.beta` must be > 0, got 0"),
    ("unlearn", None, {"unlearn": {"steps": 0}}, None, "`unlearn.steps` must be >= 1, got 0"),
    ("unlearn", None, {"unlearn": {"lr": -0.001}}, None, "`unlearn.lr` must be > 0, got -0.001"),
    ("evaluate@target", None, {"evaluate": {"max_new_tokens": 0}}, None,
     "`evaluate.max_new_tokens` must be >= 1, got 0"),
    ("mmlu@target", None, {"mmlu": {"subjects": "anatomy"}}, None, "`mmlu.subjects` is 'anatomy'; use all"),
    ("mmlu@target", None, {"mmlu": {"source": "no such dir"}}, None,
     "`mmlu.source` is 'no such dir': not 'builtin', not an existing directory"),
    ("mmlu@target", None, {"mmlu": {"k": -1}}, None, "`mmlu.k` must be >= 0, got -1"),
    ("mmlu@target", None, {"mmlu": {"limit": 0}}, None, "`mmlu.limit` must be >= 1, got 0"),
    ("evaluate@target", None, {}, "invalid json", "data/prepared/forget_train.jsonl:2: not valid JSON"),
    ("evaluate@target", None, {}, "not utf-8", "data/prepared/retain_train.jsonl:1: not valid UTF-8"),
    ("unlearn", None, {"layers": [1, 2, 3]}, "row without output", "data/prepared/forget_train.jsonl row 1: column `output` is missing"),
    ("mia@target", None, {}, "empty member file", "data/prepared/mia/member.jsonl: no rows"),
    ("evaluate@target", None, {"data": {"split": "validation"}}, None,
     "data/prepared/forget_validation.jsonl: the data source has no forget validation data; set `data.split: train`"),
    ("unlearn", None, {}, "no target model", "models/target: no Hugging Face model here (config.json missing)"),
    ("evaluate@unlearned", None, {}, None,
     "models/unlearned: no delta.json and delta.safetensors; run `dvc repro`"),
    ("unlearn", None, {"layers": [1, 2, 3]}, "pickled target", "models/target: no .safetensors weights"),
]


@pytest.mark.parametrize("name, argv, overrides, corruption, expected", CASES,
                         ids=[f"{c[0]}:{c[3] or next(iter(c[2]), 'defaults')}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_refused_with_one_line(base, tmp_path, stage, name, argv, overrides, corruption, expected):
    work = tmp_path / "work"
    shutil.copytree(base, work)
    if corruption:
        FILE_CORRUPTIONS[corruption](work)
    before = snapshot(work)
    assert_one_error_line(stage(name, overrides, argv, work), expected)
    assert snapshot(work) == before


@pytest.mark.parametrize("name, overrides, expected", [
    ("unlearn", {"unlearn": {"beta": 1e300}, "layers": [0, 1, 2]}, r"unlearn: the forget loss is (nan|inf) at step 0"),
    ("unlearn_baseline@gradient_difference", {"unlearn": {"baseline_lr": 1e30}, "layers": [0, 1, 2]},
     r"unlearn: the (forget|retain) loss is (nan|-?inf) at step \d+; lower `unlearn.baseline_lr`"),
    ("target", {"model": {"train": {"lr": 1e30, "epochs": 2}, "scratch": {"num_hidden_layers": 2}}},
     r"target training: the LM loss is (nan|inf) at step \d+ \(epoch \d\)"),
])
def test_a_diverging_loss_stops_training_and_writes_no_checkpoint(base, tmp_path, stage, name, overrides, expected):
    """Bad input found mid-work: the progress bar may have started, then one error line and no checkpoint."""
    work = tmp_path / "work"
    shutil.copytree(base, work)
    before = snapshot(work)
    status, stderr = stage(name, {"device": "cpu", **overrides}, None, work)
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert status == 2 and len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr
    assert re.search(expected, errors[0]), errors[0]
    assert snapshot(work) == before


def test_there_are_at_least_25_distinct_bad_inputs():
    assert len({(c[0], str(c[1]), json.dumps(c[2], sort_keys=True), c[3]) for c in CASES}) == len(CASES) >= 25


@pytest.mark.parametrize("text, expected", [
    ("layers: [1, 2\n", "params.yaml: not valid YAML"),
    ("- 1\n- 2\n", "params.yaml: expected a mapping of params at the top level"),
])
def test_malformed_params_file(tmp_path, monkeypatch, capsys, text, expected):
    (tmp_path / "params.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        unlearn.main(["--data", "data/prepared", "--target", "models/target", "--out", "d", "--live", "l"])
    assert_one_error_line((exit_.value.code, capsys.readouterr().err), expected)
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]


def test_a_missing_key_names_itself(tmp_path):
    params = params_with({})
    del params["unlearn"]["seed"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(PipelineError, match=r"missing key `unlearn.seed`; add it \(see docs/params.md\)"):
        load_all(tmp_path / "params.yaml")


def test_an_unknown_key_fails_before_any_work_with_the_nearest_key(tmp_path):
    params = params_with({})
    params["unlearn"]["stpes"] = 10
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(PipelineError, match=r"unknown key `unlearn.stpes`; did you mean `unlearn.steps`\? "
                                            r"Every key is in docs/params.md$"):
        load_all(tmp_path / "params.yaml")
    params["colour"] = "red"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(PipelineError, match=r"unknown key `colour`\. Every key is in docs/params.md \(1 more unknown: "
                                            r"unlearn.stpes\)$"):
        load_all(tmp_path / "params.yaml")


def test_an_unknown_key_stops_a_stage_with_one_line(tmp_path):
    result = run_stage(tmp_path, "unlearn", {"unlearn": {"stpes": 10}})
    assert_one_error_line(result, "unknown key `unlearn.stpes`; did you mean `unlearn.steps`?")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_the_command_line_exits_2_with_one_line(tmp_path):
    """What DVC sees: the same refusal from `python -m stages.unlearn`, as a process."""
    assert_one_error_line(run_stage(tmp_path, "unlearn", {"alpha": -1}), "`alpha` must be >= 0, got -1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


@pytest.mark.parametrize("run, expected", [
    ({"DVC_STAGE": "unlearn"}, "recover: fix params.yaml (`git checkout params.yaml` for the committed values) and "
                               "`dvc repro` again; meanwhile `git checkout reports && dvc checkout` puts back the "
                               "results that stage `unlearn` removed"),
    ({"DVC_STAGE": "unlearn", "DVC_EXP_NAME": "exp-1"},
     "recover: `git checkout params.yaml reports && dvc checkout` puts back the committed params and the results that "
     "stage `unlearn` removed; then `dvc exp run` again with a fixed value"),
    ({"DVC_STAGE": "unlearn", "DVC_EXP_NAME": "exp-1", "DVC_ROOT": "/elsewhere"},
     "recover: stage `unlearn` failed in an experiment's own copy; your workspace is unchanged"),
])
def test_under_dvc_a_failed_stage_says_how_to_recover(tmp_path, stage, monkeypatch, run, expected):
    for name in ("DVC_STAGE", "DVC_EXP_NAME", "DVC_ROOT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in run.items():
        monkeypatch.setenv(name, value)
    status, stderr = stage("unlearn", {"alpha": -1})
    assert status == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0] == "error: params.yaml: `alpha` must be >= 0, got -1", stderr
    assert lines[1].startswith(expected), lines[1]


def test_under_dvc_a_crash_keeps_its_traceback_and_says_how_to_recover(monkeypatch, capsys):
    from unlearning.errors import exit_on_error

    @exit_on_error
    def crashing_stage():
        raise ZeroDivisionError("a bug, not bad input")

    monkeypatch.setenv("DVC_STAGE", "report")
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    with pytest.raises(SystemExit) as exit_:
        crashing_stage()
    assert exit_.value.code == 1
    stderr = capsys.readouterr().err.strip().splitlines()
    assert stderr[0] == "Traceback (most recent call last):" and "ZeroDivisionError: a bug, not bad input" in stderr
    assert stderr[-1].startswith("recover: fix params.yaml")
    monkeypatch.delenv("DVC_STAGE")  # outside DVC the exception goes up as it is
    with pytest.raises(ZeroDivisionError):
        crashing_stage()
