"""Stage `attack`: is it really forgotten? Three attacks on one model (unlearning/evaluation/robustness.py), each
scored on half B of the forget documents of `data.split` by greedy generation, the SemEval way, with PII extraction:
- relearn: a copy fine-tuned on the other half (A) of the forget documents, scored after each of `attack.steps`;
- benign: a copy fine-tuned on the retain rows only, the same way;
- ablation (RMU runs): the run's steering directions removed from its steered layer's output; n/a otherwise.
The report sets each against the model and the target unattacked on half B (their evaluations' generations) and
gives the recovery with its interval.

python -m stages.attack --data data/prepared --target models/target --model models/<run> --out reports/eval/attack/<run>

Writes attack.json: half B's row ids and, per attack, each row's score and the PII counts; no generation and no PII
value.
"""
import json

import torch

from unlearning import config
from unlearning.cli import evaluation_args, evaluation_record, load_scored_model
from unlearning.data.prepared import prepared_split
from unlearning.errors import exit_on_error
from unlearning.evaluation.pii import pii_extraction
from unlearning.evaluation.robustness import directions_ablated, relearn, split_documents, trained_parameters
from unlearning.evaluation.generation import greedy_generate
from unlearning.evaluation.scoring import row_score
from unlearning.files import atomic_output, write_json
from unlearning.methods.training import texts_by_task
from unlearning.models.delta import DELTA_INFO, load_steering
from unlearning.models.loading import resolve_device
from unlearning.numerics import FILE as FINGERPRINT

PARAMS = ("numerics", "device", "model.dtype", "model.trust_remote_code", "data.split", "layers", "evaluate.max_new_tokens",
          "evaluate.batch_size", "evaluate.clean_up_spaces", "unlearn.max_length", "attack.steps", "attack.lr",
          "attack.batch_size", "attack.trained", "attack.seed")


def scored(model, tokenizer, rows, params, label: str) -> dict:
    """Each row's score (by id) and the PII counts of one model's greedy generations of `rows`."""
    generations = greedy_generate(model, tokenizer, [row["input"] for row in rows], params["evaluate.max_new_tokens"],
                                  params["evaluate.batch_size"], desc=f"attack: {label}",
                                  clean_up=params["evaluate.clean_up_spaces"])
    return {"scores": {row["id"]: row_score(row, generation) for row, generation in zip(rows, generations)},
            "pii": pii_extraction(rows, generations)["forget"]}


def trained_tensors(model, model_dir, params) -> dict:
    """`attack.trained` all: every weight; down_proj: the tensors the run's delta changed (the target: the down_proj
    of `layers`, what the headline run changes)."""
    headline_tensors = [f"model.layers.{i}.mlp.down_proj.weight" for i in params["layers"]]
    if params["attack.trained"] == "all":
        return trained_parameters(model, "all", [])
    info = model_dir / DELTA_INFO
    names = json.loads(info.read_text(encoding="utf-8"))["tensors"] if info.is_file() else headline_tensors
    return trained_parameters(model, "delta", names)


@exit_on_error
def main(argv=None):
    args = evaluation_args(argv, __doc__)
    params = config.load(PARAMS)
    split = params["data.split"]
    forget = prepared_split(args.data, f"forget_{split}")
    retain_texts = [text for texts in texts_by_task(prepared_split(args.data, f"retain_{split}")).values()
                    for text in texts]
    half_a, half_b = split_documents(forget, params["attack.seed"])
    relearn_texts = [text for texts in texts_by_task(half_a).values() for text in texts]
    steering = load_steering(args.model)
    device = resolve_device(params["device"])
    result = {"model": str(args.model), "split": split, "half_b": [row["id"] for row in half_b],
              "trained": params["attack.trained"], "steps": params["attack.steps"], "attacks": {}}
    for attack, texts in (("relearn", relearn_texts), ("benign", retain_texts)):
        model, tokenizer = load_scored_model(args, params)
        fingerprint = evaluation_record(args, model, "attack")
        by_step = {}
        relearn(model, tokenizer, texts, params["attack.steps"], params["attack.lr"], params["attack.batch_size"],
                params["unlearn.max_length"], params["attack.seed"], trained_tensors(model, args.model, params),
                device, lambda step, trained: by_step.__setitem__(
                    str(step), scored(trained, tokenizer, half_b, params, f"{attack}@{step}")))
        result["attacks"][attack] = by_step
        del model
    if steering is None:
        result["attacks"]["ablation"] = None
    else:
        layer, directions = steering
        model, tokenizer = load_scored_model(args, params)
        with directions_ablated(model, layer, torch.stack([directions[t] for t in sorted(directions)])):
            result["attacks"]["ablation"] = scored(model, tokenizer, half_b, params, "ablation")
    with atomic_output(args.out) as out:
        out.mkdir()
        write_json(out / "attack.json", result)
        write_json(out / FINGERPRINT, fingerprint)
    relearned = result["attacks"]["relearn"][str(params["attack.steps"][-1])]["scores"]
    print(f"attack {args.model}: half B {len(half_b)} rows; mean row score after {params['attack.steps'][-1]} "
          f"relearning steps {sum(relearned.values()) / len(relearned):.3f}")


if __name__ == "__main__":
    main()
