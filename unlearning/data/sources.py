"""The dataset `data.source` names, loaded into data keys -> rows: `synthetic` (the built-in miniature), a directory
(the organizers' layout or forget.jsonl + retain.jsonl, see semeval.py) or a Hugging Face dataset id; and
`data.limit`, the first N documents per task of every split, for small runs on the real data."""
from collections import defaultdict
from pathlib import Path

from ..errors import PipelineError
from . import semeval, synthetic
from .schema import MIA_PAIRS, PREPARED_FILES, SEMEVAL_KEYS, VALID_SUFFIX, document_id


def load_source(source: str, synthetic_cfg: dict, seed: int) -> tuple[dict, dict]:
    """(data key -> rows, data key -> the file it came from)."""
    if source == "synthetic":
        data = synthetic.generate(synthetic_cfg, seed)
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
    for key in SEMEVAL_KEYS:
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
