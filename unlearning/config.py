"""params.yaml, declared once. SCHEMA below holds every key's default, its check (type and range) and its one-line
meaning; validation, the unknown-key check, params.yaml itself and docs/params.md are made from it
(`python -m unlearning.tools.sync` writes the files, and the tests check that they match).

A stage reads params through `load(keys)`: it validates the whole file first (any bad value anywhere stops the
stage with one line, before work) and returns the values of exactly the keys the stage declares, which are what
its dvc.yaml entry lists. Reading any other key is an error, so no stage can depend on a param DVC does not track.

Plain dataclasses and small check objects rather than a validation library: the checks are few, the messages are
the project's one-line errors (key, value, fix), and the same objects render the YAML comments and the docs.
"""
import atexit
import difflib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import PipelineError

PARAMS_FILE = "params.yaml"
REFERENCE = "docs/params.md"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
NAME = re.compile(r"[a-z][a-z0-9_]*")


def _fail(key: str, message: str):
    raise PipelineError(f"params.yaml: `{key}` {message}")


# ---- checks: each validates one value (raising the one-line error) and says in words what it accepts -------------

class Number:
    def __init__(self, minimum=None, exclusive=False, integer=False):
        self.minimum, self.exclusive, self.integer = minimum, exclusive, integer

    def __call__(self, value, key):
        kind = "an integer" if self.integer else "a number"
        ok_type = isinstance(value, int) if self.integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            _fail(key, f"must be {kind}, got {value!r}")
        if self.minimum is not None and (value <= self.minimum if self.exclusive else value < self.minimum):
            _fail(key, f"must be {'>' if self.exclusive else '>='} {self.minimum}, got {value!r}")

    def describe(self):
        kind = "integer" if self.integer else "number"
        return kind if self.minimum is None else f"{kind} {'>' if self.exclusive else '>='} {self.minimum}"


class Optional:
    """null (the feature is off) or what `check` accepts."""

    def __init__(self, check):
        self.check = check

    def __call__(self, value, key):
        if value is not None:
            self.check(value, key)

    def describe(self):
        return f"null or {self.check.describe()}"


class Choice:
    def __init__(self, *values):
        self.values = values

    def __call__(self, value, key):
        if value not in self.values:
            _fail(key, f"is {value!r}; choose one of {', '.join(map(str, self.values))}")

    def describe(self):
        return " \\| ".join(f"`{v}`" for v in self.values)


class Flag:
    def __call__(self, value, key):
        if not isinstance(value, bool):
            _fail(key, f"must be true or false, got {value!r}")

    def describe(self):
        return "true \\| false"


class Fraction:
    def __call__(self, value, key):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            _fail(key, f"must be a fraction in (0, 1], e.g. 0.2, got {value!r}")

    def describe(self):
        return "number in (0, 1]"


class Device:
    def __call__(self, value, key):
        if not isinstance(value, str) or not (value in ("auto", "cpu", "cuda") or value.startswith("cuda:")):
            _fail(key, f"is {value!r}; use auto, cpu, cuda or cuda:N")

    def describe(self):
        return "`auto` \\| `cpu` \\| `cuda` \\| `cuda:N`"


class Source:
    """`builtin` (if any), an existing local directory, or a Hugging Face hub id (owner/name)."""

    def __init__(self, builtin: str | None, example: str):
        self.builtin, self.example = builtin, example

    def __call__(self, value, key):
        if not isinstance(value, str) or not (value == self.builtin or Path(value).is_dir() or HUB_ID.fullmatch(value)):
            options = f"not {self.builtin!r}, " if self.builtin else ""
            _fail(key, f"is {value!r}: {options}not an existing directory and not a Hugging Face id (owner/name); "
                       f"use {f'{self.builtin} or ' if self.builtin else ''}e.g. {self.example}")

    def describe(self):
        return (f"`{self.builtin}`, " if self.builtin else "") + "a directory or a hub id (owner/name)"


class Subjects:
    def __call__(self, value, key):
        if value != "all" and not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            _fail(key, f"is {value!r}; use all or a list of subject names (e.g. [anatomy, astronomy])")

    def describe(self):
        return "`all` or a list of subject names"


LAYERS_HINT = "set `layers` to three consecutive indices, e.g. layers: [5, 6, 7]"


