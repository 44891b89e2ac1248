"""Issue 19: `--predict --visualize` sheets in all five scripts (Grad-CAM and the paper's maps from one forward pass),
Grad-CAM itself, `python -m common.report` (PNG + HTML, --compare) and the page as headless Chromium shows it."""
import html
import importlib
import json
import os
import shutil
import subprocess
import sys
import warnings

import matplotlib.text
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from common import checkpoint, modes, report, visualize
from common.data import load_split
from common.prepare import read_dataset_info

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["ean", "can", "stw", "stasta", "stmanet"]
# the maps issue 19 names for each paper: every one must be drawn on the sheet (title prefixes of VIS_MAPS)
PAPER_MAPS = {"ean": ["Saliency-Net maps O (Eq. 4)", "EAB fusion matrix M"],
              "can": ["MTCM attention", "GSCM: PMM attention", "GSCM: LMM attention", "GSCM: GMM attention"],
              "stw": ["TWM map S (Eq. 5)"],
              "stasta": ["DM displacement field", "TA weights"],
              "stmanet": ["TDA attention A_t", "SDA attention A_s"]}


def small(script):
    """Tiny model flags: ResNet-18 at 64 px, 2 segments (STASTA 4: its slow stream needs pairs of pairs);
    ST-MANet 8 frames of 32 px."""
    flags = ["--arch", "resnet18", "--pretrained", "none", "--batch-size", "8", "--workers", "0"]
    if script == "stmanet":
        return flags + ["--input-size", "32", "--num-segments", "8", "--frame-stride", "1", "--test-clips", "1"]
    return flags + ["--input-size", "64", "--num-segments", "4" if script == "stasta" else "2"]


def write_checkpoint(script, data, path):
    """A checkpoint as the script writes it (weights + what built them), of the untrained model: the sheets need
    a model, not a trained one."""
    m = importlib.import_module(script)
    torch.manual_seed(0)
    args = m.get_args(["--data", data, *small(script)])
    _, classes = load_split(data, "val")
    model = m.build_model(args, len(classes))
    torch.save({"model": model.state_dict(), "meta": checkpoint.describe(args, script, classes,
                                                                         read_dataset_info(data))}, path)
    return path


def png_size(path, mode="RGB"):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == mode
        return (3, image.height, image.width)


@pytest.mark.parametrize("script", SCRIPTS)
def test_visualize_writes_one_sheet_per_video_with_the_papers_maps(script, tiny_data, tmp_path, capsys):
    m = importlib.import_module(script)
    ckpt = write_checkpoint(script, tiny_data, str(tmp_path / "best.pt"))
    videos = [os.path.join(tiny_data, line.split()[0]) for line in open(os.path.join(tiny_data, "val.txt"))][:2]
    out = tmp_path / "sheets"
    m.main(["--predict", *videos, "--checkpoint", ckpt, "--workers", "0", "--visualize", str(out)])
    index = json.load(open(out / "index.json"))
    assert [entry["video"] for entry in index] == videos
    assert sorted(os.listdir(out)) == sorted(["index.json", *(entry["png"] for entry in index)])
    frames = 8 if script == "stmanet" else 4 if script == "stasta" else 2
    side = 128                                   # 64 px x2 (ST-MANet: 32 px x4): enlarged to >= MIN_SIDE = 112
    for entry in index:
        panels = entry["panels"]
        _, H, W = png_size(out / entry["png"])
        assert W == visualize.LABEL_W + frames * (side + visualize.PAD) + visualize.PAD
        assert H == sum(p["height"] for p in panels)
        titles = [p["title"] for p in panels]
        assert titles[:3] == ["header", "frames", titles[2]] and titles[2].startswith("Grad-CAM: ")
        assert panels[1]["height"] == panels[2]["height"] == side + 2 * visualize.PAD
        for name in PAPER_MAPS[script]:
            found = [p for p in panels if p["title"].startswith(name)]
            assert found and all(p["drawn"] for p in found), (name, titles)
        assert all(p["drawn"] for p in panels), titles
    if script == "ean":  # N = 4 object maps, and an M for each of the 4 EABs
        assert sum(t.startswith("Saliency-Net maps O") for t in titles) == 4
        matrix = next(p for p in panels if p["title"].startswith("EAB fusion matrix M"))
        assert matrix["module"].count(".esp") == 4
    assert "visualize: 2 sheet(s)" in capsys.readouterr().err


