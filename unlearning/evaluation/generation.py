"""Batched greedy decoding with Hugging Face generate."""
import torch
from tqdm import tqdm

from ..errors import PipelineError


@torch.inference_mode()
def greedy_generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int,
                    desc: str = "generate") -> list[str]:
    """The greedy continuation of each prompt (new text only), in the order of `prompts`."""
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    max_positions = model.config.max_position_embeddings
    for prompt, ids in zip(prompts, prompt_ids):
        if not 0 < len(ids) < max_positions:
            raise PipelineError(f"prompt {prompt[:60]!r}... has {len(ids)} tokens; it needs 1 to "
                                f"{max_positions - 1} to leave room for generation")
    # Batches of similar length waste little compute on padding.
    order = sorted(range(len(prompts)), key=lambda i: len(prompt_ids[i]))
    generations = [None] * len(prompts)
    saved_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # new tokens must follow each prompt directly
    try:
        for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
            batch_indices = order[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": [prompt_ids[i] for i in batch_indices]}, return_tensors="pt")
            input_ids = batch["input_ids"].to(model.device)
            attention_mask = batch["attention_mask"].to(model.device)
            new_tokens = min(max_new_tokens, max_positions - input_ids.shape[1])
            output_ids = model.generate(
                input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=new_tokens,
                do_sample=False, num_beams=1, use_cache=True,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            texts = tokenizer.batch_decode(output_ids[:, input_ids.shape[1]:], skip_special_tokens=True)
            for i, text in zip(batch_indices, texts):
                generations[i] = text
    finally:
        tokenizer.padding_side = saved_side
    return generations
