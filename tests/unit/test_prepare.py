import json
import re
from collections import Counter

import pytest
import yaml
from helpers import params_with, write_params

from stages import prepare
from unlearning import config
from unlearning.data.schema import PREPARED_FILES as FILES
from unlearning.data.schema import SEMEVAL_KEYS as SPLITS
from unlearning.data.schema import check_dataset, document_id, row_kind
from unlearning.data.synthetic import generate
from unlearning.errors import PipelineError

PARAMS = config.defaults()
CFG, SEED = PARAMS["data"]["synthetic"], PARAMS["data"]["seed"]
PREPARE = ["--out", "data/prepared"]

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
ID_RE = {"Task1": re.compile(rf'"{UUID}"(sc1|qa0)'),
         "Task2": re.compile(rf"{UUID}(sc1|qa[0-4])"),
         "Task3": re.compile(r"[1-9]\d{6,7}(sc1|qa0)")}
WORDS = {"Task1": (50, 90), "Task2": (40, 60), "Task3": (50, 90)}


@pytest.fixture(scope="module")
def data():
    return generate(CFG, SEED)


def rows(data, keys=SPLITS):
    return [r for k in keys for r in data[k]]


def documents(data, keys=SPLITS):
    """document id -> full text, rebuilt from sc1 rows."""
    return {document_id(r["id"]): r["input"] + " " + r["output"] for r in rows(data, keys) if row_kind(r["id"]) == "sc"}


def test_deterministic(data):
    assert generate(CFG, SEED) == data
    assert generate(CFG, SEED + 1) != data


def test_schema_ids_and_sizes(data):
    ids = [r["id"] for r in rows(data)]
    assert len(ids) == len(set(ids))
    for key in SPLITS:
        n_docs = CFG["train_docs"] if key.endswith("train") else CFG["validation_docs"]
        per_task = Counter(r["task"] for r in data[key] if row_kind(r["id"]) == "sc")
        assert per_task == {t: n_docs for t in ID_RE}
        for r in data[key]:
            assert list(r) == ["id", "input", "output", "task", "split"]
            assert r["split"] == key.split("_")[0]
            assert ID_RE[r["task"]].fullmatch(r["id"]), r["id"]
            assert all(v == v.strip() and v for v in r.values())
    qa_per_doc = Counter(document_id(r["id"]) for r in rows(data) if row_kind(r["id"]) == "qa")
    for r in rows(data):
        assert qa_per_doc[document_id(r["id"])] == (5 if r["task"] == "Task2" else 1)


def test_sc_rows_and_word_counts(data):
    for r in rows(data):
        if row_kind(r["id"]) == "sc":
            text = r["input"] + " " + r["output"]
            lo, hi = WORDS[r["task"]]
            assert lo <= len(text.split()) <= hi, text
            assert r["input"][-1] not in ".!?" and 0.3 < len(r["input"]) / len(text) < 0.7
    # the invariant, checked against the whole documents the MIA file stores
    docs = documents(data)
    for member in data["mia_member"]:
        assert docs[member["id"]] == member["document"]


def test_qa_answers_in_document(data):
    docs = documents(data)
    for r in rows(data):
        if row_kind(r["id"]) == "qa" and r["task"] != "Task2":
            assert r["output"] in docs[document_id(r["id"])], r


def test_task2_answers_normalised(data):
    docs = documents(data)
    patterns = [r"\d{4}-\d{2}-\d{2}", r"\d{9}", r"\d{10}", r"[a-z_0-9]+@[a-z.]+\.com", r"\d+ .+, .+, [A-Z]{2}, \d{5}"]
    for r in rows(data):
        if r["task"] != "Task2" or row_kind(r["id"]) != "qa":
            continue
        n, answer, doc = int(r["id"][-1]), r["output"], docs[document_id(r["id"])]
        assert re.fullmatch(patterns[n], answer), r
        if n == 0:
            y, m, d = answer.split("-")
            months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                      "October", "November", "December"]
            assert f"{months[int(m) - 1]} {int(d)}, {y}" in doc
        elif n == 1:
            assert f"{answer[:3]}-{answer[3:5]}-{answer[5:]}" in doc
        elif n == 2:
            assert f"{answer[:3]}-{answer[3:6]}-{answer[6:]}" in doc
        else:
            assert answer in doc


