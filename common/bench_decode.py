"""Measure the data pipeline side by side: decoding strategies, per-worker loader throughput, and the share of a
training step the loader covers with N workers (docs/performance.md).

    python -m common.bench_decode [--repeats 5] [--step-ms 200 --batch 64] [--no-cpu-step] [--peers]

Prints markdown tables after a header line (date, machine, load, versions). Everything is measured interleaved
(round-robin, the order rotated every repeat) and reported as medians of CPU time (`time.process_time`, all
threads of the process): that is what a DataLoader worker pays per clip, and unlike wall time it does not count
the time other jobs held the cores, so the numbers hold on a busy machine (on an idle core, wall = CPU time for
one-thread code).

1. Decoding: three 340x256 30 fps H.264 videos (10 s with x264's default keyframe interval, i.e. 2 keyframes;
   10 s with a keyframe every 16 frames; 60 s default), T = 8 and 16 TSN training offsets, ms per clip of:
     full (PyAV defaults)  decode and convert every frame as mmaction2's PyAVDecode 'accurate' does
                           (`frame.to_ndarray`: a new converter per frame, decoder and converter threads = CPUs)
     full                  the same work with one decoder thread and one single-threaded converter per video
     forward               decode from the start, stop after the last wanted frame, convert kept frames
     seek                  seek to the keyframe before each wanted frame, then decode forward to it
     ours                  common.video.read_video (skips non-reference frames that are not wanted)
   full, forward and seek use ours' thread and converter settings, so their ratios to ours measure the decoding
   strategy alone. Every timed call's frames are checked against 'full (PyAV defaults)' of the same round.
   Times include opening the file and counting frames (no cached index).
   With --peers, the other readers that are installed run in the same rounds, one decoding thread each:
   torchcodec (`VideoDecoder(seek_mode="exact" | "approximate", num_ffmpeg_threads=1).get_frames_at`) and decord
   (`VideoReader(num_threads=1).get_batch`). They convert to RGB with their own FFmpeg, so a returned frame counts
   as right when the sequential decode's frame at that index is the nearest of all its frames (8x8-pooled grey
   thumbnails); wrong frames and unreadable calls (an exception) are counted per reader, ours too. A second table
   compares the readers on awkward files: H.264 whose pts equal their dts (built here) and real packed-bitstream
   XviD AVIs (tests/data, `--awkward`). torchcodec and decord are never dependencies (docs/performance.md).
2. Loader, per worker (one process, one thread, as a DataLoader worker runs; clips/s = 1000 / CPU ms per clip):
   `VideoDataset.__getitem__` with each paper's training sampling and `TrainTransform` to the final uint8 crop,
   on the 10 s mp4s and on a JPEG folder of the same frames (torchvision `write_jpeg`, quality 75, named
   `img_00001.jpg`...). No cached index, i.e. each read is a video's first in the worker.
3. Step coverage: loader clips/s with N workers (N x the per-worker rate: one free core per worker assumed) over
   the clips/s a training step consumes, for an assumed GPU step (`--step-ms`, `--batch`) and, unless
   `--no-cpu-step`, for a measured CPU step of TSN ResNet-50 (8 x 224, forward + backward + SGD).
"""
import argparse
import datetime
import glob
import os
import platform
import statistics
import tempfile
import time

import av
import numpy as np
import torch
import torchvision
from av.video.reformatter import VideoReformatter

from .complexity import cpu_model
from .data import Record, VideoDataset
from .sampling import dense_indices, segment_indices
from .transforms import TrainTransform
from .video import read_video, to_rgb, video_num_frames

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data")


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


# ---------------------------------------------------------------------------------------------- strategies
def _open_one_thread(path):
    c = av.open(path)
    c.streams.video[0].codec_context.thread_count = 1
    return c, VideoReformatter()


def full_defaults(path, indices):
    wanted, kept = set(indices), {}
    with av.open(path) as c:
        for i, f in enumerate(c.decode(video=0)):
            a = f.to_ndarray(format="rgb24")                                # every frame converted
            if i in wanted:
                kept[i] = a
    n = i + 1
    return [kept[min(i, n - 1)] for i in indices]


def full(path, indices):
    wanted, kept = set(indices), {}
    c, rgb = _open_one_thread(path)
    with c:
        for i, f in enumerate(c.decode(video=0)):
            a = to_rgb(f, rgb)
            if i in wanted:
                kept[i] = a
    n = i + 1
    return [kept[min(i, n - 1)] for i in indices]