def test_visualize_names_a_map_the_model_does_not_have(tiny_data, tmp_path, capsys):
    """STASTA --no-dmta has no displacement map: the sheet says so (never silently left out)."""
    import stasta
    m_args = ["--data", tiny_data, *small("stasta"), "--no-dmta"]
    torch.manual_seed(0)
    args = stasta.get_args(m_args)
    _, classes = load_split(tiny_data, "val")
    torch.save({"model": stasta.build_model(args, len(classes)).state_dict(),
                "meta": checkpoint.describe(args, "stasta", classes, read_dataset_info(tiny_data))}, tmp_path / "c.pt")
    video = os.path.join(tiny_data, open(os.path.join(tiny_data, "val.txt")).readline().split()[0])
    stasta.main(["--predict", video, "--checkpoint", str(tmp_path / "c.pt"), "--workers", "0", "--visualize",
                 str(tmp_path / "s")])
    panels = {p["title"]: p for p in json.load(open(tmp_path / "s" / "index.json"))[0]["panels"]}
    assert not panels["DM displacement field (Sec. III-B-1)"]["drawn"]
    assert not panels["TA weights (Sec. III-B-2)"]["drawn"]
    assert "not drawn: DM confidence map, DM displacement field" in capsys.readouterr().err


def test_visualize_needs_predict(tmp_path):
    import stw
    with pytest.raises(SystemExit):
        stw.get_args(["--visualize", str(tmp_path)])


