"""Measure sparse-frame decoding strategies side by side (README "Performance").

    python -m common.bench_decode [--repeats 7]

Writes three 340x256 30 fps H.264 test videos (10 s with x264's default keyframe interval, i.e. few keyframes;
10 s with a keyframe every 16 frames; 60 s default) and times, per video and for T = 8 and 16 TSN training
offsets, the median ms per clip of:
  full      decode every frame and convert every frame to RGB (mmaction2 PyAVDecode 'accurate')
  forward   decode from the start, stop after the last wanted frame, convert only kept frames
  seek      seek to the keyframe before each wanted frame, then decode forward to it
  ours      common.video.read_video (demux index, seek only past unreached keyframes, convert kept frames)
All four return the same frames (checked). Times include opening the file and counting frames.
"""
import argparse
import os
import statistics
import tempfile
import time

import av
import numpy as np

from .sampling import segment_indices
from .video import read_video, video_num_frames


def make_video(path, seconds, gop=None, w=340, h=256, fps=30):
    rng = np.random.RandomState(0)
    bg = (rng.rand(h // 8 + 1, w // 8 + 1, 3) * 120).repeat(8, 0).repeat(8, 1)[:h, :w].astype(np.float32)
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if gop:
            s.codec_context.gop_size = gop
            s.options = {"keyint_min": str(gop), "sc_threshold": "0"}
        for i in range(seconds * fps):
            frame = np.roll(bg, i, axis=1)                                  # panning texture
            x = (5 * i) % (w - 40)
            frame[100:140, x:x + 40] = 230                                  # a moving object
            frame += rng.randn(h, w, 1).astype(np.float32) * 4
            img = av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), format="rgb24")
            for p in s.encode(img):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def full(path, indices):
    with av.open(path) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return [frames[min(i, len(frames) - 1)] for i in indices]


def forward(path, indices):
    wanted, kept = set(indices), {}
    with av.open(path) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in wanted:
                kept[i] = f.to_ndarray(format="rgb24")
            if i >= max(wanted):
                break
    return [kept[i] for i in indices]


def seek_each(path, indices):
    kept = {}
    with av.open(path) as c:
        s = c.streams.video[0]
        step = int(1 / (s.average_rate * s.time_base))                     # pts per frame (constant rate)
        start = s.start_time or 0
        for i in sorted(set(indices)):
            target = start + i * step
            c.seek(target, stream=s, backward=True, any_frame=False)
            for f in c.decode(s):
                if f.pts >= target:
                    kept[i] = f.to_ndarray(format="rgb24")
                    break
    return [kept[i] for i in indices]


def ours(path, indices):
    return list(read_video(path, indices)[0].permute(0, 2, 3, 1).numpy())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    tmp = tempfile.mkdtemp()
    videos = [("10 s, default GOP (few keyframes)", "few_key.mp4", 10, None),
              ("10 s, GOP 16 (short GOP)", "short_gop.mp4", 10, 16),
              ("60 s, default GOP", "long.mp4", 60, None)]
    methods = [("full", full), ("forward", forward), ("seek", seek_each), ("ours", ours)]
    print("| video | frames | keyframes | T | " + " | ".join(f"{m} ms" for m, _ in methods) + " | full / ours | best of forward, seek / ours |")
    print("|---|---|---|---|" + "---|" * (len(methods) + 2))
    for title, name, seconds, gop in videos:
        path = os.path.join(tmp, name)
        make_video(path, seconds, gop)
        n = video_num_frames(path)
        with av.open(path) as c:
            keys = sum(1 for pkt in c.demux(video=0) if pkt.is_keyframe)
        for t in (8, 16):
            rng = np.random.RandomState(0)
            draws = [segment_indices(n, t, train=True, rng=rng).tolist() for _ in range(args.repeats)]
            reference = full(path, draws[0])
            times = {}
            for mname, fn in methods:
                assert all(np.array_equal(a, b) for a, b in zip(fn(path, draws[0]), reference)), mname
                runs = []
                for idx in draws:
                    t0 = time.perf_counter()
                    fn(path, idx)
                    runs.append((time.perf_counter() - t0) * 1e3)
                times[mname] = statistics.median(runs)
            best = min(times["forward"], times["seek"])
            print(f"| {title} | {n} | {keys} | {t} | " + " | ".join(f"{times[m]:.1f}" for m, _ in methods)
                  + f" | {times['full'] / times['ours']:.1f}x | {best / times['ours']:.2f} |")


if __name__ == "__main__":
    main()
