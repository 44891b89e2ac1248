"""The built-in demo dataset (CONVENTIONS.md "The demo dataset"): real encoded mp4 files whose classes differ
only in the temporal order of the same frames, so a model without temporal modelling cannot beat chance.

Four classes of one textured object sweeping across a textured background: moving right, moving left, right then
back left, left then back right. In every class the object's position over a clip is uniform on the same span,
so the multiset of frames has the same distribution: an average of per-frame scores (TSN) sees 25 %.
Textures, colours, shapes, sizes, span, height, speed (frame count) and noise vary per video.
Written once into a cache folder (`$DEMO_DATA`, default ~/.cache/paper-video-demo/v1), atomically; the same
seed gives the same files (see write_video; caches written before 2026-11-22 differ in encoder noise only).
Beside the lists, dataset.json (common.prepare.write_dataset_info): flip pairs [[0, 1], [2, 3]] found from the class
names, no timestamp (so the files stay the same bytes); a cache written before dataset.json existed gets one.
"""
import os
import shutil
import sys
import tempfile

import av
import numpy as np
from tqdm import tqdm

from .prepare import write_dataset_info

CLASSES = ["moving right", "moving left", "right then left", "left then right"]
FLIP_LABELS = "0:1,1:0,2:3,3:2"  # a horizontally flipped clip belongs to the mirrored class
VERSION = "v1"


def _position(label, t):
    """Fraction of the span at time t in [0, 1] for each class; all four are uniform over [0, 1]."""
    return [t, 1 - t, 1 - abs(2 * t - 1), abs(2 * t - 1)][label]


def _texture(rng, h, w, scale):
    """Smooth random texture: low-resolution noise upsampled (nearest then box blur)."""
    small = rng.rand(max(2, h // scale), max(2, w // scale), 3)
    big = np.kron(small, np.ones((scale, scale, 1)))[:h, :w]
    pad = np.pad(big, ((0, h - big.shape[0]), (0, w - big.shape[1]), (0, 0)), mode="edge")
    return pad


def write_video(path, label, rng, width=128, height=96, fps=12):
    n = int(rng.randint(24, 49))
    # a dim, low-contrast background and a bright, saturated object with a texture of its own
    bg = rng.uniform(20, 90, size=3) + _texture(rng, height, width, int(rng.choice([8, 16, 32]))) * rng.uniform(10, 50)
    bg = bg.astype(np.float32)
    size = int(rng.randint(18, 30))
    color = rng.uniform(0, 1, size=3)
    color = 140 + 115 * color / color.max()
    obj = color * (0.75 + 0.25 * _texture(rng, size, size, int(rng.choice([3, 6]))))
    if rng.rand() < 0.5:  # disk instead of a square
        yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
        mask = (yy ** 2 + xx ** 2 <= (size / 2) ** 2)[..., None]
    else:
        mask = np.ones((size, size, 1), bool)
    span = rng.uniform(0.45, 0.85) * (width - size)
    x0 = rng.uniform(0, width - size - span)
    y = int(rng.randint(0, height - size))
    noise = rng.uniform(0, 8)
    container = av.open(path, "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    # the same frames gave different bytes from run to run with x264's macroblock-tree rate control (seen at
    # 64x48, with one thread too); without it and with one encoder thread, the same seed writes the same files
    stream.options = {"crf": "20", "x264-params": "mbtree=0"}
    stream.codec_context.thread_count = 1
    for i in range(n):
        frame = bg.copy()
        x = int(round(x0 + span * _position(label, i / (n - 1))))
        region = frame[y:y + size, x:x + size]
        frame[y:y + size, x:x + size] = np.where(mask, obj, region)
        frame += rng.randn(height, width, 1).astype(np.float32) * noise
        image = np.clip(frame, 0, 255).astype(np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def demo_dataset(root=None, train_per_class=100, val_per_class=25, seed=0, width=128, height=96):
    """Create (once) and return the demo dataset folder."""
    root = root or os.environ.get("DEMO_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "paper-video-demo", VERSION)
    if os.path.isfile(os.path.join(root, "val.txt")):
        if not os.path.isfile(os.path.join(root, "dataset.json")):  # a cache written before dataset.json existed
            write_dataset_info(root, "demo", source="common.demo", created=False)
        return root
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".demo-")
    rng = np.random.RandomState(seed)
    os.makedirs(os.path.join(tmp, "videos"))
    total = (train_per_class + val_per_class) * len(CLASSES)
    print(f"writing the demo dataset ({total} videos, once) to {root}", file=sys.stderr, flush=True)
    with tqdm(total=total, desc="demo dataset", unit="video", mininterval=0.1 if sys.stderr.isatty() else 30) as bar:
        for split, per_class in (("train", train_per_class), ("val", val_per_class)):
            lines = []
            for k in range(per_class * len(CLASSES)):
                label = k % len(CLASSES)
                rel = f"videos/{split}_{k:04d}.mp4"
                write_video(os.path.join(tmp, rel), label, rng, width, height)
                lines.append(f"{rel} {label}\n")
                bar.update()
            with open(os.path.join(tmp, f"{split}.txt"), "w") as f:
                f.writelines(lines)
    with open(os.path.join(tmp, "classes.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    write_dataset_info(tmp, "demo", source="common.demo", created=False)
    try:
        os.rename(tmp, root)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return root
