"""The engines at the real task's sizes, on this machine: randomly initialised models of the OLMo-1B and OLMo-7B
shapes (built from their configs, nothing downloaded) on the real SemEval-2025 Task 4 train data.

    python benchmarks/real_shapes.py [--shapes 1b 7b] [--steps 3] [--texts 4]   # from the project root

Needs the real data in ../shared/data/semeval25-unlearning-data. Each measurement runs in a fresh process, so that
its peak memory (the process's maximum resident set) is its own. Per shape it prints:

- RMU step time of the fast engine, of the reference engine (whole model every step, frozen copy) and of the
  floor (a bare forward + backward of layers l-2..l on the same step's batches), and the fast engine's one-off
  setup pass (the forward to layer l of every batch) against one plain forward of the whole model over the same
  batches; medians over `--steps` steps;
- the fast engine's activation cache, measured (the bytes of the tensors the engine holds, built by the same
  functions) against docs/methods.md's formula (forget tokens + 2 x retain tokens) x d x bytes;
- greedy generation rows/s at the real prompt lengths (`--new-tokens` new tokens, one batch).

`--mmlu`: MMLU's letter format from whole prompts against each subject's shared prefix run once, on
`--mmlu-subjects` (all their questions, or `--mmlu-questions` each; `--mmlu-dtype` to change the model's dtype):
time, tokens, and the largest difference between the two passes' letter logits in units in the last place (what
the rescoring margin must exceed), beside the whole-prompt pass's own difference from batch 1.

`--evaluation`: the MIA pass and the task score's generation against the official evaluation's loops, on a d=96
model with OLMo-7B's depth and vocabulary; `--mia`: the MIA pass alone, alternately `--rounds` times, on each of
`--shapes` (`--shapes d96` is the model above; `--mia-documents N` a seeded sample).
`--below-floor`: the fast engine, whose step cuts layer l-2 to its down_proj (its attention output and MLP
intermediate cached once per batch), against the lean engine and the floor.

Where the reference engine's two copies do not fit this machine's memory (7B: 2 x 13.5 GB in bf16 on 24 GB), it
is measured on the same shape cut to fewer layers (`--reference-layers`) and projected to the full depth from
the per-layer cost of two depths; the table says so. The models are random: speed does not depend on what they
know, but a random model never stops generating early, so every row runs all its new tokens.

The tokenizer is a byte-level BPE trained here on the SemEval texts with OLMo's vocabulary size (the real
GPT-NeoX tokenizer is a download); prompt lengths in tokens are within a few percent of what it gives (see
benchmarks/README.md).
"""
import argparse
import json
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import OlmoConfig, OlmoForCausalLM

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench import floor_seconds, step_seconds  # noqa: E402
from unlearning import config  # noqa: E402
from unlearning.data.semeval import load_organizers_dir  # noqa: E402
from unlearning.evaluation.generation import greedy_generate  # noqa: E402
from unlearning.methods.training import batch_schedule, encode, texts_by_task  # noqa: E402
from unlearning.models.layers import decoder_layers, frozen_parts, slice_inputs  # noqa: E402
from unlearning.models.training import train_tokenizer  # noqa: E402

SEMEVAL = ROOT.parent / "shared" / "data" / "semeval25-unlearning-data"
MMLU = ROOT.parent / "shared" / "data" / "mmlu"
# allenai/OLMo-1B-0724-hf and allenai/OLMo-7B-0724-hf, as their config.json give them
SHAPES = {
    "1b": dict(num_hidden_layers=16, hidden_size=2048, intermediate_size=8192, num_attention_heads=16,
               tie_word_embeddings=True, dtype=torch.float32, layers=[12, 13, 14]),
    "7b": dict(num_hidden_layers=32, hidden_size=4096, intermediate_size=11008, num_attention_heads=32,
               tie_word_embeddings=False, dtype=torch.bfloat16, layers=[24, 25, 26]),
    # OLMo-7B's depth and vocabulary at d=96: the evaluation passes against the official loops (--evaluation)
    "d96": dict(num_hidden_layers=32, hidden_size=96, intermediate_size=384, num_attention_heads=4,
                tie_word_embeddings=False, dtype=torch.float32, layers=[24, 25, 26]),
}
VOCAB = 50304
CPU = torch.device("cpu")


