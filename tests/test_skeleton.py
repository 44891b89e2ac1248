"""The five scripts keep one skeleton (CONVENTIONS.md, STYLE.md): the same banners in the same order, the same
names for the same roles in the same sections, the paper in the first screenfuls, the model keys declared once,
the docstring's table equal to the printer's, and little code copied between scripts (what two scripts share
beyond that belongs in common/)."""
import ast
import difflib
import importlib
import itertools
import os
import re

import pytest
import torch

from common import checkpoint, cli, paper_tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["stw", "can", "stasta", "stmanet", "ean"]
BANNERS = ["imports", "arguments", "paper modules", "backbone surgery and model", "data", "train and evaluate", "main"]
# the names every script defines for the same role, by section ("appendix" = every section after main)
ROLES = {
    "imports": ["SCRIPT"],
    "arguments": ["DEMO_PROFILE", "arguments", "get_args"],
    "backbone surgery and model": ["build_model"],
    "data": ["frames_per_clip", "train_dataset", "test_dataset", "protocol"],
    "train and evaluate": ["param_groups", "set_learning_rate", "train_loss", "train_one_epoch", "evaluate"],
    "main": ["main"],
    "appendix": ["PAPER_TABLES", "VIS_MAPS", "visualization"],
}
MAX_LINES = {"stw": 600, "can": 800, "stasta": 800, "stmanet": 800, "ean": 1100}
FIRST_MODULE_WITHIN = 160
LONGEST_SHARED_RUN, SHARED_FRACTION, RUN = 20, 0.15, 8


def source(script):
    with open(os.path.join(ROOT, f"{script}.py")) as f:
        return f.read()


def banners(text):
    """[(line number, title)] of the `# ==== title` banners."""
    return [(n, line.split("=")[-1].strip()) for n, line in enumerate(text.splitlines(), 1)
            if line.startswith("# ====")]


def section_of(banner_list, line):
    title = [t for n, t in banner_list if n < line][-1]
    return "appendix" if title.startswith("appendix") else title


def definitions(text):
    """{top-level name: line} of functions, classes and assignments."""
    names = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = node.lineno
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = node.lineno
    return names


@pytest.mark.parametrize("script", SCRIPTS)
def test_banners_and_roles(script):
    text = source(script)
    found = banners(text)
    titles = [t for _, t in found]
    assert titles[:len(BANNERS)] == BANNERS, titles
    assert titles[len(BANNERS):] and all(t.startswith("appendix") for t in titles[len(BANNERS):]), titles
    names = definitions(text)
    for section, roles in ROLES.items():
        for name in roles:
            assert name in names, f"{script}.py defines no {name}"
            assert section_of(found, names[name]) == section, f"{script}.py: {name} outside '{section}'"


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_paper_comes_first_and_the_script_stays_short(script):
    lines = source(script).splitlines()
    start = next(n for n, title in banners("\n".join(lines)) if title == "paper modules")
    first = next(n for n, line in enumerate(lines, 1) if n > start and line.startswith(("class ", "def ")))
    module = next(n for n, line in enumerate(lines, 1) if re.match(r"class \w+\(nn\.", line))
    assert max(first, module) <= FIRST_MODULE_WITHIN, f"{script}.py: the first paper module is at line {module}"
    assert len(lines) <= MAX_LINES[script], f"{script}.py: {len(lines)} lines"
    tree = ast.parse("\n".join(lines))
    main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
    assert main.end_lineno - main.lineno < 30, f"{script}.py: main() has {main.end_lineno - main.lineno + 1} lines"


def code_lines(script):
    """Lines as the copy measure sees them: stripped, no blanks, no comment lines (docstrings count)."""
    return [line.strip() for line in source(script).splitlines() if line.strip() and not line.strip().startswith("#")]


def shared_runs():
    """{script: set of its code-line indices inside a run of >= RUN lines another script repeats}, and the longest
    identical run shared by two scripts."""
    code = {s: code_lines(s) for s in SCRIPTS}
    covered, longest = {s: set() for s in SCRIPTS}, (0, None)
    for a, b in itertools.combinations(SCRIPTS, 2):
        for block in difflib.SequenceMatcher(None, code[a], code[b], autojunk=False).get_matching_blocks():
            if block.size > longest[0]:
                longest = (block.size, f"{a}.py ~ {b}.py: {code[a][block.a][:60]!r}")
            if block.size >= RUN:
                covered[a].update(range(block.a, block.a + block.size))
                covered[b].update(range(block.b, block.b + block.size))
    return {s: len(covered[s]) / len(code[s]) for s in SCRIPTS}, longest


def test_scripts_share_little_code():
    fractions, (longest, where) = shared_runs()
    assert longest <= LONGEST_SHARED_RUN, f"{longest} identical code lines ({where})"
    over = {s: round(100 * f, 1) for s, f in fractions.items() if f > SHARED_FRACTION}
    assert not over, f"% of code lines in runs of >= {RUN} that another script repeats: {over}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_docstring_table_is_the_printers(script):
    """The paper card's table is what `python -m common.paper_tables SCRIPT --brief --table NAME` prints."""
    module = importlib.import_module(script)
    doc = module.__doc__
    table = next(line.split(", ", 1)[1].rstrip(":") for line in doc.splitlines() if line.startswith(f"{script}.py, "))
    rows = [row for row in paper_tables.check_rows(module) if row["table"] == table]
    lines, _ = paper_tables.render(script, module, rows, brief=True)
    assert "\n".join(lines[1:]) in doc, f"{script}.py's docstring table differs from the printer's {table}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_flag_added_to_the_model_group_is_adopted_from_a_checkpoint(script, tmp_path, monkeypatch):
    """A fork adds one flag to the MODEL group and nothing else: a checkpoint records it and --evaluate takes it
    back (the model keys are that group, declared once)."""
    module = importlib.import_module(script)
    real = module.arguments

    def with_extra_flag():
        p = real()
        cli.model_group(p).add_argument("--my-new-switch", type=int, default=1)
        return p

    monkeypatch.setattr(module, "arguments", with_extra_flag)
    args = module.get_args(["--complexity", "--my-new-switch", "7"])
    assert "my_new_switch" in cli.model_keys(module.arguments())
    path = str(tmp_path / "fork.pt")
    torch.save({"model": {}, "meta": checkpoint.describe(args, script, ["a", "b"], None)}, path)
    adopted = module.get_args(["--evaluate", "--checkpoint", path, "--data", str(tmp_path)])
    assert adopted.my_new_switch == 7
    with pytest.raises(SystemExit):                                   # and a contradicting value stops
        module.get_args(["--evaluate", "--checkpoint", path, "--data", str(tmp_path), "--my-new-switch", "2"])
