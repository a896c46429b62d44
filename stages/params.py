"""params.yaml, loaded once and checked before any heavy work. Every bad value is one PipelineError line."""
import re
import sys
from pathlib import Path

import yaml

from .errors import PipelineError

PARAMS_FILE = "params.yaml"

MODEL_SOURCES = ("scratch", "pretrained")
DATA_SPLITS = ("train", "validation")
DTYPES = ("auto", "float32", "bfloat16", "float16")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
RMU_METHODS = ("adaptive_rmu", "rmu")
BASELINE_METHODS = ("gradient_ascent", "gradient_difference", "kl", "npo")
UNLEARN_METHODS = RMU_METHODS + BASELINE_METHODS
ENGINES = ("fast", "reference")
BASELINE_PARAMS = ("layers", "all")
DIRECTIONS = ("gaussian", "uniform")


# Every key the pipeline reads (None: a leaf). Anything else in params.yaml is a typo or a leftover: warned about.
KNOWN_KEYS = {
    "device": None, "layers": None, "alpha": None, "sweep": None, "methods": None, "baselines": None,
    "data": {"source": None, "split": None, "limit": None, "seed": None,
             "synthetic": dict.fromkeys(["train_docs", "validation_docs", "nonmember_docs", "gk_countries",
                                         "gk_test_per_subject"])},
    "model": {"source": None, "name_or_path": None, "dtype": None, "trust_remote_code": None, "allow_pickle": None,
              "finetune": dict.fromkeys(["epochs", "lr", "batch_size"]),
              "scratch": dict.fromkeys(["num_hidden_layers", "hidden_size", "intermediate_size",
                                        "num_attention_heads", "vocab_size", "max_position_embeddings"]),
              "train": dict.fromkeys(["epochs", "lr", "batch_size", "seed"]),
              "require": dict.fromkeys(["sc_rouge", "qa_exact", "mmlu", "mia_auc"])},
    "unlearn": dict.fromkeys(["method", "engine", "beta", "steering_coeff", "direction", "lr", "steps", "batch_size",
                              "max_length", "seed", "baseline_params", "baseline_lr", "retain_weight", "npo_beta"]),
    "evaluate": dict.fromkeys(["max_new_tokens", "batch_size"]),
    "mia": dict.fromkeys(["batch_size", "min_k"]),
    "mmlu": dict.fromkeys(["source", "subjects", "limit", "k", "batch_size"]),
}


def unknown_keys(params: dict, known: dict = KNOWN_KEYS, prefix: str = "") -> list[str]:
    unknown = []
    for key, value in params.items():
        if key not in known:
            unknown.append(prefix + str(key))
        elif isinstance(known[key], dict) and isinstance(value, dict):
            unknown += unknown_keys(value, known[key], f"{prefix}{key}.")
    return unknown


def load_params(path=PARAMS_FILE) -> dict:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run from the project root, where params.yaml lives")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PipelineError(f"{path}: not valid YAML{where} ({getattr(err, 'problem', None) or err})") from None
    if not isinstance(params, dict):
        raise PipelineError(f"{path}: expected a mapping of params at the top level")
    return params


def get(params: dict, key: str):
    """params['a']['b'] for key 'a.b', with an error naming the missing key."""
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise PipelineError(f"params.yaml: missing key `{key}`; add it (see the README's params table)")
        node = node[part]
    return node


def number(params: dict, key: str, *, minimum=None, exclusive=False, integer=False):
    value = get(params, key)
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise PipelineError(f"params.yaml: `{key}` must be {kind}, got {value!r}")
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        bound = f"> {minimum}" if exclusive else f">= {minimum}"
        raise PipelineError(f"params.yaml: `{key}` must be {bound}, got {value!r}")
    return value


def choice(params: dict, key: str, allowed):
    value = get(params, key)
    if value not in allowed:
        raise PipelineError(f"params.yaml: `{key}` is {value!r}; choose one of {', '.join(map(str, allowed))}")
    return value


def optional(params: dict, key: str, check):
    """`check(params, key)` unless the value is null (the feature is off)."""
    return None if get(params, key) is None else check(params, key)


