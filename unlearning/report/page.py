"""The chart libraries of the page `dvc plots show` and `dvc plots diff` write, for a machine with no network.

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN: offline (many clusters) its interactive plots are
blank, with no word why. The project's page template, .dvc/plots/page.html (`plots.html_template` in .dvc/config),
loads them instead from reports/plot_libraries/vega.js, which the `plot_libraries` stage writes from the
vl-convert-python package (the bundle Altair uses for offline HTML: the three libraries and everything they import,
in one script), and says on the page what to run when that file is missing.
"""
from importlib.metadata import version

import vl_convert

# DVC's templates and the project's (.dvc/plots/*.json) are Vega-Lite 5 specs
VEGA_LITE = "5.21"
SCRIPT = "vega.js"


def plot_libraries_script() -> str:
    """Vega, Vega-Lite and Vega-Embed as one classic script that defines window.vegaEmbed, window.vega and
    window.vegaLite. Wrapped in a function so that none of the bundle's own top-level names can clash with the
    plots' inline scripts (DVC's declare `var spec`), and classic, not a module, because those scripts call
    vegaEmbed as the page is parsed (a module would run after them, and pages opened from file:// cannot load
    modules)."""
    header = (f"/* Vega {vl_convert.get_vega_version()}, Vega-Lite {VEGA_LITE}, Vega-Embed "
              f"{vl_convert.get_vega_embed_version()}; bundled by vl-convert-python {version('vl-convert-python')} "
              "(python -m stages.plot_libraries). */")
    return f"{header}\n(function () {{\n{vl_convert.javascript_bundle(vl_version=VEGA_LITE)}\n}})();\n"
