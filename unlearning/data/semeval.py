"""Loaders for the real SemEval-2025 Task 4 data, in the layouts users have it in.

- the organizers' layout, as downloaded from the gated Hugging Face dataset
  `llmunlearningsemeval2025organization/semeval25-unlearning-dataset-public`:
  `data/{forget,retain}_{train,validation}-00000-of-00001.parquet`, `mia_data/{member,nonmember}.jsonl` and
  (optional) `mia_data/validation/`; from a local directory, or from the hub id with `datasets`;
- the layout the official evaluation script reads: `forget.jsonl` and `retain.jsonl` (columns
  `id, input, output, task`, `split` optional), the train split only, with the MIA files beside them or in
  mia_data/.

The MIA files are optional in both layouts, as they are to the official script: without them the MIA stages write
"not available" and the final score is n/a (officially -1); a warning says so. One file of a pair alone is an error.

Each loader returns the same dict as `synthetic.generate` (data key -> rows), holding only what the source has,
and the file each key was read from, so that errors can name it.
"""
import sys
from pathlib import Path

import pandas as pd

from ..errors import PipelineError
from ..files import read_jsonl
from .schema import SEMEVAL_KEYS

MIA_FILES = {"mia_member": "member.jsonl", "mia_nonmember": "nonmember.jsonl"}
MIA_FOLDERS = (("mia_data", ""), ("mia_data/validation", "_validation"))  # folder, data-key suffix
JSONL_LAYOUT = ("forget.jsonl", "retain.jsonl")
LAYOUTS = ("expected the organizers' layout, data/{forget,retain}_{train,validation}-00000-of-00001.parquet "
           "(and mia_data/{member,nonmember}.jsonl), or forget.jsonl and retain.jsonl")


NO_MIA = ("warning: {where}: no MIA files (member.jsonl and nonmember.jsonl); the MIA score and the final score will "
          "be n/a, as in the official evaluation run without --mia_data_path (which reports the final score as -1)")


def _read_mia_pair(paths: dict, data: dict, files: dict, suffix: str) -> bool:
    """Both files of an MIA pair into data[key + suffix]; False when neither exists; one alone is an error."""
    present = [path.is_file() for path in paths.values()]
    if not any(present):
        return False
    for key, path in paths.items():
        if not path.is_file():
            raise PipelineError(f"{path}: not found while {path.parent} has the other MIA file; MIA members and "
                                "non-members come in pairs (or leave both out: the MIA score is then n/a)")
        data[key + suffix], files[key + suffix] = _mia_rows(read_jsonl(path)), str(path)
    return True


def is_jsonl_layout(directory: Path) -> bool:
    return all((directory / name).is_file() for name in JSONL_LAYOUT)


def _mia_rows(rows: list[dict]) -> list[dict]:
    """Keep id and document (members carry task columns, non-members Dolma metadata; neither is used). Numeric ids
    become text; what is missing stays missing for check_dataset to name."""
    return [{"id": None if row.get("id") is None else str(row["id"]), "document": row.get("document")}
            for row in rows]


def _read_parquet(path: Path) -> list[dict]:
    try:
        return pd.read_parquet(path).to_dict("records")
    except (OSError, ValueError) as err:
        raise PipelineError(f"{path}: cannot be read as parquet ({str(err).splitlines()[0]})") from None


def load_organizers_dir(directory: Path) -> tuple[dict, dict]:
    data, files = {}, {}
    for key in SEMEVAL_KEYS:
        matches = sorted((directory / "data").glob(f"{key}-*.parquet"))
        if not matches:
            raise PipelineError(f"{directory}/data/{key}-00000-of-00001.parquet: not found; {LAYOUTS}")
        data[key], files[key] = [row for path in matches for row in _read_parquet(path)], str(matches[0])
    for folder, suffix in MIA_FOLDERS:
        paths = {key: directory / folder / name for key, name in MIA_FILES.items()}
        if not _read_mia_pair(paths, data, files, suffix) and not suffix:
            print(NO_MIA.format(where=directory / folder), file=sys.stderr)
    return data, files


def load_organizers_hub(dataset_id: str) -> tuple[dict, dict]:
    """The hub dataset (gated: accept its terms and `huggingface-cli login` first); network is the user's."""
    import datasets  # only this route needs it, and it adds a second to every stage's start

    try:
        splits = datasets.load_dataset(dataset_id)
        data = {key: splits[key].to_list() for key in SEMEVAL_KEYS}
        for folder, suffix in MIA_FOLDERS:
            for key, name in MIA_FILES.items():
                url = f"hf://datasets/{dataset_id}/{folder}/{name}"
                try:
                    rows = datasets.load_dataset("json", data_files=url, split="train").to_list()
                except FileNotFoundError:
                    if suffix:
                        continue
                    raise
                data[key + suffix] = _mia_rows(rows)
    except KeyError as err:
        raise PipelineError(f"data.source {dataset_id}: no split {err}; {LAYOUTS}") from None
    except (OSError, ValueError) as err:
        raise PipelineError(f"data.source {dataset_id}: cannot load it from the Hugging Face hub "
                            f"({str(err).splitlines()[0]})") from None
    return data, {key: f"{dataset_id} {key}" for key in data}


def load_jsonl_layout(directory: Path) -> tuple[dict, dict]:
    """forget.jsonl + retain.jsonl (the train split) and MIA files in mia_data/ or beside them."""
    data, files = {}, {}
    for split, name in zip(("forget", "retain"), JSONL_LAYOUT):
        rows = read_jsonl(directory / name)
        for row in rows:
            row.setdefault("split", split)
        data[f"{split}_train"], files[f"{split}_train"] = rows, str(directory / name)
    for folder in (directory / "mia_data", directory):
        if _read_mia_pair({key: folder / name for key, name in MIA_FILES.items()}, data, files, ""):
            return data, files
    print(NO_MIA.format(where=f"{directory} (and its mia_data/)"), file=sys.stderr)
    return data, files
