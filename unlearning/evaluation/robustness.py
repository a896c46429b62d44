"""Is it really forgotten? The pieces of the attacks on an unlearned model (issue 14): relearning on half of the
forget documents and scoring the other half (Deeb & Roger 2024), benign relearning on retain text (Łucki et al.
2024), removing RMU's steering directions from the steered layer's output at inference (Łucki et al. 2024), and
the recovery that puts an attacked score between the unlearned model's (0) and the target's (1)."""
import math
import random
from collections import defaultdict
from contextlib import contextmanager

import torch

from ..data.schema import document_id
from ..errors import PipelineError
from ..methods.training import encode, finish_training, fp32_master_weights
from ..models.layers import decoder_layers


def split_documents(rows: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """(half A, half B) of `rows`: each task's documents shuffled with `seed` and cut in two (B gets the odd one),
    every row going with its document, so that no document is in both halves. Rows keep their order."""
    documents = defaultdict(set)
    for row in rows:
        documents[row["task"]].add(document_id(row["id"]))
    in_a = set()
    for task in sorted(documents):
        ids = sorted(documents[task])
        random.Random(f"{seed}:{task}").shuffle(ids)
        in_a.update((task, doc) for doc in ids[:len(ids) // 2])
    half_a = [row for row in rows if (row["task"], document_id(row["id"])) in in_a]
    half_b = [row for row in rows if (row["task"], document_id(row["id"])) not in in_a]
    return half_a, half_b


def trained_parameters(model, which: str, names: list[str]) -> dict[str, torch.nn.Parameter]:
    """`all`: every weight; `delta`: the named tensors (what a run's unlearning changed)."""
    if which == "all":
        return dict(model.named_parameters())
    return {name: model.get_parameter(name) for name in names}


def relearn(model, tokenizer, texts: list[str], checkpoints: list[int], lr: float, batch_size: int,
            max_length: int, seed: int, parameters: dict[str, torch.nn.Parameter], device, at_checkpoint) -> None:
    """Fine-tune `model` in place with the next-token loss on `texts` (shuffled with `seed`, cycled in batches) and
    call `at_checkpoint(step, model)` after each step count in `checkpoints`, the model in eval mode there. A 16-bit
    model trains with fp32 master weights, as unlearning does."""
    if not texts:
        raise PipelineError("relearning: no text to fine-tune on")
    order = list(texts)
    rng = random.Random(seed)
    model.requires_grad_(False)
    for param in parameters.values():
        param.requires_grad_(True)
    model_dtype, mixed_precision = fp32_master_weights(parameters, device)
    optimizer = torch.optim.AdamW(parameters.values(), lr=lr, weight_decay=0.0)
    batches = []
    for step in range(1, max(checkpoints) + 1):
        if not batches:
            rng.shuffle(order)
            batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        input_ids, attention_mask = encode(tokenizer, batches.pop(), max_length, device)
        model.train()
        with torch.autocast(**mixed_precision):
            loss = model(input_ids=input_ids, attention_mask=attention_mask,
                         labels=input_ids.masked_fill(attention_mask == 0, -100)).loss
        if not torch.isfinite(loss):
            raise PipelineError(f"relearning: the loss is {loss.item()} at step {step}; lower attack.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step in checkpoints:
            model.eval()
            with torch.no_grad(), torch.autocast(**mixed_precision):
                at_checkpoint(step, model)
    finish_training(model, parameters, model_dtype)


@contextmanager
def directions_ablated(model, layer: int, directions: torch.Tensor):
    """Inside the block, decoder layer `layer`'s output has its component in the span of `directions` (one per row:
    RMU's per-task steering vectors) removed: h - Q Qᵀ h, Q an orthonormal basis of the span."""
    basis, _ = torch.linalg.qr(directions.T.double())
    basis = basis.to(next(model.parameters()).dtype).to(next(model.parameters()).device)

    def remove(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        ablated = hidden - (hidden @ basis) @ basis.T
        return (ablated, *output[1:]) if isinstance(output, tuple) else ablated

    handle = decoder_layers(model)[layer].register_forward_hook(remove)
    try:
        yield model
    finally:
        handle.remove()


def recovery(attacked: float, unlearned: float, target: float) -> float:
    """(attacked - unlearned) / (target - unlearned): 0 when the attack gives nothing back, 1 when it gives back all
    that unlearning took; NaN when unlearning took nothing (target == unlearned)."""
    gap = target - unlearned
    return (attacked - unlearned) / gap if gap != 0 else math.nan
