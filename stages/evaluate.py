"""Stage `evaluate`: one model's task score. Greedy generations of the forget and retain rows of `data.split`, scored
the SemEval way, and the Task2 PII they reproduce; with the train split, the validation split too.

python -m stages.evaluate --data data/prepared --target models/target --model models/<target|run> --out DIR
"""
from unlearning import config
from unlearning.cli import evaluation_args, evaluation_record, load_scored_model
from unlearning.errors import exit_on_error
from unlearning.evaluation import task

PARAMS = ("numerics", "device", "model.dtype", "model.trust_remote_code", "data.split", "evaluate.max_new_tokens",
          "evaluate.batch_size", "evaluate.clean_up_spaces")


@exit_on_error
def main(argv=None):
    args = evaluation_args(argv, __doc__)
    params = config.load(PARAMS)
    inputs = task.load_inputs(args.data, params["data.split"])
    model, tokenizer = load_scored_model(args, params)
    result = task.run(model, tokenizer, inputs, params["evaluate.max_new_tokens"], params["evaluate.batch_size"],
                      str(args.model), params["evaluate.clean_up_spaces"])
    task.write(args.out, result, str(args.model), evaluation_record(args, model))


if __name__ == "__main__":
    main()
