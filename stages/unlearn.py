"""Stage `unlearn`: one RMU run's unlearning of the target -> its delta (the trained tensors and the target's
identity) and its DVCLive training curves.

python -m stages.unlearn [--first-layer N | --method M | --seed S] --data D --target T --out DELTA --live DIR

Without an option: the headline run, `unlearn.method` on `layers`. --first-layer N: a triple of the layer sweep,
`unlearn.method` on N..N+2. --method M: another RMU variant (an entry of `methods`) on `layers`. --seed S: the
headline run with seed S instead of `unlearn.seed` (an entry of `seeds`), for the seed spread. The output-loss
methods run in stages/unlearn_baseline.py, on the same batches and steps.
"""
import argparse
from pathlib import Path

from unlearning import config
from unlearning.config import layer_triple
from unlearning.errors import PipelineError, exit_on_error
from unlearning.methods.rmu import RMU_METHODS
from unlearning.models.loading import num_decoder_layers, resolve_device
from unlearning.runs import RUN_PARAMS, load_run, method_settings, write_run

RMU_KEYS = ("alpha", "unlearn.engine", "unlearn.beta", "unlearn.steering_coeff", "unlearn.direction", "unlearn.lr")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    run = parser.add_mutually_exclusive_group()
    run.add_argument("--first-layer", type=int, help="a sweep triple: unlearn.method on N, N+1, N+2")
    run.add_argument("--method", help="another RMU variant on `layers` (an entry of `methods`)")
    run.add_argument("--seed", type=int, help="the headline run with this seed (an entry of `seeds`)")
    parser.add_argument("--data", type=Path, required=True, help="the prepared directory")
    parser.add_argument("--target", type=Path, required=True, help="the target model directory")
    parser.add_argument("--out", type=Path, required=True, help="the delta directory to write")
    parser.add_argument("--live", type=Path, required=True, help="the DVCLive directory to write")
    return parser.parse_args(argv)


def params_read(args) -> tuple[str, ...]:
    """What this run reads, and so what its dvc.yaml entry lists: the sweep takes its layers from the command line,
    a further variant its method, a further seed its seed."""
    layers = () if args.first_layer is not None else ("layers",)
    method = () if args.method is not None else ("unlearn.method",)
    run = tuple(key for key in RUN_PARAMS if args.seed is None or key != "unlearn.seed")
    return run + layers + method + RMU_KEYS


@exit_on_error
def main(argv=None):
    args = parse_args(argv)
    params = config.load(params_read(args))
    name, where = (args.method, "`methods` lists") if args.method else (params["unlearn.method"], "`unlearn.method` is")
    if name not in RMU_METHODS:
        raise PipelineError(f"params.yaml: {where} {name!r}, not an RMU variant; use {', '.join(RMU_METHODS)} "
                            "(output-loss methods go in `baselines`)")
    if args.first_layer is not None:
        first = args.first_layer
        layers = layer_triple([first, first + 1, first + 2], num_decoder_layers(args.target), "a `sweep` triple")
    else:
        layers = layer_triple(params["layers"], num_decoder_layers(args.target))
    cfg = method_settings(name, params, params_read(args))  # unlearn.method, where read, is `name`
    if args.seed is not None:
        cfg["seed"] = args.seed
    model, tokenizer, forget, retain = load_run(args.data, params["data.split"], args.target, params["device"],
                                                params["model.dtype"], params["model.trust_remote_code"],
                                                params["numerics"])
    history = RMU_METHODS[name](model, tokenizer, forget, retain, layers, params["alpha"], cfg,
                                resolve_device(params["device"]))
    print(f"unlearn {name} on layers {layers}: steering coefficients "
          + ", ".join(f"{t} {c:.2f}" for t, c in sorted(history["coefficients"].items())))
    write_run(history, model, args.target, args.out, args.live)


if __name__ == "__main__":
    main()
