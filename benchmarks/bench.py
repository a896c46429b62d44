"""Speed of the RMU engines and of batched evaluation, side by side, on this machine.

    python benchmarks/bench.py            # from the project root; about 5 minutes on a 2-core CPU

RMU: steps per second of the reference engine (whole model every step, frozen copy recomputed), the lean engine
(cached inputs, layers l-2..l only) and the fast engine (the same, layer l-2 cut to its down_proj), on the default
model (params.yaml `model.scratch` and `layers`) and
on a larger random OLMo; and the fast step's time as a ratio to the floor, a bare forward + backward of the three
layers on the same forget and retain batches. Evaluation: rows per second of one-at-a-time vs batched greedy
generation on the default model. Models are random-initialised (speed does not depend on what they know), except
in the last table: model.generate against the compact engine (finished rows leave the batch) on the pipeline's
own target and unlearned model, scoring the default's 400 rows as the evaluate stage does (when `dvc repro` has
built them): where rows stop is what the compact engine saves, and only trained models stop.
"""
import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from unlearning import config  # noqa: E402
from unlearning.data.synthetic import generate  # noqa: E402
from unlearning.evaluation.generation import greedy_generate  # noqa: E402
from unlearning.methods.rmu import run_rmu  # noqa: E402
from unlearning.methods.training import batch_schedule, encode, texts_by_task  # noqa: E402
from unlearning.models.layers import run_slice, slice_inputs  # noqa: E402
from unlearning.models.training import build_model, train_tokenizer  # noqa: E402

PARAMS = config.defaults()  # the project's defaults, whatever the workspace's params.yaml holds
CPU = torch.device("cpu")


def step_seconds(model, tokenizer, forget, retain, layers, cfg, device=CPU) -> float:
    """Median seconds per RMU step, from the steps' own timestamps (setup and caching excluded; each step's logged
    losses are read back, which waits for a GPU)."""
    stamps = []
    run_rmu(model, tokenizer, forget, retain, layers, PARAMS["alpha"], cfg, device,
            log_step=lambda *args: stamps.append(time.perf_counter()))
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:]))


def floor_seconds(model, tokenizer, forget, retain, layers, cfg) -> float:
    """Median seconds of forward + backward through layers l-2..l on each step's forget and retain batches."""
    batches, steps = batch_schedule(forget, retain, cfg)
    inputs = {key: slice_inputs(model, layers[0], layers[-1], *encode(tokenizer, texts, cfg["max_length"], CPU))
              for key, texts in batches.items()}
    model.requires_grad_(False)
    weights = [model.get_parameter(f"model.layers.{i}.mlp.down_proj.weight").requires_grad_(True) for i in layers]
    times = []
    for _, forget_key, retain_key in steps:
        start = time.perf_counter()
        total = sum(run_slice(model, layers[0], layers[-1], *inputs[key][:2]).square().mean()
                    for key in (forget_key, retain_key))
        total.backward()
        times.append(time.perf_counter() - start)
        for weight in weights:
            weight.grad = None
    return statistics.median(times)


def bench_rmu(name: str, scratch: dict, layers: list[int], tokenizer, forget, retain, steps: int) -> dict:
    cfg = dict(PARAMS["unlearn"], steps=steps)
    seconds = {}
    for engine in ("reference", "lean", "fast"):
        model = build_model(scratch, tokenizer, seed=0)
        seconds[engine] = step_seconds(model, tokenizer, forget, retain, layers, dict(cfg, engine=engine))
    seconds["floor"] = floor_seconds(build_model(scratch, tokenizer, seed=0), tokenizer, forget, retain, layers, cfg)
    return {"model": name, "layers": layers, **seconds}


def bench_generation(tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int) -> dict:
    model = build_model(PARAMS["model"]["scratch"], tokenizer, seed=0).eval()
    rates = {}
    for label, size in (("one at a time", 1), (f"batched ({batch_size})", batch_size)):
        start = time.perf_counter()
        greedy_generate(model, tokenizer, prompts, max_new_tokens, size, desc=label)
        rates[label] = len(prompts) / (time.perf_counter() - start)
    return rates


