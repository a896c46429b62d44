"""DVC stage `python -m stages.prepare`: load the dataset named by `data.source`, check it, write data/prepared/.

`data.source` is `synthetic` (the built-in miniature), a directory (the organizers' layout or forget.jsonl +
retain.jsonl, see stages/semeval.py) or a Hugging Face dataset id. `data.limit` keeps the first N documents per
task in every split (and the MIA documents that go with them), for small runs on the real data.
"""
import re
from collections import defaultdict
from pathlib import Path

from . import semeval, synthetic
from .errors import PipelineError, exit_on_error
from .io import PREPARED, PREPARED_FILES, SPLITS, atomic_output, write_json, write_jsonl
from .params import get, load_validated
from .scoring import document_id

COLUMNS = ("id", "input", "output", "task", "split")
TASKS = ("Task1", "Task2", "Task3")
VALID_SUFFIX = re.compile(r"(sc1|qa[0-4])$")
REQUIRED = ("forget_train", "retain_train", "mia_member", "mia_nonmember")
MIA_PAIRS = (("mia_member", "mia_nonmember", "forget_train"),
             ("mia_member_validation", "mia_nonmember_validation", "forget_validation"))


def load_source(params: dict) -> tuple[dict, dict]:
    """(data key -> rows, data key -> the file it came from)."""
    source = get(params, "data.source")
    if source == "synthetic":
        data = synthetic.generate(get(params, "data.synthetic"), get(params, "data.seed"))
        return data, {key: f"synthetic {name}" for key, name in PREPARED_FILES.items()}
    if not Path(source).is_dir():
        return semeval.load_organizers_hub(source)
    if semeval.is_jsonl_layout(Path(source)):
        return semeval.load_jsonl_layout(Path(source))
    return semeval.load_organizers_dir(Path(source))


def _check_rows(key: str, rows: list[dict], name: str) -> None:
    seen = set()
    for n, row in enumerate(rows, 1):
        for col in COLUMNS:
            if not isinstance(row.get(col), str) or not row[col]:
                raise PipelineError(f"{name} row {n}: column `{col}` is missing or empty")
        row_id = row["id"]
        if not VALID_SUFFIX.search(row_id) or not document_id(row_id):
            raise PipelineError(f"{name} row {n}: column `id` {row_id!r} does not end in sc1 or qa0..qa4")
        if row_id in seen:
            raise PipelineError(f"{name} row {n}: column `id` {row_id!r} is repeated")
        seen.add(row_id)
        if row["task"] not in TASKS:
            raise PipelineError(f"{name} row {n}: column `task` is {row['task']!r}; expected one of {TASKS}")
        if row["split"] != key.split("_")[0]:
            raise PipelineError(f"{name} row {n}: column `split` is {row['split']!r} in a {key} file")


def check_dataset(data: dict, files: dict | None = None) -> None:
    """Raise PipelineError, naming file, row and column, on the first problem found. `files` names the file each
    data key came from (default: its name under data/prepared)."""
    files = {**PREPARED_FILES, **(files or {})}
    for key in REQUIRED:
        if key not in data:
            raise PipelineError(f"{files[key]}: the data source has none; every source needs forget and "
                                "retain train rows and MIA members and non-members")
    for key in SPLITS + tuple(key for pair in MIA_PAIRS for key in pair[:2]):
        if key in data and not data[key]:
            raise PipelineError(f"{files[key]}: no rows; every split given needs at least one document")
    for key in SPLITS:
        if key in data:
            _check_rows(key, data[key], files[key])
    forget = {document_id(r["id"]) for key in ("forget_train", "forget_validation") for r in data.get(key, [])}
    for key in ("retain_train", "retain_validation"):
        for n, row in enumerate(data.get(key, []), 1):
            if document_id(row["id"]) in forget:
                raise PipelineError(f"{files[key]} row {n}: column `id`: document {document_id(row['id'])!r} is "
                                    "also in the forget set; forget and retain must not share documents")
    for member_key, nonmember_key, _ in MIA_PAIRS:
        if (member_key in data) != (nonmember_key in data):
            missing = nonmember_key if member_key in data else member_key
            raise PipelineError(f"{files[missing]}: missing; MIA members and non-members come in pairs")
        for key in (member_key, nonmember_key):
            for n, row in enumerate(data.get(key, []), 1):
                for col in ("id", "document"):
                    if not isinstance(row.get(col), str) or not row[col]:
                        raise PipelineError(f"{files[key]} row {n}: column `{col}` is missing or empty")
        members = data.get(member_key, [])
        member_ids, member_docs = {m["id"] for m in members}, {m["document"] for m in members}
        for n, row in enumerate(data.get(nonmember_key, []), 1):
            if row["id"] in member_ids:
                raise PipelineError(f"{files[nonmember_key]} row {n}: column `id` {row['id']!r} is also a "
                                    "member; a non-member must be a document the model never saw")
            if row["document"] in member_docs:
                raise PipelineError(f"{files[nonmember_key]} row {n}: column `document` equals a member "
                                    "document; a non-member must be a document the model never saw")


def member_document(member_id: str) -> str:
    """The document an MIA member id names: the organizers' train members use the document id, their validation
    members the id of its sc1 row."""
    return document_id(member_id) if VALID_SUFFIX.search(member_id) else member_id


def limit_documents(data: dict, limit: int | None) -> dict:
    """The first `limit` documents per task of every split (MIA members first, so that the loss attack keeps its
    members), the MIA members among them and as many non-members. None keeps everything."""
    if limit is None:
        return data
    out = dict(data)
    member_keys = {forget_key: member_key for member_key, _, forget_key in MIA_PAIRS}
    for key in SPLITS:
        if key not in data:
            continue
        members = {member_document(m["id"]) for m in data.get(member_keys.get(key), [])}
        first_seen = {}
        for row in data[key]:
            first_seen.setdefault(document_id(row["id"]), row["task"])
        kept, per_task = set(), defaultdict(int)
        for doc in sorted(first_seen, key=lambda d: d not in members):  # stable: file order otherwise
            if per_task[first_seen[doc]] < limit:
                kept.add(doc)
                per_task[first_seen[doc]] += 1
        out[key] = [row for row in data[key] if document_id(row["id"]) in kept]
    for member_key, nonmember_key, forget_key in MIA_PAIRS:
        if member_key not in data:
            continue
        forget_docs = {document_id(row["id"]) for row in out.get(forget_key, [])}
        out[member_key] = [m for m in data[member_key] if member_document(m["id"]) in forget_docs]
        if not out[member_key]:
            raise PipelineError(f"params.yaml: `data.limit` {limit} keeps no MIA member of {forget_key}; raise it")
        out[nonmember_key] = data[nonmember_key][:len(out[member_key])]
    return out


@exit_on_error
def main() -> None:
    params = load_validated()
    data, files = load_source(params)
    check_dataset(data, files)
    data = limit_documents(data, get(params, "data.limit"))
    present = {key: name for key, name in PREPARED_FILES.items() if key in data}
    counts = {name: len(data[key]) for key, name in present.items()}
    with atomic_output(PREPARED) as tmp:
        tmp.mkdir(parents=True)
        for key, name in present.items():
            write_jsonl(tmp / name, data[key])
        write_json(tmp / "info.json", {"source": get(params, "data.source"), "counts": counts})
    print(f"prepared {PREPARED}: " + ", ".join(f"{name} {n}" for name, n in counts.items()))


if __name__ == "__main__":
    main()
