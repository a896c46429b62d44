import pytest
import torch

from unlearning.config import layer_triple
from unlearning.errors import PipelineError
from unlearning.methods.rmu import control_vectors, masked_mse, rmu_loss, run_rmu
from unlearning.methods.training import batch_schedule, trainable_down_proj
from unlearning.models.layers import layer_output

CFG = {"method": "adaptive_rmu", "engine": "fast",
       "beta": 5.0, "steering_coeff": 20.0, "direction": "gaussian", "lr": 1e-2,
       "steps": 4, "batch_size": 2, "max_length": 64, "seed": 0}


def test_masked_mse_ignores_pad_positions():
    acts = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, -100.0]]])
    target = torch.zeros(1, 3, 2)
    mask = torch.tensor([[1, 1, 0]])
    # per token: mean(1,1) = 1 and mean(9,9) = 9; the pad position is out -> (1 + 9) / 2
    assert masked_mse(acts, target, mask).item() == pytest.approx(5.0)


def test_rmu_loss_weights_retain_by_alpha():
    forget_acts = torch.ones(1, 2, 4)
    retain_acts = torch.full((1, 2, 4), 2.0)
    frozen_retain = torch.zeros(1, 2, 4)
    mask = torch.ones(1, 2)
    steering_target = torch.full((4,), 3.0)
    total, forget, retain = rmu_loss(forget_acts, mask, steering_target, retain_acts, frozen_retain, mask, alpha=10)
    assert forget.item() == pytest.approx(4.0)      # (1 - 3)^2
    assert retain.item() == pytest.approx(40.0)     # 10 * 2^2
    assert total.item() == pytest.approx(44.0)


def test_control_vectors_are_seeded_unit_vectors():
    a = control_vectors(["Task1", "Task2"], 16, "gaussian", seed=3)
    b = control_vectors(["Task2", "Task1"], 16, "gaussian", seed=3)
    c = control_vectors(["Task1", "Task2"], 16, "gaussian", seed=4)
    for task in a:
        assert torch.equal(a[task], b[task])
        assert a[task].norm().item() == pytest.approx(1.0)
        assert not torch.equal(a[task], c[task])
    assert not torch.equal(a["Task1"], a["Task2"])
    uniform = control_vectors(["Task1"], 16, "uniform", seed=3)["Task1"]
    assert (uniform > 0).all() and (a["Task1"] < 0).any()


