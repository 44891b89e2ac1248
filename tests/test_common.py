"""common/: sampling, exact decoding, bad input, annotations, transforms, metrics, distributed meters."""
import json
import os
import socket

import av
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image

from common import complexity, run, video
from common.data import AnnotationError, EpochSampler, Record, VideoDataset, collate_eval, read_list
from common.metrics import Meter, Predictions, mean_average_precision, mean_class_accuracy, topk_correct
from common.sampling import dense_indices, segment_indices, whole_video_starts
from common.transforms import EvalTransform, TrainTransform, multiscale_crop_box, parse_label_map
from common.video import BadVideo, read_frame_folder, read_video, video_num_frames
from reference import full_decode


# ---------------------------------------------------------------------------------------------- sampling
def test_segment_indices_worked_examples():
    # notes/tsm-family-reference.md Sec. 1.3, 1-based there, 0-based here
    assert (segment_indices(49, 8, train=False) + 1).tolist() == [4, 10, 16, 22, 28, 34, 40, 46]
    assert (segment_indices(49, 8, train=False, clip=1, num_clips=2) + 1).tolist() == [1, 7, 13, 19, 25, 31, 37, 43]
    assert (segment_indices(15, 8, train=False) + 1).tolist() == [1, 3, 5, 7, 9, 11, 13, 15]
    assert (segment_indices(7, 8, train=False) + 1).tolist() == [1, 2, 3, 4, 4, 5, 6, 7]  # padded by repeats


def test_segment_indices_train_inside_segments_and_snippets():
    rng = np.random.RandomState(0)
    for n in (3, 8, 20, 49, 300):
        idx = segment_indices(n, 8, train=True, rng=rng)
        assert len(idx) == 8 and idx.min() >= 0 and idx.max() < n and (np.diff(idx) >= 0).all()
    idx = segment_indices(49, 8, train=True, rng=rng)
    assert all(k * 6 <= i < (k + 1) * 6 for k, i in enumerate(idx))  # avg = 6: one frame per segment
    snip = segment_indices(49, 8, snippet=5, train=False).reshape(8, 5)
    assert (np.diff(snip, axis=1) == 1).all() and snip.max() < 49          # 5 consecutive frames per segment
    assert segment_indices(3, 8, snippet=5, train=True, rng=rng).max() <= 2  # short video: clamped


def test_dense_indices_and_whole_video():
    rng = np.random.RandomState(0)
    idx = dense_indices(200, 32, 2, train=True, rng=rng)
    assert (np.diff(idx) == 2).all() and idx[0] <= 200 - 64
    assert dense_indices(100, 32, 2, train=False).tolist()[0] == 18             # central window
    assert dense_indices(40, 32, 2, train=False).max() < 40                       # loops on short videos
    assert whole_video_starts(150, 64) == [0, 64, 128]


# ---------------------------------------------------------------------------------------------- decoding
def write_video(path, n=60, gop=12, codec="libx264", faststart=False, w=64, h=48):
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(path, "w", options=options) as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = gop
        rng = np.random.RandomState(n)
        for i in range(n):
            a = (rng.rand(h, w, 3) * 60).astype(np.uint8)
            a[:, (2 * i) % w:(2 * i) % w + 6, 1] = 250                   # a moving bar: every frame differs
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.mark.parametrize("codec,ext,gop", [("libx264", "mp4", 12), ("libx264", "mp4", 250), ("libvpx", "webm", 30)])
def test_read_video_equals_sequential_decode(tmp_path, codec, ext, gop):
    path = write_video(str(tmp_path / f"v.{ext}"), codec=codec, gop=gop)
    full = full_decode(path)
    assert video_num_frames(path) == len(full) == 60                  # WebM headers say 0: counted, not trusted
    for indices in (segment_indices(60, 8, train=False), [59, 0, 30, 30, 31], list(range(60)), [5]):
        frames, _ = read_video(path, indices)
        assert frames.dtype == torch.uint8 and frames.shape == (len(indices), 3, 48, 64)
        for k, i in enumerate(indices):
            assert np.array_equal(frames[k].permute(1, 2, 0).numpy(), full[i])


