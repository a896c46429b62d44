"""One error type for bad input, and the wrapper that turns it into one clear line and a non-zero exit."""
import sys
from functools import wraps


class PipelineError(Exception):
    """Bad params, files or models. The message names what is wrong and how to fix it."""


def exit_on_error(main):
    """Run a stage's main(); a PipelineError becomes one line on stderr and exit status 2."""

    @wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except PipelineError as err:
            one_line = " ".join(line.strip() for line in str(err).splitlines())
            print(f"error: {one_line}", file=sys.stderr)
            sys.exit(2)

    return wrapper
