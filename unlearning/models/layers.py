"""Decoder layers by index in any Llama/OLMo-style causal LM, and running a slice of them from cached inputs: what
the fast unlearning engines share (when only layers >= l train, nothing below l changes)."""
from contextlib import contextmanager, nullcontext

import torch

from ..errors import PipelineError


class _StopForward(Exception):
    """Raised by the capture hook: nothing after the last wanted layer is needed."""


def decoder_layers(model) -> torch.nn.ModuleList:
    """The decoder blocks of a Llama/OLMo/OLMo2-style causal LM (model.model.layers)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise PipelineError(f"{type(model).__name__}: no `model.layers` list of decoder blocks; "
                            "use a Llama/OLMo-style causal LM")
    return layers


@torch.no_grad()
def slice_inputs(model, first: int, last: int, input_ids, attention_mask) -> tuple:
    """What decoder layer `first` receives (hidden states, and the mask and rotary embeddings the model built for
    them) and what layer `last` returns, from one forward that stops after `last`."""
    captured = {}

    def capture_input(module, args, kwargs):
        kwargs = dict(kwargs)
        captured["hidden"] = args[0] if args else kwargs.pop("hidden_states")
        captured["kwargs"] = kwargs

    def capture_output(module, args, output):
        captured["acts"] = output[0] if isinstance(output, tuple) else output
        raise _StopForward

    layers = decoder_layers(model)
    handles = [layers[first].register_forward_pre_hook(capture_input, with_kwargs=True),
               layers[last].register_forward_hook(capture_output)]
    try:
        model.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return captured["hidden"], captured["kwargs"], captured["acts"]


def layer_output(model, layer_index: int, input_ids, attention_mask) -> torch.Tensor:
    """Hidden states leaving decoder layer `layer_index`, [batch, seq, hidden]; later layers never run."""
    return slice_inputs(model, layer_index, layer_index, input_ids, attention_mask)[2]


def run_slice(model, first: int, last: int, hidden, layer_kwargs: dict, first_parts: tuple | None = None):
    """Layers first..last on cached inputs: all that changes when only their weights train. With `first_parts`
    (frozen_parts of layer `first` for this batch), layer `first` runs cut to its down_proj."""
    for index, layer in enumerate(decoder_layers(model)[first:last + 1]):
        with cut_to_down_proj(layer, *first_parts) if index == 0 and first_parts else nullcontext():
            output = layer(hidden, **layer_kwargs)
        hidden = output[0] if isinstance(output, tuple) else output
    return hidden


# Below the three-layer floor. When only mlp.down_proj of layer l-2 trains, its attention output and its MLP's
# intermediate activation (act(gate_proj(x)) * up_proj(x), the input of down_proj) come from frozen weights and
# cached inputs: computed once per batch, they leave one matmul of the layer per step. The layer's own forward
# still runs, its norms and residual sums included, with `self_attn` and `mlp` answering from the cache, so the
# cut needs no architecture written out (OLMo's pre-norm, OLMo2's post-norm, Llama), only those two submodules
# and a down_proj that takes the intermediate activation; fits_cut checks that the cut layer gives the layer's
# own output, bit for bit, before an engine relies on it.

@torch.no_grad()
def frozen_parts(layer, hidden, layer_kwargs: dict) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """((attention output, down_proj input), layer output) of one forward of `layer`: what the cut replays."""
    captured = {}

    def attention_output(module, args, output):
        captured["attention"] = output[0] if isinstance(output, tuple) else output

    def down_proj_input(module, args):
        captured["intermediate"] = args[0]

    handles = [layer.self_attn.register_forward_hook(attention_output),
               layer.mlp.down_proj.register_forward_pre_hook(down_proj_input)]
    try:
        output = layer(hidden, **layer_kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return (captured["attention"], captured["intermediate"]), output[0] if isinstance(output, tuple) else output


@contextmanager
def cut_to_down_proj(layer, attention: torch.Tensor, intermediate: torch.Tensor):
    """Inside the block, `layer`'s attention returns `attention` and its MLP returns down_proj(`intermediate`)."""
    modules = (layer.self_attn, layer.mlp)
    saved = [module.__dict__.get("forward") for module in modules]   # a forward patched on the instance, if any
    layer.self_attn.forward = lambda *args, **kwargs: (attention, None)
    layer.mlp.forward = lambda *args, **kwargs: layer.mlp.down_proj(intermediate)
    try:
        yield layer
    finally:
        for module, forward in zip(modules, saved):
            del module.forward
            if forward is not None:
                module.forward = forward


def fits_cut(layer, hidden, layer_kwargs: dict) -> bool:
    """Whether `layer` has the submodules the cut replaces and, cut, gives its own output bit for bit."""
    if not (hasattr(layer, "self_attn") and hasattr(getattr(layer, "mlp", None), "down_proj")):
        return False
    parts, output = frozen_parts(layer, hidden, layer_kwargs)
    with torch.no_grad(), cut_to_down_proj(layer, *parts):
        cut = layer(hidden, **layer_kwargs)
    return torch.equal(cut[0] if isinstance(cut, tuple) else cut, output)
