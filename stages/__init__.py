"""The DVC stages: one thin entry point per stage of dvc.yaml (`python -m stages.<name>`). Each parses its paths
from the command line, reads the params it declares (PARAMS, or params_read(args); dvc.yaml lists exactly those),
calls the library in unlearning/ and writes its outputs atomically.

This package runs first in every stage process, before any stage module imports torch: it pins the numerics that
params.yaml's `numerics` asks for (unlearning/numerics.py), which the libraries read when they load. So every stage
reads the keys below as well as its own; `python -m unlearning.tools.sync` adds them to each stage of dvc.yaml.
"""
import sys

from unlearning import numerics
from unlearning.config import PARAMS_FILE

PARAMS = ("numerics",)

if "torch" not in sys.modules:  # a test or tool that imported torch first runs under its own pins (tests/conftest.py)
    numerics.pin_from_params(PARAMS_FILE)