def build(shape: str, layers: int | None = None) -> OlmoForCausalLM:
    spec = SHAPES[shape]
    cfg = OlmoConfig(vocab_size=VOCAB, hidden_size=spec["hidden_size"], intermediate_size=spec["intermediate_size"],
                     num_hidden_layers=layers or spec["num_hidden_layers"],
                     num_attention_heads=spec["num_attention_heads"],
                     num_key_value_heads=spec["num_attention_heads"], max_position_embeddings=4096,
                     tie_word_embeddings=spec["tie_word_embeddings"], pad_token_id=1, eos_token_id=50279)
    torch.manual_seed(0)
    saved = torch.get_default_dtype()
    torch.set_default_dtype(spec["dtype"])  # built in its dtype: a 7B model in fp32 would not fit
    try:
        return OlmoForCausalLM(cfg).eval()
    finally:
        torch.set_default_dtype(saved)


def real_texts(per_task: int):
    data, _ = load_organizers_dir(SEMEVAL)
    rows = data["forget_train"] + data["retain_train"]
    tokenizer = train_tokenizer([row["input"] + " " + row["output"] for row in rows], VOCAB)
    forget, retain = texts_by_task(data["forget_train"]), texts_by_task(data["retain_train"])
    subset = lambda by_task: {task: texts[:per_task] for task, texts in by_task.items()}  # noqa: E731
    return tokenizer, subset(forget), subset(retain), data


def cache_bytes(model, tokenizer, forget, retain, layers, cfg) -> dict:
    """What the fast engine's cache holds after setup, tensor by tensor (the same functions as run_rmu), and the
    formula's figure."""
    batches, _ = batch_schedule(forget, retain, cfg)
    held = {"hidden": 0, "retain_acts": 0, "forget_acts_during_setup": 0, "mask_and_rotary": 0, "cut": 0}
    tokens = {"forget": 0, "retain": 0}
    for key in sorted(batches):
        input_ids, mask = encode(tokenizer, batches[key], cfg["max_length"], CPU)
        hidden, layer_kwargs, acts = slice_inputs(model, layers[0], layers[-1], input_ids, mask)
        held["hidden"] += hidden.nbytes
        # the fast engine's cut: layer l-2's attention output and MLP intermediate activation
        held["cut"] += sum(part.nbytes for part in frozen_parts(decoder_layers(model)[layers[0]], hidden,
                                                                layer_kwargs)[0])
        held["retain_acts" if key[0] == "retain" else "forget_acts_during_setup"] += acts.nbytes
        held["mask_and_rotary"] += mask.nbytes + sum(
            t.nbytes for value in layer_kwargs.values()
            for t in (value if isinstance(value, tuple) else (value,)) if isinstance(t, torch.Tensor))
        tokens[key[0]] += input_ids.numel()
    element = torch.empty((), dtype=next(model.parameters()).dtype).element_size()
    # docs/methods.md: (forget + 2 x retain tokens) x d for the lean engine, + (forget + retain) x (d + MLP width)
    # for the fast engine's cut
    d, width = model.config.hidden_size, model.config.intermediate_size
    formula = ((tokens["forget"] + 2 * tokens["retain"]) * d + (tokens["forget"] + tokens["retain"]) * (d + width)) \
        * element
    return {**held, "kept": held["hidden"] + held["retain_acts"] + held["mask_and_rotary"] + held["cut"],
            "formula": formula, "tokens": tokens}


def plain_forward_seconds(model, tokenizer, forget, retain, cfg) -> float:
    """One forward of the whole model (logits included) over every batch the fast engine caches."""
    batches, _ = batch_schedule(forget, retain, cfg)
    start = time.perf_counter()
    with torch.no_grad():
        for key in sorted(batches):
            model(*encode(tokenizer, batches[key], cfg["max_length"], CPU), use_cache=False)
    return time.perf_counter() - start


