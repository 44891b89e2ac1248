"""A paper's tables in markdown, every row built now: `python -m common.paper_tables SCRIPT [--table NAME...]`.

SCRIPT is one of the five scripts (`can`, `stw`, `stasta`, `stmanet`, `ean`). It must provide
  * `PAPER_TABLES`: a list of rows, each a dict with
      - `table` ("Table 10"), `row` (the paper's row name), `flags` (one string: the flags that build the row when
        added to `python SCRIPT.py --complexity`), `note` (why ours differs when it does; the protocol of the
        headline rows; may be "" otherwise);
      - the paper's figures where it gives them: `params_m`, `gflops` (per clip and view unless `views` is given),
        `top1`, `top5`, `map` (percent);
      - optional `views`: the paper's `gflops` is for this many views (clips x crops), so ours is multiplied by it;
      - optional `ensemble`: flag strings of the further members of a score ensemble (e.g. "16f+8f"): ours is the
        sum of the members' params and GFLOPs;
      - optional `over` (flag string) with `gflops_over_pct`: the paper gives only the row's FLOPs increase over
        the model that `over` builds, in percent; ours is measured the same way and compared as the ratio
        (1 + ours/100) / (1 + paper/100);
      - optional `base`: the row this one adds modules to (its table's baseline, or a row the paper equates:
        "row name" in the same table, "Table N: row name" elsewhere): the increment of params and GFLOPs over it,
        ours beside the paper's, is what the modules cost; `increment_note`: why ours differs when it does;
      - optional `count`: "thop" where the paper counted FLOPs with thop (BatchNorm at 4 operations per output
        element, common/complexity.py `THOP_OPS`): the row's GFLOPs are counted so, as `--complexity --count thop`
        prints them; a row and its `base` count alike;
  * `get_args(argv)`, `build_model(args, num_classes)` and `frames_per_clip(args)`, which
    `common.modes.complexity_row` builds the row's model from (one clip, one view, multiply-accumulates, as
    `--complexity` prints them).
For each row the printer calls `get_args(flags.split() + ["--complexity"])` and `modes.complexity_row`.
Accuracies are the paper's only (nothing is trained here); params, GFLOPs and the FLOPs increase are compared,
and a row whose figure is more than 3 % off is marked with its note as the documented reason ("no reason
documented" when the note is empty). A whole-model total hides a module that costs half what the paper says, so
each row with a `base` (and each `over` row) also compares the increment: ours is within when it is within 10 % of
the paper's increment, or within 0.05 (M, G) where the paper's increment is that small (at most 0.5); else the
row is marked with its `increment_note`. The last line is one JSON object `{"script", "rows",
"with_paper_figures", "within_3pct", "increments", "increments_within_10pct"}`: rows printed, rows with a paper
params/GFLOPs figure, those of them with every such figure within 3 %, rows whose increment is compared, and those
of them within the increment tolerance.
`--brief` prints the flags instead of whole commands and leaves out the notes (figures more than 3 % off keep
their bold difference): the form of the scripts' docstring tables.
"""
import argparse
import functools
import importlib
import json
import os
import sys

from . import complexity, modes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE_PCT = 3.0
ACCURACY_KEYS = (("top1", "top-1"), ("top5", "top-5"), ("map", "mAP"))
KEYS = {"table", "row", "flags", "note", "params_m", "gflops", "top1", "top5", "map", "views", "ensemble", "over",
        "gflops_over_pct", "base", "increment_note", "count"}
INCREMENT_PCT, INCREMENT_ABS = 10.0, 0.05


