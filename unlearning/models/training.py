"""Training the target: a byte-level BPE tokenizer and an OLMo-architecture model from scratch, or a pretrained model
fine-tuned, on whole texts until it has memorised them.

Every SemEval row is trained as `input + " " + output + EOS`, so that greedy generation from the bare input
reproduces the output and stops, as exact match requires.
"""
import math
import random

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import OlmoConfig, OlmoForCausalLM, PreTrainedTokenizerFast

from ..data.schema import SEMEVAL_KEYS
from ..errors import PipelineError
from ..progress import progress
from .loading import load_pretrained

EOS = "<|endoftext|>"


def training_texts(data: dict) -> dict[str, list[str]]:
    """What the target learns: "memorise" (every SemEval row and the general facts) and "background" (the background
    corpus, each document and its question, mixed in a fraction at a time: what a pretrained model knows). Never
    the MIA non-members nor the general-knowledge questions."""
    general = [doc["text"] for doc in data.get("general", [])]
    background = [text for doc in data.get("background", []) for text in
                  (doc["document"], doc["question"] + " " + doc["answer"])]
    rows = [row for key in SEMEVAL_KEYS for row in data.get(key, [])]
    return {"background": background,
            "memorise": [row["input"] + " " + row["output"] for row in rows] + general}


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=EOS)


def build_model(scratch: dict, tokenizer, seed: int) -> OlmoForCausalLM:
    torch.manual_seed(seed)
    config = OlmoConfig(
        vocab_size=len(tokenizer), hidden_size=scratch["hidden_size"],
        intermediate_size=scratch["intermediate_size"], num_hidden_layers=scratch["num_hidden_layers"],
        num_attention_heads=scratch["num_attention_heads"], num_key_value_heads=scratch["num_attention_heads"],
        max_position_embeddings=scratch["max_position_embeddings"], pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None, tie_word_embeddings=False)
    model = OlmoForCausalLM(config)
    # GPT-2's scaled initialisation of the projections that write into the residual stream: 32 layers of
    # unscaled writes make a deep, narrow model sit on its unigram plateau for hundreds of steps.
    with torch.no_grad():
        for layer in model.model.layers:
            for projection in (layer.self_attn.o_proj, layer.mlp.down_proj):
                projection.weight.mul_(1 / math.sqrt(2 * config.num_hidden_layers))
    return model


def train_lm(model, tokenizer, texts: list[str], epochs: int, lr: float, batch_size: int, seed: int,
             device, compute_dtype=torch.float32, background: list[str] = (),
             background_fraction: float = 0.0) -> list[float]:
    """Causal-LM training on whole texts + EOS, one text per row, pads masked; AdamW with cosine decay.
    Every epoch trains on all of `texts` and on the next `background_fraction` of `background` (shuffled once,
    taken in turn), so the model keeps learning the background while it memorises, as pretraining data is mixed
    into fine-tuning to keep what the model knew.
    Weights stay as they are (fp32 master weights); a 16-bit `compute_dtype` runs the maths under autocast."""
    max_len = model.config.max_position_embeddings

    def encode(strings):
        return [tokenizer(text + tokenizer.eos_token, add_special_tokens=False)["input_ids"][:max_len]
                for text in strings]

    rng = random.Random(seed)
    encoded, encoded_background = encode(texts), encode(background)
    rng.shuffle(encoded_background)
    per_epoch = round(background_fraction * len(encoded_background))
    print(f"target: {model.num_parameters() / 1e6:.2f}M parameters, {len(texts)} texts "
          f"({sum(map(len, encoded))} tokens) and {per_epoch} of {len(background)} background texts an epoch")
    mixed_precision = dict(device_type=torch.device(device).type, dtype=compute_dtype,
                           enabled=compute_dtype != torch.float32)
    torch.manual_seed(seed)
    model.to(device).train()
    # the fused kernel is one call per step instead of one per tensor: a tenth of a small model's step on a CPU
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.98),
                                  fused=torch.device(device).type in ("cpu", "cuda"))
    total_steps = epochs * math.ceil((len(encoded) + per_epoch) / batch_size)
    warmup = max(1, total_steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total_steps))))
    epoch_losses, step = [], 0
    epoch_bar = progress(range(epochs), desc="train target", unit="epoch")
    for epoch in epoch_bar:
        start = epoch * per_epoch
        epoch_texts = encoded + [encoded_background[(start + i) % len(encoded_background)] for i in range(per_epoch)]
        # Batches of similar length cut padding; the order of batches is shuffled every epoch.
        order = sorted(range(len(epoch_texts)), key=lambda i: (len(epoch_texts[i]), rng.random()))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        rng.shuffle(batches)
        losses = []
        for batch in batches:
            width = max(len(epoch_texts[i]) for i in batch)
            input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, :len(epoch_texts[i])] = torch.tensor(epoch_texts[i])
                attention_mask[row, :len(epoch_texts[i])] = 1
            labels = input_ids.masked_fill(attention_mask == 0, -100)
            with torch.autocast(**mixed_precision):
                loss = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                             labels=labels.to(device)).loss
            if not torch.isfinite(loss):
                raise PipelineError(f"target training: the LM loss is {loss.item()} at step {step} (epoch "
                                    f"{epoch + 1}); lower the learning rate (`model.train.lr` or `model.finetune.lr`)")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
        epoch_losses.append(sum(losses) / len(losses))
        epoch_bar.set_postfix(loss=f"{epoch_losses[-1]:.3f}")
    model.eval()
    return epoch_losses


def build_target(cfg: dict, texts: dict[str, list[str]], device, dtype) -> tuple:
    """(model in `dtype` on `device`, tokenizer, per-epoch training losses or [] when nothing was trained). `cfg` is
    params.yaml's `model` section, `texts` training_texts(data). From scratch, every epoch memorises and learns the
    next `train.background_fraction` of the background; a pretrained model had its background already and, with
    `finetune`, only memorises."""
    if cfg["source"] == "scratch":
        tokenizer = train_tokenizer(texts["background"] + texts["memorise"], cfg["scratch"]["vocab_size"])
        model = build_model(cfg["scratch"], tokenizer, cfg["train"]["seed"])
        train = cfg["train"]
        background, fraction = texts["background"], train["background_fraction"]
    else:
        finetune = cfg["finetune"]
        # fine-tuning keeps fp32 master weights; the model is cast to `dtype` afterwards
        model, tokenizer = load_pretrained(cfg["name_or_path"], device, torch.float32 if finetune else dtype,
                                           cfg["trust_remote_code"], cfg["allow_pickle"])
        if not finetune:
            return model, tokenizer, []
        train, background, fraction = {**finetune, "seed": cfg["train"]["seed"]}, [], 0.0
    epoch_losses = train_lm(model, tokenizer, texts["memorise"], train["epochs"], train["lr"], train["batch_size"],
                            train["seed"], device, dtype, background, fraction)
    return model.to(dtype), tokenizer, epoch_losses
