"""Real inputs: the organizers' SemEval layout, forget.jsonl/retain.jsonl, Hendrycks MMLU, pretrained models;
and every malformed form of them refused with one error line and nothing written."""
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import SHARED_DATA, assert_one_error_line
from transformers import AutoModelForCausalLM

from unlearning.data.schema import PREPARED_FILES, document_id, row_kind
from unlearning.data.schema import SEMEVAL_KEYS as SPLITS
from unlearning.data.synthetic import generate
from unlearning.errors import PipelineError
from unlearning.evaluation.mmlu import load_mmlu, mmlu_accuracy

SEMEVAL = SHARED_DATA / "semeval25-unlearning-data"
MMLU = SHARED_DATA / "mmlu"
needs_semeval = pytest.mark.skipif(not SEMEVAL.is_dir(), reason=f"real SemEval data not found at {SEMEVAL}")
needs_mmlu = pytest.mark.skipif(not MMLU.is_dir(), reason=f"real MMLU not found at {MMLU}")
SMALL = {"train_docs": 2, "validation_docs": 1, "nonmember_docs": 2, "background_docs": 2, "gk_countries": 12,
         "gk_test_per_subject": 2}
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def write_organizers_layout(data: dict, root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "mia_data").mkdir()
    for key in SPLITS:
        frame = pd.DataFrame(data[key], columns=["id", "input", "output", "task", "split"])
        frame.to_parquet(root / "data" / f"{key}-00000-of-00001.parquet")
    for key in ("member", "nonmember"):
        (root / "mia_data" / f"{key}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data[f"mia_{key}"]))
    return root


def prepared(workdir: Path, key: str) -> list[dict]:
    return [json.loads(line) for line in (workdir / "data" / "prepared" / PREPARED_FILES[key]).open()]


@pytest.fixture
def synthetic_data():
    return generate(SMALL, 0)


def prepare_in(stage, workdir: Path, source, **data_params) -> int:
    """Exit status of the prepare stage run in `workdir` on `source`."""
    workdir.mkdir(exist_ok=True)
    return stage("prepare", {"data": {"source": str(source), **data_params}}, None, workdir)[0]


@needs_semeval
def test_prepare_reads_the_organizers_layout(tmp_path, stage):
    assert prepare_in(stage, tmp_path, SEMEVAL) == 0
    info = json.loads((tmp_path / "data" / "prepared" / "info.json").read_text())
    assert info["counts"] == {"forget_train.jsonl": 1112, "forget_validation.jsonl": 254,
                              "retain_train.jsonl": 1136, "retain_validation.jsonl": 278,
                              "mia/member.jsonl": 150, "mia/nonmember.jsonl": 150,
                              "mia/validation/member.jsonl": 34, "mia/validation/nonmember.jsonl": 34}
    rows = prepared(tmp_path, "forget_train")
    by_id = {r["id"]: r for r in rows}
    kinds = Counter((r["task"], r["id"][-3:]) for r in rows)
    assert set(kinds) == {("Task1", "sc1"), ("Task1", "qa0"), ("Task3", "sc1"), ("Task3", "qa0"),
                          *(("Task2", k) for k in ("sc1", "qa0", "qa1", "qa2", "qa3", "qa4"))}
    task1 = next(r for r in rows if r["task"] == "Task1" and r["id"].endswith("sc1"))
    assert re.fullmatch(rf'"{UUID}"', document_id(task1["id"])) and row_kind(task1["id"]) == "sc"
    task2 = next(r for r in rows if r["task"] == "Task2" and r["id"].endswith("qa0"))
    doc = document_id(task2["id"])
    assert re.fullmatch(UUID, doc)
    answers = [by_id[f"{doc}qa{n}"]["output"] for n in range(5)]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", answers[0]) and re.fullmatch(r"\d{9}", answers[1])
    assert re.fullmatch(r"\d{10}", answers[2]) and "@" in answers[3] and re.search(r"\d{5}", answers[4])
    task3 = next(r for r in rows if r["task"] == "Task3" and r["id"].endswith("qa0"))
    assert re.fullmatch(r"\d+", document_id(task3["id"])) and row_kind(task3["id"]) == "qa"
    # every MIA member is a forget-train Task3 document, whole
    for member in prepared(tmp_path, "mia_member"):
        sc = by_id[member["id"] + "sc1"]
        assert sc["task"] == "Task3" and sc["input"] + " " + sc["output"] == member["document"]


@needs_semeval
def test_prepare_reads_the_official_scripts_jsonl_layout(tmp_path, stage):
    source = tmp_path / "official"
    (source / "mia_data").mkdir(parents=True)
    for split in ("forget", "retain"):
        frame = pd.read_parquet(SEMEVAL / "data" / f"{split}_train-00000-of-00001.parquet")
        frame.drop(columns="split").to_json(source / f"{split}.jsonl", orient="records", lines=True)
    for name in ("member.jsonl", "nonmember.jsonl"):
        shutil.copy(SEMEVAL / "mia_data" / name, source / "mia_data" / name)
    work = tmp_path / "work"
    assert prepare_in(stage, work, source) == 0
    counts = json.loads((work / "data" / "prepared" / "info.json").read_text())["counts"]
    assert counts == {"forget_train.jsonl": 1112, "retain_train.jsonl": 1136, "mia/member.jsonl": 150,
                      "mia/nonmember.jsonl": 150}
    assert {r["split"] for r in prepared(work, "retain_train")} == {"retain"}
    # this layout has no validation split: asking for it is one clear error
    result = stage("evaluate@target", {"data": {"split": "validation"}}, None, work)
    assert_one_error_line(result, "data/prepared/forget_validation.jsonl: the data source has no forget "
                                  "validation data; set `data.split: train`")


def test_limit_keeps_n_documents_per_task_and_their_mia_members(synthetic_data, tmp_path, stage):
    source = write_organizers_layout(synthetic_data, tmp_path / "organizers")
    work = tmp_path / "work"
    assert prepare_in(stage, work, source, limit=1) == 0
    for key in SPLITS:
        docs = Counter(r["task"] for r in prepared(work, key) if r["id"].endswith("sc1"))
        assert docs == {"Task1": 1, "Task2": 1, "Task3": 1}
    kept = {document_id(r["id"]) for r in prepared(work, "forget_train")}
    members = prepared(work, "mia_member")
    assert len(members) == 1 and members[0]["id"] in kept and len(prepared(work, "mia_nonmember")) == 1


def corrupt(data: dict, case: str) -> dict:
    data = {key: [dict(row) for row in rows] if isinstance(rows, list) else rows for key, rows in data.items()}
    if case == "missing column":
        del data["retain_train"][0]["task"]
    elif case == "id without suffix":
        data["forget_train"][2]["id"] = "12345678"
    elif case == "empty split":
        data["forget_validation"] = []
    elif case == "shared document":
        data["retain_validation"] += [dict(row, split="retain") for row in data["forget_train"][:1]]
    elif case == "non-member is a member":
        data["mia_nonmember"][1] = dict(data["mia_member"][0])
    elif case == "non-member text is a member's":
        data["mia_nonmember"][0]["document"] = data["mia_member"][1]["document"]
    return data


PARQUET = "organizers/data/{}-00000-of-00001.parquet"


@pytest.mark.parametrize("case, expected", [
    ("missing column", PARQUET.format("retain_train") + " row 1: column `task` is missing or empty"),
    ("id without suffix", PARQUET.format("forget_train") + " row 3: column `id` '12345678' does not end in sc1"),
    ("empty split", PARQUET.format("forget_validation") + ": no rows"),
    ("shared document", PARQUET.format("retain_validation") + " row {n}: column `id`: document"),
    ("non-member is a member", "organizers/mia_data/nonmember.jsonl row 2: column `id`"),
    ("non-member text is a member's", "organizers/mia_data/nonmember.jsonl row 1: column `document` equals a member"),
])
def test_malformed_organizers_data_is_refused(synthetic_data, tmp_path, stage, case, expected):
    bad = corrupt(synthetic_data, case)
    write_organizers_layout(bad, tmp_path / "organizers")
    expected = expected.format(n=len(synthetic_data["retain_validation"]) + 1)
    (tmp_path / "work").mkdir()
    result = stage("prepare", {"data": {"source": str(tmp_path / "organizers")}}, None, tmp_path / "work")
    assert_one_error_line(result, expected)
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["params.yaml"]


def test_missing_files_are_named(synthetic_data, tmp_path, stage):
    source = write_organizers_layout(synthetic_data, tmp_path / "organizers")
    (source / "mia_data" / "member.jsonl").unlink()
    (tmp_path / "a").mkdir()
    result = stage("prepare", {"data": {"source": str(source)}}, None, tmp_path / "a")
    assert_one_error_line(result, "organizers/mia_data/member.jsonl: not found while")
    assert "MIA members and non-members come in pairs" in result[1]
    (source / "data" / "retain_train-00000-of-00001.parquet").unlink()
    result = stage("prepare", {"data": {"source": str(source)}}, None, tmp_path / "a")
    assert_one_error_line(result, "organizers/data/retain_train-00000-of-00001.parquet: not found; expected the "
                                  "organizers' layout")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["params.yaml"]


@pytest.mark.parametrize("layout", ["jsonl", "organizers"])
def test_without_mia_files_prepare_warns_and_writes_no_mia_data(synthetic_data, tmp_path, stage, layout):
    """As the official script without --mia_data_path: a warning that the MIA and final scores will be n/a."""
    if layout == "jsonl":
        source = tmp_path / "jsonl"
        source.mkdir()
        for split in ("forget", "retain"):
            (source / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n"
                                                            for r in synthetic_data[f"{split}_train"]))
    else:
        source = write_organizers_layout(synthetic_data, tmp_path / "organizers")
        shutil.rmtree(source / "mia_data")
    (tmp_path / "work").mkdir()
    code, err = stage("prepare", {"data": {"source": str(source)}}, None, tmp_path / "work")
    assert code == 0, err
    assert "no MIA files (member.jsonl and nonmember.jsonl); the MIA score and the final score will be n/a" in err
    prepared = tmp_path / "work" / "data" / "prepared"
    assert (prepared / "forget_train.jsonl").is_file() and not (prepared / "mia").exists()


