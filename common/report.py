"""A run's training curves and evaluation as one PNG and an HTML page (issue 19):

    python -m common.report RUN_DIR [--compare RUN_DIR ...] [--output DIR]
    python -m common.report --compare RUN_DIR RUN_DIR ... [--output DIR]     # the same: the first is the main run

From `log.jsonl` (one record per epoch): training loss, val top-1/top-5 (or mAP for multi-label runs), lr, and the
loader's `data_time` beside the whole step `time` (seconds per step); from `--evaluate`'s files in the run directory
(`eval_per_class.json`, `confusion.csv`, written there by `python SCRIPT.py --evaluate --checkpoint RUN_DIR/best.pt`):
the confusion matrix (rows: true class, normalised per row) and the classes with the lowest accuracy (AP). With
`--compare` the runs' curves are overlaid (e.g. a model beside its `--baseline`), each run gets its confusion matrix.
Writes report.png and report.html (the PNG embedded, each run's args.json and final metrics) into --output
(default: the main run's folder).

A short run (the first thing a user tries: 1-2 epochs, no --evaluate files) gets the same deliberate layout as a
long one: integer epoch ticks, a curve of at most SHORT points drawn as markers with each value written beside
it, legends outside the plots, and only the panels that have data, in a grid that fills the figure. The figure holds
plots only: what is missing (a run's --evaluate files, a value its log.jsonl lacks) is said in the page's text and
on stderr, with the command that makes it (notes()).

matplotlib is needed by this tool alone (requirements.txt); nothing else in the repository imports it.
"""
import argparse
import csv
import html
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from matplotlib.transforms import offset_copy  # noqa: E402
import numpy as np  # noqa: E402

WORST = 10        # classes listed as the lowest
SHORT = 3         # a curve of at most this many points: bigger markers, each value written beside its point
EVERY_EPOCH = 12  # epoch axes spanning at most this many epochs get one tick per epoch; longer: matplotlib's integers
PANEL = 4.2       # inches per panel side (336 px at the figure's 80 dpi)
CELL_VALUES = 12  # confusion matrices of at most this many classes get each cell's % written in it
DPI = 80
MARKERS = ["o", "s", "^"]  # the 1st, 2nd, 3rd key of a panel (val_top1, val_top5; step, loader)


def load_run(folder):
    """{name, folder, args, log: [epoch records], per_class, confusion: (classes, matrix) or None, missing}."""
    log_path = os.path.join(folder, "log.jsonl")
    if not os.path.isfile(log_path):
        sys.exit(f"error: {folder}: no log.jsonl (a run directory is the --output of a training run)")
    log = []
    with open(log_path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    log.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"error: {log_path}:{n}: not JSON ({e})")
    if not log:
        sys.exit(f"error: {log_path}: no epoch finished yet (empty)")
    args_path = os.path.join(folder, "args.json")
    args = json.load(open(args_path)) if os.path.isfile(args_path) else {}
    run = {"folder": folder, "name": run_name(folder, args), "args": args, "log": log, "per_class": None,
           "confusion": None, "missing": []}
    per_class = os.path.join(folder, "eval_per_class.json")
    if os.path.isfile(per_class):
        run["per_class"] = json.load(open(per_class))
    else:
        run["missing"].append("eval_per_class.json")
    confusion = os.path.join(folder, "confusion.csv")
    if os.path.isfile(confusion):
        with open(confusion, newline="") as f:
            rows = list(csv.reader(f))
        run["confusion"] = ([r[0] for r in rows[1:]], np.array([[int(x) for x in r[1:]] for r in rows[1:]]))
    elif not (run["per_class"] and any("ap" in v for v in run["per_class"].values())):  # multi-label: no matrix
        run["missing"].append("confusion.csv")
    return run


def run_name(folder, args):
    name = os.path.basename(os.path.normpath(os.path.abspath(folder)))
    return name + (f" (--baseline {args['baseline']})" if args.get("baseline") else "")


def series(run, key):
    """(epochs, values) of `key` over the log records that hold it."""
    points = [(r["epoch"], r[key]) for r in run["log"] if isinstance(r.get(key), (int, float))]
    return ([e for e, _ in points], [v for _, v in points]) if points else ([], [])


