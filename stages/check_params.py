"""Stage `check_params`: the whole of params.yaml checked on every change to it.

Every other stage checks the whole file before it works, but only runs when a key it reads changes: a misspelt
`dvc exp run -S +unlearn.stpes=10` (DVC's own hint for a key params.yaml lacks) changes no key any stage reads, so
without this stage nothing would run and DVC would record an experiment that did nothing. This one depends on the
whole file (PARAMS), so it runs on any change and stops the run with the unknown-key error and the nearest key.

python -m stages.check_params
"""
import argparse

from unlearning import config
from unlearning.errors import exit_on_error

# DVC's form for "every key of the file": `- params.yaml:` in dvc.yaml
PARAMS = ({config.PARAMS_FILE: None},)


def parse_args(argv=None):
    return argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)


@exit_on_error
def main(argv=None):
    parse_args(argv)
    config.load(())
    print(f"check_params: {config.PARAMS_FILE} is valid")


if __name__ == "__main__":
    main()