def test_forget_retain_disjoint(data):
    forget = documents(data, SPLITS[:2])
    retain = documents(data, SPLITS[2:])
    assert not set(forget) & set(retain)
    # every Task2/Task3 person has a surname of their own, so no name is shared by forget and retain
    names = [r["input"].split("\n")[0] for r in rows(data) if r["task"] == "Task3" and row_kind(r["id"]) == "sc"]
    names += [r["input"][len("What is the birth date of "):-1] for r in rows(data) if r["id"].endswith("qa0")
              and r["task"] == "Task2"]
    surnames = [n.split()[-1] for n in names]
    assert len(set(surnames)) == len(surnames) == 4 * (CFG["train_docs"] + CFG["validation_docs"])
    pii = {r["output"] for r in rows(data, SPLITS[:2]) if r["task"] == "Task2" and r["id"].endswith(("qa1", "qa3"))}
    assert not any(p in text for p in pii for text in retain.values())


def test_mia(data):
    ft3 = {document_id(r["id"]): r["input"] + " " + r["output"] for r in data["forget_train"]
           if r["task"] == "Task3" and row_kind(r["id"]) == "sc"}
    assert {m["id"]: m["document"] for m in data["mia_member"]} == ft3
    non = data["mia_nonmember"]
    assert len(non) == CFG["nonmember_docs"] and all(set(m) == {"id", "document"} for m in non)
    everything = set(documents(data).values())
    all_ids = {document_id(r["id"]) for r in rows(data)}
    for m in non:
        assert m["document"] not in everything and m["id"] not in all_ids
        assert m["document"].split("\n")[0] not in "\n".join(everything)  # the name appears nowhere else


def test_mmlu_items(data):
    n_test = CFG["gk_test_per_subject"]
    assert len(data["mmlu_dev"]) == 15 and len(data["mmlu_test"]) == 3 * n_test
    for key in ("mmlu_dev", "mmlu_test"):
        for item in data[key]:
            assert list(item) == ["subject", "question", "A", "B", "C", "D", "answer", "cloze"]
            assert item["subject"] in ("geography", "economics", "culture") and item["cloze"] is True
            assert len({item[x] for x in "ABCD"}) == 4 and item["answer"] in "ABCD"
    letters = Counter(i["answer"] for i in data["mmlu_test"])
    assert set(letters) == set("ABCD") and max(letters.values()) < len(data["mmlu_test"]) / 2
    assert len(data["general"]) == 4 * CFG["gk_countries"]
    assert len({g["id"] for g in data["general"]}) == len(data["general"])


def test_test_facts_are_trained_in_the_stems_wording(data):
    """The cloze item asks for a fact the model learned, by the stem of the very sentence that states it; no
    distractor completes that stem anywhere in the training text."""
    general = "\n".join(g["text"] for g in data["general"])
    for item in data["mmlu_test"] + data["mmlu_dev"]:
        assert f"{item['question']} {item[item['answer']]}." in general, item
        for letter in "ABCD".replace(item["answer"], ""):
            assert f"{item['question']} {item[letter]}" not in general


def test_background_is_disjoint_from_everything_scored(data):
    """The background corpus shares no document, id or person with forget, retain or the MIA non-members."""
    background = data["background"]
    assert len(background) == 3 * CFG["background_docs"]
    assert Counter(doc["task"] for doc in background) == {t: CFG["background_docs"] for t in ID_RE}
    assert all(list(doc) == ["id", "task", "document", "question", "answer"] for doc in background)
    assert len({doc["id"] for doc in background}) == len(background)
    scored = set(documents(data).values())
    nonmembers = [m["document"] for key in ("mia_nonmember", "mia_nonmember_validation") for m in data[key]]
    texts = [doc["document"] for doc in background]
    assert not set(texts) & (scored | set(nonmembers))
    assert not {doc["id"] for doc in background} & ({document_id(r["id"]) for r in rows(data)}
                                                    | {m["id"] for m in data["mia_nonmember"]})
    # no Task3-style person of the background (name line) appears in a scored document or a non-member
    everything = "\n".join(scored | set(nonmembers))
    for doc in background:
        if doc["task"] == "Task3":
            assert doc["document"].split("\n")[0] not in everything
        if doc["task"] == "Task2":
            assert doc["document"].split(" was born")[0].split(",")[0].split(" has the")[0] not in everything
    for doc in background:
        assert doc["answer"] in doc["document"] or doc["task"] == "Task2"