def load(script):
    """The script's module, imported from the repository root."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    return importlib.import_module(script)


def check_rows(module):
    """PAPER_TABLES of `module`, checked: required keys present, no unknown key (a typo would drop a figure)."""
    rows = getattr(module, "PAPER_TABLES", None)
    if not rows:
        raise SystemExit(f"error: {module.__name__} has no PAPER_TABLES")
    for i, row in enumerate(rows):
        missing = {"table", "row", "flags", "note"} - set(row)
        unknown = set(row) - KEYS
        if missing or unknown:
            raise SystemExit(f"error: {module.__name__}.PAPER_TABLES[{i}] ({row.get('row')!r}): "
                             f"missing {sorted(missing)}, unknown {sorted(unknown)}")
        if ("over" in row) != ("gflops_over_pct" in row):
            raise SystemExit(f"error: {module.__name__}.PAPER_TABLES[{i}]: 'over' and 'gflops_over_pct' go together")
        if "base" in row and base_row(rows, row).get("count", "macs") != row.get("count", "macs"):
            raise SystemExit(f"error: {module.__name__}.PAPER_TABLES[{i}] ({row['row']!r}): its base row counts "
                             f"FLOPs otherwise (one 'count' for a row and its base)")
    return rows


def base_row(rows, row):
    """The row that `row["base"]` names: "row name" in the same table, or "Table N: row name"."""
    table, _, name = row["base"].rpartition(": ") if ": " in row["base"] else (row["table"], "", row["base"])
    found = [r for r in rows if r["table"] == table and r["row"] == name]
    if len(found) != 1:
        raise SystemExit(f"error: PAPER_TABLES row {row['table']!r} / {row['row']!r}: base {row['base']!r} names "
                         f"{len(found)} rows (one is needed)")
    return found[0]


def increment(module, rows, row):
    """{key: (paper increment, ours, within)} for params_m and gflops where the paper gives both the row's and its
    base row's figure (or the `over` row's percentage: key "gflops_over_pct"); {} when nothing is compared."""
    out = {}
    if "over" in row:
        ours = measure(module, row)["gflops_over_pct"]
        paper = row["gflops_over_pct"]
        out["gflops_over_pct"] = (paper, ours, abs(ours - paper) <= max(INCREMENT_PCT / 100 * abs(paper), 0.5))
    if "base" in row:
        base = base_row(rows, row)
        mine, theirs = measure(module, row), measure(module, base)
        for key in ("params_m", "gflops"):
            if key in row and key in base:
                paper, ours = row[key] - base[key], mine[key] - theirs[key]
                tolerance = max(INCREMENT_PCT / 100 * abs(paper), INCREMENT_ABS)
                out[key] = (paper, ours, abs(ours - paper) <= tolerance + 1e-9)
    return out


def increment_cell(inc):
    """'+0.70M / +0.39M (**-44 %**)' per compared figure, bold past the tolerance."""
    cells = []
    for key, (paper, ours, within) in inc.items():
        unit = {"params_m": "M", "gflops": " G", "gflops_over_pct": " % FLOPs"}[key]
        rel = f"{100 * (ours / paper - 1):+.0f} %" if paper else f"{ours - paper:+.2f}"
        cells.append(f"{paper:+.2f}{unit} / {ours:+.2f}{unit} ({rel if within else f'**{rel}**'})")
    return "; ".join(cells) or "-"


@functools.lru_cache(maxsize=None)
def cost(module, flags, count="macs"):
    """complexity_row of the model that `flags` build (as `python SCRIPT.py --complexity FLAGS`), its GFLOPs counted
    as `count` says ("macs", "thop"); rows that share their flags and count are built once."""
    with complexity.counting(count):
        return modes.complexity_row(module, module.get_args(flags.split() + ["--complexity"]))


def diff_pct(ours, paper):
    return 100.0 * (ours / paper - 1.0)


def measure(module, row):
    """Our figures for one row and their differences to the paper's: {"params_m", "gflops", "diff": {...}}."""
    count = row.get("count", "macs")
    members = [cost(module, flags, count) for flags in member_flags(row)]
    ours = {key: sum(m[key] for m in members) for key in ("params_m", "gflops")}
    ours["gflops"] *= row.get("views", 1)
    diff = {key: diff_pct(ours[key], row[key]) for key in ("params_m", "gflops") if key in row}
    if "over" in row:
        reference = cost(module, row["over"], count)["gflops"]
        ours["gflops_over_pct"] = 100.0 * (ours["gflops"] / reference - 1.0)
        diff["gflops_over_pct"] = diff_pct(1 + ours["gflops_over_pct"] / 100, 1 + row["gflops_over_pct"] / 100)
    ours["diff"] = diff
    ours["within"] = all(abs(d) <= TOLERANCE_PCT for d in diff.values())
    return ours


def decimals(x):
    text = repr(float(x))
    return len(text.split(".")[1].rstrip("0")) if "." in text else 0


def figure(row, ours, key):
    """'paper / ours (diff %)' for one compared figure, the diff in bold past 3 %; ours alone when the paper
    gives none."""
    digits = max(2, decimals(row[key])) if key in row else 2
    value = f"{ours[key]:.{digits}f}"
    if key not in row:
        return value
    d = ours["diff"][key]
    diff = f"{d:+.1f} %" if abs(d) <= TOLERANCE_PCT else f"**{d:+.1f} %**"
    return f"{row[key]} / {value} ({diff})"


def member_flags(row):
    """The flag strings of the models whose costs add up to the row's: the row's own and its ensemble members'."""
    return [row["flags"], *row.get("ensemble", [])]


def command(script, row):
    """The command(s) that print the row's cost; ensemble members joined by ' + '."""
    count = f" --count {row['count']}" if row.get("count", "macs") != "macs" else ""
    text = " + ".join(f"`python {script}.py --complexity{count}{' ' + flags if flags else ''}`"
                      for flags in member_flags(row))
    if row.get("views", 1) != 1:
        text += f" x {row['views']} views"
    return text