def setup_seconds(model, tokenizer, forget, retain, layers, cfg) -> float:
    batches, _ = batch_schedule(forget, retain, cfg)
    start = time.perf_counter()
    for key in sorted(batches):
        hidden, layer_kwargs, _ = slice_inputs(model, layers[0], layers[-1],
                                               *encode(tokenizer, batches[key], cfg["max_length"], CPU))
        frozen_parts(decoder_layers(model)[layers[0]], hidden, layer_kwargs)   # the fast engine's cut
    return time.perf_counter() - start


def measure(args) -> dict:
    """One measurement (args.what) in this process."""
    tokenizer, forget, retain, data = real_texts(args.texts)
    spec = SHAPES[args.shape]
    cfg = dict(config.defaults()["unlearn"], steps=args.steps, batch_size=args.batch_size,
               max_length=args.max_length)
    model = build(args.shape, args.layers)
    if args.mmlu_dtype:
        model = model.to(getattr(torch, args.mmlu_dtype))
    layers = spec["layers"] if args.layers is None else [args.layers - 3, args.layers - 2, args.layers - 1]
    result = {"shape": args.shape, "what": args.what, "num_layers": model.config.num_hidden_layers,
              "weights_gb": sum(p.nbytes for p in model.parameters()) / 1e9}
    if args.what in ("fast", "lean", "reference"):
        result["step_s"] = step_seconds(model, tokenizer, forget, retain, layers, dict(cfg, engine=args.what))
        if args.what == "fast":
            result["cut_bytes"] = cache_bytes(model, tokenizer, forget, retain, layers, cfg)["cut"]
    elif args.what == "floor":
        result["step_s"] = floor_seconds(model, tokenizer, forget, retain, layers, cfg)
    elif args.what == "setup":
        result["setup_s"] = setup_seconds(model, tokenizer, forget, retain, layers, cfg)
        result["plain_forward_s"] = plain_forward_seconds(model, tokenizer, forget, retain, cfg)
        result["cache"] = cache_bytes(model, tokenizer, forget, retain, layers, cfg)
    elif args.what in ("mia", "mia_official"):
        docs = [doc["document"] for key in ("mia_member", "mia_nonmember") for doc in data[key]]
        if args.mia_documents:   # a seeded sample, in file order
            docs = [docs[i] for i in sorted(random.Random(0).sample(range(len(docs)), args.mia_documents))]
        result.update(documents=len(docs), **mia_pass(model, tokenizer, docs, args.what, args.mia_batch_size))
    elif args.what in ("generate_all", "generate_official"):
        rows = data["forget_train"] + data["retain_train"]
        result.update(generation_pass(model, tokenizer, rows, args.what, args.new_tokens, args.batch_rows,
                                      args.official_rows))
    elif args.what in ("mmlu_whole", "mmlu_cached", "mmlu_whole_1"):
        result.update(mmlu_pass(model, tokenizer, args.what, args.mmlu_subjects, args.mmlu_questions,
                                args.mmlu_batch_size))
    elif args.what == "generate":
        rows = (data["forget_train"] + data["retain_train"])[:args.rows]
        prompts = [row["input"] for row in rows]
        start = time.perf_counter()
        greedy_generate(model, tokenizer, prompts, args.new_tokens, len(prompts), desc="generate")
        seconds = time.perf_counter() - start
        lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        result.update(rows=len(prompts), new_tokens=args.new_tokens, seconds=seconds,
                      prompt_tokens_mean=statistics.fmean(lengths))
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return result


def weight_bytes(shape: str) -> int:
    spec = SHAPES[shape]
    d, ff = spec["hidden_size"], spec["intermediate_size"]
    count = spec["num_hidden_layers"] * (4 * d * d + 3 * d * ff) + VOCAB * d * (1 if spec["tie_word_embeddings"] else 2)
    return count * torch.empty((), dtype=spec["dtype"]).element_size()


