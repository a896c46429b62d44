"""Stage `unlearn_baseline`: one output-loss method's unlearning of the target (an entry of `baselines`) on
`layers`, on the batches and steps RMU sees -> its delta and its DVCLive training curves.

python -m stages.unlearn_baseline --method M --data D --target T --out DELTA --live DIR
"""
import argparse
from pathlib import Path

from unlearning import config
from unlearning.config import layer_triple
from unlearning.errors import PipelineError, exit_on_error
from unlearning.methods.output_loss import OUTPUT_LOSS_METHODS
from unlearning.methods.output_loss.loop import run_output_loss
from unlearning.models.loading import num_decoder_layers, resolve_device
from unlearning.runs import RUN_PARAMS, load_run, method_settings, write_run

OUTPUT_LOSS_KEYS = ("unlearn.baseline_params", "unlearn.baseline_lr", "unlearn.retain_weight", "unlearn.npo_beta")
PARAMS = RUN_PARAMS + ("layers",) + OUTPUT_LOSS_KEYS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", required=True, help="an output-loss method (an entry of `baselines`)")
    parser.add_argument("--data", type=Path, required=True, help="the prepared directory")
    parser.add_argument("--target", type=Path, required=True, help="the target model directory")
    parser.add_argument("--out", type=Path, required=True, help="the delta directory to write")
    parser.add_argument("--live", type=Path, required=True, help="the DVCLive directory to write")
    return parser.parse_args(argv)


@exit_on_error
def main(argv=None):
    args = parse_args(argv)
    params = config.load(PARAMS)
    if args.method not in OUTPUT_LOSS_METHODS:
        raise PipelineError(f"params.yaml: `baselines` lists {args.method!r}, not an output-loss method; use "
                            f"{', '.join(OUTPUT_LOSS_METHODS)} (RMU variants go in `methods`)")
    layers = layer_triple(params["layers"], num_decoder_layers(args.target))
    cfg = method_settings(args.method, params, RUN_PARAMS + OUTPUT_LOSS_KEYS)
    model, tokenizer, forget, retain = load_run(args.data, params["data.split"], args.target, params["device"],
                                                params["model.dtype"], params["model.trust_remote_code"],
                                                params["numerics"])
    history = run_output_loss(model, tokenizer, forget, retain, layers, OUTPUT_LOSS_METHODS[args.method], cfg,
                              resolve_device(params["device"]))
    write_run(history, model, args.target, args.out, args.live)


if __name__ == "__main__":
    main()
