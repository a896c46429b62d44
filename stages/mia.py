"""Stage: loss-based membership inference on whole documents (members: forget Task3 bios of `data.split`;
non-members: documents of the same kind the model never saw).

python -m stages.mia --model {target|unlearned}
"""
import statistics

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .errors import PipelineError, exit_on_error
from .checks import prepared_split
from .io import EVAL_DIR, atomic_output, write_json, write_jsonl
from .modeling import load_stage_model, parse_model_arg
from .params import load_validated
from .scoring import mia_auc, mia_score



@torch.inference_mode()
def document_losses(model, tokenizer, texts: list[str], batch_size: int, max_length: int | None = None) -> list[float]:
    """Mean next-token NLL over each whole text (truncated to max_length, default the model's context)."""
    max_length = max_length or model.config.max_position_embeddings
    text_ids = [tokenizer(t, add_special_tokens=False)["input_ids"][:max_length] for t in texts]
    for text, ids in zip(texts, text_ids):
        if len(ids) < 2:
            raise PipelineError(f"document {text[:60]!r} has {len(ids)} token(s); a loss needs at least 2")
    saved_side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    losses = []
    try:
        for start in tqdm(range(0, len(texts), batch_size), desc="mia losses", unit="batch"):
            batch = tokenizer.pad({"input_ids": text_ids[start:start + batch_size]}, return_tensors="pt")
            input_ids = batch["input_ids"].to(model.device)
            attention_mask = batch["attention_mask"].to(model.device)
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
            targets = input_ids[:, 1:]
            target_mask = attention_mask[:, 1:].float()
            token_nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, reduction="none")
            doc_nll = (token_nll * target_mask).sum(1) / target_mask.sum(1)
            losses.extend(doc_nll.tolist())
    finally:
        tokenizer.padding_side = saved_side
    return losses


def mia_metrics(member_losses: list[float], nonmember_losses: list[float]) -> dict:
    auc = mia_auc(member_losses, nonmember_losses)
    return {"auc": auc, "score": mia_score(auc), "member_mean_loss": statistics.fmean(member_losses),
            "nonmember_mean_loss": statistics.fmean(nonmember_losses)}


@exit_on_error
def main(argv=None):
    name = parse_model_arg(__doc__.splitlines()[0], argv)
    params = load_validated()
    suffix = "" if params["data"]["split"] == "train" else "_" + params["data"]["split"]
    members, nonmembers = prepared_split("mia_member" + suffix), prepared_split("mia_nonmember" + suffix)
    if not members or not nonmembers:
        raise PipelineError("data/prepared: MIA member and non-member sets must both be non-empty; "
                            "rerun `python -m stages.prepare`")
    model, tokenizer = load_stage_model(name, params)
    batch_size = params["mia"]["batch_size"]
    member_losses = document_losses(model, tokenizer, [r["document"] for r in members], batch_size)
    nonmember_losses = document_losses(model, tokenizer, [r["document"] for r in nonmembers], batch_size)
    metrics = mia_metrics(member_losses, nonmember_losses)
    loss_rows = ([{"id": r["id"], "member": 1, "loss": loss} for r, loss in zip(members, member_losses)]
                 + [{"id": r["id"], "member": 0, "loss": loss} for r, loss in zip(nonmembers, nonmember_losses)])
    with atomic_output(EVAL_DIR / name / "mia") as out_dir:
        out_dir.mkdir()
        write_json(out_dir / "mia.json", metrics)
        write_jsonl(out_dir / "losses.jsonl", loss_rows)
    print(f"{name}: MIA AUC {metrics['auc']:.4f}, score {metrics['score']:.4f}")


if __name__ == "__main__":
    main()