def available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


@torch.inference_mode()
def mia_pass(model, tokenizer, docs: list[str], what: str, batch_size: int) -> dict:
    """Seconds and each document's mean NLL: the project's pass (unlearning.evaluation.mia.score_documents, every
    attack's numbers) or the official evaluation's loop (one document per forward, `model(ids, labels=ids).loss`)."""
    start = time.perf_counter()
    if what == "mia":
        from unlearning.evaluation.mia import score_documents
        losses, _ = score_documents(model, tokenizer, [{"document": d} for d in docs], batch_size,
                                    config.defaults()["mia"]["min_k"])
    else:
        losses = official_mia_losses(model, tokenizer, docs)
    return {"seconds": time.perf_counter() - start, "losses": losses}


@torch.inference_mode()
def official_mia_losses(model, tokenizer, docs: list[str]) -> list[float]:
    """The official evaluation's MIA loop: one document per forward, its mean NLL."""
    losses = []
    for doc in docs:
        ids = tokenizer(doc, return_tensors="pt").input_ids.to(model.device)
        losses.append(model(ids, labels=ids).loss.item())
    return losses


@torch.inference_mode()
def official_generations(model, tokenizer, prompts: list[str], new_tokens: int) -> list[str]:
    """The official evaluation's generation loop: `model.generate` one row at a time, decoded and cleaned up."""
    from unlearning.evaluation.generation import clean_up_spaces
    texts = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt").input_ids.to(model.device)
        out = model.generate(ids, max_new_tokens=new_tokens, do_sample=False, use_cache=True,
                             pad_token_id=tokenizer.eos_token_id)
        texts.append(clean_up_spaces(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)))
    return texts


def generation_pass(model, tokenizer, rows: list[dict], what: str, new_tokens: int, batch_rows: int,
                    official_rows: int) -> dict:
    """Rows/s of greedy generation: the project's batched pass over every row, or the official script's loop
    (`model.generate` one row at a time) over a seeded sample of `official_rows` rows (all of them would take an
    hour here), with the strings of the sample, to compare."""
    import random
    sample = sorted(random.Random(0).sample(range(len(rows)), official_rows))
    start = time.perf_counter()
    if what == "generate_all":
        texts = greedy_generate(model, tokenizer, [row["input"] for row in rows], new_tokens, batch_rows,
                                desc="generate (all rows)", clean_up=True)
        texts = [texts[i] for i in sample]
        count = len(rows)
    else:
        texts = official_generations(model, tokenizer, [rows[i]["input"] for i in sample], new_tokens)
        count = len(sample)
    return {"seconds": time.perf_counter() - start, "rows": count, "sample_texts": texts}


def mia_bench(common: list[str], rounds: int, shape: str = "d96") -> None:
    """The MIA pass against the official loop on a model of `shape` and the real MIA documents, alternately `rounds`
    times, each pass in a fresh process: the ratio of the two passes' medians."""
    runs = {"mia": [], "mia_official": []}
    for _ in range(rounds):
        for what in runs:
            row = run_child(["--shape", shape, "--what", what, *common])
            print(json.dumps({k: v for k, v in row.items() if k != "losses"}), flush=True)
            if "error" in row:
                return
            runs[what].append(row)
    mia, official = runs["mia"][0], runs["mia_official"][0]
    gap = max(abs(a - b) for a, b in zip(mia["losses"], official["losses"]))
    project_s, official_s = (statistics.median(row["seconds"] for row in rows) for rows in runs.values())
    print(f"\nMIA over {mia['documents']} documents, medians of {rounds}: project {project_s:.1f} s "
          f"({mia['documents'] / project_s:.1f} docs/s), official loop {official_s:.1f} s: "
          f"{official_s / project_s:.2f}x; each round "
          f"{[round(o['seconds'] / m['seconds'], 2) for m, o in zip(*runs.values())]}"
          f"; largest NLL difference {gap:.2e}")


