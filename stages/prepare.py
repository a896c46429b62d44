"""DVC stage `python -m stages.prepare`: build the dataset named by `data.source`, check it, write data/prepared/."""
import re

from . import synthetic
from .errors import PipelineError, exit_on_error
from .io import PREPARED, atomic_output, write_json, write_jsonl
from .params import get, load_validated
from .scoring import document_id, row_kind  # noqa: F401  (re-exported for the data loaders)

COLUMNS = ("id", "input", "output", "task", "split")
TASKS = ("Task1", "Task2", "Task3")
VALID_SUFFIX = re.compile(r"(sc1|qa[0-4])$")

# data key -> file under data/prepared
FILES = {
    "forget_train": "forget_train.jsonl",
    "forget_validation": "forget_validation.jsonl",
    "retain_train": "retain_train.jsonl",
    "retain_validation": "retain_validation.jsonl",
    "mia_member": "mia/member.jsonl",
    "mia_nonmember": "mia/nonmember.jsonl",
    "general": "general.jsonl",
    "mmlu_dev": "mmlu/dev.jsonl",
    "mmlu_test": "mmlu/test.jsonl",
}
SPLITS = tuple(FILES)[:4]
MMLU_NOTE = "builtin general-knowledge set (synthetic, MMLU format)"


def load_source(params: dict) -> dict:
    loaders = {"synthetic": lambda: synthetic.generate(get(params, "data.synthetic"), get(params, "data.seed"))}
    source = get(params, "data.source")
    if source not in loaders:
        raise PipelineError(f"params.yaml: `data.source` is {source!r}; choose one of {', '.join(loaders)}")
    return loaders[source]()


def check_dataset(data: dict) -> None:
    """Raise PipelineError, naming file, row and column, on the first problem found."""
    docs = {}
    for key in SPLITS:
        name, rows = FILES[key], data.get(key) or []
        if not rows:
            raise PipelineError(f"{name}: no rows; every split needs at least one document")
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
        docs[key] = {document_id(r["id"]) for r in rows}
    forget = docs["forget_train"] | docs["forget_validation"]
    for key in ("retain_train", "retain_validation"):
        shared = sorted(forget & docs[key])
        if shared:
            raise PipelineError(f"{FILES[key]}: column `id`: document {shared[0]!r} is also in the forget set; "
                                f"forget and retain must not share documents")
    for key in ("mia_member", "mia_nonmember"):
        for n, row in enumerate(data.get(key) or [], 1):
            for col in ("id", "document"):
                if not isinstance(row.get(col), str) or not row[col]:
                    raise PipelineError(f"{FILES[key]} row {n}: column `{col}` is missing or empty")
    members = {row["document"] for row in data.get("mia_member") or []}
    for n, row in enumerate(data.get("mia_nonmember") or [], 1):
        if row["document"] in members:
            raise PipelineError(f"{FILES['mia_nonmember']} row {n}: column `document` equals a member document")


@exit_on_error
def main() -> None:
    params = load_validated()
    data = load_source(params)
    check_dataset(data)
    counts = {name: len(data[key]) for key, name in FILES.items()}
    with atomic_output(PREPARED) as tmp:
        tmp.mkdir(parents=True)
        for key, name in FILES.items():
            write_jsonl(tmp / name, data[key])
        write_json(tmp / "info.json", {"source": get(params, "data.source"), "mmlu": MMLU_NOTE, "counts": counts})
    print(f"prepared {PREPARED}: " + ", ".join(f"{name} {n}" for name, n in counts.items()))


if __name__ == "__main__":
    main()
