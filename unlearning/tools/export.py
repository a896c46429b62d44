"""`python -m unlearning.tools.export --out DIR`: an unlearned model (target + delta) as a standalone Hugging Face
model, for use outside the pipeline (safetensors; loads with AutoModelForCausalLM and AutoTokenizer). It loads on
params.yaml's `device` and `model.dtype`."""
import argparse
from pathlib import Path

from .. import config
from ..errors import PipelineError, exit_on_error
from ..files import atomic_output
from ..models.delta import load_target_or_delta

PARAMS = ("device", "model.dtype", "model.trust_remote_code")


@exit_on_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=Path("models/target"), help="the target model directory")
    parser.add_argument("--delta", type=Path, default=Path("models/unlearned"),
                        help="the unlearned run's delta (default: the headline run's)")
    parser.add_argument("--out", required=True, type=Path, help="a new directory for the standalone model")
    args = parser.parse_args(argv)
    if args.out.exists():
        raise PipelineError(f"{args.out}: already exists; give --out a new directory")
    params = config.load(PARAMS)
    model, tokenizer = load_target_or_delta(args.target, args.delta, params["device"], params["model.dtype"],
                                            params["model.trust_remote_code"])
    with atomic_output(args.out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    print(f"export: {args.target} + {args.delta}, standalone, in {args.out}")


if __name__ == "__main__":
    main()