def evaluation_bench(common: list[str], rounds: int = 1) -> None:
    """The MIA and generation passes against the official loops, on the d96 model and the real data."""
    mia_bench(common, rounds)
    batched, single = (run_child(["--shape", "d96", "--what", what, *common])
                       for what in ("generate_all", "generate_official"))
    for row in (batched, single):
        print(json.dumps({k: v for k, v in row.items() if k != "sample_texts"}), flush=True)
    if "error" not in batched and "error" not in single:
        same = batched["sample_texts"] == single["sample_texts"]
        rates = [row["rows"] / row["seconds"] for row in (batched, single)]
        print(f"generation at {common[common.index('--new-tokens') + 1]} new tokens: batched {rates[0]:.2f} rows/s "
              f"over all {batched['rows']} rows, official loop {rates[1]:.2f} rows/s over {single['rows']}: "
              f"{rates[0] / rates[1]:.1f}x; the sample's strings {'identical' if same else 'DIFFER'}")


def mmlu_tokens(tokenizer, dev: list[dict], test: list[dict], k: int, max_tokens: int) -> dict:
    """The tokens MMLU's letter format runs through the model: every whole prompt, or each shared prefix once and
    each question's own tokens (unlearning.evaluation.mmlu.prefix_groups)."""
    from unlearning.evaluation import mmlu
    prompts, ids = mmlu.mc_prompts(tokenizer, dev, test, k, max_tokens)
    cached = sum(shared + sum(len(ids[i]) - shared for i in members)
                 for members, shared in mmlu.prefix_groups(test, prompts, ids))
    return {"whole": sum(map(len, ids)), "cached": cached}


def mmlu_pass(model, tokenizer, what: str, subjects: list[str], per_subject: int | None, batch_size: int) -> dict:
    """Seconds and every question's letter logits: MMLU's letter format from whole prompts or from each subject's
    cached prefix (its raw logits: near ties not rescored, so that the difference is what it is)."""
    from unlearning.evaluation import mmlu
    dev, test, _ = mmlu.load_mmlu(str(MMLU), subjects, per_subject, prepared=None)
    k = config.defaults()["mmlu"]["k"]
    start = time.perf_counter()
    logits, counts = mmlu.letter_logits(model, tokenizer, dev, test, k, 1 if what == "mmlu_whole_1" else batch_size,
                                        prefix_cache=what == "mmlu_cached", rescore=False)
    seconds = time.perf_counter() - start
    tokens = mmlu_tokens(tokenizer, dev, test, k, model.config.max_position_embeddings)
    return {"questions": len(test), "seconds": seconds, "tokens": tokens["cached" if counts["cached_prefix"] else
                                                                          "whole"],
            "counts": counts, "dtype": str(model.dtype).removeprefix("torch."), "logits": logits.tolist()}


def mmlu_bench(shapes: list[str], common: list[str]) -> None:
    """MMLU's letter format from whole prompts against each subject's prefix cached, per shape: time, tokens, and
    how far the cached logits are from the whole prompts' (the near_ties margin must exceed it), beside how far the
    whole prompts' own logits move from the batch size to batch 1."""
    from unlearning.evaluation.mmlu import RESCORE_ULPS, near_ties
    for shape in shapes:
        rows = {what: run_child(["--shape", shape, "--what", what, *common])
                for what in ("mmlu_whole", "mmlu_cached", "mmlu_whole_1")}
        for row in rows.values():
            print(json.dumps({k: v for k, v in row.items() if k != "logits"}), flush=True)
        if any("error" in row for row in rows.values()):
            continue
        whole, cached, single = (torch.tensor(rows[what]["logits"])
                                 for what in ("mmlu_whole", "mmlu_cached", "mmlu_whole_1"))
        dtype = getattr(torch, rows["mmlu_whole"]["dtype"])
        ulp = torch.finfo(dtype).eps * whole.abs().amax(1).clamp(min=1.0)
        gap = lambda other: ((other - whole).abs().amax(1) / ulp).max().item()  # noqa: E731
        flips = (cached.argmax(1) != whole.argmax(1)).sum().item()
        w, c = rows["mmlu_whole"], rows["mmlu_cached"]
        print(f"\n{shape} ({rows['mmlu_whole']['dtype']}), {w['questions']} questions: whole prompts "
              f"{w['seconds']:.1f} s ({w['tokens']} tokens), cached prefix {c['seconds']:.1f} s ({c['tokens']} tokens): "
              f"{w['seconds'] / c['seconds']:.2f}x ({w['tokens'] / c['tokens']:.2f}x fewer tokens). Largest letter-logit "
              f"difference to the whole prompts, in ulps at the logits' scale: cached {gap(cached):.1f}, whole prompts "
              f"at batch 1 {gap(single):.1f} (the rescoring margin: {RESCORE_ULPS[dtype]}); argmax differs on {flips}; "
              f"{near_ties(cached, dtype).sum().item()} near ties would be rescored", flush=True)


