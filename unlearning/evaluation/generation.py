"""Batched greedy decoding: Hugging Face generate, or the same decoding with finished rows dropped from the batch.

`model.generate` keeps every row of a batch in every step until the last row stops, so one row that never emits
EOS makes the whole batch run max_new_tokens steps; on the default (400 rows, most done in 40 of 128 tokens) most
of the compute goes to rows that have finished. `compact_greedy` runs the same greedy decoding (the same prompt
positions, mask and KV cache as generate builds for left padding) and removes each finished row from the batch
and the cache. It is used when greedy decoding is all the model's generation config asks for; a config that adds
logits processors (repetition penalty, forced or suppressed tokens, ...) goes through generate, which applies
them. tests/unit/test_eval.py checks that both give the same strings.

The official evaluation decodes with `clean_up_tokenization_spaces=True` under transformers 4.45, which rewrites
" ." to ".", " 's" to "'s" and so on after decoding; transformers 5 ignores that flag for BPE tokenizers. With
`clean_up_spaces` (params `evaluate.clean_up_spaces`, default true) the same rewrite is applied here as its own step
(clean_up_spaces below), so that a generation "Paris ." is an exact match for "Paris." as it is officially.
"""
import inspect

import torch
from transformers import DynamicCache, GenerationConfig

try:  # transformers >= 5: a cache is a list of layers, each a class of its own
    from transformers.cache_utils import Cache, DynamicLayer
except ImportError:  # transformers 4: DynamicCache only
    Cache = DynamicLayer = None

from ..errors import PipelineError
from ..progress import progress

# Generation-config keys that only name tokens or bookkeeping: with nothing else set, generate's greedy decoding is a
# bare argmax over the logits, which compact_greedy reproduces.
_PLAIN_KEYS = {"bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id", "transformers_version",
               "_from_model_config", "use_cache", "max_length", "max_new_tokens", "do_sample", "num_beams",
               "output_attentions", "output_hidden_states", "output_scores", "output_logits",
               "return_dict_in_generate"}


def plain_greedy(model) -> bool:
    """Whether greedy `model.generate` would apply nothing but argmax (no logits processor from the model's
    generation config)."""
    config = getattr(model, "generation_config", None) or GenerationConfig()
    return set(config.to_diff_dict()) <= _PLAIN_KEYS


if DynamicLayer is not None:
    class PreallocatedLayer(DynamicLayer):
        """A DynamicLayer whose keys and values are views of buffers allocated once, `capacity` positions long (the
        batch's prompt and every new token): each step writes its position in place. DynamicLayer concatenates,
        copying the whole cache at every step, which at 256 new tokens moves more memory than the attention reads;
        the attention sees the same tensors either way (tests/unit/test_eval.py compares the strings)."""

        def __init__(self, capacity: int):
            super().__init__()
            self.capacity = capacity
            self.length = 0

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self.key_buffer = key_states.new_empty(*key_states.shape[:2], self.capacity, key_states.shape[-1])
                self.value_buffer = value_states.new_empty(*value_states.shape[:2], self.capacity,
                                                           value_states.shape[-1])
            new = key_states.shape[-2]
            self.key_buffer[:, :, self.length:self.length + new] = key_states
            self.value_buffer[:, :, self.length:self.length + new] = value_states
            self.length += new
            self._view()
            return self.keys, self.values

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.length:
                self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
                self._view()

        def _view(self) -> None:
            self.keys = self.key_buffer[:, :, :self.length]
            self.values = self.value_buffer[:, :, :self.length]


def full_attention_only(config) -> bool:
    """Whether every layer attends to the whole context (no sliding window, no linear attention), the one case a
    preallocated cache is written for."""
    layer_types = getattr(config, "layer_types", None)
    return not getattr(config, "sliding_window", None) and all(kind == "full_attention"
                                                                 for kind in layer_types or ["full_attention"])


def cache_arguments(model, capacity: int) -> tuple[dict, DynamicCache]:
    """An empty KV cache for `capacity` positions under the forward's keyword for it (transformers 5 renamed
    past_key_values to cache), and logits for the last position only where the forward can skip the rest (a 50k
    vocabulary's logits over a whole prompt batch would not fit)."""
    parameters = inspect.signature(model.forward).parameters
    if DynamicLayer is not None and full_attention_only(model.config):
        cache = Cache(layers=[PreallocatedLayer(capacity) for _ in range(model.config.num_hidden_layers)])
    elif DynamicLayer is not None:
        cache = DynamicCache(config=model.config)
    else:  # transformers 4: the cache takes no config
        cache = DynamicCache()
    arguments = {"cache" if "cache" in parameters else "past_key_values": cache, "use_cache": True}
    for name in ("logits_to_keep", "num_logits_to_keep"):
        if name in parameters:
            arguments[name] = 1
            break
    return arguments, cache


