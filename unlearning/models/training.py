"""Training the target: a byte-level BPE tokenizer and an OLMo-architecture model from scratch, or a pretrained model
fine-tuned, on whole texts until it has memorised them.

Every SemEval row is trained as `input + " " + output + EOS`, so that greedy generation from the bare input
reproduces the output and stops, as exact match requires.
"""
import math
import random

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm import tqdm
from transformers import OlmoConfig, OlmoForCausalLM, PreTrainedTokenizerFast

from ..data.schema import SEMEVAL_KEYS
from ..errors import PipelineError
from .loading import load_pretrained

EOS = "<|endoftext|>"


def training_texts(data: dict) -> list[str]:
    """Everything the target model learns; never MIA non-members nor the MMLU-format questions."""
    rows = [row for key in SEMEVAL_KEYS for row in data.get(key, [])]
    return [row["input"] + " " + row["output"] for row in rows] + [doc["text"] for doc in data.get("general", [])]


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
    return OlmoForCausalLM(config)


def train_lm(model, tokenizer, texts: list[str], epochs: int, lr: float, batch_size: int, seed: int,
             device, compute_dtype=torch.float32) -> list[float]:
    """Causal-LM training on whole texts + EOS, one text per row, pads masked; AdamW with cosine decay.
    Weights stay as they are (fp32 master weights); a 16-bit `compute_dtype` runs the maths under autocast."""
    max_len = model.config.max_position_embeddings
    encoded = [tokenizer(text + tokenizer.eos_token, add_special_tokens=False)["input_ids"][:max_len]
               for text in texts]
    print(f"target: {model.num_parameters() / 1e6:.2f}M parameters, {len(texts)} texts, "
          f"{sum(map(len, encoded))} tokens an epoch")
    mixed_precision = dict(device_type=torch.device(device).type, dtype=compute_dtype,
                           enabled=compute_dtype != torch.float32)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.98))
    total_steps = epochs * math.ceil(len(encoded) / batch_size)
    warmup = max(1, total_steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total_steps))))
    epoch_losses, step = [], 0
    progress = tqdm(range(epochs), desc="train target", unit="epoch")
    for epoch in progress:
        # Batches of similar length cut padding; the order of batches is shuffled every epoch.
        order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), rng.random()))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        rng.shuffle(batches)
        losses = []
        for batch in batches:
            width = max(len(encoded[i]) for i in batch)
            input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, :len(encoded[i])] = torch.tensor(encoded[i])
                attention_mask[row, :len(encoded[i])] = 1
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
        progress.set_postfix(loss=f"{epoch_losses[-1]:.3f}")
    model.eval()
    return epoch_losses


def build_target(cfg: dict, texts: list[str], device, dtype) -> tuple:
    """(model in `dtype` on `device`, tokenizer, per-epoch training losses or [] when nothing was trained). `cfg` is
    params.yaml's `model` section."""
    if cfg["source"] == "scratch":
        tokenizer = train_tokenizer(texts, cfg["scratch"]["vocab_size"])
        model = build_model(cfg["scratch"], tokenizer, cfg["train"]["seed"])
        train = cfg["train"]
    else:
        finetune = cfg["finetune"]
        # fine-tuning keeps fp32 master weights; the model is cast to `dtype` afterwards
        model, tokenizer = load_pretrained(cfg["name_or_path"], device, torch.float32 if finetune else dtype,
                                           cfg["trust_remote_code"], cfg["allow_pickle"])
        if not finetune:
            return model, tokenizer, []
        train = {**finetune, "seed": cfg["train"]["seed"]}
    epoch_losses = train_lm(model, tokenizer, texts, train["epochs"], train["lr"], train["batch_size"],
                            train["seed"], device, dtype)
    return model.to(dtype), tokenizer, epoch_losses