def run_child(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["killed"])[-1], "argv": argv, "rc": out.returncode}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES),
                        help="default: 1b 7b (--mia: d96)")
    parser.add_argument("--steps", type=int, default=3, help="RMU steps per engine (the median is reported)")
    parser.add_argument("--texts", type=int, default=4, help="forget and retain texts per task the engines see")
    parser.add_argument("--batch-size", type=int, default=4, help="texts per forget and per retain batch")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per text")
    parser.add_argument("--rows", type=int, default=16, help="rows generated, one batch")
    parser.add_argument("--new-tokens", type=int, default=16, help="new tokens per generated row")
    parser.add_argument("--reference-layers", type=int, nargs=2, default=[8, 16],
                        help="depths of the cut models the reference is measured on where the full one does not fit")
    parser.add_argument("--cut", type=int, nargs=2, metavar=("N1", "N2"),
                        help="measure every engine on the shape cut to N1 and N2 layers (the triple the last three) "
                             "and project the reference and the setup pass to the full depth per layer; for a "
                             "shape too slow to run whole here")
    parser.add_argument("--evaluation", action="store_true",
                        help="only the MIA and generation passes against the official loops (d96 model)")
    parser.add_argument("--mia", action="store_true",
                        help="only the MIA pass against the official loop (d96 model), alternately --rounds times")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of --mia's two passes")
    parser.add_argument("--mia-documents", type=int, help="a seeded sample of the 300 MIA documents (default: all)")
    parser.add_argument("--below-floor", action="store_true",
                        help="the fast engine (layer l-2 cut to its down_proj) against the lean one and the floor "
                             "(run alternately twice)")
    parser.add_argument("--mia-batch-size", type=int, default=config.defaults()["mia"]["batch_size"])
    parser.add_argument("--batch-rows", type=int, default=config.defaults()["evaluate"]["batch_size"],
                        help="rows per generation batch (--evaluation)")
    parser.add_argument("--official-rows", type=int, default=40, help="rows the official loop generates")
    parser.add_argument("--mmlu", action="store_true",
                        help="MMLU's letter format from whole prompts against each subject's shared prefix cached")
    parser.add_argument("--mmlu-subjects", nargs="+", default=["anatomy", "astronomy", "college_biology"])
    parser.add_argument("--mmlu-questions", type=int, help="questions per subject (default: all)")
    parser.add_argument("--mmlu-batch-size", type=int, default=config.defaults()["mmlu"]["batch_size"])
    parser.add_argument("--mmlu-dtype", choices=["float32", "bfloat16"], help="the model's dtype (default: the shape's)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--what", help=argparse.SUPPRESS)
    parser.add_argument("--layers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.shapes = args.shapes or (["d96"] if args.mia else ["1b", "7b"])
    if args.child:
        print(json.dumps(measure(args)))
        return
    if not SEMEVAL.is_dir():
        raise SystemExit(f"{SEMEVAL}: not found; this benchmark runs on the real SemEval data")
    common = ["--steps", str(args.steps), "--texts", str(args.texts), "--batch-size", str(args.batch_size),
              "--max-length", str(args.max_length), "--rows", str(args.rows), "--new-tokens", str(args.new_tokens),
              "--mia-batch-size", str(args.mia_batch_size), "--batch-rows", str(args.batch_rows),
              "--official-rows", str(args.official_rows), "--mmlu-subjects", *args.mmlu_subjects,
              "--mmlu-batch-size", str(args.mmlu_batch_size),
              *(["--mia-documents", str(args.mia_documents)] if args.mia_documents else []),
              *(["--mmlu-questions", str(args.mmlu_questions)] if args.mmlu_questions else []),
              *(["--mmlu-dtype", args.mmlu_dtype] if args.mmlu_dtype else [])]
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; {args.texts} forget + {args.texts} retain "
          f"texts per task, batches of {args.batch_size} x <= {args.max_length} tokens, {args.steps} steps")
    if args.evaluation:
        evaluation_bench(common)
        return
    if args.mia:
        for shape in args.shapes:
            mia_bench(common, args.rounds, shape)
        return
    if args.mmlu:
        mmlu_bench(args.shapes, common)
        return
    if args.below_floor:
        for shape in args.shapes:
            below_floor_bench(shape, ["--layers", str(args.cut[1])] if args.cut else [], common)
        return
    for shape in args.shapes:
        if args.cut:
            cut_bench(shape, args.cut, common)
            continue
        results = {}
        # the reference engine holds the model and a frozen copy: where two do not fit, cut models (below)
        fits = 2.2 * weight_bytes(shape) < available_bytes()
        for what in ("setup", "fast", "floor", "reference", "generate"):
            if what == "reference" and not fits:
                results[what] = {"error": f"2 x {weight_bytes(shape) / 1e9:.1f} GB of weights do not fit"}
            else:
                results[what] = run_child(["--shape", shape, "--what", what, *common])
            print(json.dumps(results[what]), flush=True)
        if "error" in results["reference"]:  # measure cut models and project to the full depth
            cut = {depth: run_child(["--shape", shape, "--what", "reference", "--layers", str(depth), *common])
                   for depth in args.reference_layers}
            for depth, row in cut.items():
                print(json.dumps(row), flush=True)
            (d1, r1), (d2, r2) = cut.items()
            if "error" not in r1 and "error" not in r2:
                per_layer = (r2["step_s"] - r1["step_s"]) / (d2 - d1)
                full = SHAPES[shape]["num_hidden_layers"]
                results["reference"] = {"step_s": r2["step_s"] + per_layer * (full - d2), "projected": True,
                                        "peak_rss_gb": None, "from": {d1: r1["step_s"], d2: r2["step_s"]}}
        summarise(shape, results)


