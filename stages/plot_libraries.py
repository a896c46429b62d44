"""Stage `plot_libraries`: reports/plot_libraries/vega.js, the chart libraries that the page of `dvc plots show` and
`dvc plots diff` (.dvc/plots/page.html) loads, so that the interactive plots draw with no network.

python -m stages.plot_libraries --out reports/plot_libraries
"""
import argparse
from pathlib import Path

from unlearning import config
from unlearning.errors import exit_on_error
from unlearning.files import atomic_output
from unlearning.report.page import SCRIPT, plot_libraries_script

PARAMS = ()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the directory to write vega.js into")
    return parser.parse_args(argv)


@exit_on_error
def main(argv=None):
    args = parse_args(argv)
    config.load(PARAMS)
    script = plot_libraries_script()
    with atomic_output(args.out) as out:
        out.mkdir()
        (out / SCRIPT).write_text(script, encoding="utf-8")
    print(f"plot_libraries: {args.out / SCRIPT} ({len(script) / 1e6:.1f} MB): {script.splitlines()[0][3:-3]}")


if __name__ == "__main__":
    main()
