"""What the target model knows, checked before it is saved: the memorisation of every scored row, the MMLU-format
set and the loss attack, against `model.require`."""
from .mmlu import mmlu_accuracy, resolve_format
from .scoring import mia_auc
from .task import evaluate_task
from .token_stats import document_losses


def knowledge_checks(model, tokenizer, data: dict, batch: int, mmlu_k: int, mmlu_format: str = "auto",
                     clean_up: bool = True) -> dict:
    """What the target model knows: the scored rows, decoded as the evaluation decodes them (`clean_up`:
    `evaluate.clean_up_spaces`), the MMLU-format set (when the source has one: the builtin set of the prepared data,
    so `auto` is rc there) and the loss attack. `batch` is the training batch size and the generation length comes
    from the data, so of the evaluation params only `mmlu.k`, `mmlu.format` and `evaluate.clean_up_spaces` retrain
    the target."""
    rows = data["forget_train"] + data["retain_train"]
    # Room for the longest answer and then some: a memorised row ends with EOS well before this.
    max_new_tokens = max(len(tokenizer(row["output"])["input_ids"]) for row in rows) + 16
    scores, _ = evaluate_task(model, tokenizer, rows, max_new_tokens, batch, clean_up)
    mmlu = None
    if data.get("mmlu_test"):
        fmt = resolve_format(mmlu_format, "builtin")
        mmlu = mmlu_accuracy(model, tokenizer, data["mmlu_dev"], data["mmlu_test"], mmlu_k, batch, fmt)["accuracy"]
    auc = None  # no MIA data: nothing to check, as nothing will be scored
    if data.get("mia_member"):
        member = document_losses(model, tokenizer, [d["document"] for d in data["mia_member"]], batch)
        nonmember = document_losses(model, tokenizer, [d["document"] for d in data["mia_nonmember"]], batch)
        auc = mia_auc(member, nonmember)
    return {"scores": scores, "mmlu": mmlu, "mia_auc": auc}


def unmet_requirements(checks: dict, require: dict) -> list[str]:
    unmet = []
    for split, tasks in checks["scores"].items():
        for task, kinds in tasks.items():
            if kinds["sc"] < require["sc_rouge"]:
                unmet.append(f"{split} {task} sc ROUGE-L recall {kinds['sc']:.3f} < {require['sc_rouge']}")
            if kinds["qa"] < require["qa_exact"]:
                unmet.append(f"{split} {task} qa exact match {kinds['qa']:.3f} < {require['qa_exact']}")
    if checks["mmlu"] is not None and checks["mmlu"] < require["mmlu"]:
        unmet.append(f"general-knowledge accuracy {checks['mmlu']:.3f} < {require['mmlu']}")
    if checks["mia_auc"] is not None and checks["mia_auc"] < require["mia_auc"]:
        unmet.append(f"loss-MIA AUC {checks['mia_auc']:.3f} < {require['mia_auc']}")
    return unmet