def bench_compact(root: Path) -> list[dict]:
    """Rows per second of the task score's generation (evaluate.max_new_tokens, evaluate.batch_size) with
    model.generate and with the compact engine, on the pipeline's target and unlearned model; the strings must
    agree."""
    from unlearning.data.prepared import prepared_split
    from unlearning.models.delta import load_target_or_delta
    rows = prepared_split(root / "data/prepared", "forget_train") + prepared_split(root / "data/prepared",
                                                                                   "retain_train")
    prompts = [row["input"] for row in rows]
    results = []
    for name in ("target", "unlearned"):
        model, tokenizer = load_target_or_delta(root / "models/target", root / "models" / name, "cpu", "float32", False)
        seconds, texts = {}, {}
        for engine in ("generate", "compact"):
            start = time.perf_counter()
            texts[engine] = greedy_generate(model, tokenizer, prompts, PARAMS["evaluate"]["max_new_tokens"],
                                            PARAMS["evaluate"]["batch_size"], desc=f"{name} ({engine})",
                                            engine=engine)
            seconds[engine] = time.perf_counter() - start
        if texts["generate"] != texts["compact"]:
            raise SystemExit(f"{name}: the compact engine's generations differ from model.generate's")
        results.append({"model": name, "rows": len(prompts), **seconds})
    return results


def main():
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    torch.manual_seed(0)
    data = generate(PARAMS["data"]["synthetic"], PARAMS["data"]["seed"])
    texts = [row["input"] + " " + row["output"] for key in ("forget_train", "retain_train") for row in data[key]]
    tokenizer = train_tokenizer(texts, PARAMS["model"]["scratch"]["vocab_size"])
    forget, retain = texts_by_task(data["forget_train"]), texts_by_task(data["retain_train"])
    print(f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads, torch {torch.__version__}")
    larger = dict(PARAMS["model"]["scratch"], num_hidden_layers=16, hidden_size=512, intermediate_size=2048,
                  num_attention_heads=8)
    default = PARAMS["model"]["scratch"]
    name = f"default ({default['num_hidden_layers']} layers, d={default['hidden_size']})"
    rows = [bench_rmu(name, default, PARAMS["layers"], tokenizer, forget,
                      retain, steps=24),
            bench_rmu("larger (16 layers, d=512)", larger, [13, 14, 15], tokenizer, forget, retain, steps=12)]
    print("\n| model | layers | reference steps/s | lean steps/s | fast steps/s | fast / reference | fast / lean | "
          "lean step / floor | fast step / floor |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['layers']} | {1 / r['reference']:.2f} | {1 / r['lean']:.2f} | "
              f"{1 / r['fast']:.2f} | "
              f"{r['reference'] / r['fast']:.1f}x | {r['lean'] / r['fast']:.2f}x | {r['lean'] / r['floor']:.2f} | "
              f"{r['fast'] / r['floor']:.2f} |")
    prompts = [row["input"] for row in data["forget_train"] + data["retain_train"]][:64]
    rates = bench_generation(tokenizer, prompts, max_new_tokens=32, batch_size=32)
    one, batched = rates.values()
    print(f"\n| greedy generation, {len(prompts)} rows x 32 new tokens | rows/s |\n|---|---:|")
    for label, rate in rates.items():
        print(f"| {label} | {rate:.2f} |")
    print(f"| batched / one at a time | {batched / one:.1f}x |")
    root = Path(__file__).resolve().parents[1]
    if not (root / "models/unlearned/delta.json").exists():
        print("\ncompact vs generate: skipped, the pipeline's models are not built (run `dvc repro` first)")
        return
    print("\n| task-score generation, the pipeline's models | rows | generate rows/s | compact rows/s | compact / "
          "generate |\n|---|---:|---:|---:|---:|")
    for r in bench_compact(root):
        print(f"| {r['model']} | {r['rows']} | {r['rows'] / r['generate']:.1f} | {r['rows'] / r['compact']:.1f} | "
              f"{r['generate'] / r['compact']:.2f}x (same strings) |")


if __name__ == "__main__":
    main()
