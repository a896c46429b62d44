"""The output-loss methods, one module each in this package, by name: what `baselines` runs
(stages/unlearn_baseline.py). loop.py trains them and says what a method module defines. Adding one: its module
here, one line in this table, its test."""
from . import gradient_ascent, gradient_difference, kl, npo

OUTPUT_LOSS_METHODS = {
    "gradient_ascent": gradient_ascent,
    "gradient_difference": gradient_difference,
    "kl": kl,
    "npo": npo,
}
