"""Stage `report`: reports/metrics.json (DVC metrics: the headline run's five scores), reports/metrics/ (runs.json:
every run's scores with their intervals; detail.json: everything), reports/report.md and the plots, before vs after,
for the headline run, every triple of `sweep`, every method of `methods` and `baselines` and every seed of `seeds`,
every score with its bootstrap interval over documents (`report.resamples`, `report.confidence`).

python -m stages.report --info data/prepared/info.json --eval reports/eval --live reports/unlearn --out reports
"""
import argparse
from pathlib import Path

from unlearning import config
from unlearning.errors import exit_on_error
from unlearning.files import atomic_output, read_json, write_json
from unlearning.report.attacks import attacks_markdown, attacks_summary, plot_recovery, recovery_seed_spread
from unlearning.report.markdown import fmt, markdown_report
from unlearning.report.plots import write_plots
from unlearning.report.summary import build_metrics, detail_files, headline_metrics, seed_models

PARAMS = ("data.split", "layers", "alpha", "sweep", "methods", "baselines", "unlearn.method", "unlearn.beta",
          "unlearn.steps", "unlearn.seed", "seeds", "mia.min_k", "report.resamples", "report.confidence",
          "attack.models", "attack.lr", "attack.trained", "attack.seed")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--info", type=Path, required=True, help="the prepared data's info.json")
    parser.add_argument("--eval", type=Path, required=True, help="the evaluations: <eval>/<target|run>/{task,mia,mmlu}")
    parser.add_argument("--live", type=Path, required=True, help="the headline run's DVCLive directory")
    parser.add_argument("--out", type=Path, required=True, help="where metrics.json, metrics/, report.md and plots/ go")
    return parser.parse_args(argv)


@exit_on_error
def main(argv=None):
    args = parse_args(argv)
    params = config.load(PARAMS)
    info = read_json(args.info)
    mmlu_source = read_json(args.eval / "target" / "mmlu" / "mmlu.json")["source"]
    metrics = build_metrics(args.eval, params["data.split"], params["layers"], params["alpha"],
                            params["unlearn.method"], params["unlearn.beta"], params["unlearn.steps"],
                            params["mia.min_k"], params["sweep"], params["methods"], params["baselines"],
                            params["report.resamples"], params["report.confidence"], params["unlearn.seed"],
                            params["seeds"])
    metrics["attacks"] = attacks_summary(args.eval, params["attack.models"], params["report.resamples"],
                                         params["report.confidence"])
    metrics["attack_seed_spread"] = recovery_seed_spread(metrics["attacks"],
                                                         seed_models(params["unlearn.seed"], params["seeds"]))
    attack_settings = {key: params[f"attack.{key}"] for key in ("lr", "trained", "seed")}
    with atomic_output(args.out / "plots") as plots:
        write_plots(metrics, args.eval, args.live, plots)
        if metrics["attacks"]:
            plot_recovery(metrics["attacks"], plots / "attack_recovery.png")
    with atomic_output(args.out / "report.md") as report:
        report.write_text(markdown_report(metrics, info, mmlu_source)
                          + attacks_markdown(metrics["attacks"], attack_settings, metrics["attack_seed_spread"]),
                          encoding="utf-8")
    with atomic_output(args.out / "metrics") as details:
        for name, content in detail_files(metrics).items():
            write_json(details / name, content)
    with atomic_output(args.out / "metrics.json") as headline:
        write_json(headline, headline_metrics(metrics))
    b, a = metrics["before"], metrics["after"]
    print(f"report: final score {fmt(b['final'])} -> {fmt(a['final'])}, task aggregate {b['task_aggregate']:.3f} -> "
          f"{a['task_aggregate']:.3f}, MIA AUC {fmt(b['mia_auc'])} -> {fmt(a['mia_auc'])}, "
          f"MMLU ({b['mmlu_format']}) {b['mmlu']:.3f} -> {a['mmlu']:.3f}; {len(metrics['sweep'])} triples, "
          f"{len(metrics['methods'])} methods")


if __name__ == "__main__":
    main()
