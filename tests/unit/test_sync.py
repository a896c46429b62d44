"""One source of truth: dvc.yaml's code dependencies and params are what the code imports and reads, params.yaml and
docs/params.md are what the schema says, and a stage cannot read a param it does not declare."""
import shutil

import pytest
import yaml
from helpers import ROOT, assert_one_error_line, params_with

from unlearning import config
from unlearning.errors import PipelineError
from unlearning.tools import sync


def test_every_stage_depends_on_every_module_it_imports_and_exactly_the_params_it_reads():
    problems = sync.dvc_yaml_problems(ROOT)
    assert problems == [], "\n".join(problems + ["run `python -m unlearning.tools.sync`"])


def test_params_yaml_and_the_reference_are_the_schema_rendered():
    """params.yaml has the schema's keys, order and comments (its values are the user's: `dvc exp run -S` changes
    them); docs/params.md is the schema and dvc.yaml rendered."""
    assert sync.params_yaml_problems(ROOT) == []
    assert (ROOT / "docs" / "params.md").read_text(encoding="utf-8") == sync.render_reference(ROOT), \
        "docs/params.md: run `python -m unlearning.tools.sync`"


def test_params_yaml_as_dvc_exp_run_rewrites_it_is_still_in_line(project):
    """`dvc exp run -S` keeps the comments but writes lists in block style: values and style are the user's."""
    text = (project / "params.yaml").read_text().replace("layers: [12, 13, 14]", "layers:\n- 10\n- 11\n- 12")
    (project / "params.yaml").write_text(text.replace("alpha: 2\n", "alpha: 3\n"))
    assert sync.params_yaml_problems(project) == []
    (project / "params.yaml").write_text(text.replace("# weight of RMU's retain term", "#"))
    assert sync.params_yaml_problems(project) == [
        "params.yaml: out of date (made from the schema in unlearning/config.py): comment \"weight of RMU's retain "
        "term (MSE between updated and frozen layer activations on retain data); the paper: about 900 at\" is "
        "missing"]
    (project / "params.yaml").write_text(text + "colour: red\n")
    assert sync.params_yaml_problems(project) == [
        "params.yaml: out of date (made from the schema in unlearning/config.py): keys missing [], unknown ['colour']"]


def test_params_yaml_renders_the_schema_defaults_and_keeps_a_users_values(project):
    defaults = sync.render_params_yaml()
    assert yaml.safe_load(defaults) == config.defaults()
    assert "# weight of RMU's retain term" in defaults and "  split: train               " in defaults
    params = params_with({"alpha": 3, "unlearn": {"lr": 0.5}})
    del params["mia"]["min_k"]
    params["colour"] = "red"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    repaired = yaml.safe_load(sync.current_params_yaml(project))
    assert repaired == params_with({"alpha": 3, "unlearn": {"lr": 0.5}})


