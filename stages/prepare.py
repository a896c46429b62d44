"""Stage `prepare`: the dataset `data.source` names, checked, into a prepared directory (data/prepared).

python -m stages.prepare --out data/prepared
"""
import argparse
from pathlib import Path

from unlearning import config
from unlearning.data.prepared import write_prepared
from unlearning.data.schema import check_dataset
from unlearning.data.sources import limit_documents, load_source
from unlearning.errors import exit_on_error
from unlearning.files import atomic_output

PARAMS = ("data.source", "data.limit", "data.seed", "data.synthetic")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the prepared directory to write")
    return parser.parse_args(argv)


@exit_on_error
def main(argv=None):
    args = parse_args(argv)
    params = config.load(PARAMS)
    source = params["data.source"]
    data, files = load_source(source, params["data.synthetic"], params["data.seed"])
    check_dataset(data, files)
    data = limit_documents(data, params["data.limit"])
    with atomic_output(args.out) as tmp:
        counts = write_prepared(tmp, data, source)
    print(f"prepared {args.out}: " + ", ".join(f"{name} {n}" for name, n in counts.items()))


if __name__ == "__main__":
    main()
