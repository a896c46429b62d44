"""Where one run of the real task spends its time, at the OLMo-1B and OLMo-7B shapes: unlearning (the fast engine's
setup pass and steps, against the reference engine's steps), the task score's generation of every train row at
256 new tokens, the MIA pass over the 300 documents and MMLU over every subject. The same functions the stages
call, on randomly initialised models of the real shapes and the real SemEval data and MMLU files.

    python benchmarks/run_breakdown.py --device cuda                  # the GPU script: everything, bf16
    python benchmarks/run_breakdown.py --device cpu --sample 8 --shapes 1b   # this CPU: a seeded sample

With `--sample N` each evaluation pass runs on N seeded rows, documents and questions (one batch each; for MMLU the
first N questions of one seeded subject, from whole prompts and from the subject's cached prefix) and is projected
to the whole pass by count (MMLU: by the tokens each way runs); without it (the GPU), every row, document and question runs in the stages'
batches, so the figures are measured, not projected. The unlearning part is always projected from medians over
`--steps` steps and the setup pass's time per token, to `unlearn.steps` steps over the whole forget + retain split.
Each shape runs in a fresh process (its peak memory is its own) and prints one JSON line; the parent prints the
breakdown of one run (its unlearning and its evaluation) and of the paper's sweep, every consecutive triple (30 at
7B, 14 at 1B) plus the target's evaluation once.

Needs ../shared/data/semeval25-unlearning-data and ../shared/data/mmlu. Random models never stop generating
early: every row runs all its new tokens, the upper bound of a trained model's time.
"""
import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench import step_seconds  # noqa: E402
from real_shapes import (SEMEVAL, SHAPES, available_bytes, build, mmlu_tokens, official_generations,  # noqa: E402
                         official_mia_losses, real_texts, weight_bytes)
from unlearning import config  # noqa: E402
from unlearning.evaluation import mmlu  # noqa: E402
from unlearning.evaluation.generation import greedy_generate  # noqa: E402
from unlearning.evaluation.mia import score_documents  # noqa: E402
from unlearning.methods.training import batch_schedule, encode, texts_by_task  # noqa: E402
from unlearning.models.layers import decoder_layers, frozen_parts, slice_inputs  # noqa: E402

MMLU = ROOT.parent / "shared" / "data" / "mmlu"
DEFAULTS = config.defaults()


def synchronised(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def timed(device, work) -> tuple[float, object]:
    start = synchronised(device)
    result = work()
    return synchronised(device) - start, result


def sample(items: list, n: int | None) -> list:
    return items if not n else [items[i] for i in sorted(random.Random(0).sample(range(len(items)), n))]


def setup_seconds_per_token(model, tokenizer, forget, retain, layers, cfg, device) -> float:
    """The fast engine's setup pass (the forward to layer l of every batch, and layer l-2 once more for its cut)
    per real (unpadded) token."""
    batches, _ = batch_schedule(forget, retain, cfg)
    first = decoder_layers(model)[layers[0]]
    seconds = tokens = 0

    def setup(input_ids, mask):
        hidden, layer_kwargs, _ = slice_inputs(model, layers[0], layers[-1], input_ids, mask)
        frozen_parts(first, hidden, layer_kwargs)

    for key in sorted(batches):
        input_ids, mask = encode(tokenizer, batches[key], cfg["max_length"], device)
        seconds += timed(device, lambda: setup(input_ids, mask))[0]
        tokens += int(mask.sum())
    return seconds / tokens


def split_tokens(tokenizer, data, cfg) -> int:
    """Real tokens of the whole forget + retain train split as the engine batches them (each text cut to
    unlearn.max_length)."""
    texts = [text for key in ("forget_train", "retain_train") for task in texts_by_task(data[key]).values()
             for text in task]
    lengths = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=cfg["max_length"])["input_ids"]
    return sum(map(len, lengths))


