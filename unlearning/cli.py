"""What the evaluation stages share on the command line: their arguments (the data, the target, the model scored, the
output directory), loading the model scored (the target or a delta made from it) under the pinned numerics, and the
fingerprint its evaluation records."""
import argparse
from pathlib import Path

from . import numerics
from .files import read_json
from .models.delta import load_target_or_delta, weights_sha256
from .models.loading import resolve_device


def evaluation_args(argv=None, description: str = ""):
    parser = argparse.ArgumentParser(description=description.splitlines()[0] if description else None)
    parser.add_argument("--data", type=Path, required=True, help="the prepared directory")
    parser.add_argument("--target", type=Path, required=True, help="the target model directory")
    parser.add_argument("--model", type=Path, required=True, help="the model scored: the target or a run's delta")
    parser.add_argument("--out", type=Path, required=True, help="the directory to write")
    return parser.parse_args(argv)


def load_scored_model(args, params):
    """The model --model names, on params' `device` and `model.dtype`, after `numerics` is applied: the stage
    declares those keys."""
    numerics.apply(params["numerics"], resolve_device(params["device"]))
    return load_target_or_delta(args.target, args.model, params["device"], params["model.dtype"],
                                params["model.trust_remote_code"])


def evaluation_record(args, model, role: str = "evaluation") -> dict:
    """fingerprint.json of an evaluation of --model: how it was computed, the target's hash, and the scored model's
    own record (None for a model saved without one)."""
    scored = Path(args.model) / numerics.FILE
    return numerics.record(numerics.fingerprint(model.device, model.dtype), weights_sha256(args.target),
                           role, read_json(scored) if scored.is_file() else None)
