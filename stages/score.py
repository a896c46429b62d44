"""Stage: every evaluation of one model in one process (the task score, the MIA attacks and MMLU), for the layer
sweep's and the other methods' models: one interpreter start and one model load instead of three.

python -m stages.score --model {sweep/<first layer>|method/<method>|unlearned|target}

The same functions as the `evaluate`, `mia` and `mmlu` stages, with the same outputs under reports/eval/<model>/,
except the validation split: the report shows it for the headline run, and its generations would cost every run
a quarter more time. Every input is read and checked, and every number computed, before anything is written.
"""
from . import evaluate, mia, mmlu
from .errors import exit_on_error
from .modeling import evaluate_stage_model, parse_model_arg
from .params import load_validated


def task_inputs(params: dict) -> dict:
    return {**evaluate.load_inputs(params), "validation": []}


@exit_on_error
def main(argv=None):
    evaluate_stage_model(parse_model_arg(__doc__.splitlines()[0], argv), load_validated(),
                         [(task_inputs, evaluate.run, evaluate.write),
                          *((module.load_inputs, module.run, module.write) for module in (mia, mmlu))])


if __name__ == "__main__":
    main()