def local_mmlu(subjects="all", limit=None):
    return load_mmlu(str(MMLU), subjects, limit, prepared="no prepared data")


@needs_mmlu
def test_real_mmlu_subset_scores_a_tiny_model(long_context_model):
    model, tokenizer = long_context_model
    dev, test, source = local_mmlu(subjects=["anatomy", "astronomy", "virology"], limit=3)
    assert source.startswith("MMLU (Hendrycks CSV") and len(dev) == 15
    result = mmlu_accuracy(model, tokenizer, dev, test, k=5, batch_size=4)
    assert result["n"] == 9 and 0.0 <= result["accuracy"] <= 1.0
    assert set(result["per_subject"]) == {"anatomy", "astronomy", "virology"}
    _, all_anatomy, _ = local_mmlu(subjects=["anatomy"])
    assert len(all_anatomy) == len((MMLU / "test" / "anatomy_test.csv").read_text().splitlines()) == 135
    assert all(row["answer"] in "ABCD" and row["subject"] == "anatomy" for row in all_anatomy)


@pytest.mark.parametrize("setup, overrides, expected", [
    ("builtin", {"data": {"source": "organizers"}, "mmlu": {"source": "builtin"}},
     "mmlu.source builtin is the synthetic general-knowledge set, and data/prepared has none"),
    ("hendrycks", {"mmlu": {"source": "mmlu", "subjects": ["anatomy", "cooking"]}},
     "`mmlu.subjects` names ['cooking'], not in mmlu"),
    ("bad answer", {"mmlu": {"source": "mmlu"}}, "mmlu/test/anatomy_test.csv row 2: column `answer` is 'E'"),
    ("no dev", {"mmlu": {"source": "mmlu"}}, "mmlu/dev: no <subject>_dev.csv files"),
])
def test_malformed_mmlu_is_refused(tmp_path, stage, setup, overrides, expected):
    (tmp_path / "organizers").mkdir()
    for split in ("dev", "test"):
        (tmp_path / "mmlu" / split).mkdir(parents=True)
        answers = "AEC" if setup == "bad answer" and split == "test" else "ABC"
        rows = "".join(f'"Q{i}?",a,b,c,d,{a}\n' for i, a in enumerate(answers))
        if not (setup == "no dev" and split == "dev"):
            (tmp_path / "mmlu" / split / f"anatomy_{split}.csv").write_text(rows)
    work = tmp_path / "work"
    work.mkdir()
    for path in ("organizers", "mmlu"):
        (work / path).symlink_to(tmp_path / path)
    assert_one_error_line(stage("mmlu@target", overrides, None, work), expected)
    assert sorted(p.name for p in work.iterdir()) == ["mmlu", "organizers", "params.yaml"]


