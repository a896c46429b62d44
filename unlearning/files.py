"""Reading and writing the pipeline's files: JSON and JSONL with one-line errors; every stage output is written
atomically."""
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

from .errors import PipelineError


def read_jsonl(path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: file not found (run the stage that writes it, e.g. `dvc repro`)")
    rows = []
    for line_no, line in enumerate(_utf8_text(path).split("\n"), 1):  # not splitlines: U+2028 may sit in a string
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise PipelineError(f"{path}:{line_no}: not valid JSON ({err.msg}); fix or regenerate the file") from None
        if not isinstance(row, dict):
            raise PipelineError(f"{path}:{line_no}: expected a JSON object per line")
        rows.append(row)
    return rows


def _utf8_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line_no = path.read_bytes()[:err.start].count(b"\n") + 1
        raise PipelineError(f"{path}:{line_no}: not valid UTF-8 (byte {err.start}); save the file as UTF-8") from None


def read_json(path):
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: file not found (run the stage that writes it, e.g. `dvc repro`)")
    try:
        return json.loads(_utf8_text(path))
    except json.JSONDecodeError as err:
        raise PipelineError(f"{path}: not valid JSON ({err.msg})") from None


def write_jsonl(path, rows) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_json(path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_output(final_path):
    """Yield a temporary sibling path to write into; rename it onto `final_path` only on success.

    A stage that fails or is killed leaves the previous complete output (or none), never a half-written one.
    The yielded path does not exist yet: create it as a file or a directory.
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    for pattern in (f".{final_path.name}.tmp-*", f".{final_path.name}.old-*"):
        for stale in final_path.parent.glob(pattern):
            _remove(stale)  # left by a run that was killed (SIGKILL) before it could clean up
    tmp = final_path.with_name(f".{final_path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if final_path.exists() or final_path.is_symlink():
        old = final_path.with_name(f".{final_path.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final_path, old)
        os.replace(tmp, final_path)
        _remove(old)
    else:
        os.replace(tmp, final_path)