def metric_keys(runs):
    """val_map for multi-label runs, else val_top1 and val_top5."""
    keys = [k for k in ("val_top1", "val_top5", "val_map") if any(k in r for run in runs for r in run["log"])]
    return keys or ["val_top1"]


def final_metrics(run):
    """The last epoch's record without the path lists, and the best of its headline metric."""
    last = {k: v for k, v in run["log"][-1].items() if not isinstance(v, list)}
    key = "val_map" if "val_map" in last else "val_top1"
    epochs, values = series(run, key)
    if values:
        best = int(np.argmax(values))
        last[f"best_{key}"], last["best_epoch"] = values[best], epochs[best]
    return last


def curve_panels(runs):
    """[(title, [(log key, line style, legend text)], y scale)]: the curve panels before knowing which have data."""
    keys = metric_keys(runs)
    return [("training loss", [("train_loss", "-", "train_loss")], None),
            # a single key (val_map of a multi-label run) gets no legend: the title names it
            ("validation (%)" if len(keys) > 1 else f"validation: {keys[0]} (%)",
             [(k, ls, k) for k, ls in zip(keys, ["-", "--", ":"])], None),
            ("learning rate", [("lr", "-", "lr")], "log"),
            ("seconds per step", [("time", "-", "whole step (time)"), ("data_time", "--", "loader (data_time)")],
             None)]


def notes(runs):
    """What the figure cannot show, one sentence per run and cause, for the page and stderr (never drawn in the
    figure, where a sentence runs off the panel): --evaluate files not found, with the command that writes them,
    and values its log.jsonl does not hold."""
    out = []
    keys = [key for _, lines, _ in curve_panels(runs) for key, _, _ in lines]
    for run in runs:
        if run["missing"]:
            out.append(f"{run['name']}: no {', '.join(run['missing'])}; {evaluate_hint(run)}")
        absent = [key for key in keys if not series(run, key)[0]]
        if absent:
            out.append(f"{run['name']}: log.jsonl has no {', '.join(absent)} (no curve drawn for it)")
    return out


def epochs_text(run):
    n = len({r["epoch"] for r in run["log"] if "epoch" in r})
    return f"{n} epoch" + ("" if n == 1 else "s")


