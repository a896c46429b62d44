"""What perfect forgetting scores on the built-in miniature: the target on documents it never saw.

python -m unlearning.tools.never_seen [--target models/target] [--data data/prepared] [--worlds 1 2 3]

The gold standard of unlearning is a model that never trained on the forget set. On the synthetic world such
documents are free: the generator run with another seed writes documents of the same kinds, with other people,
places and numbers, that the target never saw (its forget and retain sets alike). Their task scores are what a
model that forgot perfectly (and kept everything else) would score on forget; with the target's own retain scores
they give the task aggregate of perfect unlearning. A method that scores below it on forget has damaged more than the forget documents.

Not a pipeline stage: a reference measurement of the miniature, for docs/results.md. It needs `data.source:
synthetic`, and reads data.synthetic, data.seed, data.split and evaluate.* from params.yaml.
"""
import argparse
import statistics
from pathlib import Path

from .. import config
from ..data.prepared import prepared_split
from ..data.schema import KINDS, TASKS
from ..data.synthetic import generate
from ..errors import PipelineError, exit_on_error
from ..evaluation.scoring import task_aggregate
from ..evaluation.task import evaluate_task
from ..models.delta import load_target_or_delta


def never_seen_scores(model, tokenizer, synthetic: dict, worlds: list[int], max_new_tokens: int,
                      batch_size: int, split: str, clean_up: bool = True) -> list[dict]:
    """Per other world, the target's mean score per task x kind over all its `split` rows, forget and retain alike
    (all never seen)."""
    scores = []
    for world in worlds:
        data = generate(synthetic, world)
        records = evaluate_task(model, tokenizer, data[f"forget_{split}"] + data[f"retain_{split}"], max_new_tokens,
                                batch_size, clean_up)[1]
        scores.append({task: {kind: statistics.fmean(r["score"] for r in records
                                                     if r["task"] == task and r["kind"] == kind)
                              for kind in KINDS} for task in TASKS})
    return scores


@exit_on_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=Path("models/target"))
    parser.add_argument("--data", type=Path, default=Path("data/prepared"), help="the prepared directory")
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 3],
                        help="synthetic-world seeds other than data.seed")
    args = parser.parse_args(argv)
    params = config.load_all()
    if params["data"]["source"] != "synthetic":
        raise PipelineError(f"params.yaml: data.source is {params['data']['source']!r}; never-seen documents exist "
                            "only for the synthetic world (data.source: synthetic)")
    if params["data"]["seed"] in args.worlds:
        raise PipelineError(f"--worlds {args.worlds} includes data.seed {params['data']['seed']}, the world the "
                            "target trained on; pick other seeds")
    split, evaluate = params["data"]["split"], params["evaluate"]
    model, tokenizer = load_target_or_delta(args.target, args.target, params["device"], params["model"]["dtype"],
                                            params["model"]["trust_remote_code"])
    target_rows = prepared_split(args.data, f"forget_{split}") + prepared_split(args.data, f"retain_{split}")
    target = evaluate_task(model, tokenizer, target_rows, evaluate["max_new_tokens"], evaluate["batch_size"],
                           evaluate["clean_up_spaces"])[0]
    unseen = never_seen_scores(model, tokenizer, params["data"]["synthetic"], args.worlds,
                               evaluate["max_new_tokens"], evaluate["batch_size"], split, evaluate["clean_up_spaces"])
    print(f"\nThe target on forget documents it trained on and on those of worlds {args.worlds} it never saw "
          "(mean [min, max] over worlds):\n")
    print("| task | kind | trained on (forget) | never seen | retain (trained on) |\n|---|---|---:|---:|---:|")
    for task in TASKS:
        for kind in KINDS:
            values = [world[task][kind] for world in unseen]
            print(f"| {task} | {kind} | {target['forget'][task][kind]:.3f} | {statistics.fmean(values):.3f} "
                  f"[{min(values):.3f}, {max(values):.3f}] | {target['retain'][task][kind]:.3f} |")
    aggregates = [task_aggregate({"forget": world, "retain": target["retain"]}) for world in unseen]
    print(f"\ntask aggregate of perfect unlearning (forget as never seen, retain as the target): "
          f"{statistics.fmean(aggregates):.3f} [{min(aggregates):.3f}, {max(aggregates):.3f}]")


if __name__ == "__main__":
    main()