def layer_triple(value, num_layers: int | None = None, key: str = "`layers`") -> list[int]:
    """Three consecutive 0-based decoder layer indices; the last one is steered. `key` names them in errors."""
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise PipelineError(f"params.yaml: {key} is {value!r}, not a list of three integers; {LAYERS_HINT}")
    if value[1] != value[0] + 1 or value[2] != value[1] + 1 or value[0] < 0:
        raise PipelineError(f"params.yaml: {key} {value} are not three consecutive non-negative indices; "
                            f"{LAYERS_HINT}")
    if num_layers is not None and value[2] >= num_layers:
        first = max(0, num_layers - 4)
        raise PipelineError(
            f"params.yaml: {key} {value} does not fit the model, which has {num_layers} decoder layers "
            f"(valid indices 0..{num_layers - 1}); pick a triple within them, e.g. [{first}, {first + 1}, "
            f"{first + 2}]")
    return value


class LayerTriple:
    def __call__(self, value, key):
        layer_triple(value)

    def describe(self):
        return "three consecutive layer indices"


class MethodName:
    """The name of a method; which names exist is the method tables' business (unlearning/methods), checked by the
    stage that runs it, so that this schema imports no method."""

    def __call__(self, value, key):
        if not isinstance(value, str) or not NAME.fullmatch(value):
            _fail(key, f"is {value!r}; use a method name such as adaptive_rmu")

    def describe(self):
        return "a method name"


class DistinctList:
    """A list of distinct items, each of which `item` accepts; `use` says in the error what to write instead. The
    runs beside the headline (`sweep`, `seeds`, `methods`, `baselines`) and the attacked models are such lists."""

    def __init__(self, item, use: str, describe: str):
        self.item, self.use, self.description = item, use, describe

    def __call__(self, value, key):
        if not isinstance(value, list) or not all(map(self.item, value)) or len(set(value)) != len(value):
            _fail(key, f"is {value!r}; use {self.use}")

    def describe(self):
        return self.description


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def run_name(kind: str, key) -> str:
    """The name of a run beside the target and the headline (`unlearned`): `sweep/<first layer>`, `seed/<seed>` or
    `method/<name>`; it is the run's folder under models/ and reports/eval/, and its key in reports/metrics/runs.json."""
    return f"{kind}/{key}"


def pipeline_runs(params: dict) -> list[str]:
    """Every model these params make: the target, the headline, the sweep's, the methods' and the seeds' runs."""
    return ["target", "unlearned", *(run_name("sweep", first) for first in get(params, "sweep")),
            *(run_name("method", name) for name in get(params, "methods") + get(params, "baselines")),
            *(run_name("seed", seed) for seed in get(params, "seeds"))]


RUN_NAME = re.compile(r"target|unlearned|method/[a-z][a-z0-9_]*|sweep/\d+|seed/-?\d+")
FIRST_LAYERS = DistinctList(lambda v: _integer(v) and v >= 0, "a list of distinct first layers, e.g. sweep: "
                            "[0, 8, 16, 24] for the triples 0-2, 8-10, 16-18, 24-26 (or [] for no sweep)",
                            "list of distinct layer indices")
SEEDS = DistinctList(_integer, "a list of distinct integers, e.g. seeds: [1, 2] (or [] for none)",
                     "list of distinct integers")
METHOD_NAMES = DistinctList(lambda v: isinstance(v, str) and NAME.fullmatch(v),
                            "a list of distinct method names (or [] for none)", "list of distinct method names")
# that each is a run of these params is checked by validate, which sees the other keys
ATTACKED_MODELS = DistinctList(lambda v: isinstance(v, str) and RUN_NAME.fullmatch(v),
                               "a list of distinct model folders under models/: target, unlearned (the headline), "
                               "method/<name>, sweep/<first layer>, seed/<seed> (or [] for none)",
                               "list of model folders (target, unlearned, method/M, sweep/N, seed/S)")


class StepCounts:
    def __call__(self, value, key):
        if (not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool)
                                                                and v >= 1 for v in value) or value != sorted(set(value))):
            _fail(key, f"is {value!r}; use a non-empty increasing list of step counts, e.g. [10, 50]")

    def describe(self):
        return "increasing list of positive integers"


# ---- the schema ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    default: object
    check: object
    meaning: str
    when: tuple = ()  # (key, value): the check applies only when that other key has that value


@dataclass(frozen=True)
class Section:
    meaning: str
    keys: dict
    nullable: bool = False  # null turns the whole feature off
    default_null: bool = False  # null unless set (the keys then say what to give)
    doc_keys: dict = field(default_factory=dict)


ATTACK_LR = 0.001   # the relearning attacks' lr on the miniature (docs/results.md)

