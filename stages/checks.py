"""Checks of the data every stage reads: SemEval rows, MIA documents. Errors name the file, the row and the column."""
import re
from pathlib import Path

from .errors import PipelineError
from .io import PREPARED, PREPARED_FILES, SPLITS, read_jsonl
from .scoring import document_id

COLUMNS = ("id", "input", "output", "task", "split")
TASKS = ("Task1", "Task2", "Task3")
VALID_SUFFIX = re.compile(r"(sc1|qa[0-4])$")
REQUIRED = ("forget_train", "retain_train", "mia_member", "mia_nonmember")
MIA_PAIRS = (("mia_member", "mia_nonmember", "forget_train"),
             ("mia_member_validation", "mia_nonmember_validation", "forget_validation"))


def check_rows(key: str, rows: list[dict], name: str) -> None:
    seen = set()
    for n, row in enumerate(rows, 1):
        for col in COLUMNS:
            if not isinstance(row.get(col), str) or not row[col]:
                raise PipelineError(f"{name} row {n}: column `{col}` is missing or empty")
        row_id = row["id"]
        suffix = VALID_SUFFIX.search(row_id)
        if not suffix or suffix.start() == 0:
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
            check_rows(key, data[key], files[key])
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
            check_mia_rows(data.get(key, []), files[key])
        members = data.get(member_key, [])
        member_ids, member_docs = {m["id"] for m in members}, {m["document"] for m in members}
        for n, row in enumerate(data.get(nonmember_key, []), 1):
            if row["id"] in member_ids:
                raise PipelineError(f"{files[nonmember_key]} row {n}: column `id` {row['id']!r} is also a "
                                    "member; a non-member must be a document the model never saw")
            if row["document"] in member_docs:
                raise PipelineError(f"{files[nonmember_key]} row {n}: column `document` equals a member "
                                    "document; a non-member must be a document the model never saw")


def check_mia_rows(rows: list[dict], name: str) -> None:
    for n, row in enumerate(rows, 1):
        for col in ("id", "document"):
            if not isinstance(row.get(col), str) or not row[col]:
                raise PipelineError(f"{name} row {n}: column `{col}` is missing or empty")


def prepared_split(key: str, prepared=PREPARED) -> list[dict]:
    """Rows of one prepared file by data key (e.g. forget_validation), checked again as the stage starts (the
    file may have been edited since `prepare` wrote it), or a clear error if the source had none."""
    path = Path(prepared) / PREPARED_FILES[key]
    if not path.is_file() and (Path(prepared) / "info.json").is_file():
        raise PipelineError(f"{path}: the data source has no {key.replace('_', ' ')} data; "
                            "set `data.split: train` (or use a source that has it)")
    rows = read_jsonl(path)
    if not rows:
        raise PipelineError(f"{path}: no rows; rerun `python -m stages.prepare`")
    if key in SPLITS:
        check_rows(key, rows, str(path))
    else:
        check_mia_rows(rows, str(path))
    return rows
