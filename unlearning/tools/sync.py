"""dvc.yaml's code dependencies and params, params.yaml and docs/params.md, made from the code.

    python -m unlearning.tools.sync            rewrite them
    python -m unlearning.tools.sync --check    say what differs (exit 1), change nothing; the tests run this

For every stage of dvc.yaml (a foreach stage for its template and for each item params.yaml gives it), the stage
command `python -m stages.<name> ...` names the entry module. Its code dependencies are every project module it
imports, directly or through others, found by following `import` statements with the ast module (imports inside
functions count; so do the packages' __init__.py files, which Python runs too). Its params are what the module
declares it reads (PARAMS, or params_read(args) for the stage's arguments), and what its package reads for every
stage (stages.PARAMS: the numerics, pinned before torch loads); config.load hands a stage its keys and no others.
params.yaml and docs/params.md are rendered from config.SCHEMA.
"""
import argparse
import ast
import importlib
import io
import re
import shlex
import sys
import textwrap
from pathlib import Path

import yaml
from ruamel.yaml import YAML

from .. import config
from ..config import SCHEMA, Section
from ..errors import PipelineError, exit_on_error

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("stages", "unlearning")  # the project's own code; everything else is a library
PLACEHOLDER = "0"  # stands for ${item} when a foreach stage's template is analysed


# ---- the import graph --------------------------------------------------------------------------------------------

