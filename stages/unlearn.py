"""Stage `unlearn`: one run's unlearning of the target model -> its delta under models/ (the trained tensors and the
identity of the target; `python -m stages.export` writes a standalone model) and its DVCLive training curves.

python -m stages.unlearn [--run unlearned|sweep/<first layer>|method/<method>]

`unlearned` is the headline run (`layers`, `unlearn`); the layer sweep and the other methods are the same code with
another triple or another `unlearn.method` (params.run_settings).
"""
import argparse
from collections import defaultdict

from dvclive import Live

from . import io
from .baselines import run_baseline
from .checks import prepared_split
from .errors import exit_on_error
from .modeling import TARGET_DIR, load_stage_model, model_dir, num_decoder_layers, resolve_device, save_delta
from .params import RMU_METHODS, check_run, layer_triple, load_validated, run_settings
from .rmu import run_rmu

def texts_by_task(rows: list[dict]) -> dict[str, list[str]]:
    """The text unlearning sees for a row is what the model memorised: input + " " + output."""
    texts = defaultdict(list)
    for row in rows:
        texts[row["task"]].append(row["input"] + " " + row["output"])
    return dict(texts)


def unlearn(model, tokenizer, forget: dict, retain: dict, layers: list[int], alpha: float, cfg: dict, device) -> dict:
    """RMU (adaptive or fixed coefficient) on `layers`, or one of the output-loss baselines (stages/baselines.py)."""
    if cfg["method"] in RMU_METHODS:
        return run_rmu(model, tokenizer, forget, retain, layers, alpha, cfg, device)
    return run_baseline(model, tokenizer, forget, retain, layers, cfg, device)


@exit_on_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="unlearned", help="unlearned, sweep/<first layer> or method/<method>")
    run = check_run(parser.parse_args(argv).run)
    params = load_validated()
    layers, cfg = run_settings(params, run)
    layers = layer_triple(layers, num_decoder_layers(TARGET_DIR),
                          "a `sweep` triple" if run.startswith("sweep/") else "`layers`")
    device = resolve_device(params["device"])
    split = params["data"]["split"]
    forget = texts_by_task(prepared_split(f"forget_{split}"))
    retain = texts_by_task(prepared_split(f"retain_{split}"))
    model, tokenizer = load_stage_model("target", params)
    history = unlearn(model, tokenizer, forget, retain, layers, params["alpha"], cfg, device)
    if history["coefficients"]:
        print(f"unlearn {run}: steering coefficients "
              + ", ".join(f"{t} {c:.2f}" for t, c in sorted(history["coefficients"].items())))
    with io.atomic_output(io.live_dir(run)) as live_path:
        with Live(dir=str(live_path), save_dvc_exp=False, dvcyaml=None, report=None) as live:
            for forget_loss, retain_loss in zip(history["forget_loss"], history["retain_loss"]):
                live.log_metric("forget_loss", forget_loss, plot=True)
                live.log_metric("retain_loss", retain_loss, plot=True)
                live.next_step()
            live.summary["steering_coeff"] = dict(sorted(history["coefficients"].items()))
    with io.atomic_output(model_dir(run)) as out:
        save_delta(model, history["tensors"], TARGET_DIR, out)


if __name__ == "__main__":
    main()
