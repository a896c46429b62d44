"""Unlearning methods, one file each, found through two plain name -> method tables:

- rmu.RMU_METHODS: the activation-loss methods (adaptive_rmu, rmu), which read `alpha` and the RMU keys of
  `unlearn`; the headline run, the layer sweep and `methods` run them (stages/unlearn.py);
- output_loss.OUTPUT_LOSS_METHODS: the next-token-loss methods, one module each in output_loss/ (gradient_ascent,
  gradient_difference, kl, npo), trained by output_loss/loop.py, which read the `unlearn.baseline_*`,
  `retain_weight` and `npo_beta` keys; `baselines` runs them (stages/unlearn_baseline.py).

Two tables in two places, so that a run imports, and DVC makes it depend on, its own family's code only; the
output-loss methods have a folder of their own so that their stage depends on the folder, and a new method in it
changes no dvc.yaml. training.py holds what every method shares.
"""
