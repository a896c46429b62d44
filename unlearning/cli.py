"""What the evaluation stages share on the command line: their arguments (the data, the target, the model scored, the
output directory) and loading the model scored, the target or a delta made from it."""
import argparse
from pathlib import Path

from .models.delta import load_target_or_delta


def evaluation_args(argv=None, description: str = ""):
    parser = argparse.ArgumentParser(description=description.splitlines()[0] if description else None)
    parser.add_argument("--data", type=Path, required=True, help="the prepared directory")
    parser.add_argument("--target", type=Path, required=True, help="the target model directory")
    parser.add_argument("--model", type=Path, required=True, help="the model scored: the target or a run's delta")
    parser.add_argument("--out", type=Path, required=True, help="the directory to write")
    return parser.parse_args(argv)


def load_scored_model(args, params):
    """The model --model names, on params' `device` and `model.dtype`: the stage declares those keys."""
    return load_target_or_delta(args.target, args.model, params["device"], params["model.dtype"],
                                params["model.trust_remote_code"])