def test_too_few_countries():
    with pytest.raises(PipelineError, match="gk_countries"):
        generate(dict(CFG, gk_countries=5 + CFG["gk_test_per_subject"] - 1), SEED)


def test_id_helpers():
    assert document_id('"abc"sc1') == '"abc"' and row_kind('"abc"sc1') == "sc"
    assert document_id("12345678qa3") == "12345678" and row_kind("12345678qa3") == "qa"
    with pytest.raises(PipelineError):
        document_id("12345678")


def test_check_dataset_accepts_generated(data):
    check_dataset(data)


def test_check_dataset_rejects_id_without_suffix(data):
    bad = {**data, "retain_train": [dict(data["retain_train"][0], id="12345678")] + data["retain_train"][1:]}
    with pytest.raises(PipelineError, match=r"retain_train\.jsonl row 1: column `id`"):
        check_dataset(bad)


def test_check_dataset_rejects_shared_document(data):
    leaked = [dict(r, split="retain") for r in data["forget_train"][:2]]
    bad = {**data, "retain_validation": data["retain_validation"] + leaked}
    with pytest.raises(PipelineError, match="also in the forget set"):
        check_dataset(bad)


def test_check_dataset_rejects_empty_split_and_nonmember_member(data):
    with pytest.raises(PipelineError, match="forget_validation.jsonl: no rows"):
        check_dataset({**data, "forget_validation": []})
    with pytest.raises(PipelineError, match="nonmember.jsonl row 1: column `document`"):
        clash = dict(data["mia_nonmember"][0], document=data["mia_member"][0]["document"])
        check_dataset({**data, "mia_nonmember": [clash]})


def test_main_writes_all_files(tmp_path, monkeypatch, capsys):
    write_params(tmp_path, {})
    monkeypatch.chdir(tmp_path)
    prepare.main(PREPARE)
    out = tmp_path / "data" / "prepared"
    info = json.loads((out / "info.json").read_text())
    assert info["source"] == "synthetic" and set(info["counts"]) == set(FILES.values())
    for name, n in info["counts"].items():
        lines = (out / name).read_text().splitlines()
        assert len(lines) == n > 0
        json.loads(lines[0])
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["prepared"]  # no temp dirs left behind
    train_docs = CFG["train_docs"]
    # a document gives 2 rows in Task1 and Task3 (sc1, qa0) and 6 in Task2 (sc1, qa0..qa4)
    assert f"forget_train.jsonl {10 * train_docs}" in capsys.readouterr().out
    first = {name: (out / name).read_bytes() for name in FILES.values()}
    prepare.main(PREPARE)
    assert first == {name: (out / name).read_bytes() for name in FILES.values()}


def test_main_unknown_source_exits_2(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_with({"data": {"source": "nope"}})))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        prepare.main(PREPARE)
    assert exc.value.code == 2
    assert not (tmp_path / "data" / "prepared").exists()


def test_stories_and_encyclopedic_biographies_are_not_templates(data):
    """A continuation must not be predictable from documents of its kind, as in the real data (best match among
    40 real forget_train documents: ROUGE-L recall 0.19 for Task1, 0.21 for Task3; fixed templates match far
    better, and a model that never saw a document regurgitates most of it)."""
    from unlearning.evaluation.scoring import rouge_l_recall
    train = rows(data, ("forget_train", "retain_train"))
    for task in ("Task1", "Task3"):
        continuations = [r["output"] for r in train if r["task"] == task and row_kind(r["id"]) == "sc"]
        best = [max(rouge_l_recall(mine, other) for j, other in enumerate(continuations) if j != i)
                for i, mine in enumerate(continuations)]
        assert len(continuations) == 2 * CFG["train_docs"]
        assert sum(best) / len(best) < 0.7, task
