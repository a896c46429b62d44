"""Stage `mia`: membership inference on one model: the loss attack (official), zlib, Min-K% and Min-K%++, members
the forget Task3 documents of `data.split`, non-members documents of the same kind the model never saw.

python -m stages.mia --data data/prepared --target models/target --model models/<target|run> --out DIR
"""
from unlearning import config
from unlearning.cli import evaluation_args, evaluation_record, load_scored_model
from unlearning.errors import exit_on_error
from unlearning.evaluation import mia

PARAMS = ("numerics", "device", "model.dtype", "model.trust_remote_code", "data.split", "mia.batch_size", "mia.min_k")


@exit_on_error
def main(argv=None):
    args = evaluation_args(argv, __doc__)
    params = config.load(PARAMS)
    inputs = mia.load_inputs(args.data, params["data.split"])
    model, tokenizer = load_scored_model(args, params)
    result = mia.run(model, tokenizer, inputs, params["mia.batch_size"], params["mia.min_k"])
    mia.write(args.out, result, str(args.model), evaluation_record(args, model))


if __name__ == "__main__":
    main()