def test_frame_folder_and_sheet_without_torchvision_codec_warnings(tiny_data, tmp_path, monkeypatch):
    """torchvision 0.29 deprecates its image codecs: `--predict FOLDER --visualize` on a JPEG frame folder
    (common.video.read_frame_folder) and its sheet's PNG raise no DeprecationWarning or UserWarning in torchvision,
    whatever the filters say ("always"), and the PNG holds exactly the sheet's pixels."""
    import stw
    from test_common import frame_folder_of
    ckpt = write_checkpoint("stw", tiny_data, str(tmp_path / "best.pt"))
    video = os.path.join(tiny_data, open(os.path.join(tiny_data, "val.txt")).readline().split()[0])
    folder = tmp_path / "frames"
    frame_folder_of(video, folder)
    sheets, draw_sheet = [], visualize.draw_sheet
    monkeypatch.setattr(visualize, "draw_sheet", lambda *a, **k: sheets.append(draw_sheet(*a, **k)) or sheets[-1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stw.main(["--predict", str(folder), "--checkpoint", ckpt, "--workers", "0", "--visualize", str(tmp_path / "s")])
    assert [f"{w.filename}:{w.lineno}: {w.message}" for w in caught
            if issubclass(w.category, (DeprecationWarning, UserWarning)) and "torchvision" in w.filename] == []
    (entry,) = json.load(open(tmp_path / "s" / "index.json"))
    with Image.open(tmp_path / "s" / entry["png"]) as png:
        assert torch.equal(torch.from_numpy(np.array(png)).permute(2, 0, 1), sheets[0][0])  # (H,W,3) -> (3,H,W)


class Toy(nn.Module):
    """Two feature channels: red and green intensity; class 0 = red minus green, class 1 = green minus red."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Conv2d(3, 2, 1, bias=False)
        self.fc = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.layer.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).view(2, 3, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))

    def forward(self, x):
        B, T = x.shape[:2]
        f = self.layer(x.flatten(0, 1))                     # (B*T, 2, H, W)
        return self.fc(f.mean((2, 3))).view(B, T, -1).mean(1)


def test_grad_cam_follows_the_target_class():
    """Left half red, right half green: Grad-CAM of class 0 lights the left half only, of class 1 the right half."""
    clip = torch.zeros(1, 2, 3, 8, 8)
    clip[:, :, 0, :, :4] = 1
    clip[:, :, 1, :, 4:] = 1
    model = Toy()
    logits, (red, green) = visualize.grad_cam(model, model, "layer", clip, [torch.tensor([0]), torch.tensor([1])])
    assert red.shape == green.shape == (1, 2, 8, 8)
    assert (red[..., :4] > 0).all() and (red[..., 4:] == 0).all()
    assert (green[..., 4:] > 0).all() and (green[..., :4] == 0).all()
    _, (default,) = visualize.grad_cam(model, model, "layer", clip)           # no target: the top-1 class
    assert torch.equal(default, red if logits.argmax() == 0 else green)


@pytest.mark.parametrize("script", ["ean", "stmanet"])
def test_grad_cam_of_a_script_model_changes_with_the_class(script):
    """The scripts' last stage ((B*T,C,h,w) for EAN, (B,C,T,h,w) for ST-MANet): another class, another map."""
    m = importlib.import_module(script)
    torch.manual_seed(0)
    args = m.get_args([*small(script), "--num-classes", "4", "--complexity"])  # no data needed to build
    model = m.build_model(args, 4).eval()
    nn.init.normal_(model.fc.weight, 0, 1)                  # the paper init (std 0.001) gives tiny gradients
    clip = torch.rand(1, *modes.clip_shape(m, args))
    forward = (lambda x: model(x)[0]) if script == "stmanet" else model
    layout = "BCT" if script == "stmanet" else "BT"
    _, maps = visualize.grad_cam(forward, model, m.visualization(args, model)["cam"], clip, [torch.tensor([k]) for k in range(4)], layout)
    assert all(cam.shape[:2] == maps[0].shape[:2] for cam in maps)
    assert not any(torch.allclose(maps[0], cam) for cam in maps[1:])


def test_hooks_leave_the_forward_unchanged_and_are_removed():
    """STW's TWM.keep is recorded through a wrapper on the instance: the same logits, the method back afterwards."""
    import stw
    torch.manual_seed(0)
    args = stw.get_args([*small("stw"), "--num-classes", "4", "--complexity"])
    model = stw.build_model(args, 4).eval()
    clip = torch.rand(1, *modes.clip_shape(stw, args))
    with torch.no_grad():
        plain = model(clip)
        with visualize.Hooks(model, stw.VIS_MAPS) as hooks:
            hooked = model(clip)
    assert torch.equal(plain, hooked)
    (name, s), = hooks.maps["TWM map S (Eq. 5)"]
    assert name == "backbone.layer4.1.conv1.0.twm.keep" and s.shape == (2, 1, 2, 2)
    assert ((s > 0) & (s < 1)).all()
    assert all("keep" not in vars(m) for m in model.modules())


# ---- common.report --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    """A real 2-epoch EAN run with --evaluate's files, and a copy whose log says another run (the --compare side)."""
    import ean
    root = tmp_path_factory.mktemp("report")
    run = str(root / "ean")
    ean.main(["--data", tiny_data, *small("ean"), "--epochs", "2", "--lr-steps", "1", "--output", run])
    ean.main(["--evaluate", "--checkpoint", os.path.join(run, "best.pt"), "--workers", "0"])
    other = str(root / "tsn")
    shutil.copytree(run, other, ignore=shutil.ignore_patterns("*.pt", "eval_per_class.json", "confusion.csv"))
    records = [json.loads(line) for line in open(os.path.join(other, "log.jsonl"))]
    with open(os.path.join(other, "log.jsonl"), "w") as f:
        f.writelines(json.dumps({**r, "train_loss": r["train_loss"] + 0.5, "val_top1": 25.0}) + "\n" for r in records)
    return run, other


def write_run(folder, epochs, classes=(), name_args=None):
    """A run directory written by hand, so the layout tests take no training: log.jsonl with the keys the scripts
    write (loss falling, top-1 rising, lr x0.1 after two thirds of the epochs), args.json; with `classes`, the files
    --evaluate writes (eval_per_class.json, confusion.csv: class k mostly right, the rest on class 0)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "log.jsonl"), "w") as f:
        for e in range(epochs):
            f.write(json.dumps({"epoch": e, "lr": 0.01 if e < 2 * epochs / 3 else 0.001,
                                "train_loss": 2.0 / (1 + e), "data_time": 0.05 + 0.01 * (e % 3),
                                "time": 0.5 + 0.02 * (e % 4), "train_samples": 48,
                                "val_top1": min(100.0, 25.0 + 3 * e), "val_top5": 100.0,
                                "val_mean_class": min(100.0, 25.0 + 3 * e), "samples": 8, "skipped": 0,
                                "skipped_paths": [], "bad_samples": 0, "bad_paths": [], "step": 3 * (e + 1)}) + "\n")
    with open(os.path.join(folder, "args.json"), "w") as f:
        json.dump({"arch": "resnet18", "epochs": epochs, **(name_args or {})}, f)
    if classes:
        K = len(classes)
        counts = [[8 if r == c else 0 for c in range(K)] for r in range(K)]
        for r in range(1, K):
            counts[r][0] = r                    # class r: r of its 8 + r videos taken for class 0
        with open(os.path.join(folder, "confusion.csv"), "w") as f:
            f.write(",".join(["true \\ predicted", *classes]) + "\n")
            f.writelines(",".join([name, *map(str, row)]) + "\n" for name, row in zip(classes, counts))
        with open(os.path.join(folder, "eval_per_class.json"), "w") as f:
            json.dump({name: {"samples": sum(row), "top1": 100.0 * row[k] / sum(row)}
                       for k, (name, row) in enumerate(zip(classes, counts))}, f)
    return folder


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    """Hand-written runs: `one` (1 epoch) and `two` (2 epochs) without --evaluate files, `solo` (2 epochs of a
    one-class dataset, evaluated), `long` (30 epochs, 5 classes, evaluated)."""
    root = tmp_path_factory.mktemp("short")
    return {"one": write_run(str(root / "one"), 1), "two": write_run(str(root / "two"), 2),
            "solo": write_run(str(root / "solo"), 2, ["waving"]),
            "long": write_run(str(root / "long"), 30, [f"class {k}" for k in range(5)])}


def test_report_writes_png_and_html(runs):
    run, _ = runs
    png, page = report.main([run])
    assert png == os.path.join(run, "report.png") and os.path.isfile(page)
    _, H, W = png_size(png, "RGBA")                                       # matplotlib's PNG
    assert W > 1000 and H > 500
    text = open(page).read()
    assert "<img src='report.png'" in text and "val_top1" in text and "best_epoch" in text
    assert "&quot;arch&quot;: &quot;resnet18&quot;" in text       # args.json, escaped
    assert "--evaluate: 4 classes" in text and "not found" not in text


def test_report_compare_cli_and_the_page_in_chromium(runs, tmp_path):
    run, other = runs
    out = tmp_path / "cmp"
    done = subprocess.run([sys.executable, "-m", "common.report", run, "--compare", other, "--output", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["runs"] == [run, other]
    assert "tsn: no eval_per_class.json, confusion.csv" in done.stderr      # named, not silently left out
    text = open(out / "report.html").read()
    assert text.count("<h2>") == 2 and "ean vs tsn" in text
    image = screenshot(out / "report.html", tmp_path / "shot.png")
    # the plots are coloured (lines, confusion matrix); a page of text alone, or a missing image, has no colour
    coloured = (image.amax(0) - image.amin(0) > 60).float().mean()
    assert coloured > 0.02, f"only {coloured:.2%} coloured pixels: the figure is not on the page"


BROWSERS = ["chromium", "chromium-browser", "google-chrome"]


def screenshot(page, shot, size=(1400, 1000)):
    """The page as headless Chromium draws it at `size` (W, H): a (3, H, W) float tensor. Skips, saying why, when
    no browser is on PATH (CI installs pip packages only)."""
    browser = next((path for path in map(shutil.which, BROWSERS) if path), None)
    if browser is None:
        pytest.skip(f"none of {', '.join(BROWSERS)} on PATH (Debian: apt-get install chromium): the page is not "
                    "rendered, only its HTML checked")
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--no-first-run", f"--window-size={size[0]},{size[1]}",
                           f"--screenshot={shot}", f"file://{page}"], capture_output=True, text=True, timeout=120)
    assert os.path.isfile(shot), f"{browser} wrote no screenshot (rc {done.returncode}): {done.stderr[-2000:]}"
    image = torch.from_numpy(np.array(Image.open(shot).convert("RGB"))).permute(2, 0, 1).float()  # (3, H, W)
    assert image.shape[1:] == (size[1], size[0])
    return image


def drawn(folders):
    """report.figure of these runs, drawn (ticks, legends and the constrained layout are placed at draw time)."""
    fig = report.figure([report.load_run(folder) for folder in folders])
    fig.canvas.draw()
    return fig


def curve_axes(fig):
    return [ax for ax in fig.axes if ax.get_xlabel() == "epoch"]


@pytest.mark.parametrize("name, ticks", [("one", ["0"]), ("two", ["0", "1"])])
def test_report_short_run_has_integer_epoch_ticks_and_its_values_written(short_runs, name, ticks):
    """A 1- or 2-epoch run: one tick per epoch (matplotlib alone puts -0.045 ... 0.045 around a single point),
    and each point's value beside it."""
    fig = drawn([short_runs[name]])
    axes = curve_axes(fig)
    assert len(axes) == 4                      # training loss, validation, learning rate, seconds per step
    log = [json.loads(line) for line in open(os.path.join(short_runs[name], "log.jsonl"))]
    for ax, keys in zip(axes, [["train_loss"], ["val_top1", "val_top5"], ["lr"], ["time", "data_time"]]):
        lo, hi = ax.get_xlim()
        assert [t.get_text() for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi] == ticks, ax.get_title()
        assert sorted(t.get_text() for t in ax.texts) == sorted(f"{r[k]:.3g}" for r in log for k in keys)
    plt.close(fig)


def test_report_long_run_keeps_a_few_integer_ticks_and_no_numbers_on_the_curves(short_runs):
    fig = drawn([short_runs["long"]])
    for ax in curve_axes(fig):
        lo, hi = ax.get_xlim()
        shown = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert all(t == int(t) for t in shown) and 4 <= len(shown) <= 10, shown
        assert shown[0] == 0 and shown[-1] >= 25, shown
        assert not ax.texts, ax.get_title()                  # 30 points: a line; 30 numbers would hide it
    plt.close(fig)


@pytest.mark.parametrize("names", [["one"], ["two", "one"], ["long", "solo"]])
def test_report_legends_cover_no_plot_and_stay_in_the_figure(short_runs, names):
    fig = drawn([short_runs[name] for name in names])
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + fig.legends
    assert len(legends) >= 2                     # validation's and seconds per step's styles (and the runs' colours)
    renderer = fig.canvas.get_renderer()
    for legend in legends:
        box = legend.get_window_extent(renderer)
        what = legend.get_texts()[0].get_text()
        assert all(fig.bbox.contains(x, y) for x in (box.x0, box.x1) for y in (box.y0, box.y1)), what
        for ax in fig.axes:
            assert not box.overlaps(ax.bbox), (what, ax.get_title())
    plt.close(fig)


def test_report_grid_fills_the_figure_without_evaluate_files(short_runs):
    """No --evaluate files: the four curves as 2 x 2 (was: a strip of four beside an empty row of hint text)."""
    fig = drawn([short_runs["one"]])
    assert len(fig.axes) == 4 and all(ax.axison for ax in fig.axes)        # no text-only placeholder panel
    assert len({round(ax.get_position().y0, 2) for ax in fig.axes}) == 2
    area = sum(ax.get_position().width * ax.get_position().height for ax in fig.axes)
    assert area > 0.5, f"the plots cover {area:.0%} of the figure"
    plt.close(fig)


def test_report_hints_are_page_text_not_figure_text(short_runs, tmp_path, capsys):
    run = short_runs["one"]
    fig = drawn([run])
    words = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    assert not [w for w in words if any(s in w for s in ("evaluate", ".csv", ".json", "not in"))], words
    plt.close(fig)
    _, page = report.main([run, "--output", str(tmp_path / "one")])
    text = open(page).read()
    note = html.escape(f"one: no eval_per_class.json, confusion.csv; run `python SCRIPT.py --evaluate --checkpoint "
                       f"{os.path.join(run, 'best.pt')}`")
    assert 0 <= text.index(note) < text.index("<img"), "the hint comes above the figure"
    assert html.unescape(note) in capsys.readouterr().err
    # a log without lr: no learning-rate panel (3 curves in a row), and the page says why
    bare = tmp_path / "bare"
    shutil.copytree(run, bare)
    records = [json.loads(line) for line in open(bare / "log.jsonl")]
    (bare / "log.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "lr"}) + "\n"
                                            for r in records))
    fig = drawn([str(bare)])
    assert [ax.get_title() for ax in fig.axes] == ["training loss", "validation (%)", "seconds per step"]
    plt.close(fig)
    _, page = report.main([str(bare)])
    assert "bare: log.jsonl has no lr (no curve drawn for it)" in open(page).read()


def test_report_one_class_run(short_runs):
    """One class, evaluated: its 1 x 1 matrix says its number, its single bar does not fill the panel."""
    fig = drawn([short_runs["solo"]])
    matrix = next(ax for ax in fig.axes if ax.get_title().startswith("confusion"))
    assert [t.get_text() for t in matrix.texts] == ["100"]
    bars = next(ax for ax in fig.axes if ax.get_title() == "1 class: solo")
    lo, hi = sorted(bars.get_ylim())
    assert len(bars.patches) == 1 and bars.patches[0].get_height() / (hi - lo) < 0.4
    plt.close(fig)


@pytest.mark.parametrize("order", ["RUN_DIR --compare B", "--compare RUN_DIR B"])
def test_report_compare_in_either_order(short_runs, order):
    main, other = short_runs["two"], short_runs["one"]
    argv = [main, "--compare", other] if order.startswith("RUN_DIR") else ["--compare", main, other]
    done = subprocess.run([sys.executable, "-m", "common.report", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["runs"] == [main, other] and out["png"] == os.path.join(main, "report.png")
    if not order.startswith("RUN_DIR"):
        assert f"no RUN_DIR before --compare: {main} is the main run" in done.stderr


@pytest.mark.parametrize("argv", [[], ["--compare", "A"], ["--output", "X"]])
def test_report_without_run_dir_says_how_to_write_it(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        report.get_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "python -m common.report RUN_DIR [--compare RUN_DIR ...]" in err
    assert "python -m common.report --compare RUN_DIR RUN_DIR ..." in err


def test_report_short_run_page_in_chromium(short_runs, tmp_path):
    """The 1-epoch page in a browser: the figure is there (coloured pixels) and so is the hint box above it."""
    _, page = report.main([short_runs["one"], "--output", str(tmp_path / "one")])
    image = screenshot(tmp_path / "one" / "report.html", tmp_path / "shot.png", (1000, 900))
    # one run, no matrix: the figure's colour is its points and values in matplotlib's first colour, #1f77b4 (363
    # pixels here), and its axes frames are dark rows wider than any text line (7 rows here; a text page has none)
    blue = ((image - torch.tensor([31.0, 119, 180]).view(3, 1, 1)).abs().amax(0) < 40).sum()
    assert blue > 150, f"only {blue} pixels of the curves' colour: the figure is not on the page"
    frames = ((image.amax(0) < 100).sum(1) > 250).sum()
    assert frames >= 2, f"{frames} rows of axes frame: the plots are not drawn on the page"
    box = (image - torch.tensor([255.0, 248, 225]).view(3, 1, 1)).abs().amax(0) < 4     # the notes' #fff8e1
    assert box.float().mean() > 0.02, "the hint box is not on the page"
