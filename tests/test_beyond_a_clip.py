"""Beyond a clip: predictions along a long video (--predict VIDEO --window S --stride S) and an exported model that
gives the same scores (--export FILE.onnx, checked in onnxruntime), for all five scripts."""
import importlib
import json
import os

import av
import numpy as np
import pytest
import torch

from common import predict
from common.data import Record
from common.video import frame_times, read_video, stream_frames
from test_runs import small

SCRIPTS = ["ean", "can", "stw", "stasta", "stmanet"]


@pytest.fixture(scope="module")
def checkpoints(tiny_data, tmp_path_factory):
    """A one-step checkpoint of every script's tiny model."""
    root, out = tmp_path_factory.mktemp("ckpt"), {}
    for script in SCRIPTS:
        importlib.import_module(script).main(["--data", tiny_data, *small(script), "--epochs", "1", "--max-steps", "1",
                                              "--output", str(root / script)])
        out[script] = str(root / script / "best.pt")
    return out


def write_video(path, seconds, fps=12, size=(64, 48), vfr=False):
    """An H.264 mp4 of moving squares; with `vfr` the frame gaps alternate 1/24 and 1/8 s (time base 1/1000)."""
    rng = np.random.RandomState(0)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.codec_context.time_base = s.time_base = __import__("fractions").Fraction(1, 1000)
        t, n = 0.0, 0
        while t < seconds - 1e-9:
            img = np.full((size[1], size[0], 3), 40, np.uint8)
            x = (n * 3) % (size[0] - 8)
            img[10:18, x:x + 8] = rng.randint(150, 255, 3)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = round(t * 1000)
            for p in s.encode(frame):
                c.mux(p)
            t += (1 / 24 if n % 2 == 0 else 1 / 8) if vfr else 1 / fps
            n += 1
        for p in s.encode():
            c.mux(p)
    return str(path)


# ---------------------------------------------------------------------------------------------- windows
def test_window_plan_covers_the_video_and_names_a_short_last_window():
    times = np.arange(36) / 12                                         # 3.0 s at 12 fps
    plan = predict.window_plan(times, 1.0, 1.0)
    assert [(s, e) for s, e, _, _ in plan] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert [(a, b) for _, _, a, b in plan] == [(0, 12), (12, 24), (24, 36)]
    plan = predict.window_plan(times, 2.0, 1.5)                        # overlapping? no: a shorter last window
    assert [(s, e) for s, e, _, _ in plan] == [(0.0, 2.0), (1.5, 3.0)] and plan[1][2:] == (18, 36)
    plan = predict.window_plan(np.arange(5) / 12, 1.0, 1.0)            # a video shorter than one window
    assert len(plan) == 1 and plan[0][2:] == (0, 5)


def test_streamed_frames_are_the_readers_frames(tmp_path):
    path = write_video(tmp_path / "v.mp4", 3.0)
    wanted = [0, 5, 6, 17, 35]
    frames, _ = read_video(path, wanted)
    streamed = list(stream_frames(path, wanted))
    assert [i for i, _ in streamed] == wanted
    assert all(torch.equal(f, frames[k]) for k, (_, f) in enumerate(streamed))


def test_frame_times_follow_the_timestamps_of_a_variable_frame_rate(tmp_path):
    times, how = frame_times(write_video(tmp_path / "vfr.mp4", 2.0, vfr=True))
    assert how == "timestamps"
    short = np.abs(np.diff(times) - 1 / 24) < 2e-3                   # pts in ms: 41 or 42 ms
    long = np.abs(np.diff(times) - 1 / 8) < 2e-3
    assert (short | long).all() and short.sum() >= 10 and long.sum() >= 10


@pytest.mark.parametrize("script", SCRIPTS)
def test_three_windows_give_three_lines_in_order(script, checkpoints, tmp_path, capsys):
    path = write_video(tmp_path / "three.mp4", 3.0)
    m = importlib.import_module(script)
    capsys.readouterr()
    m.main(["--predict", path, "--checkpoint", checkpoints[script], "--workers", "0", "--window", "1",
            "--visualize", str(tmp_path / "vis")])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert [(x["start"], x["end"]) for x in lines] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert all(x["path"] == path and len(x["top"]) == 4 for x in lines)
    assert all(abs(sum(t["prob"] for t in x["top"]) - 1) < 1e-3 for x in lines)
    assert "3 windows of 1 s every 1 s (timestamps)" in err
    assert os.path.getsize(tmp_path / "vis" / "timeline_three.png") > 1000


def test_a_window_scores_what_predict_scores_on_the_same_frames(checkpoints, tmp_path, capsys):
    """One window over a whole video samples the clip the papers' test sampling takes of that video: the same
    probabilities as a plain --predict."""
    import stw
    path = write_video(tmp_path / "one.mp4", 2.0)
    capsys.readouterr()
    stw.main(["--predict", path, "--checkpoint", checkpoints["stw"], "--workers", "0", "--window", "10"])
    (window,) = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    stw.main(["--predict", path, "--checkpoint", checkpoints["stw"], "--workers", "0"])
    (whole,) = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert window["top"] == whole["top"] and (window["start"], window["end"]) == (0.0, 2.0)


def test_memory_is_bounded_by_the_window_on_a_long_video(tmp_path):
    """A 40 s video in 1 s windows every 0.5 s: the frames held at any time stay those of the windows in flight
    (about T for the current window and its overlap), not the video's."""
    path = write_video(tmp_path / "long.mp4", 40.0, size=(32, 24))
    dataset = type("D", (), {})()
    dataset.num_clips, dataset.template, dataset.start_index = 1, None, 1
    dataset.sample = lambda n, k, rng: np.linspace(0, n - 1, 8).round().astype(int)
    dataset.transform = lambda frames, label, rng: (frames[None], label)
    stats = {}
    rows = list(predict.predict_windows(lambda clips: clips.float().mean((2, 3, 4))[:, :2], dataset,
                                        Record(path, -1), 1.0, 0.5, 30, 4, 1, False, stats=stats))
    assert len(rows) == stats["windows"] == 80
    assert stats["peak_frames"] <= 2 * 8, stats                      # not 480 frames


# ---------------------------------------------------------------------------------------------- ONNX
@pytest.mark.parametrize("script", SCRIPTS)
def test_export_matches_pytorch_in_onnxruntime(script, checkpoints, tmp_path, capsys):
    m = importlib.import_module(script)
    capsys.readouterr()
    result = m.main(["--export", str(tmp_path / f"{script}.onnx"), "--checkpoint", checkpoints[script]])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == result and result["max_abs_diff"] <= 1e-4 and result["logit_std"] > 0
    assert os.path.getsize(tmp_path / f"{script}.onnx") > 10_000