def figure(runs):
    """The figure (plot() saves it; the tests read its axes): the curve panels that have data; when any run has
    --evaluate's files, below them one confusion matrix per run with one and the lowest classes."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    panels = [(title, lines, yscale) for title, lines, yscale in curve_panels(runs)
              if any(series(run, key)[0] for run in runs for key, _, _ in lines)]
    if not panels:
        sys.exit("error: log.jsonl of " + ", ".join(run["folder"] for run in runs) + " holds none of train_loss, "
                 "val_top1/val_top5/val_map, lr, time: nothing to draw")
    with_matrix = [run for run in runs if run["confusion"] is not None]
    with_classes = [run for run in runs if run["per_class"]]
    # the evaluation row: a matrix per run that has one, then the lowest classes (their names need the wider cell)
    ratios = [1.0] * len(with_matrix) + ([1.5] if with_classes else [])
    if ratios:                       # the curves in one row above the evaluation row
        width = max(len(panels), sum(ratios))
        if with_classes:             # the bars take what the matrices leave of the row (square matrices stay 1 wide)
            ratios[-1] = width - len(with_matrix)
        fig = plt.figure(figsize=(PANEL * width, 2 * PANEL), dpi=DPI, layout="constrained")
        outer = fig.add_gridspec(2, 1)
        top = outer[0].subgridspec(1, len(panels))
        cells = [top[i] for i in range(len(panels))]
        bottom = outer[1].subgridspec(1, len(ratios), width_ratios=ratios)
        evaluation = [bottom[i] for i in range(len(ratios))]
    else:                            # curves alone: 2 x 2 for four, else one row, so no cell of the grid stays empty
        cols = 2 if len(panels) == 4 else len(panels)
        rows = math.ceil(len(panels) / cols)
        fig = plt.figure(figsize=(PANEL * cols, PANEL * rows), dpi=DPI, layout="constrained")
        grid = fig.add_gridspec(rows, cols)
        cells, evaluation = [grid[i // cols, i % cols] for i in range(len(panels))], []
    epochs = [e for run in runs for r in run["log"] if isinstance(e := r.get("epoch"), int)]
    lo, hi = (min(epochs), max(epochs)) if epochs else (0, 0)
    for cell, (title, lines, yscale) in zip(cells, panels):
        curves(fig, fig.add_subplot(cell), runs, title, lines, yscale, (lo, hi), colours)
    for cell, run in zip(evaluation, with_matrix):
        confusion(fig, fig.add_subplot(cell), run)
    if with_classes:
        worst_classes(fig.add_subplot(evaluation[-1]), runs, colours)
    if len(runs) == 1:
        fig.suptitle(f"{runs[0]['name']} ({epochs_text(runs[0])})", fontsize=12)
    else:                            # the colours are the runs: one legend for all panels, above them
        fig.legend(handles=[Line2D([], [], color=colours[i % len(colours)], marker="o", label=f"{run['name']} "
                                   f"({epochs_text(run)})") for i, run in enumerate(runs)],
                   loc="outside upper center", ncol=len(runs), fontsize=10, frameon=False)
    return fig


def plot(runs, path):
    fig = figure(runs)
    fig.savefig(path)
    plt.close(fig)


def curves(fig, ax, runs, title, lines, yscale, epoch_range, colours):
    """One curve panel: colour = run, line style and marker = key (a legend below the axes when the panel has
    several keys: a single point has no line style, its marker tells the keys apart)."""
    for i, run in enumerate(runs):
        colour = colours[i % len(colours)]
        drawn = []                                         # (epoch, value) of this run's short curves
        for (key, style, _), marker in zip(lines, MARKERS):
            x, y = series(run, key)
            if not x:
                continue                                   # said by notes()
            short = len(x) <= SHORT
            ax.plot(x, y, style, marker=marker, markersize=6 if short else 3, color=colour)
            if short:
                drawn += zip(x, y)
        value_labels(ax, drawn, i, colour)
    ax.set_title(title, fontsize=10)
    if yscale:
        ax.set_yscale(yscale)
    ax.margins(y=0.12)               # the highest and lowest points (and their values) off the frame
    epoch_axis(ax, *epoch_range)
    if len(lines) > 1:
        # outside the axes, 30 pt below them (under the tick labels and "epoch"): inside, a legend covers points
        # wherever the curves go
        ax.legend(handles=[Line2D([], [], color="0.35", linestyle=style, marker=marker, markersize=5, label=text)
                           for (_, style, text), marker in zip(lines, MARKERS)],
                  loc="upper center", bbox_to_anchor=(0.5, 0), ncol=len(lines), fontsize=8, frameon=False,
                  bbox_transform=offset_copy(ax.transAxes, fig=fig, y=-30, units="points"))
    ax.grid(alpha=0.3)


def value_labels(ax, points, i, colour):
    """Each point of a short curve gets its value written beside it (a point alone says nothing without it).
    Run i writes to the right of its points when i is even, to the left when odd, so two runs with the same value
    at one epoch stay readable; at one epoch the run's higher values go above their points, the lower ones below,
    so a run's close values (its step and loader seconds) do not print over each other."""
    side = 1 if i % 2 == 0 else -1
    for epoch in sorted({e for e, _ in points}):
        values = sorted(v for e, v in points if e == epoch)
        for rank, v in enumerate(values):
            up = 1 if rank >= len(values) // 2 else -1         # a point alone: above it
            ax.annotate(f"{v:.3g}", (epoch, v), xytext=(5 * side, up * (5 + 9 * (i // 2))),
                        textcoords="offset points", ha="left" if side > 0 else "right",
                        va="bottom" if up > 0 else "top", fontsize=8, color=colour)


def epoch_axis(ax, lo, hi):
    """The same epoch range on every curve panel, with integer ticks: one per epoch up to EVERY_EPOCH epochs
    (matplotlib puts -0.045, -0.030, ... around a single point), matplotlib's integer ticks beyond."""
    pad = max(0.5, 0.03 * (hi - lo))  # half an epoch each side: room for the values written beside the points
    ax.set_xlim(lo - pad, hi + pad)
    if hi - lo <= EVERY_EPOCH:
        ax.set_xticks(range(lo, hi + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def confusion(fig, ax, run):
    """A run's confusion matrix in % of the true class (rows), each cell's value written when there are few."""
    names, counts = run["confusion"]
    rates = 100 * counts / np.maximum(counts.sum(1, keepdims=True), 1)
    im = ax.imshow(rates, cmap="viridis", vmin=0, vmax=100)
    ax.set_title(f"confusion (% of true class): {run['name']}", fontsize=9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(names) <= 30:
        size = 8 if len(names) <= CELL_VALUES else 6
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=size)
        ax.set_yticks(range(len(names)), names, fontsize=size)
    if len(names) <= CELL_VALUES:    # a one-class matrix is a single square: its number is what it says
        for (r, c), v in np.ndenumerate(rates):
            ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=8,
                    color="black" if v > 60 else "white")         # viridis: dark below, light above
    fig.colorbar(im, ax=ax, shrink=0.8)


def worst_classes(ax, runs, colours):
    """Horizontal bars: the first run with eval_per_class.json, its WORST lowest classes, every such run's value
    for them (the colours are the runs', as in the curves)."""
    with_classes = [run for run in runs if run["per_class"]]
    first = with_classes[0]["per_class"]
    key = "ap" if any("ap" in v for v in first.values()) else "top1"
    worst = sorted(first.items(), key=lambda kv: kv[1][key])[:WORST]
    names = [name for name, _ in worst]
    height = 0.8 / len(with_classes)
    for i, run in enumerate(with_classes):
        values = [run["per_class"].get(name, {}).get(key, np.nan) for name in names]
        bars = ax.barh(np.arange(len(names)) + i * height, values, height, label=run["name"],
                       color=colours[runs.index(run) % len(colours)])
        # a 0 is a bar of no length: say it; a class this run was not evaluated on: say that
        ax.bar_label(bars, labels=["n/a" if np.isnan(v) else f"{v:.0f}" for v in values], fontsize=7, padding=2)
    ax.set_yticks(np.arange(len(names)) + height * (len(with_classes) - 1) / 2, names, fontsize=8)
    # room for at least 3 rows, the bars centred: one or two classes would each be a bar filling the panel
    spare = max(0, 3 - len(names)) / 2
    ax.set_ylim(len(names) - 0.5 + spare, -0.5 - spare)                # inverted: the lowest class on top
    ax.set_xlim(0, 108)
    ax.set_xlabel("AP (%)" if key == "ap" else "per-class top-1 (%)")
    total = len(first)
    ax.set_title((f"lowest {len(names)} of " if len(names) < total else "")
                 + f"{total} class{'' if total == 1 else 'es'}: {with_classes[0]['name']}", fontsize=10)
    ax.grid(alpha=0.3, axis="x")


def evaluate_hint(run):
    return (f"run `python SCRIPT.py --evaluate --checkpoint {os.path.join(run['folder'], 'best.pt')}` "
            "(writes its per-class files there)")


def page(runs, png_name):
    """The HTML page: what the figure cannot show (notes()), the figure, then per run its final metrics, the
    evaluation files found, and args.json."""
    esc = html.escape
    parts = ["<!doctype html>", "<html><head><meta charset='utf-8'><title>report: "
             + esc(", ".join(run["name"] for run in runs)) + "</title>",
             "<style>body{font-family:sans-serif;margin:16px} table{border-collapse:collapse;margin:6px 0}"
             " td,th{border:1px solid #ccc;padding:2px 8px;text-align:left} pre{background:#f6f6f6;padding:8px}"
             " .notes{background:#fff8e1;border:1px solid #e0c060;padding:2px 12px;margin:8px 0} code{font-size:90%}"
             "</style></head><body>",
             f"<h1>{esc(' vs '.join(run['name'] for run in runs))}</h1>"]
    found = notes(runs)
    if found:   # above the figure, where a first look sees it (it used to be small print inside the figure)
        parts.append("<div class='notes'><p><b>not in the figure:</b></p><ul>"
                     + "".join(f"<li>{esc(note)}</li>" for note in found) + "</ul></div>")
    parts.append(f"<img src='{esc(png_name)}' alt='training curves and evaluation' style='max-width:100%'>")
    for run in runs:
        parts.append(f"<h2>{esc(run['name'])}</h2><p>{esc(os.path.abspath(run['folder']))}</p>")
        parts.append(f"<h3>final metrics (last epoch of log.jsonl, {esc(epochs_text(run))})</h3><table>")
        parts += [f"<tr><th>{esc(str(k))}</th><td>{esc(fmt(v))}</td></tr>" for k, v in final_metrics(run).items()]
        parts.append("</table>")
        if run["per_class"]:
            key = "ap" if any("ap" in v for v in run["per_class"].values()) else "top1"
            values = [v[key] for v in run["per_class"].values()]
            parts.append(f"<p>--evaluate: {len(values)} classes, mean per-class {key} {np.mean(values):.2f} %</p>")
        if run["missing"]:
            parts.append(f"<p><b>not found:</b> {esc(', '.join(run['missing']))}: {esc(evaluate_hint(run))}</p>")
        parts.append(f"<details><summary>args.json</summary><pre>{esc(json.dumps(run['args'], indent=1))}</pre>"
                     "</details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def fmt(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


USAGE = ("write `python -m common.report RUN_DIR [--compare RUN_DIR ...]`, or `python -m common.report --compare "
         "RUN_DIR RUN_DIR ...` (the first of them is the main run)")


def get_args(argv=None):
    """RUN_DIR and --compare in either order. `--compare A B` with no RUN_DIR before it: nargs='+' takes every
    folder up to the next option (argparse cannot tell which one was meant as RUN_DIR), so the first is the main
    run, as in `A --compare B`; said on stderr. With a single folder there is nothing to compare: an error."""
    p = argparse.ArgumentParser(prog="python -m common.report", description=__doc__.splitlines()[0],
                                allow_abbrev=False, epilog=USAGE[0].upper() + USAGE[1:] + "; --output may go anywhere.")
    p.add_argument("run", metavar="RUN_DIR", nargs="?", default=None,
                   help="a training run's --output folder (log.jsonl, args.json); omitted: the first --compare run")
    # extend: `--compare A --compare B` compares both (the default action would keep B alone, dropping A unsaid)
    p.add_argument("--compare", nargs="+", action="extend", default=[], metavar="RUN_DIR",
                   help="runs whose curves are overlaid")
    p.add_argument("--output", default=None, help="folder for report.png and report.html (default: RUN_DIR)")
    args = p.parse_args(argv)
    if args.run is None:
        if len(args.compare) < 2:
            alone = " (--compare has one run only: nothing to compare it with)" if args.compare else ""
            p.error(f"RUN_DIR is missing{alone}: {USAGE}")
        args.run, args.compare = args.compare[0], args.compare[1:]
        print(f"report: no RUN_DIR before --compare: {args.run} is the main run (report.png goes into "
              f"{args.output or args.run})", file=sys.stderr)
    return args


def main(argv=None):
    args = get_args(argv)
    runs = [load_run(folder) for folder in [args.run, *args.compare]]
    out = args.output or args.run
    os.makedirs(out, exist_ok=True)
    png, page_path = os.path.join(out, "report.png"), os.path.join(out, "report.html")
    plot(runs, png)
    with open(page_path, "w", encoding="utf-8") as f:
        f.write(page(runs, os.path.basename(png)))
    for note in notes(runs):         # the page says them too; stderr is where a terminal user looks
        print(f"report: {note}", file=sys.stderr)
    print(json.dumps({"png": png, "html": page_path, "runs": [run["folder"] for run in runs]}))
    return png, page_path


if __name__ == "__main__":
    main()