def render(script, module, rows, brief=False):
    """Markdown tables (one per paper table, in PAPER_TABLES order) and the summary dict."""
    lines = []
    summary = {"script": script, "rows": 0, "with_paper_figures": 0, "within_3pct": 0, "increments": 0,
               "increments_within_10pct": 0}
    every = getattr(module, "PAPER_TABLES", rows)  # base rows may lie outside the tables printed
    tables = list(dict.fromkeys(row["table"] for row in rows))
    columns = ["row", f"flags (python {script}.py --complexity FLAGS)" if brief else "command",
               "params (M): paper / ours", "GFLOPs: paper / ours", "paper accuracy (%)"] + \
        ([] if brief else ["increment over the base row: paper / ours", "note"])
    for table in tables:
        lines += ["", f"{script}.py, {table}:", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in (r for r in rows if r["table"] == table):
            ours = measure(module, row)
            compared = bool(ours["diff"])
            summary["rows"] += 1
            summary["with_paper_figures"] += compared
            summary["within_3pct"] += compared and ours["within"]
            gflops = figure(row, ours, "gflops")
            if "over" in row:
                d = ours["diff"]["gflops_over_pct"]
                diff = f"{d:+.1f} %" if abs(d) <= TOLERANCE_PCT else f"**{d:+.1f} %**"
                gflops += (f"; over `{row['over']}`: +{row['gflops_over_pct']} % / "
                           f"+{ours['gflops_over_pct']:.1f} % ({diff})")
            accuracy = ", ".join(f"{name} {row[key]}" for key, name in ACCURACY_KEYS if key in row) or "-"
            flags = " + ".join(f"`{f}`" if f else "(none)" for f in member_flags(row))
            flags += f" x {row['views']} views" if row.get("views", 1) != 1 else ""
            flags += f" (`--count {row['count']}`)" if row.get("count", "macs") != "macs" else ""
            cells = [row["row"], flags if brief else command(script, row), figure(row, ours, "params_m"), gflops,
                     accuracy]
            inc = increment(module, every, row)
            inc_within = all(within for _, _, within in inc.values())
            summary["increments"] += bool(inc)
            summary["increments_within_10pct"] += bool(inc) and inc_within
            if not brief:
                base = f" (over {row['base']})" if "base" in row else ""
                cells.append(increment_cell(inc) + (base if inc else ""))
                mark = "" if ours["within"] else "**> 3 % off**" + (": " if row["note"] else " (no reason documented)")
                note = mark + row["note"]
                if not inc_within:
                    why = row.get("increment_note", "")
                    note += ("; " if note else "") + "**increment > 10 % off**" + (f": {why}" if why else
                                                                               " (no reason documented)")
                cells.append(note or "-")
            lines.append("| " + " | ".join(cells) + " |")
    return lines, summary


SCRIPTS = ("ean", "can", "stw", "stasta", "stmanet")
PAGE = """# The papers' tables, every row measured

Every row of the five papers' tables is a command: its flags build the row's model, `--complexity` counts it
(parameters, and GFLOPs as multiply-accumulates of one clip, the papers' convention; CAN's Table 12 as thop counts,
`--count thop`), and the paper's figures stand beside ours. A figure more than 3 % off carries its reason in the
note; a row with a base row also shows what its modules cost (the increment over the base, ours beside the
paper's), marked past 10 % with its reason. Accuracies are the paper's: nothing here was trained at full scale.

This page is the output of one command, run again whenever a model changes:

    python -m common.paper_tables all --write docs/paper-tables.md

| script | rows | rows with a paper params/GFLOPs figure | within 3 % | increments compared | within 10 % |
|---|---|---|---|---|---|
"""


def write_page(path):
    """docs/paper-tables.md: the summary of the five scripts, then every table of each."""
    parts, summaries = [], []
    for script in SCRIPTS:
        module = load(script)
        lines, summary = render(script, module, check_rows(module))
        parts += [f"\n## {script}.py", *lines]
        summaries.append(summary)
    table = [f"| [{s['script']}.py](#{s['script']}py) | {s['rows']} | {s['with_paper_figures']} | {s['within_3pct']} "
             f"| {s['increments']} | {s['increments_within_10pct']} |" for s in summaries]
    with open(path, "w") as f:
        f.write(PAGE + "\n".join(table) + "\n" + "\n".join(parts) + "\n")
    return summaries


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("script", help="can | stw | stasta | stmanet | ean, or all (with --write)")
    p.add_argument("--write", default=None, metavar="FILE.md",
                   help="with 'all': write the docs page of the five scripts' tables (docs/paper-tables.md)")
    p.add_argument("--table", nargs="+", default=None,
                   help="only these tables, as PAPER_TABLES names them (e.g. 'Table 10' 'Table 12')")
    p.add_argument("--brief", action="store_true", help="without the notes column (the docstring tables)")
    args = p.parse_args(argv)
    if args.script == "all" or args.write:
        if args.script != "all" or not args.write or args.table or args.brief:
            p.error("the docs page is `python -m common.paper_tables all --write FILE.md` (no --table, --brief)")
        summaries = write_page(args.write)
        for summary in summaries:
            print(json.dumps(summary))
        return summaries
    module = load(args.script)
    rows = check_rows(module)
    if args.table is not None:
        names = list(dict.fromkeys(r["table"] for r in rows))
        unknown = [t for t in args.table if t not in names]
        if unknown:
            raise SystemExit(f"error: {args.script} has no table {unknown[0]!r}; it has {names}")
        rows = [r for r in rows if r["table"] in args.table]
    lines, summary = render(args.script, module, rows, args.brief)
    print("\n".join(lines[1:]))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