def below_floor_bench(shape: str, cut: list[str], common: list[str]) -> None:
    """The fast engine (layer l-2 cut to its down_proj) against the lean one (layers l-2..l whole) and the floor,
    each in a fresh process, alternately twice."""
    whats = ("floor", "lean", "fast")
    rows = {(what, run): run_child(["--shape", shape, "--what", what, *cut, *common])
            for run in (1, 2) for what in whats}
    for row in rows.values():
        print(json.dumps(row), flush=True)
    if any("error" in row for row in rows.values()):
        return
    floor, lean, fast = (statistics.median(rows[what, run]["step_s"] for run in (1, 2)) for what in whats)
    print(f"\n{shape}: floor {floor:.2f} s, lean {lean:.2f} s, fast (layer l-2 cut to its down_proj) {fast:.2f} s: "
          f"fast {lean / fast:.2f}x lean, {fast / floor:.2f} of the floor; the cut's cache adds "
          f"{rows['fast', 1]['cut_bytes'] / 1e6:.1f} MB (attention output and MLP intermediate of layer l-2); "
          f"peak RSS lean {rows['lean', 1]['peak_rss_gb']:.2f} GB, fast {rows['fast', 1]['peak_rss_gb']:.2f} GB")


def cut_bench(shape: str, depths: list[int], common: list[str]) -> None:
    """Every measurement at two cut depths: the fast step and the floor touch three layers whatever the depth (the
    deeper cut's figures are the full model's), the reference and the setup pass grow by a fixed cost per layer,
    projected from the two to the full depth (the setup pass: to the steered layer of the shape's triple)."""
    rows = {}
    for depth in depths:
        for what in ("setup", "fast", "floor", "reference"):
            rows[depth, what] = run_child(["--shape", shape, "--what", what, "--layers", str(depth), *common])
            print(json.dumps(rows[depth, what]), flush=True)
    full, (d1, d2) = SHAPES[shape]["num_hidden_layers"], depths
    if any("error" in row for row in rows.values()):
        print(f"\n{shape}: a cut measurement failed; nothing projected")
        return

    def project(what, key, depth=full):
        slope = (rows[d2, what][key] - rows[d1, what][key]) / (d2 - d1)
        return rows[d2, what][key] + slope * (depth - d2)

    fast, floor, reference = rows[d2, "fast"]["step_s"], rows[d2, "floor"]["step_s"], project("reference", "step_s")
    # the setup pass runs the layers up to the steered one; a plain forward all of them and the LM head
    setup = project("setup", "setup_s", SHAPES[shape]["layers"][-1] + 1)
    plain = project("setup", "plain_forward_s")
    cache = rows[d2, "setup"]["cache"]
    print(f"\n{shape} (measured at {d1} and {d2} layers, projected to {full}): weights {weight_bytes(shape) / 1e9:.2f} "
          f"GB; step: fast {fast:.2f} s, reference {reference:.2f} s (projected), floor {floor:.2f} s; fast/reference "
          f"{reference / fast:.1f}x, fast/floor {fast / floor:.2f}; setup pass {setup:.1f} s vs one plain forward "
          f"{plain:.1f} s (projected); cache kept {cache['kept'] / 1e6:.1f} MB (formula {cache['formula'] / 1e6:.1f} "
          f"MB); peak RSS at {d2} layers: fast {rows[d2, 'fast']['peak_rss_gb']:.1f} GB, reference "
          f"{rows[d2, 'reference']['peak_rss_gb']:.1f} GB, {rows[d2, 'fast']['weights_gb']:.2f} GB of weights")


