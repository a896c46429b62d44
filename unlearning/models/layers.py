"""Decoder layers by index in any Llama/OLMo-style causal LM, and running a slice of them from cached inputs: what
the fast unlearning engines share (when only layers >= l train, nothing below l changes)."""
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


def run_slice(model, first: int, last: int, hidden, layer_kwargs: dict) -> torch.Tensor:
    """Layers first..last on cached inputs: all that changes when only their weights train."""
    for layer in decoder_layers(model)[first:last + 1]:
        output = layer(hidden, **layer_kwargs)
        hidden = output[0] if isinstance(output, tuple) else output
    return hidden