SCHEMA = {
    "device": Param("auto", Device(), "every stage that runs a model: auto (CUDA when present, else CPU), cpu, cuda "
                                      "or cuda:N"),
    "numerics": Section("how every stage computes: portable (the same bytes on every x86-64 CPU with AVX2, Intel or "
                        "AMD, any core count; docs/reliability.md) or the machine's own", {
        "mode": Param("portable", Choice("portable", "native"),
                      "portable: torch's, MKL's and oneDNN's AVX2 code paths on any CPU, deterministic algorithms; "
                      "native: the fastest kernels this machine has (its results are its own)"),
        "threads": Param(2, Number(minimum=1, integer=True),
                         "threads of every stage process, whatever the machine's core count (results depend on the "
                         "count)"),
    }),
    "layers": Param([12, 13, 14], LayerTriple(), "three consecutive 0-based decoder layers whose mlp.down_proj is "
                                                 "trained; the last one is steered"),
    "alpha": Param(5, Number(minimum=0), "weight of RMU's retain term (MSE between updated and frozen layer "
                                         "activations on retain data); the paper: about 900 at OLMo scale"),
    "sweep": Param([2, 7, 13], FIRST_LAYERS, "the layer sweep: the first layer of each further triple unlearned with the "
                                        "headline's settings (stages unlearn_sweep@N, score_sweep@N; [] for none)"),
    "seeds": Param([1, 2], SEEDS, "further unlearning seeds of the headline run (stages unlearn_seed@N, "
                                    "score_seed@N): the report states the spread over them and `unlearn.seed`"),
    "methods": Param(["rmu"], METHOD_NAMES, "further RMU variants run on `layers` beside the headline "
                                             "(adaptive_rmu, rmu; [] for none); they depend on alpha"),
    "baselines": Param(["gradient_ascent", "gradient_difference", "kl", "npo"], METHOD_NAMES,
                       "output-loss methods run on `layers` for the methods table (docs/methods.md; [] for none); "
                       "they do not depend on alpha"),
    "data": Section("the forget/retain data", {
        "source": Param("synthetic", Source("synthetic", "../shared/data/semeval25-unlearning-data"),
                        "synthetic (the built-in miniature), a directory of the real data (organizers' layout or "
                        "forget.jsonl + retain.jsonl) or the hub id "
                        "llmunlearningsemeval2025organization/semeval25-unlearning-dataset-public"),
        "split": Param("train", Choice("train", "validation"), "the forget/retain split that is unlearned and scored"),
        "limit": Param(None, Optional(Number(minimum=1, integer=True)),
                       "keep the first N documents per task in every split, MIA members first (null: all)"),
        "seed": Param(0, Number(integer=True), "seed of the synthetic world"),
        "synthetic": Section("the size of the built-in miniature world", {
            "train_docs": Param(20, Number(minimum=1, integer=True),
                                "documents per task in forget and in retain, train split"),
            "validation_docs": Param(2, Number(minimum=1, integer=True),
                                     "documents per task in forget and in retain, validation split"),
            "nonmember_docs": Param(20, Number(minimum=1, integer=True),
                                    "MIA non-members: Task3-style biographies the model never sees"),
            "background_docs": Param(150, Number(minimum=0, integer=True),
                                     "background corpus: documents per task kind, each with one question, that the "
                                     "target learns before it memorises (as OLMo was pretrained); disjoint from the "
                                     "rest"),
            "gk_countries": Param(30, Number(minimum=1, integer=True),
                                  "invented countries whose facts make the general-knowledge (MMLU-format) set"),
            "gk_test_per_subject": Param(15, Number(minimum=1, integer=True),
                                         "general-knowledge test questions per subject"),
        }),
    }),
    "model": Section("the target model: the one that knows what it will be asked to forget", {
        "source": Param("scratch", Choice("scratch", "pretrained"),
                        "scratch: train an OLMo-architecture model; pretrained: load name_or_path"),
        "name_or_path": Param(None, Source(None, "allenai/OLMo-1B-0724-hf"),
                              "pretrained: a hub id (e.g. allenai/OLMo-1B-0724-hf) or a local directory",
                              when=("model.source", "pretrained")),
        "finetune": Section("pretrained: fine-tune on forget + retain first, as the organizers did (null: none)", {
            "epochs": Param(None, Number(minimum=1, integer=True), "epochs over forget + retain"),
            "lr": Param(None, Number(minimum=0, exclusive=True), "AdamW learning rate"),
            "batch_size": Param(None, Number(minimum=1, integer=True), "texts per step"),
        }, nullable=True, default_null=True),
        "dtype": Param("auto", Choice("auto", "float32", "bfloat16", "float16"),
                       "auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16 or float16"),
        "trust_remote_code": Param(False, Flag(), "never run a model repository's own code unless set"),
        "allow_pickle": Param(False, Flag(), "pretrained: refuse pickled weights (pytorch_model.bin) unless set"),
        "scratch": Section("the architecture of the model trained from scratch", {
            "num_hidden_layers": Param(16, Number(minimum=1, integer=True),
                                       "as OLMo-1B, the model of the task's 1B track (32 trained twice as slowly)"),
            "hidden_size": Param(64, Number(minimum=1, integer=True), "width of the residual stream"),
            "intermediate_size": Param(256, Number(minimum=1, integer=True), "width of the MLP"),
            "num_attention_heads": Param(4, Number(minimum=1, integer=True), "attention heads"),
            "vocab_size": Param(2048, Number(minimum=1, integer=True), "byte-level BPE vocabulary trained on the data"),
            "max_position_embeddings": Param(512, Number(minimum=1, integer=True), "context length"),
        }),
        "train": Section("training from scratch", {
            "epochs": Param(70, Number(minimum=1, integer=True),
                            "epochs over every forget and retain row and the general facts"),
            "background_fraction": Param(0.06, Number(minimum=0),
                                         "the part of the background corpus mixed into each epoch, taken in turn "
                                         "(0.06: 70 epochs see it 4.2 times)"),
            "lr": Param(0.01, Number(minimum=0, exclusive=True), "AdamW peak learning rate (cosine decay)"),
            "batch_size": Param(8, Number(minimum=1, integer=True), "texts per step"),
            "seed": Param(0, Number(integer=True), "tokenizer, initialisation and batch order"),
        }),
        "require": Section("the target stage fails unless the model meets all of these (null: no checks)", {
            "sc_rouge": Param(0.9, Number(minimum=0), "mean ROUGE-L recall of sc rows, per task, forget and retain"),
            "qa_exact": Param(0.8, Number(minimum=0), "QA exact match, per task, forget and retain"),
            "mmlu": Param(0.0, Number(minimum=0), "general-knowledge (MMLU-format) accuracy"),
            "mia_auc": Param(0.9, Number(minimum=0), "loss-attack AUC, forget Task3 members vs non-members"),
        }, nullable=True),
    }),
    "unlearn": Section("unlearning: the headline run's method, what every method shares, and each family's keys", {
        "method": Param("adaptive_rmu", MethodName(), "the headline run's RMU variant: adaptive_rmu (coefficient "
                                                      "beta x frozen activation norm) or rmu (fixed steering_coeff)"),
        "engine": Param("fast", Choice("fast", "lean", "reference"),
                        "RMU: fast (cached inputs, layer l-2 cut to its down_proj, then l-1..l), lean (the same "
                        "without the cut: a smaller cache) or reference (full model every step)"),
        "beta": Param(2, Number(minimum=0, exclusive=True), "adaptive RMU's scale (the paper: 3 for 1B, 5 for 7B)"),
        "steering_coeff": Param(20, Number(minimum=0, exclusive=True), "rmu's fixed steering coefficient"),
        "direction": Param("gaussian", Choice("gaussian", "uniform"),
                           "RMU's random control vector: gaussian (isotropic) or uniform (torch.rand, as the "
                           "reference code)"),
        "lr": Param(0.02, Number(minimum=0, exclusive=True),
                    "RMU's AdamW lr (the paper's 5e-5 moves nothing in this tiny model: docs/results.md)"),
        "steps": Param(900, Number(minimum=1, integer=True), "optimiser steps, every method"),
        "batch_size": Param(4, Number(minimum=1, integer=True), "texts per forget and per retain batch, every method"),
        "max_length": Param(256, Number(minimum=1, integer=True), "tokens per text, every method"),
        "seed": Param(0, Number(integer=True), "batch order and RMU's control vectors, every method"),
        "baseline_params": Param("layers", Choice("layers", "all"),
                                 "output-loss methods train the down_proj of `layers`, as RMU, or every weight (all), "
                                 "as the organizers"),
        "baseline_lr": Param(0.001, Number(minimum=0, exclusive=True),
                             "output-loss methods' AdamW lr (1e-4 forgot nothing here; the organizers' 1e-5 is for "
                             "full 7B fine-tuning)"),
        "retain_weight": Param(1, Number(minimum=0),
                               "weight of the retain NLL (gradient_difference, npo) or retain KL (kl)"),
        "npo_beta": Param(0.1, Number(minimum=0, exclusive=True), "NPO's inverse temperature (Zhang et al. 2024)"),
    }),
    "evaluate": Section("the task score: greedy generation of every row", {
        "max_new_tokens": Param(128, Number(minimum=1, integer=True),
                                "the official evaluation's 256 on the real task; 128 holds the miniature's longest "
                                "answer more than twice over (docs/scoring.md)"),
        "batch_size": Param(400, Number(minimum=1, integer=True),
                            "rows generated at once (per-step overhead dominates a small model, so larger "
                            "batches finish sooner)"),
        "clean_up_spaces": Param(True, Flag(),
                                 "rewrite \" .\" to \".\", \" 's\" to \"'s\" and the like in every generation, as the "
                                 "official script's decode (transformers 4.45, clean_up_tokenization_spaces) does"),
    }),
    "mia": Section("membership inference on the forget Task3 documents", {
        "batch_size": Param(16, Number(minimum=1, integer=True), "documents per forward"),
        "min_k": Param(0.2, Fraction(), "Min-K% and Min-K%++ attacks: fraction of least likely tokens averaged"),
    }),
    "mmlu": Section("general knowledge, MMLU format: answer letters (mc) or cloze option likelihoods (rc)", {
        "source": Param("builtin", Source("builtin", "../shared/data/mmlu or cais/mmlu"),
                        "builtin (the synthetic GK set), a Hendrycks directory (../shared/data/mmlu) or cais/mmlu"),
        "format": Param("auto", Choice("auto", "mc", "rc"),
                        "mc: the answer letter with the highest logit after `Answer:` (Open-Instruct, the official "
                        "way); rc: OLMES cloze, each option's log-likelihood per character; auto: rc for builtin, "
                        "mc otherwise"),
        "subjects": Param("all", Subjects(), "all, or a list such as [anatomy, astronomy]"),
        "limit": Param(None, Optional(Number(minimum=1, integer=True)), "test questions per subject (null: all)"),
        "k": Param(5, Number(minimum=0, integer=True), "dev examples in each prompt"),
        "batch_size": Param(16, Number(minimum=1, integer=True),
                            "sequences per forward (mc: prompts; rc: prompt + option pairs)"),
    }),
    "attack": Section("is it really forgotten? relearning and direction-ablation attacks on unlearned models "
                      "(stage attack@<model>; docs/scoring.md)", {
        "models": Param(["target", "unlearned"], ATTACKED_MODELS,
                        "the models attacked, by folder under models/: target (the scale), unlearned (the headline), "
                        "method/<name>, sweep/<first layer>, seed/<seed>; [] for none. Every method: docs/results.md"),
        "steps": Param([10, 50], StepCounts(), "fine-tuning steps after which each relearning attack is scored"),
        "lr": Param(ATTACK_LR, Number(minimum=0, exclusive=True), "the relearning attacks' AdamW learning rate"),
        "batch_size": Param(4, Number(minimum=1, integer=True), "texts per relearning step"),
        "trained": Param("all", Choice("all", "down_proj"),
                         "what relearning trains: every weight (an attacker is not bound to what unlearning "
                         "changed, as in Deeb & Roger 2024) or only the tensors the run's delta changed (the "
                         "target: the down_proj of `layers`)"),
        "seed": Param(0, Number(integer=True), "the forget documents' split into halves, and the batch order"),
    }),
    "report": Section("the report's intervals: a percentile bootstrap over documents of every score", {
        "resamples": Param(1000, Number(minimum=1, integer=True),
                           "bootstrap resamples behind each interval (more: steadier bounds, a slower report)"),
        "confidence": Param(0.95, Fraction(), "confidence level of every interval, e.g. 0.95 for 95% intervals"),
    }),
}


