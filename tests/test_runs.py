"""A researcher's first hour, for all five scripts (issue 16): checkpoints that describe their model
(--evaluate / --predict / --resume with only the checkpoint), weights in other code's key layouts, evaluation that
leaves unreadable videos out instead of replacing them, labels a flip swaps only where dataset.json says so,
progress lines that reach a log file."""
import importlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision

from common import checkpoint
from common.data import data_options, load_split
from test_common import frame_folder_of, write_jpeg

SCRIPTS = ["ean", "can", "stw", "stasta", "stmanet"]
# one non-default model flag per script: evaluation must rebuild it from the checkpoint alone
MODEL_FLAG = {"ean": ["--eab-fusion", "static"], "can": ["--mtcm-branches", "2"], "stw": ["--no-twm"],
              "stasta": ["--no-dmta"], "stmanet": ["--no-sda"]}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small(script):
    """Tiny model and input flags (the ST-MANet clip: 8 frames of 32 px, stride 1)."""
    flags = ["--arch", "resnet18", "--pretrained", "none", "--batch-size", "4", "--workers", "0"]
    if script == "stmanet":
        return flags + ["--input-size", "32", "--num-segments", "8", "--frame-stride", "1", "--test-clips", "1"]
    return flags + ["--input-size", "64", "--num-segments", "4" if script == "stasta" else "2"]


@pytest.fixture(scope="module")
def eval_only_data(tiny_data, tmp_path_factory):
    """The tiny dataset without train.txt, with an unreadable (zero-length) video added to val.txt."""
    root = tmp_path_factory.mktemp("evalonly")
    for name in ("classes.txt", "dataset.json"):
        shutil.copy(os.path.join(tiny_data, name), root / name)
    os.symlink(os.path.join(tiny_data, "videos"), root / "videos")
    (root / "broken.mp4").write_bytes(b"")
    val = open(os.path.join(tiny_data, "val.txt")).read()
    (root / "val.txt").write_text(val + "broken.mp4 0\n")
    return str(root), len(val.splitlines())


@pytest.mark.parametrize("script", SCRIPTS)
def test_checkpoint_alone_evaluates_predicts_and_resumes(script, tiny_data, eval_only_data, tmp_path, capsys):
    m = importlib.import_module(script)
    run_dir = str(tmp_path / "run")
    final = m.main(["--data", tiny_data, *small(script), *MODEL_FLAG[script], "--epochs", "1", "--max-steps", "1",
                    "--output", run_dir])
    assert final["epochs"] == 1
    best, last = os.path.join(run_dir, "best.pt"), os.path.join(run_dir, "last.pt")
    assert set(torch.load(best, weights_only=False)) == {"model", "meta"}  # the optimiser state stays in last.pt
    assert "optimizer" in torch.load(last, weights_only=False)
    capsys.readouterr()

    # --evaluate with the checkpoint only: no model flag, no train.txt, nothing downloaded; the broken video is
    # left out and named, the accuracy is over the readable ones
    data, readable = eval_only_data
    scores = str(tmp_path / "scores.npz")
    metrics = m.main(["--evaluate", "--checkpoint", best, "--data", data, "--workers", "0", "--output",
                      str(tmp_path / "eval"), "--save-scores", scores])
    assert metrics["samples"] == readable and metrics["skipped"] == 1
    assert "broken.mp4" in metrics["skipped_paths"][0]
    saved = np.load(scores)
    assert saved["scores"].shape == (readable, 4) and len(saved["paths"]) == readable
    np.testing.assert_allclose(saved["scores"].sum(1), 1, rtol=1e-4)
    per_class = json.load(open(tmp_path / "eval" / "eval_per_class.json"))
    assert sum(v["samples"] for v in per_class.values()) == readable
    confusion = open(tmp_path / "eval" / "confusion.csv").read().splitlines()
    assert len(confusion) == 5 and sum(int(x) for line in confusion[1:] for x in line.split(",")[1:]) == readable

    # the papers' test protocols from a checkpoint trained at another size: full-resolution 3-crop testing
    # (--test-size, "3 crops of 256" from a 224 model) and a fixed resize (EAN's release: 240x320)
    for flags, shown in ((["--test-size", "80", "--test-crops", "3"], "short side 80, 3 crops of 80"),
                         (["--test-resize", "72x96"], "resize 72x96, 1 crop of")):
        other = m.main(["--evaluate", "--checkpoint", best, "--data", data, "--workers", "0", *flags,
                        "--output", str(tmp_path / "eval2")])
        assert other["samples"] == readable and shown in other["protocol"], other["protocol"]
    capsys.readouterr()

    # a model flag that contradicts the checkpoint stops with one line naming both values
    flag, value = MODEL_FLAG[script][0], "resnet34"
    with pytest.raises(SystemExit):
        m.main(["--evaluate", "--checkpoint", best, "--data", data, "--arch", value])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--arch resnet34 contradicts the checkpoint's resnet18" in err, err

    # --predict on a video file, a list file and a missing file: one JSON line each, in order
    video = os.path.join(tiny_data, open(os.path.join(tiny_data, "val.txt")).readline().split()[0])
    listing = tmp_path / "list.txt"
    listing.write_text(video + "\n")
    with pytest.raises(SystemExit, match="1 of 3 videos unreadable"):
        m.main(["--predict", video, str(listing), str(tmp_path / "missing.mp4"), "--checkpoint", best,
                "--top-k", "3", "--workers", "0"])
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines() if x.startswith("{")]
    assert [x["path"] for x in lines] == [video, video, str(tmp_path / "missing.mp4")]
    classes = open(os.path.join(tiny_data, "classes.txt")).read().split("\n")
    for line in lines[:2]:
        assert set(line) == {"path", "top", "protocol"} and len(line["top"]) == 3
        assert all(t["class"] == classes[t["label"]] and 0 <= t["prob"] <= 1 for t in line["top"])
        assert line["top"][0]["prob"] >= line["top"][1]["prob"] >= line["top"][2]["prob"]
    assert lines[0]["top"] == lines[1]["top"] and "error" in lines[2]

    # --resume with the checkpoint only: the run's own data and flags (schedule included), not the demo dataset
    resumed = m.get_args(["--resume", last])
    assert (resumed.data, resumed.epochs, resumed.batch_size, resumed.arch) == (tiny_data, 1, 4, "resnet18")
    assert m.get_args(["--resume", last, "--epochs", "5"]).epochs == 5
    final = m.main(["--resume", last, "--epochs", "2", "--max-steps", "2", "--workers", "0"])
    assert final["epochs"] == 2 and final["output"] == run_dir


