"""Adaptive RMU unlearning pipeline: one module per DVC stage, pure functions underneath."""