def walk(schema: dict = SCHEMA, prefix: str = ""):
    """(dotted key, Param or Section) of every declared key, depth first, in params.yaml order."""
    for name, node in schema.items():
        yield prefix + name, node
        if isinstance(node, Section):
            yield from walk(node.keys, f"{prefix}{name}.")


def declared(key: str):
    """The Param or Section of a dotted key, or None."""
    return dict(walk()).get(key)


def defaults(schema: dict = SCHEMA) -> dict:
    return {name: (None if node.default_null else defaults(node.keys)) if isinstance(node, Section) else node.default
            for name, node in schema.items()}


# ---- reading and checking params.yaml ------------------------------------------------------------------------------

def read(path=PARAMS_FILE) -> dict:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run from the project root, where params.yaml lives")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PipelineError(f"{path}: not valid YAML{where} ({getattr(err, 'problem', None) or err})") from None
    except UnicodeDecodeError as err:
        raise PipelineError(f"{path}: not valid UTF-8 (byte {err.start}); save the file as UTF-8") from None
    if not isinstance(params, dict):
        raise PipelineError(f"{path}: expected a mapping of params at the top level")
    return params


def get(params: dict, key: str):
    """params['a']['b'] for key 'a.b', with an error naming the missing key."""
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise PipelineError(f"params.yaml: missing key `{key}`; add it (see {REFERENCE})")
        node = node[part]
    return node


