"""Every script's PAPER_TABLES (common/paper_tables.py): every row builds and runs at a tiny input, the rows with the
paper's params/GFLOPs are within 3 % at full size or carry the reason, complexity_row's meta-device count equals a
real build, rows the papers equate build the same model, and the printer's marks, summary and command line."""
import importlib
import json
import os
import sys
import types

import pytest
import torch

from common import complexity, modes, paper_tables

SCRIPTS = ["can", "stw", "stasta", "stmanet", "ean"]
# appended to a row's flags for the tiny real build, each only where the row does not set it itself (a row's own
# backbone, frames and classes are kept): ResNet-18 and small frames (EAN's LMC needs multiples of 32 px)
TINY = {"can": {"--arch": "resnet18", "--input-size": "32"}, "stw": {"--arch": "resnet18", "--input-size": "32"},
        "stasta": {"--arch": "resnet18", "--input-size": "32"},
        "stmanet": {"--arch": "resnet18", "--input-size": "32", "--num-segments": "8"},
        "ean": {"--arch": "resnet18", "--input-size": "64"}}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny inputs gain nothing from a second thread, and on a shared CPU two OpenMP threads that wait for each
    other made a ResNet-18 forward of 8 x 32^2 frames 37x slower (1.67 s vs 45 ms, measured under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tables_of(script):
    module = importlib.import_module(script)
    if not hasattr(module, "PAPER_TABLES"):
        pytest.skip(f"{script}.py has no PAPER_TABLES in this tree (the EAN branch adds it)")
    return module, paper_tables.check_rows(module)


def tiny(script, flags):
    words = flags.split()
    return words + [w for key, value in TINY[script].items() if key not in words for w in (key, value)]


def member_flags(row):
    """Every model a row builds: the row's own flags, its ensemble members, the model its FLOPs increase is over."""
    return [row["flags"], *row.get("ensemble", []), *([row["over"]] if "over" in row else [])]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_row_builds_and_runs_at_a_tiny_input(script):
    module, rows = tables_of(script)
    torch.manual_seed(0)
    for flags in dict.fromkeys(f for row in rows for f in member_flags(row)):   # each model once
        args = module.get_args(tiny(script, flags) + ["--complexity"])
        model = module.build_model(args, args.num_classes).eval()
        with torch.no_grad():
            out = model(torch.randn(1, *modes.clip_shape(module, args)))
        logits = out[0] if isinstance(out, tuple) else out
        assert logits.shape == (1, args.num_classes) and torch.isfinite(logits).all(), flags


@pytest.mark.parametrize("script", SCRIPTS)
def test_rows_with_paper_figures_are_within_3pct_or_give_the_reason(script):
    """At full size (the flags as the rows give them): every params/GFLOPs figure within 3 %, or a note."""
    module, rows = tables_of(script)
    with_figures = [row for row in rows if {"params_m", "gflops", "gflops_over_pct"} & set(row)]
    assert with_figures or script == "stmanet", f"{script}: no row with a paper params/GFLOPs figure"
    for row in with_figures:
        ours = paper_tables.measure(module, row)
        assert ours["within"] or row["note"].strip(), (row["table"], row["row"], ours)


@pytest.mark.parametrize("script", SCRIPTS)
def test_complexity_row_counts_on_the_meta_device_what_a_real_build_counts(script):
    module, rows = tables_of(script)
    flags = next((row["flags"] for row in rows if not row["flags"]), rows[0]["flags"])   # the paper's model
    args = module.get_args(tiny(script, flags) + ["--complexity"])
    fast = modes.complexity_row(module, args)
    model = module.build_model(args, args.num_classes)
    assert fast["params_m"] == pytest.approx(complexity.params_m(model), rel=1e-9)
    assert fast["gflops"] == pytest.approx(complexity.gmacs(model, torch.zeros(1, *modes.clip_shape(module, args))),
                                           rel=1e-9)


@pytest.mark.parametrize("script,first,second", [
    ("can", ("Table 7", "N = 3"), ("Table 10", "MTCM")),         # Table 7 rows are MTCM alone
    ("can", ("Table 8", "3x3"), ("Table 9", "LMM")),             # Table 8 rows are GSCM's LMM path alone
    ("stw", ("Table 5", "Conv2d(4:2:4) & Concat"), ("Table 6", "STFM")),   # Table 5 rows are STFM alone
    ("stasta", ("Table 3", "ST-AFS-FF / DM-TA"), ("Table 1", "STASTA 8 (SSv1)")),
])
def test_rows_the_paper_equates_build_the_same_model(script, first, second):
    module, rows = tables_of(script)
    by_name = {(row["table"], row["row"]): row for row in rows}

    def shapes(row):
        with torch.device("meta"):
            args = module.get_args(row["flags"].split() + ["--complexity"])
            model = module.build_model(args, args.num_classes)
        return {name: tuple(p.shape) for name, p in model.state_dict().items()}
    assert shapes(by_name[first]) == shapes(by_name[second])


# ----------------------------------------------------------------------------------------------------- printer
def fake_script(rows, costs):
    """A module with the interface the printer needs; `fake_complexity_row` answers from `costs` by the flags."""
    module = types.ModuleType("fake_paper_script")
    module.PAPER_TABLES = rows

    def get_args(argv):
        return types.SimpleNamespace(key=" ".join(a for a in argv if a != "--complexity"))
    module.get_args = get_args
    module.costs = costs  # complexity_row below answers from these
    return module


def fake_complexity_row(module, args):
    return module.costs[args.key]


def test_printer_marks_rows_off_by_more_than_3pct_and_counts_them(monkeypatch, capsys):
    rows = [
        {"table": "T1", "row": "close", "flags": "a", "params_m": 10.0, "gflops": 20.0, "top1": 50.0, "note": ""},
        {"table": "T1", "row": "off, explained", "flags": "b", "gflops": 20.0, "note": "counted differently"},
        {"table": "T1", "row": "off, unexplained", "flags": "b", "params_m": 10.0, "note": ""},
        {"table": "T2", "row": "no figures", "flags": "a", "top1": 70.0, "note": ""},
        {"table": "T2", "row": "ensemble", "flags": "a", "ensemble": ["a"], "gflops": 120.0, "views": 3,
         "note": "x 3 views"},
        {"table": "T2", "row": "increase", "flags": "b", "over": "a", "gflops_over_pct": 10, "note": ""},
    ]
    costs = {"a": {"params_m": 10.2, "gflops": 20.5}, "b": {"params_m": 10.5, "gflops": 22.0}}
    monkeypatch.setitem(sys.modules, "fake_paper_script", fake_script(rows, costs))
    monkeypatch.setattr(modes, "complexity_row", fake_complexity_row)
    summary = paper_tables.main(["fake_paper_script"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1]) == summary == {"script": "fake_paper_script", "rows": 6, "with_paper_figures": 5,
                                                "within_3pct": 3, "increments": 1, "increments_within_10pct": 0}
    table = {line.split(" | ")[0][2:]: line for line in lines if line.startswith("| ")}
    assert "10.0 / 10.20 (+2.0 %)" in table["close"] and "**> 3 %" not in table["close"]
    assert "20.0 / 22.00 (**+10.0 %**)" in table["off, explained"]
    assert "**> 3 % off**: counted differently" in table["off, explained"]
    assert "(no reason documented)" in table["off, unexplained"]
    assert "top-1 70.0" in table["no figures"]
    assert "120.0 / 123.00 (+2.5 %)" in table["ensemble"] and "x 3 views" in table["ensemble"]  # (20.5 + 20.5) x 3
    assert "+10 % / +7.3 % (-2.4 %)" in table["increase"]                               # 22 / 20.5 = 1.073


def test_printer_compares_each_rows_increment_over_its_base_row(monkeypatch, capsys):
    """A module's cost is the row minus its base row: ours within 10 % of the paper's increment, or within 0.05
    where the paper's increment is at most 0.5; else marked with the row's increment_note."""
    rows = [
        {"table": "T1", "row": "base", "flags": "a", "params_m": 24.0, "gflops": 33.0, "note": ""},
        {"table": "T1", "row": "half", "flags": "b", "params_m": 24.7, "gflops": 33.2, "base": "base", "note": "",
         "increment_note": "the paper's module is wider"},
        {"table": "T1", "row": "close", "flags": "c", "params_m": 25.0, "gflops": 33.03, "base": "base", "note": ""},
        {"table": "T2", "row": "elsewhere", "flags": "b", "params_m": 24.7, "base": "T1: base", "note": ""},
    ]
    costs = {"a": {"params_m": 24.0, "gflops": 33.0}, "b": {"params_m": 24.39, "gflops": 33.26},
             "c": {"params_m": 24.95, "gflops": 33.07}}
    monkeypatch.setitem(sys.modules, "fake_paper_script", fake_script(rows, costs))
    monkeypatch.setattr(modes, "complexity_row", fake_complexity_row)
    summary = paper_tables.main(["fake_paper_script"])
    table = {line.split(" | ")[0][2:]: line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")}
    assert summary["increments"] == 3 and summary["increments_within_10pct"] == 1
    assert "+0.70M / +0.39M (**-44 %**)" in table["half"] and "+0.20 G / +0.26 G (**+30 %**)" in table["half"]
    assert "**increment > 10 % off**: the paper's module is wider" in table["half"]
    assert "+1.00M / +0.95M (-5 %)" in table["close"] and "+0.03 G / +0.07 G (+133 %)" in table["close"]
    assert "increment > 10 %" not in table["close"]                     # 0.04 G off a 0.03 G increment: < 0.05
    assert "(no reason documented)" in table["elsewhere"] and "over T1: base" in table["elsewhere"]
    rows[1]["base"] = "nowhere"
    with pytest.raises(SystemExit, match="base 'nowhere' names 0 rows"):
        paper_tables.main(["fake_paper_script"])


def test_printer_counts_a_row_as_thop_where_it_says_so(monkeypatch, capsys):
    """"count": "thop" rows are counted as thop counts (BatchNorm 4 per output element) through the real
    complexity_row; a row and its base must count alike."""
    class Net(torch.nn.Module):
        def __init__(self, bn):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 1, bias=False)
            self.bn = torch.nn.BatchNorm2d(4) if bn else torch.nn.Identity()

        def forward(self, x):
            return self.bn(self.conv(x.flatten(0, 1)))                 # (1,T,C,H,W) -> (T,C,H,W)
    rows = [{"table": "T1", "row": "plain", "flags": "a", "note": ""},
            {"table": "T1", "row": "with bn", "flags": "b", "base": "plain", "note": ""},
            {"table": "T2", "row": "plain", "flags": "a", "count": "thop", "note": ""},
            {"table": "T2", "row": "with bn", "flags": "b", "base": "plain", "count": "thop", "note": ""}]
    module = types.ModuleType("fake_paper_script")
    module.PAPER_TABLES = rows
    module.get_args = lambda argv: types.SimpleNamespace(bn=argv[0] == "b", num_classes=0, input_size=10)
    module.build_model = lambda args, num_classes: Net(args.bn)
    module.frames_per_clip = lambda args: 2
    monkeypatch.setitem(sys.modules, "fake_paper_script", module)
    paper_tables.main(["fake_paper_script"])
    out = capsys.readouterr().out
    assert [paper_tables.measure(module, row)["gflops"] * 1e9 for row in rows] == pytest.approx(
        [2 * 12 * 100, 2 * 12 * 100, 2 * 12 * 100, 2 * 12 * 100 + 4 * 2 * 4 * 100])   # + 4 per BN output element
    assert "`python fake_paper_script.py --complexity --count thop b`" in out
    rows[3]["count"] = "macs"
    with pytest.raises(SystemExit, match="its base row counts FLOPs otherwise"):
        paper_tables.main(["fake_paper_script"])


def test_printer_rejects_unknown_keys_and_unknown_tables(monkeypatch):
    rows = [{"table": "T1", "row": "r", "flags": "a", "gflop": 3.0, "note": ""}]             # a typo of gflops
    monkeypatch.setitem(sys.modules, "fake_paper_script", fake_script(rows, {}))
    with pytest.raises(SystemExit, match=r"unknown \['gflop'\]"):
        paper_tables.main(["fake_paper_script"])
    rows[0]["gflops"] = rows[0].pop("gflop")
    with pytest.raises(SystemExit, match="has no table 'T9'"):
        paper_tables.main(["fake_paper_script", "--table", "T9"])


def test_printer_command_line_on_a_script(capsys):
    summary = paper_tables.main(["stw", "--table", "Table 8"])
    out = capsys.readouterr().out
    assert "`python stw.py --complexity --combine stfm-twm`" in out
    assert summary["rows"] == 3 and json.loads(out.strip().splitlines()[-1]) == summary


def test_a_thop_rows_command_prints_its_figure(capsys):
    """CAN's Table 12 is counted as thop counts: the row's command (`--complexity --count thop FLAGS`) prints the
    GFLOPs the printer compares, above the multiply-accumulates of a plain `--complexity`."""
    module, rows = tables_of("can")
    row = next(r for r in rows if r.get("count") == "thop")
    ours = paper_tables.measure(module, row)
    module.main(["--complexity", "--count", "thop", *row["flags"].split()])
    thop = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    module.main(["--complexity", *row["flags"].split()])
    macs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert thop["gflops"] == round(ours["gflops"], 2) > macs["gflops"]


def test_the_docs_page_is_the_printers_output(tmp_path):
    """docs/paper-tables.md is what `python -m common.paper_tables all --write docs/paper-tables.md` writes now:
    a model change that is not written there fails here. Every script compares some increments."""
    page = tmp_path / "page.md"
    summaries = paper_tables.write_page(str(page))
    assert page.read_text() == open(os.path.join(paper_tables.ROOT, "docs", "paper-tables.md")).read()
    assert all(s["increments"] > 0 for s in summaries), summaries
