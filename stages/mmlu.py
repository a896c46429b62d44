"""Stage `mmlu`: one model's MMLU-format accuracy (k-shot, the answer letter with the highest next-token logit), on
`mmlu.source`: the synthetic general-knowledge set (builtin), a Hendrycks directory or a hub dataset.

python -m stages.mmlu --data data/prepared --target models/target --model models/<target|run> --out DIR
"""
from unlearning import config
from unlearning.cli import evaluation_args, load_scored_model
from unlearning.errors import exit_on_error
from unlearning.evaluation import mmlu

PARAMS = ("device", "model.dtype", "model.trust_remote_code", "mmlu.source", "mmlu.subjects", "mmlu.limit", "mmlu.k",
          "mmlu.batch_size")


@exit_on_error
def main(argv=None):
    args = evaluation_args(argv, __doc__)
    params = config.load(PARAMS)
    inputs = mmlu.load_inputs(args.data, params["mmlu.source"], params["mmlu.subjects"], params["mmlu.limit"])
    model, tokenizer = load_scored_model(args, params)
    result = mmlu.run(model, tokenizer, inputs, params["mmlu.k"], params["mmlu.batch_size"])
    mmlu.write(args.out, result, str(args.model))


if __name__ == "__main__":
    main()
