"""Stage `mmlu`: one model's MMLU-format accuracy (k-shot) on `mmlu.source`: the synthetic general-knowledge set
(builtin), a Hendrycks directory or a hub dataset, in the format `mmlu.format` names: mc, the answer letter with the
highest next-token logit after "Answer:" (Open-Instruct, the official SemEval way), or rc, OLMES's cloze formulation
(each option's summed log-likelihood as the continuation of the prompt, per character); auto is rc for builtin and
mc for real MMLU. Writes mmlu.json (accuracy, per subject, n, source, k, format) and questions.jsonl (each test
question's prediction and whether it is correct).

python -m stages.mmlu --data data/prepared --target models/target --model models/<target|run> --out DIR
"""
from unlearning import config
from unlearning.cli import evaluation_args, evaluation_record, load_scored_model
from unlearning.errors import exit_on_error
from unlearning.evaluation import mmlu

PARAMS = ("numerics", "device", "model.dtype", "model.trust_remote_code", "mmlu.source", "mmlu.format", "mmlu.subjects",
          "mmlu.limit", "mmlu.k", "mmlu.batch_size")


@exit_on_error
def main(argv=None):
    args = evaluation_args(argv, __doc__)
    params = config.load(PARAMS)
    inputs = mmlu.load_inputs(args.data, params["mmlu.source"], params["mmlu.subjects"], params["mmlu.limit"],
                              params["mmlu.format"])
    model, tokenizer = load_scored_model(args, params)
    result = mmlu.run(model, tokenizer, inputs, params["mmlu.k"], params["mmlu.batch_size"])
    mmlu.write(args.out, result, str(args.model), evaluation_record(args, model))


if __name__ == "__main__":
    main()
