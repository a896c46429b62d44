"""`python -m stages.export --out DIR`: the unlearned model (target + delta) as a standalone Hugging Face model,
for use outside the pipeline (safetensors; loads with AutoModelForCausalLM and AutoTokenizer)."""
import argparse
from pathlib import Path

from .errors import PipelineError, exit_on_error
from .io import atomic_output
from .modeling import load_stage_model
from .params import load_validated


@exit_on_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="a new directory for the standalone model")
    out = parser.parse_args(argv).out
    if out.exists():
        raise PipelineError(f"{out}: already exists; give --out a new directory")
    params = load_validated()
    model, tokenizer = load_stage_model("unlearned", params)
    with atomic_output(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    print(f"export: the unlearned model, standalone, in {out}")


if __name__ == "__main__":
    main()