def unknown_keys(params: dict, schema: dict = SCHEMA, prefix: str = "") -> list[str]:
    unknown = []
    for key, value in params.items():
        node = schema.get(key)
        if node is None:
            unknown.append(prefix + str(key))
        elif isinstance(node, Section) and isinstance(value, dict):
            unknown += unknown_keys(value, node.keys, f"{prefix}{key}.")
    return unknown


def validate(params: dict) -> dict:
    """Check every key; raise on the first unknown or bad one, before any work. An unknown key is an error, not a
    warning: a misspelt `-S unlearn.stpes=10` would otherwise record an experiment that changes nothing. Returns
    params unchanged."""
    unknown = unknown_keys(params)
    if unknown:
        close = difflib.get_close_matches(unknown[0], [key for key, _ in walk()], n=1, cutoff=0.6)
        suggestion = f"; did you mean `{close[0]}`?" if close else "."
        more = f" ({len(unknown) - 1} more unknown: {', '.join(unknown[1:])})" if len(unknown) > 1 else ""
        raise PipelineError(f"params.yaml: unknown key `{unknown[0]}`{suggestion} Every key is in {REFERENCE}{more}")
    _validate(params, SCHEMA, "")
    _check_attacked_models(params)
    return params


def _check_attacked_models(params: dict) -> None:
    """Each model `attack.models` names is one the pipeline makes with these params."""
    made = pipeline_runs(params)
    for model in get(params, "attack.models"):
        if model not in made:
            _fail("attack.models", f"lists {model}, which no run of these params makes; remove it from "
                                   f"attack.models or add its run (the models are {', '.join(sorted(set(made)))})")