def cached_keys_values(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's cached keys and values (transformers 5's list of layers, or transformers 4's two lists)."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache))


# transformers 4.45's PreTrainedTokenizerBase.clean_up_tokenization, in its order: what the official script's
# decode(..., clean_up_tokenization_spaces=True) applies to every generation
OFFICIAL_CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                     (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def clean_up_spaces(text: str) -> str:
    """The official evaluation's decoding clean-up of one generation (OFFICIAL_CLEAN_UP, in order)."""
    for old, new in OFFICIAL_CLEAN_UP:
        text = text.replace(old, new)
    return text


@torch.inference_mode()
def compact_greedy(model, input_ids, attention_mask, max_new_tokens: int, eos_token_id) -> list[list[int]]:
    """Greedy continuations (token ids, EOS included when emitted) of a left-padded batch; a row leaves the batch and
    the KV cache at its EOS."""
    eos_ids = torch.tensor([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or []),
                           device=input_ids.device)
    forward_arguments, cache = cache_arguments(model, input_ids.shape[1] + max_new_tokens)
    # the positions generate gives a left-padded prompt: 0 at each row's first real token
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                   **forward_arguments).logits[:, -1]
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)  # which original row each batch row is
    next_positions = positions[:, -1]
    continuations = [[] for _ in range(input_ids.shape[0])]
    for step in range(max_new_tokens):
        next_tokens = logits.argmax(dim=-1)
        for row, token in zip(rows.tolist(), next_tokens.tolist()):
            continuations[row].append(token)
        running = ~torch.isin(next_tokens, eos_ids)
        if step == max_new_tokens - 1 or not running.any():
            break
        if not running.all():
            keep = running.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            rows, attention_mask = rows[keep], attention_mask[keep]
            next_tokens, next_positions = next_tokens[keep], next_positions[keep]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(attention_mask.shape[0], 1)], dim=1)
        next_positions = next_positions + 1
        logits = model(input_ids=next_tokens[:, None], attention_mask=attention_mask,
                       position_ids=next_positions[:, None], **forward_arguments).logits[:, -1]
    return continuations


@torch.inference_mode()
def greedy_generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int,
                    desc: str = "generate", engine: str = "compact", clean_up: bool = False) -> list[str]:
    """The greedy continuation of each prompt (new text only), in the order of `prompts`. `engine` compact:
    compact_greedy when plain_greedy(model), else generate; `generate`: always model.generate. `clean_up`: the
    official decoding clean-up (clean_up_spaces) on every text."""
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    max_positions = model.config.max_position_embeddings
    for prompt, ids in zip(prompts, prompt_ids):
        if not 0 < len(ids) < max_positions:
            raise PipelineError(f"prompt {prompt[:60]!r}... has {len(ids)} tokens; it needs 1 to "
                                f"{max_positions - 1} to leave room for generation")
    compact = engine == "compact" and plain_greedy(model)
    # Batches of similar length waste little compute on padding.
    order = sorted(range(len(prompts)), key=lambda i: len(prompt_ids[i]))
    generations = [None] * len(prompts)
    saved_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # new tokens must follow each prompt directly
    try:
        for start in progress(range(0, len(order), batch_size), desc=desc, unit="batch"):
            batch_indices = order[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": [prompt_ids[i] for i in batch_indices]}, return_tensors="pt")
            input_ids = batch["input_ids"].to(model.device)
            attention_mask = batch["attention_mask"].to(model.device)
            new_tokens = min(max_new_tokens, max_positions - input_ids.shape[1])
            if compact:
                new_ids = compact_greedy(model, input_ids, attention_mask, new_tokens, tokenizer.eos_token_id)
            else:
                output_ids = model.generate(
                    input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=new_tokens,
                    do_sample=False, num_beams=1, use_cache=True,
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
                new_ids = output_ids[:, input_ids.shape[1]:]
            # the tokenizer's own clean-up off: under transformers 4 it would apply the rewrite whatever clean_up says
            texts = tokenizer.batch_decode(new_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            for i, text in zip(batch_indices, texts):
                generations[i] = clean_up_spaces(text) if clean_up else text
    finally:
        tokenizer.padding_side = saved_side
    return generations