def forward(path, indices):
    wanted, kept, last = set(indices), {}, max(indices)
    c, rgb = _open_one_thread(path)
    with c:
        for i, f in enumerate(c.decode(video=0)):
            if i in wanted:
                kept[i] = to_rgb(f, rgb)
            if i >= last:
                break
    return [kept[i] for i in indices]


def seek_each(path, indices):
    kept = {}
    c, rgb = _open_one_thread(path)
    with c:
        s = c.streams.video[0]
        step = int(1 / (s.average_rate * s.time_base))                     # pts per frame (constant rate)
        start = s.start_time or 0
        for i in sorted(set(indices)):
            target = start + i * step
            c.seek(target, stream=s, backward=True, any_frame=False)
            for f in c.decode(s):
                if f.pts >= target:
                    kept[i] = to_rgb(f, rgb)
                    break
    return [kept[i] for i in indices]


def ours(path, indices):
    return list(read_video(path, indices)[0].permute(0, 2, 3, 1).numpy())


def interleaved(calls, repeats):
    """calls: {name: fn(round) -> result}; runs every name once per round, the order rotated every round.
    Returns ({name: median CPU ms}, {name: median wall ms}, [{name: result} per round]). CPU time (all threads
    of this process) is the cost a DataLoader worker pays; unlike wall time it does not count the time other
    jobs held the cores."""
    names, cpu, wall, results = list(calls), {k: [] for k in calls}, {k: [] for k in calls}, []
    for r in range(repeats):
        out = {}
        for k in names[r % len(names):] + names[:r % len(names)]:
            c0, t0 = time.process_time(), time.perf_counter()
            out[k] = calls[k](r)
            wall[k].append((time.perf_counter() - t0) * 1e3)
            cpu[k].append((time.process_time() - c0) * 1e3)
        results.append(out)
    median = lambda d: {k: statistics.median(v) for k, v in d.items()}
    return median(cpu), median(wall), results


def decode_table(videos, repeats, peers=None):
    """CPU ms per clip of every strategy and, with `peers` (`peer_readers`), of the other readers, interleaved;
    our strategies must return exactly the frames of 'full (PyAV defaults)', the peers' wrong frames and
    unreadable calls are counted (`wrong_frames`)."""
    methods = [("full (PyAV defaults)", full_defaults), ("full", full), ("forward", forward), ("seek", seek_each),
               ("ours", ours)] + [(m, guarded(fn)) for m, fn in (peers or {}).items()]
    names = [m for m, _ in methods]
    print("| video (340x256, 30 fps, H.264) | frames | keyframes | T | " + " | ".join(f"{m} ms" for m in names)
          + " | full (PyAV defaults) / ours | full / ours | best of forward, seek / ours | ours wall ms |"
          + "".join(f" {m} / ours |" for m in peers or ())
          + "".join(f" {m}: wrong / unreadable |" for m in (["ours"] + list(peers) if peers else ())))
    print("|---|---|---|---|" + "---|" * (len(methods) + 4 + (2 * len(peers) + 1 if peers else 0)))
    rows = []
    for title, path in videos:
        n = video_num_frames(path)
        with av.open(path) as c:
            keys = sum(1 for pkt in c.demux(video=0) if pkt.is_keyframe)
        thumbs = reference_thumbnails(path) if peers else None
        for t in (8, 16):
            rng = np.random.RandomState(t)
            draws = [segment_indices(n, t, train=True, rng=rng).tolist() for _ in range(repeats)]
            calls = {m: (lambda r, fn=fn: fn(path, draws[r])) for m, fn in methods}
            ms, wall, results = interleaved(calls, repeats)
            for out in results:  # exact frames, every timed call of our strategies
                reference = out["full (PyAV defaults)"]
                for m in names[:5]:
                    assert all(np.array_equal(a, b) for a, b in zip(out[m], reference)), f"{m} differs on {title}"
            best = min(ms["forward"], ms["seek"])
            rows.append((title, t, ms))
            print(f"| {title} | {n} | {keys} | {t} | " + " | ".join(f"{ms[m]:.1f}" for m in names)
                  + f" | {ms['full (PyAV defaults)'] / ms['ours']:.1f}x | {ms['full'] / ms['ours']:.1f}x"
                  + f" | {best / ms['ours']:.2f} | {wall['ours']:.1f} |"
                  + "".join(f" {ms[m] / ms['ours']:.2f} |" for m in peers or ())
                  + ("".join(f" {correctness(results, m, draws, thumbs)} |" for m in ["ours"] + list(peers))
                     if peers else ""))
    return rows