def _validate(params: dict, schema: dict, prefix: str) -> None:
    for name, node in schema.items():
        key = prefix + name
        value = get(params, key)
        if isinstance(node, Section):
            if value is None and node.nullable:
                continue
            if not isinstance(value, dict):
                _fail(key, f"must be a mapping of {', '.join(node.keys)}" + (" or null" if node.nullable else "")
                      + f", got {value!r}")
            _validate(params, node.keys, key + ".")
        elif not node.when or get(params, node.when[0]) == node.when[1]:
            node.check(value, key)


def load_all(path=PARAMS_FILE) -> dict:
    """The whole of params.yaml, validated (for tools; a stage uses `load`)."""
    return validate(read(path))


# ---- what a stage reads ----------------------------------------------------------------------------------------------

READS_LOG = "UNLEARNING_PARAMS_LOG"  # a file to which each stage appends the keys it declared and read


class StageParams:
    """The values of the keys a stage declares (dotted keys; a section's key gives its mapping). Reading a key the
    stage did not declare is an error: dvc.yaml lists the declared keys, so an undeclared read would be a param DVC
    does not track."""

    def __init__(self, params: dict, keys):
        for key in keys:
            if declared(key) is None:
                raise PipelineError(f"`{key}` is not a params.yaml key ({REFERENCE} lists them)")
        self.values = {key: get(params, key) for key in keys}
        self.read = set()
        if os.environ.get(READS_LOG):
            atexit.register(self._log, os.environ[READS_LOG])

    def __getitem__(self, key: str):
        if key not in self.values:
            raise PipelineError(f"{Path(sys.argv[0]).name} reads params key `{key}` but does not declare it; add it "
                                "to the stage's params and run `python -m unlearning.tools.sync`")
        self.read.add(key)
        return self.values[key]

    def _log(self, path: str) -> None:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"argv": sys.argv[1:], "declared": sorted(self.values), "read": sorted(self.read)})
                      + "\n")


def load(keys, path=PARAMS_FILE) -> StageParams:
    """Validate all of params.yaml, then return the values of `keys` only."""
    return StageParams(load_all(path), keys)
