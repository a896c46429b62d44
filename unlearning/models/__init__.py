"""Models: loading the Hugging Face way (safetensors only unless allowed), unlearned models as deltas on their
target, decoder layers by index, and causal-LM training."""
