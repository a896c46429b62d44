"""One error type for bad input, and the wrapper that turns it into one clear line and a non-zero exit, followed,
when DVC ran the stage, by the line that says how to get back to a working state."""
import os
import sys
import traceback
from functools import wraps
from pathlib import Path


class PipelineError(Exception):
    """Bad params, files or models. The message names what is wrong and how to fix it."""


def recovery_hint() -> str | None:
    """What to run after a stage that DVC started has failed, or None outside DVC.

    A failed stage leaves params.yaml as the run set it (a `dvc exp run -S` value stays there, and the next `-S`
    stacks on top of it) and the outputs DVC removed before running it missing from the workspace: those in DVC's
    cache come back with `dvc checkout`, the report's git-tracked ones (reports/) with git."""
    stage = os.environ.get("DVC_STAGE")
    if not stage:
        return None
    root = os.environ.get("DVC_ROOT")
    if root and Path(root).resolve() != Path.cwd().resolve():
        # a queued or --temp experiment runs in a copy: the workspace was never touched
        return (f"recover: stage `{stage}` failed in an experiment's own copy; your workspace is unchanged: fix the "
                "value and queue the experiment again (`dvc queue logs <exp>` shows this run)")
    if os.environ.get("DVC_EXP_NAME"):
        return (f"recover: `git checkout params.yaml reports && dvc checkout` puts back the committed params and the "
                f"results that stage `{stage}` removed; then `dvc exp run` again with a fixed value")
    return (f"recover: fix params.yaml (`git checkout params.yaml` for the committed values) and `dvc repro` again; "
            f"meanwhile `git checkout reports && dvc checkout` puts back the results that stage `{stage}` removed")


def exit_on_error(main):
    """Run a stage's main(); a PipelineError becomes one line on stderr and exit status 2. Under DVC, that line, or
    the traceback of any other error, is followed by the recovery line."""

    @wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except PipelineError as err:
            one_line = " ".join(line.strip() for line in str(err).splitlines())
            print(f"error: {one_line}", file=sys.stderr)
            hint = recovery_hint()
            if hint:
                print(hint, file=sys.stderr)
            sys.exit(2)
        except Exception:
            hint = recovery_hint()
            if hint is None:
                raise
            traceback.print_exc()
            print(hint, file=sys.stderr)
            sys.exit(1)

    return wrapper