def test_read_video_jumps_only_past_unreached_keyframes(tmp_path, monkeypatch):
    runs = []  # decode runs: each starts at a keyframe (a jump), then decodes forward
    real_plan = video.plan_runs
    monkeypatch.setattr(video, "plan_runs", lambda *a: runs.append(real_plan(*a)) or runs[-1])
    one_key = write_video(str(tmp_path / "long_gop.mp4"), gop=250)      # a single keyframe
    read_video(one_key, segment_indices(60, 8, train=False))
    assert len(runs[-1]) == 1                                            # decode forward, never jump
    short = write_video(str(tmp_path / "short_gop.mp4"), gop=12)
    with av.open(short) as c:
        keys = video.VideoIndex.scan(c, c.streams.video[0]).keyframes   # [0, k1, k2, ...]
    assert len(keys) >= 3
    read_video(short, [1, 2, keys[-1] + 1])
    assert len(runs[-1]) == 2                                            # start, then jump to the last keyframe
    read_video(short, [1, keys[1] - 1])
    assert len(runs[-1]) == 1                                            # same GOP: decode forward
    read_video(short, [1, keys[1] + 1])
    assert len(runs[-1]) == 2                                            # past an unreached keyframe: jump


def test_bad_videos(tmp_path):
    with pytest.raises(BadVideo, match="not found"):
        read_video(str(tmp_path / "missing.mp4"), [0])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(BadVideo, match="zero-length"):
        read_video(str(empty), [0])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(5000))
    with pytest.raises(BadVideo):
        read_video(str(garbage), [0])
    cut = write_video(str(tmp_path / "cut.mp4"), n=60)                  # moov atom at the end: cut it off
    data = open(cut, "rb").read()
    open(cut, "wb").write(data[: len(data) // 2])
    with pytest.raises(BadVideo):
        read_video(cut, [0])


def test_header_promises_more_frames_than_it_holds(tmp_path):
    path = write_video(str(tmp_path / "fast.mp4"), n=60, faststart=True, gop=250)  # index first, then data
    with av.open(path) as c:
        assert c.streams.video[0].frames == 60
    data = open(path, "rb").read()
    open(path, "wb").write(data[: int(len(data) * 0.6)])
    with av.open(path) as c:
        assert c.streams.video[0].frames == 60                          # the header still says 60
    try:
        n = video_num_frames(path)
        frames, _ = read_video(path, segment_indices(n, 8, train=False))
        assert n < 60 and frames.shape[0] == 8                          # sampled within what really decodes
    except BadVideo:
        pass                                                            # or reported: never a crash or a hang


def write_jpeg(frame, path, quality=75):
    """A uint8 (3, H, W) frame as a JPEG file: Pillow's writer gives byte-identical files to torchvision.io.write_jpeg
    (libjpeg-turbo defaults, 4:2:0), which torchvision 0.29 deprecates."""
    Image.fromarray(frame.permute(1, 2, 0).numpy()).save(str(path), quality=quality)  # (3,H,W) -> (H,W,3)


def frame_folder_of(video, folder, template="img_{:05d}.jpg"):
    """Every frame of `video` as a JPEG named by `template` (1-based) in `folder` (created); returns the frames."""
    from common.video import read_video
    frames, _ = read_video(video, lambda n: np.arange(n))
    os.makedirs(folder, exist_ok=True)
    for i, frame in enumerate(frames, 1):
        write_jpeg(frame, os.path.join(folder, template.format(i)))
    return frames


def test_frame_folder(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in range(1, 6):
        write_jpeg(torch.full((3, 16, 24), i * 40, dtype=torch.uint8), str(folder / f"img_{i:05d}.jpg"))
    frames = read_frame_folder(str(folder), [0, 4, 4])
    assert frames.shape == (3, 3, 16, 24) and abs(int(frames[1].float().mean()) - 200) <= 2
    (folder / "img_00003.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(BadVideo, match="img_00003"):
        read_frame_folder(str(folder), [2])
    with pytest.raises(BadVideo, match="img_00009"):
        read_frame_folder(str(folder), [8])                              # list promised more frames


def test_dataset_substitutes_and_reports_bad_samples(tmp_path):
    good = write_video(str(tmp_path / "good.mp4"))
    (tmp_path / "empty.mp4").write_bytes(b"")
    records = [Record(str(tmp_path / "empty.mp4"), 0, where="list:1"), Record(good, 1, where="list:2")]
    ds = VideoDataset(records, lambda n, k, rng: segment_indices(n, 4, train=False),
                      lambda frames, label, rng: (frames, label))
    clip, label, bad = ds[(0, 123)]   # training: replaced, reported with the batch (the main process warns once)
    assert clip.shape[0] == 4 and label.item() == 1 and "empty.mp4" in bad
    clip, label, bad = ds[(1, 5)]
    assert bad == ""
    # evaluation: never replaced; collate_eval leaves it out of the batch and names it
    ds.skip_bad = True
    batch = collate_eval([ds[(0, 1)], ds[(1, 1)]])
    clips, views, targets, ids, skipped = batch
    assert clips.shape[0] == 4 and views.tolist() == [4] and targets.tolist() == [1] and ids.tolist() == [1]
    assert len(skipped) == 1 and skipped[0][0] == 0 and "empty.mp4" in skipped[0][1]
    assert collate_eval([ds[(0, 1)]])[0] is None


# ---------------------------------------------------------------------------------------------- annotations
def test_read_list_formats_and_errors(tmp_path):
    (tmp_path / "my video 1.mp4").write_bytes(b"x")
    (tmp_path / "frames dir").mkdir()
    lst = tmp_path / "train.txt"
    lst.write_text("my video 1.mp4 2\nframes dir 37 1\n\n")
    recs = read_list(str(lst), str(tmp_path), 3)
    assert recs[0].path.endswith("my video 1.mp4") and recs[0].num_frames is None and recs[0].label == 2
    assert recs[1].path.endswith("frames dir") and recs[1].num_frames == 37 and recs[1].label == 1
    lst.write_text("a.mp4 3,7\n")
    assert read_list(str(lst), str(tmp_path), 10, multi_label=True)[0].label == (3, 7)
    for text, msg in (("a.mp4 5\n", "train.txt:1: label 5 out of range"), ("ok.mp4 1\nbroken\n", "train.txt:2"),
                      ("a.mp4 x\n", "not an integer"), ("a.mp4 1,2\n", "several labels")):
        lst.write_text(text)
        with pytest.raises(AnnotationError, match=msg):
            read_list(str(lst), str(tmp_path), 3)


def test_epoch_sampler_shards_and_resumes():
    full = [i for i, _ in EpochSampler(10, shuffle=False, rank=0, world=3)] + \
           [i for i, _ in EpochSampler(10, shuffle=False, rank=1, world=3)] + \
           [i for i, _ in EpochSampler(10, shuffle=False, rank=2, world=3)]
    assert sorted(full) == list(range(10))                               # eval: every sample exactly once
    s = EpochSampler(10, shuffle=True, seed=1)
    s.set_epoch(3)
    order = list(s)
    s.set_epoch(3, skip=4)
    assert list(s) == order[4:]                                          # mid-epoch resume
    s.set_epoch(4)
    assert [i for i, _ in s] != [i for i, _ in order]


# ---------------------------------------------------------------------------------------------- transforms
def test_transforms():
    rng = np.random.RandomState(0)
    boxes = {multiscale_crop_box(256, 340, 224, rng) for _ in range(300)}
    assert {(h, w) for _, _, h, w in boxes} <= {(a, b) for a in (256, 224, 192, 168) for b in (256, 224, 192, 168)}
    assert all(t + h <= 256 and l + w <= 340 for t, l, h, w in boxes)
    clip = torch.randint(0, 255, (8, 3, 96, 128), dtype=torch.uint8)
    out, _ = TrainTransform(64)(clip, 0, rng)
    assert out.shape == (8, 3, 64, 64) and out.dtype == torch.uint8
    flip = TrainTransform(96, flip_labels=parse_label_map("86:87,87:86"))
    labels = {flip(clip, 86, np.random.RandomState(s))[1] for s in range(20)}
    assert labels == {86, 87}
    assert parse_label_map("1:2,2:1") == {1: 2, 2: 1} and parse_label_map("") == {}
    with pytest.raises(ValueError):
        parse_label_map("ssv2")   # no index map by dataset name: pairs come from dataset.json, found by class name
    # fixed resize (the EAN release's 240x320) and full-resolution crops (--test-size)
    resized, _ = EvalTransform(64, crops=1, frames_per_clip=4, resize=(72, 100))(clip, 0)
    assert resized.shape == (2, 4, 3, 64, 64)
    full, _ = EvalTransform(80, 80, crops=3, frames_per_clip=8)(clip, 0)
    assert full.shape == (3, 8, 3, 80, 80)
    assert EvalTransform(80, 80, crops=3).describe() == "short side 80, 3 crops of 80"
    # 2 clips x 3 crops; the centre crop of 1 view equals the middle of the 3
    views, _ = EvalTransform(64, crops=3, frames_per_clip=4)(clip, 0)
    centre, _ = EvalTransform(64, crops=1, frames_per_clip=4)(clip, 0)
    assert views.shape == (6, 4, 3, 64, 64) and torch.equal(views[1], centre[0]) and torch.equal(views[4], centre[1])
    ten, _ = EvalTransform(64, crops=10, frames_per_clip=8)(clip, 0)
    assert ten.shape == (10, 8, 3, 64, 64) and torch.equal(ten[5], ten[0].flip(-1))


# ---------------------------------------------------------------------------------------------- metrics
def test_metrics_hand_computed():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    target = torch.tensor([1, 1, 2, 2])
    assert topk_correct(scores, target, (1, 2)) == [2, 3]       # top-2 of sample 4 is {0, 1}: a miss
    assert mean_class_accuracy(scores, target) == pytest.approx(50.0)  # class 1: 1/2, class 2: 1/2
    # AP class 0: positives ranked 1 and 3 -> (1 + 2/3)/2; class 1: positive ranked 2 -> 1/2; class 2: none
    s = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.7, 0.9, 0.0]])
    t = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    assert mean_average_precision(s, t) == pytest.approx(100 * ((1 + 2 / 3) / 2 + 0.5) / 2)
    p = Predictions()
    p.update(scores[:2], target[:2])
    p.update(scores[2:], target[2:])
    assert p.compute()["val_top1"] == pytest.approx(50.0)


def _ddp_worker(rank, world, port, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    m = Meter()
    m.update(rank + 1.0, n=rank + 1)                               # rank 0: 1 x 1.0; rank 1: 2 x 2.0
    m.reduce()
    p = Predictions()
    p.update(torch.eye(3)[rank::2], torch.arange(3)[rank::2])      # every sample exactly once over ranks
    queue.put((rank, m.sum, m.count, p.compute()["samples"], p.compute()["val_top1"], run.all_reduce_sum([rank])[0]))
    dist.destroy_process_group()


def test_meters_all_reduce_over_two_gloo_processes():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.start_processes(_ddp_worker, args=(2, port, queue), nprocs=2, start_method="spawn")
    results = sorted(queue.get(timeout=60) for _ in range(2))
    for _, total, count, samples, top1, ranks in results:
        assert (total, count, samples, top1, ranks) == (5.0, 3, 3, 100.0, 1.0)


# ---------------------------------------------------------------------------------------------- complexity, run
def test_gmacs_counts_convs_and_extra_ops():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)

        def forward(self, x):
            complexity.count_macs(1000)                            # an op the flop counter cannot see
            return self.conv(x)
    macs = complexity.gmacs(Net(), torch.zeros(1, 3, 10, 10)) * 1e9
    assert macs == pytest.approx(8 * 3 * 9 * 100 + 1000)


def test_gmacs_counts_as_thop_when_asked():
    """count="thop": the MACs (conv bias not counted, as thop), BatchNorm 4 per element (2 without affine), an
    adaptive average pool (window + 1) per output, ReLU / max pool / functional ops nothing; the default is unchanged
    and `counting` sets it for the calls inside."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.BatchNorm2d(8, affine=False), torch.nn.MaxPool2d(2),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))
    x = torch.zeros(2, 3, 10, 10)
    macs = 2 * (8 * 3 * 9 * 100 + 8 * 4)
    extra = 2 * (4 * 800 + 2 * 800 + (25 + 1) * 8)
    assert complexity.gmacs(net, x) * 1e9 == pytest.approx(macs)
    assert complexity.gmacs(net, x, count="thop") * 1e9 == pytest.approx(macs + extra)
    with complexity.counting("thop"):
        assert complexity.gmacs(net, x) * 1e9 == pytest.approx(macs + extra)
        assert complexity.gmacs(net, x, count="macs") * 1e9 == pytest.approx(macs)
    assert complexity.gmacs(net, x) * 1e9 == pytest.approx(macs)
    assert not any(m._forward_hooks for m in net.modules())                # the hooks are removed
    with pytest.raises(ValueError, match="'macs' or 'thop'"):
        complexity.gmacs(net, x, count="fvcore")


def test_atomic_checkpoint_and_corrupt_file(tmp_path):
    path = str(tmp_path / "last.pt")
    run.save_checkpoint({"a": torch.ones(3)}, path)
    assert torch.equal(run.load_checkpoint(path)["a"], torch.ones(3))
    assert [f for f in os.listdir(tmp_path)] == ["last.pt"]        # no temporary file left behind
    open(path, "wb").write(open(path, "rb").read()[:50])
    with pytest.raises(SystemExit, match="corrupt"):
        run.load_checkpoint(path)


def test_checkpoint_write_is_atomic(tmp_path):
    """A failure in the middle of writing (here: an unpicklable object after the tensors) keeps the old file."""
    path = str(tmp_path / "last.pt")
    run.save_checkpoint({"step": 1, "w": torch.ones(1000)}, path)
    with pytest.raises(Exception):
        run.save_checkpoint({"step": 2, "w": torch.zeros(1000), "bad": lambda: None}, path)
    assert run.load_checkpoint(path)["step"] == 1 and os.listdir(tmp_path) == ["last.pt"]
    open(path, "wb").write(open(path, "rb").read()[:500])
    with pytest.raises(SystemExit, match="corrupt or not a checkpoint"):
        run.load_checkpoint(path)


def test_stop_request_and_log_truncation(tmp_path):
    import signal
    with run.StopRequest() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL                  # handlers restored
    log = run.JsonlLog(str(tmp_path / "log.jsonl"))
    for epoch in range(4):
        log.write({"epoch": epoch})
    log.truncate(2)
    assert [json.loads(line)["epoch"] for line in open(tmp_path / "log.jsonl")] == [0, 1]


# ---------------------------------------------------------------------------------------------- demo dataset
def test_demo_dataset_is_the_same_files_for_the_same_seed(tmp_path):
    """Two builds with one seed give byte-identical videos and lists (tests and demo results depend on it;
    with x264's default threads the bytes varied from build to build)."""
    from common.demo import CLASSES, demo_dataset
    a, b = (demo_dataset(str(tmp_path / name), train_per_class=1, val_per_class=1, width=64, height=48)
            for name in ("a", "b"))
    files = sorted(os.path.relpath(os.path.join(d, f), a) for d, _, fs in os.walk(a) for f in fs)
    assert len(files) == 4 + 2 * len(CLASSES)  # train.txt, val.txt, classes.txt, dataset.json, videos
    for f in files:
        with open(os.path.join(a, f), "rb") as fa, open(os.path.join(b, f), "rb") as fb:
            assert fa.read() == fb.read(), f
    assert [int(line.split()[1]) for line in open(os.path.join(a, "train.txt"))] == list(range(len(CLASSES)))
    from common.prepare import read_dataset_info
    info = read_dataset_info(a)  # flip pairs found from the class names: moving right/left, right/left then back
    assert info["name"] == "demo" and info["flip_pairs"] == [[0, 1], [2, 3]] and info["frame_template"] is None