def measure(args) -> dict:
    device = torch.device(args.device)
    tokenizer, forget, retain, data = real_texts(args.texts)
    spec = SHAPES[args.shape]
    model = build(args.shape).to(device)
    if device.type == "cuda" and model.dtype == torch.float32:
        model = model.to(torch.bfloat16)  # bf16 on the GPU, as the pipeline's `dtype: auto`
    cfg = dict(DEFAULTS["unlearn"], steps=args.steps, max_length=256)
    layers = spec["layers"]
    result = {"shape": args.shape, "device": str(device), "dtype": str(model.dtype).removeprefix("torch."),
              "sample": args.sample}
    # evaluation first, on the untouched model (the run's own numbers do not matter, only its time)
    rows = sample(data["forget_train"] + data["retain_train"], args.sample)
    result["generation_s"], _ = timed(device, lambda: greedy_generate(
        model, tokenizer, [row["input"] for row in rows], args.new_tokens,
        len(rows) if args.sample else DEFAULTS["evaluate"]["batch_size"], desc="generate", clean_up=True))
    # the official evaluation's loops: generation on the first rows of the sample, MIA on the same documents
    official_prompts = [row["input"] for row in rows[:args.official_rows]]
    seconds, _ = timed(device, lambda: official_generations(model, tokenizer, official_prompts, args.new_tokens))
    result["generation_official_s_per_row"] = seconds / len(official_prompts)
    docs = sample(data["mia_member"] + data["mia_nonmember"], args.sample)
    result["mia_s"], _ = timed(device, lambda: score_documents(
        model, tokenizer, docs, len(docs) if args.sample else DEFAULTS["mia"]["batch_size"],
        DEFAULTS["mia"]["min_k"]))
    result["mia_official_s"], _ = timed(device, lambda: official_mia_losses(
        model, tokenizer, [doc["document"] for doc in docs]))
    # MMLU in the letter format from whole prompts (before) and from each subject's prefix run once (the stage's way);
    # a sample is the first questions of one seeded subject, so that they share its prefix as a whole subject's do,
    # and each pass is projected by the tokens it runs (mmlu_tokens) over every question
    inputs = mmlu.load_inputs(None, str(MMLU), "all", None)
    k, max_tokens = DEFAULTS["mmlu"]["k"], model.config.max_position_embeddings
    questions, every = len(inputs["test"]), mmlu_tokens(tokenizer, inputs["dev"], inputs["test"], k, max_tokens)
    test = inputs["test"]
    if args.sample:
        subject = random.Random(0).choice(sorted({row["subject"] for row in test}))
        test = [row for row in test if row["subject"] == subject][:args.sample]
    batch = len(test) if args.sample else DEFAULTS["mmlu"]["batch_size"]
    for name, cached in (("mmlu_whole", False), ("mmlu", True)):
        result[f"{name}_s"], _ = timed(device, lambda: mmlu.letter_logits(model, tokenizer, inputs["dev"], test, k,
                                                                          batch, prefix_cache=cached))
    result["mmlu_tokens"] = {"measured": mmlu_tokens(tokenizer, inputs["dev"], test, k, max_tokens), "all": every}
    result["counts"] = {"rows": len(data["forget_train"]) + len(data["retain_train"]),
                        "documents": len(data["mia_member"]) + len(data["mia_nonmember"]),
                        "questions": questions, "split_tokens": split_tokens(tokenizer, data, cfg)}
    result["setup_s_per_token"] = setup_seconds_per_token(model, tokenizer, forget, retain, layers, cfg, device)
    for engine in ("fast", "lean", "reference"):
        if engine == "reference" and device.type == "cpu" and 2.2 * weight_bytes(args.shape) > available_bytes():
            result["reference_step_s"] = None   # its frozen copy would not fit beside the model (7B on 24 GB)
            continue
        result[f"{engine}_step_s"] = step_seconds(model, tokenizer, forget, retain, layers,
                                                  dict(cfg, engine=engine), device)
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    if device.type == "cuda":
        result["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 1e9
    return result


def breakdown(row: dict) -> None:
    counts, n = row["counts"], row["sample"]
    tokens = row["mmlu_tokens"]
    # generation and MIA by count; MMLU by the tokens each way runs (its sample is one subject's first questions)
    scale = {"generation": counts["rows"] / n, "mia": counts["documents"] / n,
             "mmlu": tokens["all"]["cached"] / tokens["measured"]["cached"],
             "mmlu_whole": tokens["all"]["whole"] / tokens["measured"]["whole"]} if n else \
        {"generation": 1, "mia": 1, "mmlu": 1, "mmlu_whole": 1}
    steps = DEFAULTS["unlearn"]["steps"]
    unlearn = {engine: row["setup_s_per_token"] * counts["split_tokens"] * (engine == "fast")
               + steps * row[f"{engine}_step_s"] for engine in ("fast", "reference") if row[f"{engine}_step_s"]}
    parts = {"unlearn (fast engine)": unlearn["fast"],
             **{f"{name} ({counts[key]} {key})": row[f"{name}_s"] * scale[name]
                for name, key in (("generation", "rows"), ("mia", "documents"), ("mmlu", "questions"))}}
    mmlu_whole = row["mmlu_whole_s"] * scale["mmlu_whole"]
    how = "projected by count from a sample of " + str(n) if n else "measured over every item"
    mia_ratio = row["mia_official_s"] / row["mia_s"]
    generation_ratio = row["generation_official_s_per_row"] * (n or counts["rows"]) / row["generation_s"]
    total = sum(parts.values())
    print(f"\n{row['shape']} on {row['device']} ({row['dtype']}); evaluation {how}; unlearning projected to {steps} "
          f"steps (fast {row['fast_step_s']:.2f} s/step, lean {row['lean_step_s']:.2f}, reference "
          + (f"{row['reference_step_s']:.2f}: {row['reference_step_s'] / row['fast_step_s']:.1f}x"
             if row["reference_step_s"] else "not measured: two copies do not fit") + ") plus the setup pass over "
          f"{counts['split_tokens']} tokens; against the official loops: generation {generation_ratio:.1f}x "
          f"(per row), the MIA pass {mia_ratio:.2f}x on the same documents")
    for name, seconds in parts.items():
        print(f"  {name:<40} {seconds / 3600:8.2f} h  {100 * seconds / total:5.1f}%")
    mmlu_cached = row["mmlu_s"] * scale["mmlu"]
    print(f"  MMLU from whole prompts (before): {mmlu_whole / 3600:.2f} h, {tokens['all']['whole']} tokens; from each "
          f"subject's cached prefix {mmlu_cached / 3600:.2f} h, {tokens['all']['cached']} tokens: "
          f"{mmlu_whole / mmlu_cached:.1f}x; the run before: {(total - mmlu_cached + mmlu_whole) / 3600:.2f} h")
    # a sweep triple is a run (its unlearning and its evaluation); the target is evaluated once for all of them
    evaluation = total - unlearn["fast"]
    sweep = SHAPES[row["shape"]]["num_hidden_layers"] - 2  # every consecutive triple
    with_reference = (f"{(evaluation + unlearn['reference']) / 3600:.2f} h" if "reference" in unlearn
                      else "not measured")
    print(f"  one run {total / 3600:.2f} h (with the reference engine: {with_reference}); the {sweep}-triple sweep: "
          f"{sweep * total / 3600:.1f} h + the target's evaluation "
          f"{evaluation / 3600:.2f} h once")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["1b", "7b"], choices=sorted(SHAPES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sample", type=int, default=None,
                        help="rows, documents and questions per evaluation pass, projected by count (CPU)")
    parser.add_argument("--steps", type=int, default=3, help="RMU steps per engine (the median is used)")
    parser.add_argument("--texts", type=int, default=2, help="forget and retain texts per task the engines see")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--official-rows", type=int, default=2, help="rows the official generation loop runs")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    for path in (SEMEVAL, MMLU):
        if not path.is_dir():
            raise SystemExit(f"{path}: not found; this benchmark runs on the real SemEval data and MMLU")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for shape in args.shapes:
        argv = [sys.executable, __file__, "--child", "--shape", shape, "--device", args.device, "--steps",
                str(args.steps), "--texts", str(args.texts), "--new-tokens", str(args.new_tokens),
                "--official-rows", str(args.official_rows)]
        out = subprocess.run(argv + (["--sample", str(args.sample)] if args.sample else []), capture_output=True,
                             text=True)
        if out.returncode != 0:
            print(json.dumps({"shape": shape, "error": (out.stderr.strip().splitlines() or ["killed"])[-1]}))
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        breakdown(row)


if __name__ == "__main__":
    main()