# ---------------------------------------------------------------------------------------------- other readers
def peer_readers():
    """{name: fn(path, indices) -> frames (N, H, W, 3) uint8} for the other readers that are installed (benchmark
    only, never dependencies): torchcodec in both seek modes and decord, one decoding thread each, like ours."""
    readers = {}
    try:
        from torchcodec.decoders import VideoDecoder
    except Exception as e:  # not installed, or without the FFmpeg libraries it loads
        print(f"torchcodec left out: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}")
    else:
        for mode in ("exact", "approximate"):
            readers[f"torchcodec {mode}"] = lambda path, indices, mode=mode: list(VideoDecoder(
                path, seek_mode=mode, num_ffmpeg_threads=1, dimension_order="NHWC").get_frames_at(indices).data.numpy())
    try:
        import decord
    except Exception as e:
        print(f"decord left out: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}")
    else:
        readers["decord"] = lambda path, indices: list(
            decord.VideoReader(path, num_threads=1).get_batch(indices).asnumpy())
    return readers


def peer_versions(peers):
    versions = []
    for module in ("torchcodec", "decord"):
        if any(m.startswith(module) for m in peers):
            versions.append(f"{module} {__import__(module).__version__}")
    return ", ".join(versions)


def guarded(fn):
    """fn, returning None instead of raising (an unreadable call)."""
    def call(path, indices):
        try:
            return fn(path, indices)
        except Exception:
            return None
    return call