def fraction(params: dict, key: str) -> float:
    """A number in (0, 1]."""
    value = get(params, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise PipelineError(f"params.yaml: `{key}` must be a fraction in (0, 1], e.g. 0.2, got {value!r}")
    return value


def flag(params: dict, key: str) -> bool:
    value = get(params, key)
    if not isinstance(value, bool):
        raise PipelineError(f"params.yaml: `{key}` must be true or false, got {value!r}")
    return value


def source(params: dict, key: str, builtin: str | None, example: str) -> str:
    """`builtin` (if any), an existing local directory, or a Hugging Face hub id (owner/name)."""
    value = get(params, key)
    if not isinstance(value, str) or not (value == builtin or Path(value).is_dir() or HUB_ID.fullmatch(value)):
        options = f"not {builtin!r}, " if builtin else ""
        raise PipelineError(f"params.yaml: `{key}` is {value!r}: {options}not an existing directory and not a "
                            f"Hugging Face id (owner/name); use {f'{builtin} or ' if builtin else ''}e.g. {example}")
    return value


def subjects(params: dict, key: str):
    value = get(params, key)
    if value != "all" and not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        raise PipelineError(f"params.yaml: `{key}` is {value!r}; use all or a list of subject names "
                            "(e.g. [anatomy, astronomy])")
    return value


def layer_triple(value, num_layers: int | None = None, key: str = "`layers`") -> list[int]:
    """Three consecutive 0-based decoder layer indices; the last one is steered. `key` names them in errors."""
    hint = "set `layers` to three consecutive indices, e.g. layers: [5, 6, 7]"
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise PipelineError(f"params.yaml: {key} is {value!r}, not a list of three integers; {hint}")
    if value[1] != value[0] + 1 or value[2] != value[1] + 1 or value[0] < 0:
        raise PipelineError(f"params.yaml: {key} {value} are not three consecutive non-negative indices; {hint}")
    if num_layers is not None and value[2] >= num_layers:
        raise PipelineError(
            f"params.yaml: {key} {value} does not fit the model, which has {num_layers} decoder layers "
            f"(valid indices 0..{num_layers - 1})")
    return value


def sweep_layers(value) -> list[int]:
    """`sweep`: the first layer of each triple the layer sweep runs (stage names unlearn_sweep@<first layer>)."""
    if (not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
            or len(set(value)) != len(value)):
        raise PipelineError(f"params.yaml: `sweep` is {value!r}; use a list of distinct first layers, e.g. "
                            "sweep: [0, 8, 16, 24] for the triples 0-2, 8-10, 16-18, 24-26 (or [] for no sweep)")
    return value


# The further methods on `layers`, by the params they depend on: the RMU variants (stages unlearn_method@<m>) use
# alpha, the output-loss baselines (unlearn_baseline@<m>) do not.
METHOD_LISTS = {"methods": RMU_METHODS, "baselines": BASELINE_METHODS}


def method_list(params: dict, key: str) -> list[str]:
    """`methods` or `baselines`: distinct methods of that kind, run beside the headline one."""
    value, allowed = get(params, key), METHOD_LISTS[key]
    if (not isinstance(value, list) or not all(isinstance(v, str) and v in allowed for v in value)
            or len(set(value)) != len(value)):
        raise PipelineError(f"params.yaml: `{key}` is {value!r}; use a list of distinct methods from "
                            f"{', '.join(allowed)} (or [] for none)")
    return value


# A run is one unlearned model: `unlearned` (the headline: `layers` and `unlearn`), `sweep/<first layer>` (the
# same settings on another triple) or `method/<method>` (another method on `layers`).
RUN_NAME = re.compile(r"unlearned|sweep/(\d+)|method/(\w+)")


def check_run(run: str) -> str:
    match = RUN_NAME.fullmatch(run)
    if match is None or (match.group(2) and match.group(2) not in UNLEARN_METHODS):
        raise PipelineError(f"run {run!r} is not unlearned, sweep/<first layer> nor method/<one of "
                            f"{', '.join(UNLEARN_METHODS)}>")
    return run


def run_settings(params: dict, run: str) -> tuple[list[int], dict]:
    """The layer triple and the `unlearn` settings of a run; the stages of every run call the same code."""
    match = RUN_NAME.fullmatch(check_run(run))
    if match.group(1):
        first = int(match.group(1))
        return [first, first + 1, first + 2], params["unlearn"]
    if match.group(2):
        return params["layers"], {**params["unlearn"], "method": match.group(2)}
    return params["layers"], params["unlearn"]


def validate(params: dict) -> dict:
    """Check every key the pipeline reads; raise on the first bad one; warn about keys it does not know.
    Returns params unchanged."""
    for key in unknown_keys(params):
        print(f"warning: params.yaml: unknown key `{key}` is ignored; check its spelling against the README's "
              "params table", file=sys.stderr)
    device = get(params, "device")
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise PipelineError(f"params.yaml: `device` is {device!r}; use auto, cpu, cuda or cuda:N")
    layer_triple(get(params, "layers"))
    sweep_layers(get(params, "sweep"))
    method_list(params, "methods")
    method_list(params, "baselines")
    number(params, "alpha", minimum=0)
    source(params, "data.source", "synthetic", "../shared/data/semeval25-unlearning-data")
    choice(params, "data.split", DATA_SPLITS)
    optional(params, "data.limit", lambda p, k: number(p, k, minimum=1, integer=True))
    number(params, "data.seed", integer=True)
    for key in ("train_docs", "validation_docs", "nonmember_docs", "gk_countries", "gk_test_per_subject"):
        number(params, f"data.synthetic.{key}", minimum=1, integer=True)
    if choice(params, "model.source", MODEL_SOURCES) == "pretrained":
        source(params, "model.name_or_path", None, "allenai/OLMo-1B-0724-hf")
    choice(params, "model.dtype", DTYPES)
    flag(params, "model.trust_remote_code")
    flag(params, "model.allow_pickle")
    if get(params, "model.finetune") is not None:
        number(params, "model.finetune.epochs", minimum=1, integer=True)
        number(params, "model.finetune.lr", minimum=0, exclusive=True)
        number(params, "model.finetune.batch_size", minimum=1, integer=True)
    for key in ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "vocab_size",
                "max_position_embeddings"):
        number(params, f"model.scratch.{key}", minimum=1, integer=True)
    number(params, "model.train.epochs", minimum=1, integer=True)
    number(params, "model.train.lr", minimum=0, exclusive=True)
    number(params, "model.train.batch_size", minimum=1, integer=True)
    number(params, "model.train.seed", integer=True)
    if get(params, "model.require") is not None:
        for key in ("sc_rouge", "qa_exact", "mmlu", "mia_auc"):
            number(params, f"model.require.{key}", minimum=0)
    choice(params, "unlearn.method", UNLEARN_METHODS)
    choice(params, "unlearn.engine", ENGINES)
    choice(params, "unlearn.direction", DIRECTIONS)
    number(params, "unlearn.beta", minimum=0, exclusive=True)
    number(params, "unlearn.steering_coeff", minimum=0, exclusive=True)
    number(params, "unlearn.lr", minimum=0, exclusive=True)
    for key in ("steps", "batch_size", "max_length"):
        number(params, f"unlearn.{key}", minimum=1, integer=True)
    number(params, "unlearn.seed", integer=True)
    choice(params, "unlearn.baseline_params", BASELINE_PARAMS)
    number(params, "unlearn.baseline_lr", minimum=0, exclusive=True)
    number(params, "unlearn.retain_weight", minimum=0)
    number(params, "unlearn.npo_beta", minimum=0, exclusive=True)
    number(params, "evaluate.max_new_tokens", minimum=1, integer=True)
    number(params, "evaluate.batch_size", minimum=1, integer=True)
    number(params, "mia.batch_size", minimum=1, integer=True)
    fraction(params, "mia.min_k")
    source(params, "mmlu.source", "builtin", "../shared/data/mmlu or cais/mmlu")
    subjects(params, "mmlu.subjects")
    optional(params, "mmlu.limit", lambda p, k: number(p, k, minimum=1, integer=True))
    number(params, "mmlu.k", minimum=0, integer=True)
    number(params, "mmlu.batch_size", minimum=1, integer=True)
    return params


def load_validated(path=PARAMS_FILE) -> dict:
    return validate(load_params(path))
