"""A run's training curves and evaluation as one PNG and an HTML page (issue 19):

    python -m common.report RUN_DIR [--compare RUN_DIR ...] [--output DIR]

From `log.jsonl` (one record per epoch): training loss, val top-1/top-5 (or mAP for multi-label runs), lr, and the
loader's `data_time` beside the whole step `time` (seconds per step); from `--evaluate`'s files in the run directory
(`eval_per_class.json`, `confusion.csv`, written there by `python SCRIPT.py --evaluate --checkpoint RUN_DIR/best.pt`):
the confusion matrix (rows: true class, normalised per row) and the classes with the lowest accuracy (AP). With
`--compare` the runs' curves are overlaid (e.g. a model beside its `--baseline`), each run gets its confusion matrix.
Writes report.png and report.html (the PNG embedded, each run's args.json and final metrics) into --output
(default: RUN_DIR). A run without evaluation files is named in the figure, the page and on stderr.

matplotlib is needed by this tool alone (requirements.txt); nothing else in the repository imports it.
"""
import argparse
import csv
import html
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

WORST = 10  # classes listed as the lowest


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


def plot(runs, path):
    """The figure: 4 curve panels, then one confusion matrix per run with one, and the lowest classes."""
    with_matrix = [run for run in runs if run["confusion"] is not None]
    n_bottom = max(1, len(with_matrix)) + 1
    cols = max(4, n_bottom)
    fig = plt.figure(figsize=(4.2 * cols, 8.4), dpi=80, layout="constrained")
    grid = fig.add_gridspec(2, cols)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    keys = metric_keys(runs)
    panels = [("training loss", [("train_loss", "-")], None), ("validation (%)", [(k, ls) for k, ls in
              zip(keys, ["-", "--", ":"])], None), ("learning rate", [("lr", "-")], "log"),
              ("s per step", [("time", "-"), ("data_time", "--")], None)]
    for col, (title, lines, yscale) in enumerate(panels):
        ax = fig.add_subplot(grid[0, col])
        for i, run in enumerate(runs):
            for key, style in lines:
                x, y = series(run, key)
                if x:
                    ax.plot(x, y, style, marker="o", markersize=3, color=colours[i % len(colours)],
                            label=f"{run['name']}: {key}" if len(lines) > 1 or len(runs) > 1 else key)
        ax.set_title(title + (" (solid: step, dashed: loader)" if title.startswith("s per") else ""), fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if yscale and ax.lines:
            ax.set_yscale(yscale)
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not in log.jsonl", ha="center", va="center", transform=ax.transAxes)
        ax.grid(alpha=0.3)
    for col, run in enumerate(with_matrix):
        ax = fig.add_subplot(grid[1, col])
        names, counts = run["confusion"]
        rates = 100 * counts / np.maximum(counts.sum(1, keepdims=True), 1)
        im = ax.imshow(rates, cmap="viridis", vmin=0, vmax=100)
        ax.set_title(f"confusion (% of true class): {run['name']}", fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if len(names) <= 30:
            ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
            ax.set_yticks(range(len(names)), names, fontsize=6)
        fig.colorbar(im, ax=ax, shrink=0.8)
    if not with_matrix:
        ax = fig.add_subplot(grid[1, 0])
        ax.axis("off")
        ax.text(0, 0.5, "no confusion.csv:\n" + "\n".join(evaluate_hint(run) for run in runs), fontsize=8,
                va="center", wrap=True)
    ax = fig.add_subplot(grid[1, len(with_matrix) if with_matrix else 1:])
    worst_classes(ax, runs, colours)
    lacking = [run["name"] for run in runs if run["missing"]]
    fig.suptitle(" vs ".join(run["name"] for run in runs)
                 + (f"  (no --evaluate files: {', '.join(lacking)})" if lacking else ""), fontsize=11)
    fig.savefig(path)
    plt.close(fig)


def worst_classes(ax, runs, colours):
    """Horizontal bars: the first run's WORST lowest classes, every run's value for them."""
    with_classes = [run for run in runs if run["per_class"]]
    if not with_classes:
        ax.axis("off")
        ax.text(0, 0.5, "no eval_per_class.json:\n" + "\n".join(evaluate_hint(run) for run in runs), fontsize=8,
                va="center")
        return
    key = "ap" if any("ap" in v for v in with_classes[0]["per_class"].values()) else "top1"
    worst = sorted(with_classes[0]["per_class"].items(), key=lambda kv: kv[1][key])[:WORST]
    names = [name for name, _ in worst]
    height = 0.8 / len(with_classes)
    for i, run in enumerate(with_classes):
        values = [run["per_class"].get(name, {}).get(key, np.nan) for name in names]
        bars = ax.barh(np.arange(len(names)) + i * height, values, height, label=run["name"],
                       color=colours[runs.index(run) % len(colours)])
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)              # a 0 is a bar of no length: say it
    ax.set_yticks(np.arange(len(names)) + height * (len(with_classes) - 1) / 2, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 108)
    ax.set_xlabel("AP (%)" if key == "ap" else "per-class top-1 (%)")
    ax.set_title(f"lowest {len(names)} classes of {with_classes[0]['name']}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="x")


def evaluate_hint(run):
    return (f"{run['name']}: run `python SCRIPT.py --evaluate --checkpoint "
            f"{os.path.join(run['folder'], 'best.pt')}` (writes its per-class files there)")


def page(runs, png_name):
    """The HTML page: the figure, then per run its final metrics, the evaluation files found, and args.json."""
    esc = html.escape
    parts = ["<!doctype html>", "<html><head><meta charset='utf-8'><title>report: "
             + esc(", ".join(run["name"] for run in runs)) + "</title>",
             "<style>body{font-family:sans-serif;margin:16px} table{border-collapse:collapse;margin:6px 0}"
             " td,th{border:1px solid #ccc;padding:2px 8px;text-align:left} pre{background:#f6f6f6;padding:8px}"
             "</style></head><body>",
             f"<h1>{esc(' vs '.join(run['name'] for run in runs))}</h1>",
             f"<img src='{esc(png_name)}' alt='training curves and evaluation' style='max-width:100%'>"]
    for run in runs:
        parts.append(f"<h2>{esc(run['name'])}</h2><p>{esc(os.path.abspath(run['folder']))}</p>")
        parts.append("<h3>final metrics (last epoch of log.jsonl)</h3><table>")
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("run", metavar="RUN_DIR", help="a training run's --output folder (log.jsonl, args.json)")
    p.add_argument("--compare", nargs="+", default=[], metavar="RUN_DIR", help="runs whose curves are overlaid")
    p.add_argument("--output", default=None, help="folder for report.png and report.html (default: RUN_DIR)")
    args = p.parse_args(argv)
    runs = [load_run(folder) for folder in [args.run, *args.compare]]
    out = args.output or args.run
    os.makedirs(out, exist_ok=True)
    png, page_path = os.path.join(out, "report.png"), os.path.join(out, "report.html")
    plot(runs, png)
    with open(page_path, "w", encoding="utf-8") as f:
        f.write(page(runs, os.path.basename(png)))
    for run in runs:
        if run["missing"]:
            print(f"report: {run['name']}: no {', '.join(run['missing'])}; {evaluate_hint(run)}", file=sys.stderr)
    print(json.dumps({"png": png, "html": page_path, "runs": [run["folder"] for run in runs]}))
    return png, page_path


if __name__ == "__main__":
    main()