def test_pretrained_source_loads_a_local_model_and_finetunes_it(tmp_path, stage, tiny_model, tiny_tokenizer):
    """model.source pretrained: a local HF directory (safetensors), fine-tuned on forget + retain, saved as the
    target; a pickle-only directory is refused."""
    base = tmp_path / "base"
    tiny_model.save_pretrained(base, safe_serialization=True)
    tiny_tokenizer.save_pretrained(base)
    work = tmp_path / "work"
    assert prepare_in(stage, work, "synthetic", synthetic=SMALL) == 0
    pretrained = {"device": "cpu", "model": {"source": "pretrained", "name_or_path": str(base), "require": None,
                                             "finetune": {"epochs": 1, "lr": 1e-3, "batch_size": 32}}}
    assert stage("target", pretrained, None, work)[0] == 0
    saved = json.loads((work / "models" / "target" / "training.json").read_text())
    assert saved["source"] == "pretrained" and len(saved["epoch_losses"]) == 1 and saved["checks"] is None
    finetuned = AutoModelForCausalLM.from_pretrained(work / "models" / "target")
    changed = [name for name, p in finetuned.named_parameters() if not torch.equal(p, tiny_model.get_parameter(name))]
    assert changed, "fine-tuning changed nothing"

    pickled = tmp_path / "pickled"  # a checkpoint as older tools wrote it: config + pickled state dict only
    tiny_model.config.save_pretrained(pickled)
    tiny_tokenizer.save_pretrained(pickled)
    torch.save(tiny_model.state_dict(), pickled / "pytorch_model.bin")
    result = stage("target", {"model": {"source": "pretrained", "name_or_path": str(pickled)}}, None, work)
    assert_one_error_line(result, f"{pickled}: no .safetensors weights")