def test_layer_output_matches_hidden_states(tiny_model, tiny_tokenizer, sentences):
    batch = tiny_tokenizer(sentences[:2], add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = tiny_model(**batch, output_hidden_states=True).hidden_states
        for layer in range(3):   # hidden_states[l + 1] leaves layer l (the last one is after the final norm)
            acts = layer_output(tiny_model, layer, batch["input_ids"], batch["attention_mask"])
            torch.testing.assert_close(acts, hidden[layer + 1])


def test_only_three_down_proj_matrices_change(tiny_model, tiny_tokenizer, sentences):
    before = {name: p.detach().clone() for name, p in tiny_model.named_parameters()}
    forget = {"Task1": sentences[:2], "Task2": sentences[2:]}
    retain = {"Task1": sentences[2:], "Task2": sentences[:2]}
    history = run_rmu(tiny_model, tiny_tokenizer, forget, retain, [1, 2, 3], alpha=1.0, cfg=CFG,
                      device=torch.device("cpu"))
    changed = {name for name, p in tiny_model.named_parameters() if not torch.equal(p, before[name])}
    assert changed == {f"model.layers.{i}.mlp.down_proj.weight" for i in (1, 2, 3)}
    assert len(history["forget_loss"]) == CFG["steps"]
    assert all(torch.isfinite(torch.tensor(history["forget_loss"] + history["retain_loss"])))


def test_bf16_model_trains_fp32_master_weights_and_stays_bf16(tiny_model, tiny_tokenizer, sentences):
    """A bf16 model (the GPU default) trains its three matrices in fp32 under autocast: the loss falls, the
    trained tensors change and come back in bf16, every other tensor is bit-identical."""
    model = tiny_model.to(torch.bfloat16)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    forget, retain = {"Task1": sentences[:2]}, {"Task1": sentences[2:]}
    history = run_rmu(model, tiny_tokenizer, forget, retain, [0, 1, 2], alpha=1.0, cfg=dict(CFG, steps=30),
                      device=torch.device("cpu"))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed == {f"model.layers.{i}.mlp.down_proj.weight" for i in (0, 1, 2)}
    assert history["forget_loss"][-1] < 0.5 * history["forget_loss"][0]


@pytest.mark.parametrize("layers", [[0, 1, 2], [1, 2, 3]])
@pytest.mark.parametrize("cached_engine", ["fast", "lean"])
def test_cached_and_reference_engines_give_the_same_losses_and_weights(tiny_model_factory, sentences, layers,
                                                                       cached_engine):
    """fp32: the cached, three-layer engines and the full-model reference follow the same trajectory (padded
    batches of unequal lengths, two tasks, a pass and a half over the batches)."""
    forget = {"Task1": sentences[:3], "Task2": sentences[3:]}
    retain = {"Task1": sentences[2:], "Task2": sentences[:2]}
    runs = {}
    for engine in ("reference", cached_engine):
        model, tokenizer = tiny_model_factory()
        history = run_rmu(model, tokenizer, forget, retain, layers, 2.0, dict(CFG, engine=engine, steps=10),
                          torch.device("cpu"))
        runs[engine] = history, {name: p.detach().clone() for name, p in model.named_parameters()}
    (reference, reference_weights), (fast, fast_weights) = runs["reference"], runs[cached_engine]
    assert fast["coefficients"] == reference["coefficients"]
    for term in ("forget_loss", "retain_loss"):
        assert fast[term] == pytest.approx(reference[term], rel=1e-5, abs=1e-7)
    assert reference["forget_loss"][-1] < reference["forget_loss"][0]
    for name, weight in reference_weights.items():
        torch.testing.assert_close(fast_weights[name], weight, rtol=1e-5, atol=1e-6)


def test_forget_loss_falls(tiny_model, tiny_tokenizer, sentences):
    forget = {"Task1": sentences[:2]}
    retain = {"Task1": sentences[2:]}
    cfg = dict(CFG, steps=30)
    history = run_rmu(tiny_model, tiny_tokenizer, forget, retain, [0, 1, 2], alpha=1.0, cfg=cfg,
                      device=torch.device("cpu"))
    assert history["forget_loss"][-1] < 0.5 * history["forget_loss"][0]


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_adaptive_coefficient_is_beta_times_frozen_norm(tiny_model_factory, sentences, engine):
    model, tokenizer = tiny_model_factory()
    ids = tokenizer(sentences[:1], add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        acts = model(input_ids=ids, output_hidden_states=True).hidden_states[3]  # leaving layer 2
    forget, retain, cpu = {"Task1": sentences[:1]}, {"Task1": sentences[1:]}, torch.device("cpu")
    history = run_rmu(model, tokenizer, forget, retain, [0, 1, 2], 1.0, dict(CFG, engine=engine, steps=1), cpu)
    assert history["coefficients"]["Task1"] == pytest.approx(CFG["beta"] * acts.norm(dim=-1).mean().item(), rel=1e-5)
    model, tokenizer = tiny_model_factory()
    fixed = run_rmu(model, tokenizer, forget, retain, [0, 1, 2], 1.0, dict(CFG, engine=engine, steps=1,
                                                                         method="rmu"), cpu)
    assert fixed["coefficients"] == {"Task1": CFG["steering_coeff"]}


def test_trainable_selection_by_name_does_not_confuse_layer_1_and_11(tiny_model):
    selected = trainable_down_proj(tiny_model, [1, 2, 3])
    assert sorted(selected) == [f"model.layers.{i}.mlp.down_proj.weight" for i in (1, 2, 3)]
    assert sum(p.requires_grad for p in tiny_model.parameters()) == 3


@pytest.mark.parametrize("value, message", [
    (24, "not a list of three integers"),
    ([24, 25], "not a list of three integers"),
    ([24, 26, 27], "not three consecutive"),
    ([-1, 0, 1], "not three consecutive"),
    ([2.0, 3.0, 4.0], "not a list of three integers"),
])
def test_layer_triple_rejects_malformed(value, message):
    with pytest.raises(PipelineError, match=message):
        layer_triple(value)


def test_layer_triple_names_the_model_layer_count():
    with pytest.raises(PipelineError, match="has 16 decoder layers"):
        layer_triple([24, 25, 26], num_layers=16)
    assert layer_triple([13, 14, 15], num_layers=16) == [13, 14, 15]


def run_engine(model, tokenizer, sentences, engine: str, layers=(1, 2, 3), steps=10):
    forget = {"Task1": sentences[:3], "Task2": sentences[3:]}
    retain = {"Task1": sentences[2:], "Task2": sentences[:2]}
    history = run_rmu(model, tokenizer, forget, retain, list(layers), 2.0, dict(CFG, engine=engine, steps=steps),
                      torch.device("cpu"))
    return history, {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_cut_to_down_proj_changes_no_bit(tiny_model_factory, sentences, dtype):
    """`fast` replays layer l-2's attention output and MLP intermediate from the cache; `lean` recomputes them
    every step: the same losses and weights, bit for bit, in fp32 and in bf16 under autocast."""
    runs, calls = {}, {}
    for engine in ("fast", "lean"):
        model, tokenizer = tiny_model_factory()
        calls[engine] = 0
        model.model.layers[1].mlp.gate_proj.register_forward_hook(
            lambda *args, engine=engine: calls.__setitem__(engine, calls[engine] + 1))
        runs[engine] = run_engine(model.to(dtype), tokenizer, sentences, engine, steps=10)
    # caching runs layer 1 once per batch (fast: twice, to capture the cut's parts, and once more to check the cut
    # on the first); then lean runs its gate_proj at every step on forget and retain, fast never
    batches = len(batch_schedule({"Task1": sentences[:3], "Task2": sentences[3:]},
                                 {"Task1": sentences[2:], "Task2": sentences[:2]}, CFG)[0])
    assert calls == {"lean": batches + 2 * 10, "fast": 2 * batches + 1}
    (fast, fast_weights), (lean, lean_weights) = runs["fast"], runs["lean"]
    assert fast["forget_loss"] == lean["forget_loss"] and fast["retain_loss"] == lean["retain_loss"]
    assert all(torch.equal(fast_weights[name], weight) for name, weight in lean_weights.items())
    assert fast["forget_loss"][-1] != fast["forget_loss"][0]


def tiny_decoder(architecture: str, vocab_size: int):
    """A random 4-layer model of another family: OLMo2 (norms after attention and MLP) or Llama (RMSNorm)."""
    from transformers import LlamaConfig, LlamaForCausalLM, Olmo2Config, Olmo2ForCausalLM
    config_class, model_class = {"olmo2": (Olmo2Config, Olmo2ForCausalLM),
                                 "llama": (LlamaConfig, LlamaForCausalLM)}[architecture]
    torch.manual_seed(0)
    return model_class(config_class(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                    num_attention_heads=2, max_position_embeddings=128)).eval()


@pytest.mark.parametrize("architecture", ["olmo2", "llama"])
def test_the_cut_fits_other_decoder_layers(tiny_tokenizer, sentences, architecture):
    from unlearning.models.layers import fits_cut, slice_inputs
    model = tiny_decoder(architecture, len(tiny_tokenizer))
    batch = tiny_tokenizer(sentences[:2], add_special_tokens=False, padding=True, return_tensors="pt")
    hidden, layer_kwargs, _ = slice_inputs(model, 1, 1, batch["input_ids"], batch["attention_mask"])
    assert fits_cut(model.model.layers[1], hidden, layer_kwargs)
    runs = {}
    for engine in ("fast", "lean"):
        runs[engine] = run_engine(tiny_decoder(architecture, len(tiny_tokenizer)), tiny_tokenizer, sentences, engine,
                                  steps=4)
    assert runs["fast"][0]["forget_loss"] == runs["lean"][0]["forget_loss"]
    assert all(torch.equal(runs["fast"][1][name], weight) for name, weight in runs["lean"][1].items())


def test_a_layer_the_cut_does_not_fit_runs_whole(tiny_model_factory, sentences, capsys):
    """An MLP whose output is more than down_proj of its intermediate (here, plus a tenth of its input): the cut
    would drop that term, so the check finds the cut layer's output differs and the engine runs the layer whole,
    as `lean` does, and says so."""
    from unlearning.models.layers import fits_cut, slice_inputs

    def with_skip(model):
        mlp = model.model.layers[1].mlp
        original = type(mlp).forward
        mlp.forward = lambda x: original(mlp, x) + 0.1 * x   # an instance attribute, as the cut's own
        return model

    model, tokenizer = tiny_model_factory()
    batch = tokenizer(sentences[:2], add_special_tokens=False, padding=True, return_tensors="pt")
    hidden, layer_kwargs, _ = slice_inputs(with_skip(model), 1, 1, batch["input_ids"], batch["attention_mask"])
    assert not fits_cut(model.model.layers[1], hidden, layer_kwargs)
    fast = run_engine(with_skip(tiny_model_factory()[0]), tokenizer, sentences, "fast")
    assert "does not fit the cut" in capsys.readouterr().out
    lean = run_engine(with_skip(tiny_model_factory()[0]), tokenizer, sentences, "lean")
    assert fast[0]["forget_loss"] == lean[0]["forget_loss"]
