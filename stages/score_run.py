"""Stage `score_run`: every evaluation of one run's model in one process (the task score, the MIA attacks and MMLU),
for the layer sweep's and the methods' runs: one interpreter start and one model load instead of three.

python -m stages.score_run --data data/prepared --target models/target --model models/<run> --out reports/eval/<run>

The same functions as the `evaluate`, `mia` and `mmlu` stages, writing <out>/task, <out>/mia and <out>/mmlu, except
the validation split: the report shows it for the headline run, and its generations would cost every run a quarter
more time. Every input is read and checked, and every number computed, before anything is written.
"""
from unlearning import config
from unlearning.cli import evaluation_args, evaluation_record, load_scored_model
from unlearning.errors import exit_on_error
from unlearning.evaluation import mia, mmlu, task

from . import evaluate
from . import mia as mia_stage
from . import mmlu as mmlu_stage

PARAMS = tuple(dict.fromkeys(evaluate.PARAMS + mia_stage.PARAMS + mmlu_stage.PARAMS))


@exit_on_error
def main(argv=None):
    args = evaluation_args(argv, __doc__)
    params = config.load(PARAMS)
    split = params["data.split"]
    inputs = {"task": task.load_inputs(args.data, split, validation=False),
              "mia": mia.load_inputs(args.data, split),
              "mmlu": mmlu.load_inputs(args.data, params["mmlu.source"], params["mmlu.subjects"], params["mmlu.limit"],
                                       params["mmlu.format"])}
    model, tokenizer = load_scored_model(args, params)
    results = {
        "task": task.run(model, tokenizer, inputs["task"], params["evaluate.max_new_tokens"],
                         params["evaluate.batch_size"], str(args.model), params["evaluate.clean_up_spaces"]),
        "mia": mia.run(model, tokenizer, inputs["mia"], params["mia.batch_size"], params["mia.min_k"]),
        "mmlu": mmlu.run(model, tokenizer, inputs["mmlu"], params["mmlu.k"], params["mmlu.batch_size"]),
    }
    fingerprint = evaluation_record(args, model)
    for name, module in (("task", task), ("mia", mia), ("mmlu", mmlu)):
        module.write(args.out / name, results[name], str(args.model), fingerprint)


if __name__ == "__main__":
    main()
