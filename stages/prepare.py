"""DVC stage `python -m stages.prepare`: load the dataset named by `data.source`, check it, write data/prepared/.

`data.source` is `synthetic` (the built-in miniature), a directory (the organizers' layout or forget.jsonl +
retain.jsonl, see stages/semeval.py) or a Hugging Face dataset id. `data.limit` keeps the first N documents per
task in every split (and the MIA documents that go with them), for small runs on the real data.
"""
from collections import defaultdict
from pathlib import Path

from . import semeval, synthetic
from .checks import MIA_PAIRS, VALID_SUFFIX, check_dataset
from .errors import PipelineError, exit_on_error
from .io import PREPARED, PREPARED_FILES, SPLITS, atomic_output, write_json, write_jsonl
from .params import get, load_validated
from .scoring import document_id

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


def member_document(member_id: str) -> str:
    """The document an MIA member id names: the organizers' train members use the document id, their validation
    members the id of its sc1 row."""
    suffix = VALID_SUFFIX.search(member_id)
    return member_id[:suffix.start()] if suffix and suffix.start() > 0 else member_id


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