def summarise(shape: str, results: dict) -> None:
    fast, floor, reference = (results[k].get("step_s") for k in ("fast", "floor", "reference"))
    setup, generation = results["setup"], results["generate"]
    cache = setup.get("cache", {})
    print(f"\n{shape}: weights {setup.get('weights_gb', 0):.2f} GB")
    if fast and floor and reference:
        projected = " (projected from cut models)" if results["reference"].get("projected") else ""
        print(f"  step: fast {fast:.2f} s, reference {reference:.2f} s{projected}, floor {floor:.2f} s; "
              f"fast/reference {reference / fast:.1f}x, fast/floor {fast / floor:.2f}")
    for what in ("fast", "reference", "floor", "generate"):
        peak = results[what].get("peak_rss_gb")
        print(f"  peak RSS {what}: {'n/a' if peak is None else f'{peak:.1f} GB'}")
    if cache:
        print(f"  setup pass {setup['setup_s']:.1f} s vs one plain forward {setup['plain_forward_s']:.1f} s; cache "
              f"kept {cache['kept'] / 1e6:.1f} MB (formula {cache['formula'] / 1e6:.1f} MB; of it the cut "
              f"{cache['cut'] / 1e6:.1f} MB), forget acts held "
              f"during setup {cache['forget_acts_during_setup'] / 1e6:.1f} MB, tokens {cache['tokens']}")
    if "seconds" in generation:
        print(f"  generation: {generation['rows']} rows x {generation['new_tokens']} new tokens, prompts "
              f"{generation['prompt_tokens_mean']:.0f} tokens on average: "
              f"{generation['rows'] / generation['seconds']:.2f} rows/s")


if __name__ == "__main__":
    main()