@pytest.fixture
def project(tmp_path):
    """A copy of the project's code, dvc.yaml, params.yaml and docs/params.md, to break."""
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "params.md", tmp_path / "docs" / "params.md")
    for name in ("stages", "unlearning"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def edit_stage(project, name, change):
    path = project / "dvc.yaml"
    document = yaml.safe_load(path.read_text())
    stage = document["stages"][name]
    change(stage.get("do", stage))
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_a_module_missing_from_a_stages_deps_is_named_with_the_import_that_needs_it(project):
    edit_stage(project, "evaluate", lambda body: body["deps"].remove("unlearning/evaluation/pii.py"))
    assert sync.dvc_yaml_problems(project) == [
        "stage `evaluate (template)`: missing dependency unlearning/evaluation/pii.py, which stages/evaluate.py "
        "imports (via unlearning/evaluation/task.py)",
        "stage `evaluate@target`: missing dependency unlearning/evaluation/pii.py, which stages/evaluate.py imports "
        "(via unlearning/evaluation/task.py)",
        "stage `evaluate@unlearned`: missing dependency unlearning/evaluation/pii.py, which stages/evaluate.py imports "
        "(via unlearning/evaluation/task.py)"]


def test_a_new_import_is_found_even_inside_a_function(project):
    path = project / "unlearning" / "data" / "sources.py"
    path.write_text(path.read_text() + "\n\ndef later():\n    from ..evaluation import scoring\n    return scoring\n")
    assert sync.dvc_yaml_problems(project) == [
        "stage `prepare`: missing dependency unlearning/evaluation/__init__.py, which stages/prepare.py imports "
        "(via unlearning/data/sources.py)",
        "stage `prepare`: missing dependency unlearning/evaluation/scoring.py, which stages/prepare.py imports "
        "(via unlearning/data/sources.py)"]


def test_a_dependency_the_stage_does_not_import_is_named(project):
    edit_stage(project, "prepare", lambda body: body["deps"].append("unlearning/methods/rmu.py"))
    assert sync.dvc_yaml_problems(project) == [
        "stage `prepare`: depends on unlearning/methods/rmu.py, which stages/prepare.py does not import"]


def test_a_new_output_loss_method_changes_no_dvc_yaml(project):
    """The output-loss stage depends on the folder of the methods its table imports: a method added there (its
    module and its line in the table) is a dependency already."""
    folder = project / "unlearning" / "methods" / "output_loss"
    (folder / "ascent_only.py").write_text("from .loop import token_nll\n\n\ndef loss(step, cfg):\n"
                                           "    forget_loss = -token_nll(step.forget_logits, step.forget_ids, "
                                           "step.forget_mask)\n    return forget_loss, forget_loss, forget_loss\n")
    table = (folder / "__init__.py").read_text()
    (folder / "__init__.py").write_text(table.replace("from . import ", "from . import ascent_only, ").replace(
        "OUTPUT_LOSS_METHODS = {", 'OUTPUT_LOSS_METHODS = {\n    "ascent_only": ascent_only,'))
    assert sync.dvc_yaml_problems(project) == []


def test_a_module_in_a_stages_folder_that_it_does_not_import_is_named(project):
    (project / "unlearning" / "data" / "unused.py").write_text("VALUE = 1\n")
    problems = sync.dvc_yaml_problems(project)
    assert "stage `prepare`: depends on unlearning/data, which stages/prepare.py does not import all of" in problems
    assert "stage `prepare`: missing dependency unlearning/data/sources.py, which stages/prepare.py imports" \
           in problems


def test_a_param_read_but_not_listed_and_one_listed_but_not_read_are_named(project):
    edit_stage(project, "unlearn_baseline", lambda body: body["params"].remove("unlearn.npo_beta"))
    edit_stage(project, "unlearn_method", lambda body: body["params"].append("unlearn.baseline_lr"))
    problems = sync.dvc_yaml_problems(project)
    assert "stage `unlearn_baseline (template)`: missing param `unlearn.npo_beta`, which stages/unlearn_baseline.py " \
           "reads" in problems
    assert "stage `unlearn_method@rmu`: lists param `unlearn.baseline_lr`, which stages/unlearn.py does not read" \
           in problems


def test_the_sync_command_repairs_what_the_check_finds(project, capsys):
    edit_stage(project, "prepare", lambda body: body["deps"].remove("unlearning/data"))
    edit_stage(project, "report", lambda body: (body["deps"].remove("unlearning/report/plots.py"),
                                                body["params"].remove("alpha")))
    (project / "params.yaml").write_text(yaml.safe_dump(params_with({"alpha": 3})))  # no comments
    assert sync.main(["--check"], project) == 1
    assert capsys.readouterr().out.splitlines() == [
        "stage `prepare`: missing dependency unlearning/data (every module in it), which stages/prepare.py imports",
        "stage `report`: missing dependency unlearning/report/plots.py, which stages/report.py imports",
        "stage `report`: missing param `alpha`, which stages/report.py reads",
        "params.yaml: out of date (made from the schema in unlearning/config.py): its keys are in another order than "
        "the schema's",
        "docs/params.md: out of date (made from the schema in unlearning/config.py and from dvc.yaml)"]
    assert sync.main([], project) == 0
    assert sync.check(project) == []
    assert "      - reports/unlearn\n      - stages/__init__.py\n" in (project / "dvc.yaml").read_text()


def test_families_depend_on_their_own_keys_only():
    """An RMU key never reruns an output-loss run, nor the reverse; only the RMU runs depend on alpha."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    rmu_only = {"alpha", "unlearn.engine", "unlearn.beta", "unlearn.steering_coeff", "unlearn.direction", "unlearn.lr"}
    output_loss_only = {"unlearn.baseline_params", "unlearn.baseline_lr", "unlearn.retain_weight", "unlearn.npo_beta"}
    for name in ("unlearn", "unlearn_sweep", "unlearn_seed", "unlearn_method"):
        keys = set(stages[name].get("do", stages[name])["params"])
        assert rmu_only <= keys and not keys & output_loss_only, name
    keys = set(stages["unlearn_baseline"]["do"]["params"])
    assert output_loss_only <= keys and not keys & rmu_only
    assert "layers" not in stages["unlearn_sweep"]["do"]["params"]  # a triple's layers are in its command
    # a further seed's seed is in its command: unlearn.seed changes the headline, not unlearn_seed@S
    assert "unlearn.seed" not in stages["unlearn_seed"]["do"]["params"]
    assert "unlearn.seed" in stages["unlearn"]["params"]


def test_a_stage_reading_a_key_it_did_not_declare_is_stopped(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_with({})))
    params = config.load(("alpha", "unlearn.lr"), tmp_path / "params.yaml")
    assert params["alpha"] == config.defaults()["alpha"]
    with pytest.raises(PipelineError, match="reads params key `unlearn.beta` but does not declare it"):
        params["unlearn.beta"]
    with pytest.raises(PipelineError, match="`unlearn.bta` is not a params.yaml key"):
        config.load(("unlearn.bta",), tmp_path / "params.yaml")
    assert config.load(("model.scratch",), tmp_path / "params.yaml")["model.scratch"]["hidden_size"] == 64


def test_a_stage_command_that_runs_no_stage_module_is_one_clear_error(project, capsys):
    edit_stage(project, "prepare", lambda body: body.update(cmd="python prepare.py"))
    with pytest.raises(SystemExit) as exit_:
        sync.main(["--check"], project)
    assert_one_error_line((exit_.value.code, capsys.readouterr().err),
                          "dvc.yaml: command 'python prepare.py' is not `python -m stages.<name> ...`")
