"""The DVC stages: one thin entry point per stage of dvc.yaml (`python -m stages.<name>`). Each parses its paths
from the command line, reads the params it declares (PARAMS, or params_read(args); dvc.yaml lists exactly those),
calls the library in unlearning/ and writes its outputs atomically."""
