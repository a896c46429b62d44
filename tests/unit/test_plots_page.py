"""The page of `dvc plots show` and `dvc plots diff`, opened in headless Chromium with every host unresolvable and
every connection sent to a dead proxy: each interactive plot of dvc.yaml draws, from the templates in .dvc/plots/
and the libraries the plot_libraries stage writes; without those libraries the page says what to run."""
import html.parser
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT
from test_report import metrics_of, write_runs

from stages import plot_libraries
from unlearning.report.plots import write_plots

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not found (Debian: `apt-get install "
                                                          "chromium`; .ci/run installs it where it can)")


def run(cmd: list[str], cwd: Path) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def git(repo: Path, *args) -> str:
    return run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], repo)


def write_report_plots(repo: Path, eval_dir: Path, alpha: float) -> None:
    """reports/plots of synthetic evaluations, as the report stage writes them."""
    live = repo / "reports" / "unlearn"
    for name in ("forget_loss", "retain_loss"):
        path = live / "plots" / "metrics" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"step\t{name}\n" + "".join(f"{step}\t{10.0 ** (-step / 10)}\n" for step in range(30)))
    metrics = metrics_of(eval_dir, 100)
    metrics["alpha"] = alpha
    shutil.rmtree(repo / "reports" / "plots", ignore_errors=True)
    write_plots(metrics, eval_dir, live, repo / "reports" / "plots")


@pytest.fixture(scope="module")
def plots_repo(tmp_path_factory):
    """A git + DVC repository with the project's plot definitions, page template and templates, committed with the
    report's plots of one run; the workspace then holds another run's (alpha 3), for `dvc plots diff`."""
    tmp = tmp_path_factory.mktemp("plots")
    eval_dir, repo = tmp / "eval", tmp / "repo"
    write_runs(eval_dir)
    repo.mkdir()
    git(repo, "init", "-q")
    run([sys.executable, "-m", "dvc", "init", "-q"], repo)
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")
    definitions = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": definitions["plots"]}, sort_keys=False))
    write_report_plots(repo, eval_dir, 2)
    plot_libraries.main(["--out", str(repo / "reports" / "plot_libraries")])
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a run")
    write_report_plots(repo, eval_dir, 3)
    return repo


class PlotDivs(html.parser.HTMLParser):
    """In the rendered DOM: per plot div, how many mark items Vega drew in each of its marks (a layer's lines,
    bars, points, rules or labels of the data; not axes, legends or titles), and the warning's style. The templates
    ask vega-embed for SVG."""

    def __init__(self, ids):
        super().__init__()
        self.ids, self.marks, self.divs, self.groups, self.warning_style = set(ids), {}, [], [], None

    def plot(self):
        return next((plot for plot in reversed(self.divs) if plot), None)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div":
            self.divs.append(attrs.get("id") if attrs.get("id") in self.ids else None)
            if attrs.get("id") == "plot-libraries-missing":
                self.warning_style = attrs.get("style", "")
        elif tag == "g":
            classes = (attrs.get("class") or "").split()
            is_mark = "role-mark" in classes and self.plot()
            # a rule mark may be empty: the whiskers of a score without an interval (n/a)
            self.groups.append([0, "mark-rule" in classes] if is_mark else None)
            if is_mark:
                self.marks.setdefault(self.plot(), []).append(self.groups[-1])
        elif tag in ("path", "line", "text", "rect") and self.groups and self.groups[-1] is not None:
            self.groups[-1][0] += 1

    def handle_endtag(self, tag):
        if tag == "div" and self.divs:
            self.divs.pop()
        elif tag == "g" and self.groups:
            self.groups.pop()

    def drawn(self, specs: dict) -> set:
        """The plots each of whose marks drew (whiskers aside), with at least one item per series and revision of the
        data."""
        return {plot for plot, spec in specs.items() if self.marks.get(plot)
                and all(n or rule for n, rule in self.marks[plot])
                and sum(n for n, _ in self.marks[plot]) >= len({(row.get("series"), row["rev"])
                                                              for row in spec_rows(spec)})}


def page_specs(page: Path) -> dict:
    """Plot div id -> the Vega-Lite spec DVC filled in, as the page holds them."""
    text = page.read_text(encoding="utf-8")
    return {plot: json.loads(spec) for plot, spec in
            re.findall(r'<div id = "([^"]+)">\s*<script type = "text/javascript">\s*var spec = (\{.*?\});\n', text)}


def spec_rows(spec: dict) -> list[dict]:
    for data in [spec.get("data")] + [layer.get("data") for layer in spec.get("layer", [])]:
        if data and data.get("values") and data["values"] != [{}]:
            return data["values"]
    raise AssertionError("a plot without data")


def render(repo: Path, page: Path) -> tuple[PlotDivs, dict]:
    """The page's DOM once its scripts have run (`--dump-dom`), with the network unreachable; and the interactive
    plots the page holds (id -> spec)."""
    specs = page_specs(page)
    profile = repo.parent / f"chromium-profile-{page.parent.name}"
    dom = run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", f"--user-data-dir={profile}",
               "--virtual-time-budget=30000", "--dump-dom", page.as_uri()], repo)
    parsed = PlotDivs(specs)
    parsed.feed(dom)
    return parsed, specs


def plots_command(repo: Path, *args) -> Path:
    out = repo / f"dvc_plots_{args[0]}"
    run([sys.executable, "-m", "dvc", "plots", *args, "-o", out.name], repo)
    return out / "index.html"


def test_dvc_plots_show_draws_every_plot_offline(plots_repo):
    page = plots_command(plots_repo, "show")
    text = page.read_text(encoding="utf-8")
    assert "cdn.jsdelivr" not in text and "https://" not in text.replace("https://vega.github.io/schema", "")
    parsed, specs = render(plots_repo, page)
    definitions = yaml.safe_load((plots_repo / "dvc.yaml").read_text())["plots"]
    interactive = [d for d in definitions if isinstance(d, dict)]
    assert len(specs) == len(interactive) == 6
    assert parsed.drawn(specs) == set(specs), f"not drawn: {sorted(set(specs) - parsed.drawn(specs))} {parsed.marks}"
    assert "block" not in parsed.warning_style  # the warning stays hidden
    assert text.count("<img") == len(definitions) - len(interactive)  # the PNGs, beside them


def test_dvc_plots_diff_draws_both_runs_and_names_their_settings(plots_repo):
    page = plots_command(plots_repo, "diff", "HEAD")
    parsed, specs = render(plots_repo, page)
    assert len(specs) == 6 and parsed.drawn(specs) == set(specs), parsed.marks
    # each point carries its revision and its run's settings, which the templates join into the legend
    runs = {(row["rev"], row["run"]) for spec in specs.values() for row in spec_rows(spec)}
    assert {run for _, run in runs} == {"layers 29-31, adaptive_rmu, alpha 2, beta 1, seed 0",
                                        "layers 29-31, adaptive_rmu, alpha 3, beta 1, seed 0"}
    assert {rev for rev, _ in runs} == {"HEAD", "workspace"}


def test_without_the_libraries_the_page_says_what_to_run(plots_repo, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(plots_repo, repo)
    shutil.rmtree(repo / "reports" / "plot_libraries")
    page = plots_command(repo, "show")
    parsed, specs = render(repo, page)
    assert parsed.marks == {} and len(specs) == 6  # not one mark drawn
    assert "display: block" in parsed.warning_style
    text = page.read_text(encoding="utf-8")
    assert "Run <code>dvc repro</code>" in text and "../reports/plot_libraries/vega.js" in text