def module_path(module: str, root: Path) -> Path | None:
    """The file of a project module (a package's __init__.py), or None for anything else."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _with_packages(module: str) -> list[str]:
    """A module and every package above it: importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def direct_imports(module: str, root: Path) -> set[str]:
    """The project modules one module's code imports (anywhere in it, at any depth)."""
    path = module_path(module, root)
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from a import b` imports a, and a.b too when b is a module rather than a name in a
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            for candidate in _with_packages(name):
                if module_path(candidate, root) is not None:
                    found.add(candidate)
    return found - {module}


def code_dependencies(module: str, root: Path = ROOT) -> dict[str, str]:
    """Every project file `module` runs -> the module through which it is first reached (itself for its own)."""
    reached = {m: module for m in _with_packages(module) if module_path(m, root)}
    queue = list(reached)
    while queue:
        current = queue.pop(0)
        for imported in sorted(direct_imports(current, root)):
            if imported not in reached:
                reached[imported] = current
                queue.append(imported)
    return {module_path(m, root).relative_to(root).as_posix(): module_path(via, root).relative_to(root).as_posix()
            for m, via in reached.items()}


def _modules_under(folder: Path, root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in folder.rglob("*.py") if "__pycache__" not in path.parts}


def with_folders(files, root: Path = ROOT) -> set[str]:
    """The files, with every package folder all of whose modules are among them listed as the folder instead
    (outermost first). The same files either way; a folder keeps dvc.yaml unchanged when a module that the folder's
    own table imports is added to it (a new output-loss method)."""
    files, deps, done = set(files), set(), set()
    folders = sorted({parent.as_posix() for f in files for parent in Path(f).parents
                      if parent != Path(".") and (root / parent / "__init__.py").is_file()},
                     key=lambda folder: folder.count("/"))
    for folder in folders:
        members = _modules_under(root / folder, root)
        if not any(folder.startswith(d + "/") for d in done) and members <= files:
            deps.add(folder)
            done.add(folder)
    covered = {f for f in files if any(f.startswith(d + "/") for d in done)}
    return deps | (files - covered)


# ---- what each stage of dvc.yaml runs --------------------------------------------------------------------------

def is_code(dep: str) -> bool:
    return dep.split("/")[0] in PACKAGES


def stage_module(cmd: str) -> tuple[str, list[str]]:
    """`python -m stages.x --a b` -> ("stages.x", ["--a", "b"])."""
    words = shlex.split(cmd)
    if len(words) < 3 or words[1] != "-m" or not words[2].startswith("stages."):
        raise PipelineError(f"dvc.yaml: command {cmd!r} is not `python -m stages.<name> ...`; every stage runs an "
                            "entry module of stages/")
    return words[2], words[3:]


def declared_params(module: str, argv: list[str], root: Path) -> list[str]:
    """The params keys a stage module reads for these arguments."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    stage = importlib.import_module(module)
    keys = list(stage.params_read(stage.parse_args(argv)) if hasattr(stage, "params_read") else stage.PARAMS)
    if any(isinstance(key, dict) for key in keys):  # `- params.yaml:`, the whole file, covers every key
        return keys
    # the package's own reads (stages/__init__.py pins the numerics in every stage process)
    package = importlib.import_module(module.rpartition(".")[0])
    return list(dict.fromkeys(keys + list(getattr(package, "PARAMS", ()))))


def _substitute(text: str, item) -> str:
    return text.replace("${item}", str(item))


def stage_instances(name: str, stage: dict, params: dict) -> list[tuple[str, str]]:
    """(label, command) of a stage: itself, or a foreach stage's template and every item params.yaml gives it."""
    if "foreach" not in stage:
        return [(name, stage["cmd"])]
    foreach = stage["foreach"]
    if isinstance(foreach, str):
        match = re.fullmatch(r"\$\{(.+)\}", foreach)
        foreach = config.get(params, match.group(1)) if match else []
    cmd = stage["do"]["cmd"]
    return [(f"{name} (template)", _substitute(cmd, PLACEHOLDER))] + [(f"{name}@{item}", _substitute(cmd, item))
                                                                     for item in foreach]


def expected(cmd: str, root: Path) -> tuple[dict[str, str], list[str]]:
    """(code file -> the module importing it, params keys) of one stage command."""
    module, argv = stage_module(cmd)
    return code_dependencies(module, root), declared_params(module, argv, root)


def stage_problems(name: str, stage: dict, params: dict, root: Path) -> list[str]:
    body = stage.get("do", stage)
    listed_code = {dep for dep in body.get("deps", []) if is_code(dep)}
    listed_params = list(body.get("params", []))
    problems = []
    for label, cmd in stage_instances(name, stage, params):
        code, keys = expected(cmd, root)
        deps = with_folders(code, root)
        entry = code[module_path(stage_module(cmd)[0], root).relative_to(root).as_posix()]
        for path in sorted(deps - listed_code):
            if path in code:
                via = "" if code[path] in (path, entry) else f" (via {code[path]})"
                problems.append(f"stage `{label}`: missing dependency {path}, which {entry} imports{via}")
            else:
                problems.append(f"stage `{label}`: missing dependency {path} (every module in it), which {entry} "
                                "imports")
        for path in sorted(listed_code - deps):
            problems.append(f"stage `{label}`: depends on {path}, which {entry} does not import"
                            + (" all of" if (root / path).is_dir() else ""))
        for key in keys:
            if key not in listed_params:
                problems.append(f"stage `{label}`: missing param `{key}`, which {entry} reads")
        for key in listed_params:
            if key not in keys:
                problems.append(f"stage `{label}`: lists param `{key}`, which {entry} does not read")
    return problems


def dvc_yaml_problems(root: Path = ROOT) -> list[str]:
    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    return [problem for name, stage in stages.items() for problem in stage_problems(name, stage, params, root)]


def write_dvc_yaml(root: Path = ROOT) -> None:
    """Rewrite every stage's code deps (after its data deps, sorted) and params (as the module declares them),
    keeping everything else of dvc.yaml, comments included."""
    rt = YAML()
    rt.width = 4096  # a stage command stays on one line
    rt.indent(mapping=2, sequence=4, offset=2)
    path = root / "dvc.yaml"
    document = rt.load(path.read_text(encoding="utf-8"))
    for stage in document["stages"].values():
        body = stage.get("do", stage)
        code, keys = expected(_substitute(body["cmd"], PLACEHOLDER), root)
        data = [dep for dep in body.get("deps", []) if not is_code(dep)]
        body["deps"] = data + sorted(with_folders(code, root))
        body["params"] = keys
    out = io.StringIO()
    rt.dump(document, out)
    path.write_text(out.getvalue(), encoding="utf-8")


def readers(root: Path = ROOT) -> dict[str, list[str]]:
    """params key -> the stages of dvc.yaml that read it (foreach stages by their group name)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    found = {}
    for name, stage in stages.items():
        for key in stage.get("do", stage).get("params", []):
            if isinstance(key, str):  # not `- params.yaml:` (the whole file: check_params)
                found.setdefault(key, []).append(name)
    return found


# ---- params.yaml and docs/params.md from the schema ----------------------------------------------------------------

HEADER = """\
# The pipeline's params. Generated from the schema in unlearning/config.py by `python -m unlearning.tools.sync`:
# edit a key's default, range or meaning there. docs/params.md lists every key with its type and the stages that
# read it. Values here are yours to change, or `dvc exp run -S key=value`.
"""
COMMENT_COLUMN = 30


def _value(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


def _commented(text: str, meaning: str, indent: str, above: bool) -> list[str]:
    """`text` with its meaning as a comment: at the comment column when it fits in 120 characters, else above it."""
    inline = text.ljust(COMMENT_COLUMN - 2) + "  # " + meaning
    if not above and len(inline) <= 120:
        return [inline]
    return textwrap.wrap(meaning, 120, initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# ") + [text]


def _lines(schema: dict, values: dict, depth: int) -> list[str]:
    indent = "  " * depth
    lines = []
    for name, node in schema.items():
        value = values.get(name) if isinstance(values, dict) else None
        if isinstance(node, Section) and value is not None:
            lines += ([""] if depth == 0 else []) + _commented(f"{indent}{name}:", node.meaning, indent, depth == 0)
            lines += _lines(node.keys, value, depth + 1)
        else:
            lines += _commented(f"{indent}{name}: {_value(value)}", node.meaning, indent, depth == 0)
    return lines


def render_params_yaml(values: dict | None = None) -> str:
    """params.yaml with `values` (default: the schema's defaults), every key commented with its meaning."""
    return HEADER + "\n" + "\n".join(_lines(SCHEMA, config.defaults() if values is None else values, 0)).lstrip("\n") \
        + "\n"


def _with_defaults(values, schema: dict = SCHEMA) -> dict:
    """`values` (a params.yaml) with every key the schema declares, its default where it is missing; keys the
    schema does not declare are left out."""
    values = values if isinstance(values, dict) else {}
    out = {}
    for name, node in schema.items():
        if name not in values:
            out[name] = config.defaults({name: node})[name]
        elif isinstance(node, Section) and isinstance(values[name], dict):
            out[name] = _with_defaults(values[name], node.keys)
        else:
            out[name] = values[name]
    return out


def current_params_yaml(root: Path) -> str:
    """params.yaml as the schema lays it out (keys, order, comments), with the values it holds now: a `dvc exp
    run -S` value stays; a key it lacks gets its default; a key the schema does not know is dropped."""
    path = root / config.PARAMS_FILE
    values = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    return render_params_yaml(_with_defaults(values))


def _default(node) -> str:
    if isinstance(node, Section):
        return "`null`" if node.default_null else ""
    if node.default is None and not isinstance(node.check, config.Optional) and not node.when:
        return "(required)"  # a key of a section that is null by default: give it with the section
    return f"`{_value(node.default)}`"


def render_reference(root: Path = ROOT) -> str:
    """docs/params.md: every key, its default, what it accepts, its meaning and the stages that read it."""
    read_by = readers(root)
    lines = ["# Params reference", "",
             "Generated from the schema in `unlearning/config.py` by `python -m unlearning.tools.sync`; do not edit.",
             "A stage reruns when a key it reads changes (a section's key covers every key inside it). Every stage",
             "checks the whole of params.yaml before it works, and warns about a key it does not know.", "",
             "| key | default | accepts | meaning | read by |", "|---|---|---|---|---|"]
    for key, node in config.walk():
        stages = sorted({stage for prefix in _with_packages(key) for stage in read_by.get(prefix, [])})
        if isinstance(node, Section):
            accepts = "mapping" + (" or null" if node.nullable else "")
        else:
            accepts = node.check.describe() + (f" (when `{node.when[0]}` is {node.when[1]})" if node.when else "")
        lines.append(f"| `{key}` | {_default(node)} | {accepts} | {node.meaning} | "
                     + ", ".join(f"`{s}`" for s in stages) + " |")
    return "\n".join(lines) + "\n"


def _keys(tree, prefix: str = "") -> list[str]:
    """Every dotted key of a mapping, in order, sections included."""
    keys = []
    for name, value in (tree.items() if isinstance(tree, dict) else ()):
        keys.append(prefix + name)
        keys += _keys(value, f"{prefix}{name}.")
    return keys


def _comments(text: str) -> list[str]:
    return [line.split("#", 1)[1].strip() for line in text.splitlines() if "#" in line]


def params_yaml_problems(root: Path = ROOT) -> list[str]:
    """params.yaml against the schema: the same keys in the same order, and every comment the schema gives. Its
    values, and how they are written (`dvc exp run -S` rewrites lists in block style), are the user's."""
    path = root / config.PARAMS_FILE
    out_of_date = f"{config.PARAMS_FILE}: out of date (made from the schema in unlearning/config.py)"
    if not path.is_file():
        return [out_of_date + ": missing"]
    text = path.read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    expected = _with_defaults(values)
    if _keys(values) != _keys(expected):
        missing = [key for key in _keys(expected) if key not in _keys(values)]
        unknown = [key for key in _keys(values) if key not in _keys(expected)]
        return [out_of_date + (f": keys missing {missing}, unknown {unknown}" if missing or unknown
                               else ": its keys are in another order than the schema's")]
    lost = [comment for comment in _comments(render_params_yaml(expected)) if comment not in text]
    return [out_of_date + f": comment {lost[0]!r} is missing"] if lost else []


def check(root: Path = ROOT) -> list[str]:
    """Everything that differs from what the code says, one line each; [] when all is in sync."""
    problems = dvc_yaml_problems(root) + params_yaml_problems(root)
    reference = root / config.REFERENCE
    if not reference.is_file() or reference.read_text(encoding="utf-8") != render_reference(root):
        problems.append(f"{config.REFERENCE}: out of date (made from the schema in unlearning/config.py and from "
                        "dvc.yaml)")
    return problems


@exit_on_error
def main(argv=None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report differences and change nothing")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(root)
        for problem in problems:
            print(problem)
        if problems:
            print("run `python -m unlearning.tools.sync` to bring them in line with the code", file=sys.stderr)
        return 1 if problems else 0
    write_dvc_yaml(root)
    for path, text in ((root / config.PARAMS_FILE, current_params_yaml(root)),
                       (root / config.REFERENCE, render_reference(root))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print("sync: wrote dvc.yaml (code deps and params), params.yaml and docs/params.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
