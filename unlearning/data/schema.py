"""The SemEval-2025 Task 4 row schema, the data keys every source fills, and the checks of both. Errors name the
file, the row and the column.

A row is `id, input, output, task, split`; its kind is the id's suffix (`sc1`: sentence completion, `qa0..qa4`:
question answering) after the document id. Every source (synthetic, the organizers' files, jsonl, the hub) gives a
dict of data key -> rows, holding the keys it has.
"""
import re

from ..errors import PipelineError

SETS = ("forget", "retain")  # what is unlearned, what is kept
SPLITS = ("train", "validation")  # the organizers' splits; `data.split` chooses the one unlearned and scored
TASKS = ("Task1", "Task2", "Task3")
KINDS = ("sc", "qa")
SEMEVAL_KEYS = tuple(f"{s}_{split}" for s in SETS for split in SPLITS)  # forget_train, forget_validation, ...
# MIA members, non-members and the forget key the members come from, for each split
MIA_PAIRS = (("mia_member", "mia_nonmember", "forget_train"),
             ("mia_member_validation", "mia_nonmember_validation", "forget_validation"))
# the MIA files are optional, as in the official evaluation: without them the MIA and final scores are n/a
REQUIRED = ("forget_train", "retain_train")
# data key -> its file in a prepared directory (data/prepared); a source writes the keys it has
PREPARED_FILES = {
    **{key: f"{key}.jsonl" for key in SEMEVAL_KEYS},
    "mia_member": "mia/member.jsonl",
    "mia_nonmember": "mia/nonmember.jsonl",
    "mia_member_validation": "mia/validation/member.jsonl",
    "mia_nonmember_validation": "mia/validation/nonmember.jsonl",
    "background": "background.jsonl",
    "general": "general.jsonl",
    "mmlu_dev": "mmlu/dev.jsonl",
    "mmlu_test": "mmlu/test.jsonl",
}
COLUMNS = ("id", "input", "output", "task", "split")
VALID_SUFFIX = re.compile(r"(sc1|qa[0-4])$")
_KIND_SUFFIX = re.compile(r"(sc|qa)\d+$")


def _suffix(row_id) -> re.Match:
    match = _KIND_SUFFIX.search(row_id) if isinstance(row_id, str) else None
    if match is None or match.start() == 0:
        raise PipelineError(f"row id {row_id!r} does not end in sc<digit> or qa<digit> after a document id; "
                            "ids are <document id><sc1|qa0..qa4>")
    return match


def row_kind(row_id: str) -> str:
    """'sc' (sentence completion) or 'qa' (question answering), from the id's suffix, e.g. ...sc1 or ...qa3."""
    return _suffix(row_id).group(1)


def document_id(row_id: str) -> str:
    """The document a row belongs to: its id without the sc/qa suffix."""
    return row_id[:_suffix(row_id).start()]


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


def check_mia_rows(rows: list[dict], name: str) -> None:
    for n, row in enumerate(rows, 1):
        for col in ("id", "document"):
            if not isinstance(row.get(col), str) or not row[col]:
                raise PipelineError(f"{name} row {n}: column `{col}` is missing or empty")


def check_dataset(data: dict, files: dict | None = None) -> None:
    """Raise PipelineError, naming file, row and column, on the first problem found. `files` names the file each
    data key came from (default: its name in a prepared directory)."""
    files = {**PREPARED_FILES, **(files or {})}
    for key in REQUIRED:
        if key not in data:
            raise PipelineError(f"{files[key]}: the data source has none; every source needs forget and "
                                "retain train rows")
    for key in SEMEVAL_KEYS + tuple(key for pair in MIA_PAIRS for key in pair[:2]):
        if key in data and not data[key]:
            raise PipelineError(f"{files[key]}: no rows; every split given needs at least one document")
    for key in SEMEVAL_KEYS:
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