def test_hub_dataset_id_goes_through_datasets(synthetic_data, tmp_path, monkeypatch, stage):
    """A hub id is loaded with datasets.load_dataset: the four splits by name, the MIA files by hf:// URL. The hub is
    stood in for by a local copy of the same layout, read with the same datasets builders (no network)."""
    import datasets

    source, hub_id, real_load = write_organizers_layout(synthetic_data, tmp_path / "hub"), "org/semeval", datasets.load_dataset
    calls = []

    def load_dataset(path, data_files=None, split=None):
        calls.append(path if data_files is None else data_files)
        if data_files is None:
            assert path == hub_id
            return real_load("parquet", data_files={k: str(source / "data" / f"{k}-00000-of-00001.parquet")
                                                    for k in SPLITS})
        local = Path(data_files.replace(f"hf://datasets/{hub_id}", str(source)))
        if not local.exists():
            raise FileNotFoundError(data_files)
        return real_load(path, data_files=str(local), split=split)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    assert prepare_in(stage, tmp_path / "work", hub_id) == 0
    assert calls[0] == hub_id and f"hf://datasets/{hub_id}/mia_data/member.jsonl" in calls
    for key in (*SPLITS, "mia_member", "mia_nonmember"):
        assert prepared(tmp_path / "work", key) == synthetic_data[key]
    assert not (tmp_path / "work" / "data" / "prepared" / "mia" / "validation").exists()


def test_cais_mmlu_from_the_hub_maps_choices_and_answer_indices(monkeypatch):
    """mmlu.source cais/mmlu: read with datasets.load_dataset(name, "all"); the hub is stood in for by in-memory
    datasets of the same schema (no network)."""
    import datasets

    hub = {split: datasets.Dataset.from_list([
        {"question": f"{split} q{i}?", "subject": subject, "choices": ["w", "x", "y", "z"], "answer": i % 4}
        for subject in ("anatomy", "virology") for i in range(3)]) for split in ("dev", "test")}

    def load_dataset(name, config, split):
        assert (name, config) == ("cais/mmlu", "all")
        return hub[split]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    dev, test, source = load_mmlu("cais/mmlu", ["virology"], 2, prepared="no prepared data")
    assert source == "MMLU (cais/mmlu)" and len(dev) == 3 and len(test) == 2
    assert test[1] == {"subject": "virology", "question": "test q1?", "A": "w", "B": "x", "C": "y", "D": "z",
                       "answer": "B"}
    hub["test"] = datasets.Dataset.from_list([{"question": "q", "subject": "anatomy", "choices": ["a", "b"],
                                               "answer": 0}])
    with pytest.raises(PipelineError, match="cais/mmlu test row 1: expected 4 `choices`"):
        load_mmlu("cais/mmlu", ["virology"], 2, prepared="no prepared data")
