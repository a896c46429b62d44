"""Stage `unlearn`: adaptive RMU on the target model's three consecutive layers -> models/unlearned/ (a delta: the
three trained matrices and the identity of the target; `python -m stages.export` writes a standalone model)."""
from collections import defaultdict
from pathlib import Path

from dvclive import Live

from . import io
from .checks import prepared_split
from .errors import exit_on_error
from .modeling import MODEL_DIRS, load_stage_model, num_decoder_layers, resolve_device, save_delta
from .params import layer_triple, load_validated
from .rmu import run_rmu

LIVE_DIR = Path("reports/unlearn")


def texts_by_task(rows: list[dict]) -> dict[str, list[str]]:
    """The text RMU sees for a row is what the model memorised: input + " " + output."""
    texts = defaultdict(list)
    for row in rows:
        texts[row["task"]].append(row["input"] + " " + row["output"])
    return dict(texts)


@exit_on_error
def main():
    params = load_validated()
    layers = layer_triple(params["layers"], num_decoder_layers(MODEL_DIRS["target"]))
    device = resolve_device(params["device"])
    split = params["data"]["split"]
    forget = texts_by_task(prepared_split(f"forget_{split}"))
    retain = texts_by_task(prepared_split(f"retain_{split}"))
    model, tokenizer = load_stage_model("target", params)
    history = run_rmu(model, tokenizer, forget, retain, layers, params["alpha"], params["unlearn"], device)
    print("unlearn: steering coefficients " + ", ".join(f"{t} {c:.2f}" for t, c in sorted(history["coefficients"].items())))
    with io.atomic_output(LIVE_DIR) as live_dir:
        with Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None) as live:
            for forget_loss, retain_loss in zip(history["forget_loss"], history["retain_loss"]):
                live.log_metric("forget_loss", forget_loss, plot=True)
                live.log_metric("retain_loss", retain_loss, plot=True)
                live.next_step()
            live.summary["steering_coeff"] = dict(sorted(history["coefficients"].items()))
    with io.atomic_output(MODEL_DIRS["unlearned"]) as out:
        save_delta(model, history["tensors"], MODEL_DIRS["target"], out)


if __name__ == "__main__":
    main()
