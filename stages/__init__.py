"""The DVC stages: one thin entry point per stage of dvc.yaml (`python -m stages.<name>`). Each parses its paths
from the command line, reads the params it declares (PARAMS, or params_read(args); dvc.yaml lists exactly those),
calls the library in unlearning/ and writes its outputs atomically.

This package runs first in every stage process, before any stage module imports torch: it pins the numerics that
params.yaml's `numerics` asks for (unlearning/numerics.py), which the libraries read when they load, and starts the
process again where the pins need the dynamic loader (the MKL shim on a CPU that is not Intel's). So every stage
reads the keys below as well as its own; `python -m unlearning.tools.sync` adds them to each stage of dvc.yaml.
"""
import os
import sys

from unlearning import numerics
from unlearning.config import PARAMS_FILE
from unlearning.errors import PipelineError

PARAMS = ("numerics",)

if "torch" not in sys.modules:  # a test or tool that imported torch first runs under its own pins (tests/conftest.py)
    try:
        restart = numerics.pin_from_params(PARAMS_FILE)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if restart:
        print(f"numerics: MKL runs Intel's AVX2 path on this {numerics.cpu_vendor()} CPU ({os.environ['LD_PRELOAD']})")
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
