"""A prepared directory (data/prepared): one JSONL file per data key, written by the `prepare` stage and read, and
checked again, by every stage after it (a file may have been edited since)."""
from pathlib import Path

from ..errors import PipelineError
from ..files import read_jsonl, write_json, write_jsonl
from .schema import PREPARED_FILES, SEMEVAL_KEYS, check_mia_rows, check_rows

VALIDATION_KEYS = ("forget_validation", "retain_validation")


def write_prepared(out: Path, data: dict, source: str) -> dict[str, int]:
    """Every data key the source has, and info.json (the source and the row counts); returns the counts."""
    present = {key: name for key, name in PREPARED_FILES.items() if key in data}
    counts = {name: len(data[key]) for key, name in present.items()}
    out.mkdir(parents=True)
    for key, name in present.items():
        write_jsonl(out / name, data[key])
    write_json(out / "info.json", {"source": source, "counts": counts})
    return counts


def load_prepared(prepared) -> dict:
    """Every file the prepare stage wrote (a source without validation data or a GK set writes fewer)."""
    prepared = Path(prepared)
    return {key: read_jsonl(prepared / name) for key, name in PREPARED_FILES.items() if (prepared / name).is_file()}


def prepared_split(prepared, key: str) -> list[dict]:
    """Rows of one prepared file by data key (e.g. forget_validation), checked again as the stage starts, or a clear
    error if the source had none."""
    path = Path(prepared) / PREPARED_FILES[key]
    if not path.is_file() and (Path(prepared) / "info.json").is_file():
        raise PipelineError(f"{path}: the data source has no {key.replace('_', ' ')} data; "
                            "set `data.split: train` (or use a source that has it)")
    rows = read_jsonl(path)
    if not rows:
        raise PipelineError(f"{path}: no rows; rerun `python -m stages.prepare`")
    if key in SEMEVAL_KEYS:
        check_rows(key, rows, str(path))
    else:
        check_mia_rows(rows, str(path))
    return rows


def validation_rows(prepared) -> list[dict]:
    """Forget + retain validation rows, or [] when the prepared directory has no validation split: a source without
    one (the forget.jsonl + retain.jsonl layout) makes `prepare` write no validation files; empty ones count as
    none."""
    paths = [Path(prepared) / PREPARED_FILES[key] for key in VALIDATION_KEYS]
    present = [path.is_file() and bool(read_jsonl(path)) for path in paths]
    if not any(present):
        return []
    if not all(present):
        missing, other = (paths[0], paths[1]) if not present[0] else (paths[1], paths[0])
        raise PipelineError(f"{missing}: missing or empty while {other.name} has rows; a validation split needs "
                            "forget and retain rows; rerun `python -m stages.prepare`")
    return [row for key in VALIDATION_KEYS for row in prepared_split(prepared, key)]