def thumbnail(frame):
    """8x8-pooled grey thumbnail (float32): which frame it is survives another RGB converter's rounding."""
    h, w = frame.shape[0] // 8 * 8, frame.shape[1] // 8 * 8
    return frame[:h, :w].reshape(h // 8, 8, w // 8, 8, 3).mean(axis=(1, 3, 4), dtype=np.float32)


def reference_thumbnails(path):
    """Thumbnails of every frame of the plain sequential decode (`container.decode`, the decoder's output order)."""
    with av.open(path) as c:
        return np.stack([thumbnail(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)])


def wrong_frames(frames, indices, thumbs):
    """How many of `frames`, returned for `indices`, are not the sequential decode's frame at that index (clamped to
    the last): that frame must be the nearest of all the video's frames (ties: identical frames)."""
    wrong = 0
    for frame, i in zip(frames, indices):
        distance = np.abs(thumbs - thumbnail(np.asarray(frame))).mean(axis=(1, 2))
        wrong += bool(distance[min(i, len(thumbs) - 1)] > distance.min() + 1e-3)
    return wrong


def correctness(results, name, draws, thumbs):
    """'wrong frames of all frames asked / unreadable calls of all calls' for reader `name` over the rounds."""
    wrong = unreadable = 0
    for out, indices in zip(results, draws):
        if out[name] is None:
            unreadable += 1
        else:
            wrong += wrong_frames(out[name], indices, thumbs)
    return f"{wrong}/{sum(map(len, draws))} / {unreadable}/{len(draws)}"


def pts_equal_dts(src, dst):
    """A copy of `src` (MP4 with B-frames) whose packets say pts = dts, shifted to start at 0: a common muxer bug
    that leaves the frames in decode order for a reader that sorts by pts."""
    with av.open(src) as c, av.open(dst, "w") as out:
        s = c.streams.video[0]
        o = out.add_stream_from_template(s)
        packets = [p for p in c.demux(s) if p.size]
        for p in packets:
            p.pts = p.dts = p.dts - packets[0].dts
            p.stream = o
            out.mux(p)
    return dst


def awkward_table(files, repeats, peers, frames_per_clip=8):
    """Correctness and CPU ms of ours and the peers on awkward files: `repeats` random sparse sets of
    `frames_per_clip` indices per file, against the sequential decode."""
    readers = [("ours", guarded(ours))] + [(m, guarded(fn)) for m, fn in peers.items()]
    names = [m for m, _ in readers]
    print("| file | frames (sequential decode) | " + " | ".join(f"{m} ms" for m in names)
          + "".join(f" | {m}: wrong / unreadable" for m in names) + " |")
    print("|---|---|" + "---|" * (2 * len(names)))
    for title, path in files:
        thumbs = reference_thumbnails(path)
        rng = np.random.RandomState(len(thumbs))
        draws = [sorted(rng.choice(len(thumbs), frames_per_clip, replace=False).tolist()) for _ in range(repeats)]
        ms, _, results = interleaved({m: (lambda r, fn=fn: fn(path, draws[r])) for m, fn in readers}, repeats)
        print(f"| {title} | {len(thumbs)} | " + " | ".join(f"{ms[m]:.1f}" for m in names)
              + "".join(f" | {correctness(results, m, draws, thumbs)}" for m in names) + " |")


# ---------------------------------------------------------------------------------------------- loader
LOADER_MODES = [  # (name, frames per clip, sample(n, rng), transform)
    ("TSN sparse 8 (train offsets)", 8, lambda n, rng: segment_indices(n, 8, train=True, rng=rng),
     TrainTransform(224)),
    ("TSN sparse 16 (train offsets)", 16, lambda n, rng: segment_indices(n, 16, train=True, rng=rng),
     TrainTransform(224)),
    ("EAN: 8 segments x 5-frame snippets", 40, lambda n, rng: segment_indices(n, 8, snippet=5, train=True, rng=rng),
     TrainTransform(224)),
    ("ST-MANet: 32 frames at stride 2 (64-frame run)", 32, lambda n, rng: dense_indices(n, 32, 2, train=True, rng=rng),
     TrainTransform(112, crop="side")),
]


def write_jpeg_folder(video, folder):
    from PIL import Image  # Pillow's JPEG writer: byte-identical files to torchvision's write_jpeg (deprecated in 0.29)
    os.makedirs(folder, exist_ok=True)
    n = video_num_frames(video)
    frames, _ = read_video(video, list(range(n)))
    for i, frame in enumerate(frames, 1):
        rgb = frame.permute(1, 2, 0).numpy()                                 # (3,H,W) -> (H,W,3)
        Image.fromarray(rgb).save(os.path.join(folder, f"img_{i:05d}.jpg"), quality=75)
    return n


def loader_table(sources, repeats, clips_per_round=4):
    """sources: [(title, Record)]. Returns {(mode, source title): clips/s per worker}."""
    datasets = {(m, s): VideoDataset([rec], lambda n, k, rng, f=sample: f(n, rng), transform)
                for m, _, sample, transform in LOADER_MODES for s, rec in sources}

    def one(ds, r):
        for k in range(clips_per_round):
            ds._index_cache.clear()                                          # a video's first read in the worker
            clip, _, bad = ds[(0, 1000 * r + k)]
            assert not bad, bad
        return clip.shape

    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                                 # as in a DataLoader worker
    try:
        ms, _, results = interleaved({key: (lambda r, ds=ds: one(ds, r)) for key, ds in datasets.items()}, repeats)
    finally:
        torch.set_num_threads(threads)
    rate = {key: 1000 * clips_per_round / v for key, v in ms.items()}
    print("| sampling (train, one clip) | frames per clip | crop | " + " | ".join(s for s, _ in sources) + " |")
    print("|---|---|---|" + "---|" * len(sources))
    for m, frames, _, transform in LOADER_MODES:
        shape = results[0][(m, sources[0][0])]
        print(f"| {m} | {frames} | {transform.size} px, uint8 {tuple(shape)} | "
              + " | ".join(f"{rate[(m, s)]:.1f} clips/s ({1000 / rate[(m, s)]:.0f} ms)" for s, _ in sources) + " |")
    return rate


# ---------------------------------------------------------------------------------------------- step coverage
def coverage_table(rate, step_ms, batch, workers=(1, 2, 4, 8, 16), rows=None):
    """Share of the clips a training step consumes that N workers deliver: N * rate * step / batch (capped at
    100 %), and the workers needed to keep up."""
    need = batch / (step_ms / 1000)                                          # clips/s the step consumes
    print("| sampling | source | clips/s per worker | " + " | ".join(f"N={n}" for n in workers)
          + f" | workers to keep up ({need:.3g} clips/s) |")
    print("|---|---|---|" + "---|" * (len(workers) + 1))
    for (m, s), r in rate.items():
        if rows is not None and m not in rows:
            continue
        cells = [f"{min(100.0, 100 * n * r / need):.0f} %" for n in workers]
        print(f"| {m} | {s} | {r:.1f} | " + " | ".join(cells) + f" | {int(np.ceil(need / r))} |")


def cpu_step_ms(repeats=2, batch=1, frames=8, size=224):
    """Median ms of one TSN ResNet-50 training step (forward, backward, SGD) on the CPU, all torch threads."""
    model = torchvision.models.resnet50(num_classes=174)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch * frames, 3, size, size)
    y = torch.randint(174, (batch,))
    times = []
    for r in range(repeats + 1):                                             # first step: warm-up
        t0 = time.perf_counter()
        logits = model(x).view(batch, frames, -1).mean(1)                   # (B*T,K) -> (B,T,K) -> (B,K)
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if r:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def header(repeats, peers=False):
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    ffmpeg = ".".join(map(str, av.library_versions["libavcodec"]))
    command = f"python -m common.bench_decode --repeats {repeats}" + (" --peers" if peers else "")
    return (f"`{command}`: {datetime.date.today().isoformat()} {datetime.datetime.now():%H:%M}, {cpu_model()}, "
            f"{os.cpu_count()} cores, load average {load} (1/5/15 min); Python {platform.python_version()}, "
            f"torch {torch.__version__}, torchvision {torchvision.__version__}, PyAV {av.__version__} "
            f"(libavcodec {ffmpeg})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="rounds per measurement (medians are reported)")
    p.add_argument("--step-ms", type=float, default=200.0,
                   help="assumed GPU training step (ms) for the coverage table; measure yours with a script's --benchmark")
    p.add_argument("--batch", type=int, default=64, help="clips per training step (per GPU) for --step-ms")
    p.add_argument("--no-cpu-step", action="store_true", help="skip measuring a CPU training step")
    p.add_argument("--peers", action="store_true",
                   help="add the other readers that are installed (torchcodec, decord; benchmark only, never "
                        "dependencies) as columns, count their wrong frames, and compare all readers on awkward files")
    p.add_argument("--awkward", nargs="*", default=sorted(glob.glob(os.path.join(SAMPLES, "*.avi"))),
                   help="real awkward files for --peers (default: the packed-bitstream XviD clips in tests/data)")
    args = p.parse_args(argv)
    peers = peer_readers() if args.peers else {}
    print(header(args.repeats, args.peers) + (f", {peer_versions(peers)}" if peers else "") + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        videos = [("10 s, default GOP (few keyframes)", os.path.join(tmp, "few_key.mp4"), 10, None),
                  ("10 s, GOP 16 (short GOP)", os.path.join(tmp, "short_gop.mp4"), 10, 16),
                  ("60 s, default GOP", os.path.join(tmp, "long.mp4"), 60, None)]
        for _, path, seconds, gop in videos:
            make_video(path, seconds, gop)
        print("Decoding: median CPU ms per clip of TSN training offsets (process time, all threads; 'ours wall ms' "
              "is ours' wall time); every timed call of our strategies returned frames identical to "
              "'full (PyAV defaults)'" + ("; the other readers' wrong frames (not the sequential decode's frame at "
                                          "that index) and unreadable calls are counted" if peers else "") + ".\n")
        decode_table([(title, path) for title, path, _, _ in videos], args.repeats, peers)
        if peers:
            files = [("H.264 340x256, B-frames, pts = dts on every packet (the 10 s video remuxed)",
                      pts_equal_dts(videos[0][1], os.path.join(tmp, "pts_equal_dts.mp4")))]
            files += [(f"{os.path.basename(f)} (real XviD, packed B-frames)", f) for f in args.awkward]
            print(f"\nAwkward files: {args.repeats} random sets of 8 frames each, median CPU ms per clip; wrong frames "
                  "of all frames asked / unreadable calls of all calls, against the sequential decode.\n")
            awkward_table(files, args.repeats, peers)
        frames = os.path.join(tmp, "frames")
        n = write_jpeg_folder(videos[0][1], frames)
        sources = [("mp4, default GOP", Record(videos[0][1], 0)), ("mp4, GOP 16", Record(videos[1][1], 0)),
                   ("JPEG folder", Record(frames, 0, num_frames=n))]
        print("\nLoader, per worker (one process, one thread): sample + read + train crop of one clip of the "
              "10 s 340x256 video; clips/s = 1000 / median CPU ms per clip.\n")
        rate = loader_table(sources, args.repeats)
    print(f"\nStep coverage, ASSUMED step: {args.step_ms:g} ms per step of {args.batch} clips (--step-ms, --batch; "
          "not measured here). N workers deliver N x the per-worker rate (one free core per worker assumed); "
          "100 % = the loader keeps up.\n")
    coverage_table(rate, args.step_ms, args.batch)
    if not args.no_cpu_step:
        step = cpu_step_ms()
        print(f"\nStep coverage, MEASURED CPU step: TSN ResNet-50, 1 clip of 8 x 224, forward + backward + SGD, "
              f"{torch.get_num_threads()} threads: {step:.0f} ms (8-frame rows only).\n")
        coverage_table(rate, step, 1, rows={LOADER_MODES[0][0]})


if __name__ == "__main__":
    main()