def test_predict_on_a_frame_folder(tiny_data, tmp_path, capsys):
    """A folder of JPEG frames, named as the checkpoint's dataset.json says (here the default img_00001.jpg)."""
    import ean
    run_dir = str(tmp_path / "run")
    ean.main(["--data", tiny_data, *small("ean"), "--epochs", "1", "--max-steps", "1", "--output", run_dir])
    video = os.path.join(tiny_data, open(os.path.join(tiny_data, "val.txt")).readline().split()[0])
    folder = tmp_path / "frames"
    frame_folder_of(video, folder)
    capsys.readouterr()
    ean.main(["--predict", str(folder), "--checkpoint", os.path.join(run_dir, "best.pt"), "--workers", "0"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["path"] == str(folder) and len(line["top"]) == 4


def test_predict_on_a_tsn_style_folder_counts_the_templates_frames(tiny_data, tmp_path, capsys):
    """TSN's dense-flow extraction leaves flow_x_/flow_y_ JPEGs beside img_00001.jpg ...: the frames are the files
    the template names (the lists' and common.check's rule), the others are named once and not read; a folder of
    another template alone stops with what it holds."""
    import stw
    run_dir = str(tmp_path / "run")
    stw.main(["--data", tiny_data, *small("stw"), "--epochs", "1", "--max-steps", "1", "--output", run_dir])
    video = os.path.join(tiny_data, open(os.path.join(tiny_data, "val.txt")).readline().split()[0])
    folder, other = tmp_path / "tsn", tmp_path / "ssv1_names"
    for template in ("img_{:05d}.jpg", "flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg"):  # (flow files: RGB frames here)
        frames = frame_folder_of(video, folder, template)
    frame_folder_of(video, other, "{:05d}.jpg")
    capsys.readouterr()
    best = os.path.join(run_dir, "best.pt")
    stw.main(["--predict", str(folder), "--checkpoint", best, "--workers", "0"])
    out, err = capsys.readouterr()
    line = json.loads(out.strip().splitlines()[-1])
    assert line["path"] == str(folder) and "error" not in line and len(line["top"]) == 4
    assert err.count("left out, not frames of that template") == 1
    assert f"{len(frames)} frames img_{{:05d}}.jpg" in err
    assert f"{len(frames)} x flow_x_{{:05d}}.jpg" in err and f"{len(frames)} x flow_y_{{:05d}}.jpg" in err
    from common.predict import records_from_paths
    assert records_from_paths([str(folder)], 4)[0].num_frames == len(frames)
    with pytest.raises(SystemExit, match=r"no frame named img_00001.jpg .*the folder holds \d+ x \{:05d\}.jpg"):
        stw.main(["--predict", str(other), "--checkpoint", best, "--workers", "0"])
    # the same folder with the template named: read as it is
    stw.main(["--predict", str(other), "--checkpoint", best, "--workers", "0", "--frame-template", "{:05d}.jpg"])
    assert "error" not in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# ---- weights in other code's key layouts ------------------------------------------------------------------------
def tsm_layout(resnet, num_classes=174):
    """A TSM/TSN release file: {'epoch', 'arch', 'state_dict', 'best_prec1'}, keys under module.base_model., the
    shifted conv1 of each block wrapped as conv1.net, classifier module.new_fc."""
    state = {}
    for k, v in resnet.state_dict().items():
        if k.startswith("fc."):
            continue
        k = k.replace(".conv1.", ".conv1.net.") if k.startswith("layer") else k
        state["module.base_model." + k] = v.clone()
    state["module.new_fc.weight"] = torch.randn(num_classes, resnet.fc.in_features)
    state["module.new_fc.bias"] = torch.randn(num_classes)
    return {"epoch": 45, "arch": "resnet18", "state_dict": state, "best_prec1": 42.0}


def mmaction_layout(resnet):
    """An mmaction2 checkpoint: {'meta', 'state_dict'}, ConvModule names (conv/bn), cls_head.fc_cls."""
    state = {}
    for k, v in resnet.state_dict().items():
        k = k.replace("conv1.weight", "conv1.conv.weight") if not k.startswith("layer") else k
        k = k.replace("bn1.", "conv1.bn.") if not k.startswith("layer") else k
        for n in "123":
            k = k.replace(f".conv{n}.weight", f".conv{n}.conv.weight").replace(f".bn{n}.", f".conv{n}.bn.")
        k = k.replace("downsample.0.", "downsample.conv.").replace("downsample.1.", "downsample.bn.")
        k = k.replace("fc.", "cls_head.fc_cls.")
        state["backbone." + k if not k.startswith("cls_head") else k] = v.clone()
    return {"meta": {}, "state_dict": state}


@pytest.mark.parametrize("script", ["ean", "can", "stw", "stasta"])
@pytest.mark.parametrize("layout", [tsm_layout, mmaction_layout])
def test_release_key_layouts_load_every_backbone_tensor(script, layout, tmp_path, capsys):
    torch.manual_seed(0)
    source = torchvision.models.resnet18()
    path = str(tmp_path / "release.pth.tar")
    torch.save(layout(source), path)
    m = importlib.import_module(script)
    model = m.build_model(m.get_args(small(script)), 174)
    loaded, unused = checkpoint.load_foreign(model.backbone, path, "--pretrained")
    want = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    own = model.backbone.state_dict()
    got = {checkpoint.canonical(k): own[k] for k in loaded}
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert "loaded 120 of" in capsys.readouterr().out  # 20 convs + 20 BNs x 5 tensors of ResNet-18
    # --finetune into the whole model: the 174-way classifier loads too
    model = m.build_model(m.get_args(small(script)), 174)
    checkpoint.load_foreign(model, path, "--finetune")
    if layout is tsm_layout:
        assert torch.equal(model.fc.weight, torch.load(path, weights_only=False)["state_dict"]["module.new_fc.weight"])


def test_stmanet_3d_resnet_weights_load(tmp_path):
    """Hara et al.'s 3D ResNet files: {'state_dict'} with 'module.' prefixes."""
    import stmanet
    source = stmanet.build_model(stmanet.get_args(small("stmanet") + ["--baseline"]), 400)
    path = str(tmp_path / "r3d18_K.pth")
    torch.save({"state_dict": {"module." + k: v for k, v in source.backbone.state_dict().items()}}, path)
    model = stmanet.build_model(stmanet.get_args(small("stmanet")), 101)
    loaded, _ = checkpoint.load_foreign(model.backbone, path, "--pretrained")
    assert len(loaded) == len(source.backbone.state_dict())


def test_foreign_weights_that_do_not_fit_stop(tmp_path, capsys):
    import stw
    state = {f"encoder.block{i}.weight": torch.randn(3, 3) for i in range(5)}
    state.update({k: v for k, v in list(torchvision.models.resnet18().state_dict().items())[:20]})
    path = str(tmp_path / "other.pth")
    torch.save(state, path)
    model = stw.build_model(stw.get_args(small("stw")), 10)
    with pytest.raises(SystemExit, match="only 20 of 120 ResNet tensors matched"):
        checkpoint.load_foreign(model.backbone, path, "--pretrained")
    loaded, unused = checkpoint.load_foreign(model.backbone, path, "--pretrained", allow_partial=True)
    assert len(loaded) == 20 and len(unused) == 5


# ---- labels a flip swaps, frame names ---------------------------------------------------------------------------
def test_flip_pairs_only_from_dataset_json_or_the_flag(tiny_data, tmp_path):
    import ean
    classes = load_split(tiny_data, "val")[1]
    from common.prepare import read_dataset_info
    args = ean.get_args(["--data", tiny_data])
    opts = data_options(args, classes, read_dataset_info(tiny_data), tiny_data)
    assert opts.flip_labels == {0: 1, 1: 0, 2: 3, 3: 2}                 # the demo's dataset.json, found by name
    hand_made = tmp_path / "hand"
    hand_made.mkdir()
    for name in ("train.txt", "val.txt", "classes.txt"):
        shutil.copy(os.path.join(tiny_data, name), hand_made / name)
    assert data_options(args, classes, read_dataset_info(str(hand_made)), str(hand_made)).flip_labels == {}
    flag = ean.get_args(["--data", str(hand_made), "--flip-labels", "0:1,1:0"])
    assert data_options(flag, classes, None, str(hand_made)).flip_labels == {0: 1, 1: 0}


def test_ssv1_frame_folders_train_without_a_template_flag(tmp_path):
    """`prepare ssv1` on the official layout (labels csv, `id;label` lists, folders of 00001.jpg), then a run with
    no --frame-template: every sample reads (no bad sample), the direction pair found by name."""
    from common import prepare
    import ean
    src = tmp_path / "ssv1"
    names = ["Pushing something from right to left", "Holding something", "Pushing something from left to right"]
    (src / "something-something-v1-labels.csv").parent.mkdir(parents=True)
    (src / "something-something-v1-labels.csv").write_text("\n".join(names) + "\n")
    rng = np.random.RandomState(0)
    rows = {"train": [], "validation": []}
    for vid in range(1, 13):
        folder = src / "20bn-something-something-v1" / str(vid)
        folder.mkdir(parents=True)
        for i in range(1, 9):
            frame = torch.from_numpy(rng.randint(0, 255, (3, 48, 64), dtype=np.uint8))
            write_jpeg(frame, folder / f"{i:05d}.jpg")
        rows["train" if vid <= 8 else "validation"].append(f"{vid};{names[vid % 3]}")
    for part, lines in rows.items():
        (src / f"something-something-v1-{part}.csv").write_text("\n".join(lines) + "\n")
    out = str(tmp_path / "prepared")
    prepare.main(["ssv1", str(src), out])
    info = prepare.read_dataset_info(out)
    classes = open(os.path.join(out, "classes.txt")).read().splitlines()
    assert classes == sorted(names) and info["frame_template"] == "{:05d}.jpg"
    assert [sorted(classes[i] for i in pair) for pair in info["flip_pairs"]] == [sorted([names[0], names[2]])]
    final = ean.main(["--data", out, *small("ean"), "--epochs", "1", "--output", str(tmp_path / "run")])
    assert final["bad_samples"] == 0 and final["skipped"] == 0


# ---- command line ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script", SCRIPTS)
def test_command_line_guards(script, capsys):
    m = importlib.import_module(script)
    for argv, message in ((["--no-fli"], "unrecognized arguments: --no-fli"),        # no abbreviations
                          (["--predict", "x.mp4"], "--predict needs --checkpoint"),
                          (["--test-resize", "240"], "--test-resize: expected HxW"),
                          (["--device", "cuda"], "no CUDA GPU") if not torch.cuda.is_available() else ([], None)):
        if message is None:
            continue
        with pytest.raises(SystemExit):
            m.get_args(argv)
        assert message in capsys.readouterr().err
    assert m.get_args([]).workers <= len(os.sched_getaffinity(0))


def test_progress_lines_reach_a_log_file(tiny_data, tmp_path):
    """stdout and stderr redirected to a file (nohup, SLURM): step lines appear during the first epoch."""
    log = tmp_path / "run.log"
    with open(log, "w") as f:
        subprocess.run([sys.executable, "ean.py", "--data", tiny_data, *small("ean"), "--epochs", "1",
                        "--max-steps", "2", "--log-every", "1", "--output", str(tmp_path / "run")],
                       cwd=REPO, stdout=f, stderr=subprocess.STDOUT, check=True, timeout=300)
    lines = log.read_text().splitlines()
    steps = [line for line in lines if line.startswith("epoch 0 step ")]
    assert [line.split()[3] for line in steps] == ["1/2", "2/2"], lines
    assert all("loss" in line and "clips/s" in line and "ETA" in line for line in steps)
    assert lines.index(steps[-1]) < next(i for i, line in enumerate(lines) if line.startswith('{"epoch": 0'))


def test_non_finite_scores_stop_instead_of_ranking():
    from common.predict import video_scores
    batch = (torch.zeros(2, 1, 3, 4, 4, dtype=torch.uint8), torch.tensor([1, 1]), torch.tensor([0, 1]),
             torch.tensor([5, 6]), [])
    with pytest.raises(SystemExit, match=r"non-finite scores .* \[5, 6\]"):
        video_scores(lambda x: torch.full((len(x), 3), float("nan")), [batch], torch.device("cpu"))
    preds, _ = video_scores(lambda x: torch.zeros(len(x), 3), [batch], torch.device("cpu"))
    assert torch.cat(preds.ids).tolist() == [5, 6]
