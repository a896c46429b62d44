"""Stage `target`: the model that knows what it will be asked to forget, saved the Hugging Face way.

python -m stages.target --data data/prepared --out models/target

`model.source: scratch` trains a byte-level BPE tokenizer and an OLMo-architecture model from scratch on forget +
retain (all splits) + the general-knowledge text until it has memorised them; `pretrained` loads
`model.name_or_path` and, with `model.finetune`, implants the same texts first, as the organizers did. Unless
`model.require` is null, the stage checks what the model knows and fails below the requirements.
"""
import argparse
from pathlib import Path

from unlearning import config, numerics
from unlearning.data.prepared import load_prepared
from unlearning.errors import PipelineError, exit_on_error
from unlearning.evaluation.knowledge import knowledge_checks, unmet_requirements
from unlearning.files import atomic_output, write_json
from unlearning.models.delta import weights_sha256
from unlearning.models.loading import resolve_device, resolve_dtype, save_unstamped
from unlearning.models.training import build_target, training_texts

PARAMS = ("numerics", "device", "model", "mmlu.k", "mmlu.format", "evaluate.clean_up_spaces")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the prepared directory")
    parser.add_argument("--out", type=Path, required=True, help="the model directory to write")
    return parser.parse_args(argv)


@exit_on_error
def main(argv=None):
    args = parse_args(argv)
    params = config.load(PARAMS)
    cfg, mmlu_k = params["model"], params["mmlu.k"]
    device = resolve_device(params["device"])
    dtype = resolve_dtype(cfg["dtype"], device)
    numerics.apply(params["numerics"], device)
    data = load_prepared(args.data)
    model, tokenizer, epoch_losses = build_target(cfg, training_texts(data), device, dtype)
    checks = None
    if cfg["require"] is not None:
        checks = knowledge_checks(model, tokenizer, data, cfg["train"]["batch_size"], mmlu_k, params["mmlu.format"],
                                  params["evaluate.clean_up_spaces"])
        for split, tasks in checks["scores"].items():
            print(f"  {split:6s} " + "  ".join(f"{t}: sc {v['sc']:.3f} qa {v['qa']:.3f}" for t, v in tasks.items()))
        gk = "n/a (the data source has no general-knowledge set)" if checks["mmlu"] is None else f"{checks['mmlu']:.3f}"
        auc = "n/a (the data source has no MIA files)" if checks["mia_auc"] is None else f"{checks['mia_auc']:.3f}"
        print(f"  general-knowledge accuracy {gk}, loss-MIA AUC {auc}")
        unmet = unmet_requirements(checks, cfg["require"])
        if unmet:
            raise PipelineError("the target model has not memorised its data (" + "; ".join(unmet)
                                + "); raise `model.train.epochs` (or `model.finetune.epochs`) or the model size")
    with atomic_output(args.out) as out:
        save_unstamped(model, tokenizer, out)
        write_json(out / "training.json", {"source": cfg["source"], "dtype": str(dtype),
                                           "epoch_losses": epoch_losses, "checks": checks})
        write_json(out / numerics.FILE, numerics.record(numerics.fingerprint(device, dtype), weights_sha256(out),
                                                        "target"))


if __name__ == "__main__":
    main()
