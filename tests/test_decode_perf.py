"""common.video's decode-less path (issue 8) and common.bench_decode's pieces, on small generated videos.

read_video decodes only reference frames and wanted frames (non-reference frames that are not wanted are skipped
with skip_frame="NONREF"), jumps over packets between decode runs and converts with one single-threaded converter;
the frames must stay exactly those of a full decode (`frame.to_ndarray(format="rgb24")` of every frame), on
H.264 with B-frames (B-pyramid), short and open GOPs, VP9 WebM, MPEG-4 Part 2 AVI and MPEG-2 with B-frames.
"""
import os

import av
import numpy as np
import pytest
import torch

from common import bench_decode, video
from common.data import Record
from common.sampling import dense_indices, segment_indices
from common.video import BadVideo, read_video
from reference import full_decode

N = 90  # frames per test video

VIDEOS = {  # file name: (codec, gop, max_b_frames, encoder options)
    "h264_bframes.mp4": ("libx264", None, None, None),          # x264 defaults: B-pyramid, non-reference B-frames
    "h264_gop8.mp4": ("libx264", 8, None, {"keyint_min": "8", "sc_threshold": "0"}),
    "h264_open_gop.mkv": ("libx264", None, None, {"x264-params": "open-gop=1:keyint=30:min-keyint=30:scenecut=0"}),
    "vp9.webm": ("libvpx-vp9", 30, None, None),                   # no B-frames; header says 0 frames
    "mpeg4_bframes.avi": ("mpeg4", 12, 2, None),
    "mpeg2_bframes.mpg": ("mpeg2video", 12, 2, None),
}


def write_video(path, codec, gop=None, max_b_frames=None, options=None, n=N, w=96, h=64):
    """Smooth moving content, so that encoders choose B-frames."""
    with av.open(path, "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if gop:
            s.codec_context.gop_size = gop
        if max_b_frames is not None:
            s.codec_context.max_b_frames = max_b_frames
        if options:
            s.options = options
        yy, xx = np.mgrid[0:h, 0:w]
        rng = np.random.RandomState(0)
        for i in range(n):
            a = np.stack([(2 * xx + i) % 256, (3 * yy) % 256, (xx + yy + 2 * i) % 256], -1).astype(np.float32)
            x = (3 * i) % (w - 16)
            a[20:36, x:x + 16] = 240                                       # a moving block
            a += rng.randn(h, w, 1) * 2
            for p in s.encode(av.VideoFrame.from_ndarray(np.clip(a, 0, 255).astype(np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    out = {}
    for name, (codec, gop, b, options) in VIDEOS.items():
        path = write_video(str(root / name), codec, gop, b, options)
        out[name] = (path, full_decode(path))
    return out


def index_sets(n, seed=0):
    rng = np.random.RandomState(seed)
    sets = [list(range(n)), [n - 1], [0], [n - 1, 0, n // 2, n // 2, n // 2 + 1], [n + 5, 3]]  # any order, repeats, past the end
    sets += [segment_indices(n, t, train=True, rng=rng) for t in (8, 16) for _ in range(4)]
    sets += [segment_indices(n, 8, train=False), segment_indices(n, 8, snippet=5, train=True, rng=rng)]
    sets += [dense_indices(n, 32, 2, train=True, rng=rng), dense_indices(n, 16, 2, train=False)]
    sets += [sorted(rng.choice(n, rng.randint(1, 10), replace=False)) for _ in range(8)]
    return [np.asarray(s).tolist() for s in sets]


def check_equal(frames, indices, reference):
    assert frames.dtype == torch.uint8 and frames.shape[0] == len(indices)
    for k, i in enumerate(indices):
        assert np.array_equal(frames[k].permute(1, 2, 0).numpy(), reference[min(i, len(reference) - 1)]), (k, i)


@pytest.mark.parametrize("name", list(VIDEOS))
def test_exact_frames_with_skipping(videos, name, monkeypatch):
    path, reference = videos[name]
    assert len(reference) == N
    index = None
    for indices in index_sets(N):
        frames, index = read_video(path, indices)                           # scan + packets kept in memory
        check_equal(frames, indices, reference)
        frames, _ = read_video(path, indices, index)                        # cached index: demux again
        check_equal(frames, indices, reference)
    monkeypatch.setattr(video, "KEEP_PACKET_BYTES", 1)                      # too large to keep: read twice
    for indices in index_sets(N, seed=1)[:8]:
        check_equal(read_video(path, indices)[0], indices, reference)
    frames, _ = read_video(path, lambda n: segment_indices(n, 8, train=False))  # indices from the true count
    check_equal(frames, segment_indices(N, 8, train=False).tolist(), reference)


def count_decoded(monkeypatch):
    """Frames that come out of the decoder (a skipped frame never does), per read_video call."""
    counts = []
    real_keep = video._keep

    def keep(decoded, *a):
        counts[-1] += len(decoded)
        return real_keep(decoded, *a)
    monkeypatch.setattr(video, "_keep", keep)
    return counts


@pytest.mark.parametrize("name", ["h264_bframes.mp4", "mpeg4_bframes.avi", "mpeg2_bframes.mpg"])
def test_only_reference_and_wanted_frames_are_decoded(videos, name, monkeypatch):
    path, reference = videos[name]
    with av.open(path) as c:
        s = c.streams.video[0]
        s.codec_context.skip_frame = "NONREF"
        references = sum(1 for _ in c.decode(s))
    assert references < N                                                   # the video has disposable frames
    counts = count_decoded(monkeypatch)
    for indices in ([N - 1], segment_indices(N, 8, train=False).tolist()):
        counts.append(0)
        frames, _ = read_video(path, indices)
        check_equal(frames, indices, reference)
        assert counts[-1] <= references + len(indices)                      # not every frame


def test_packets_between_runs_are_not_decoded(videos, monkeypatch):
    path, reference = videos["h264_gop8.mp4"]
    with av.open(path) as c:
        keys = video.VideoIndex.scan(c, c.streams.video[0]).keyframes
    assert len(keys) >= 4
    counts = count_decoded(monkeypatch)
    counts.append(0)
    indices = [1, keys[-1] + 1]
    frames, _ = read_video(path, indices)
    check_equal(frames, indices, reference)
    assert counts[-1] <= (keys[1] - 0) + (N - keys[-1])                   # first GOP, then only the last one


def test_one_decoder_thread_and_exact_converter(videos):
    path, reference = videos["h264_bframes.mp4"]
    container = video._open(path)
    try:
        assert container.streams.video[0].codec_context.thread_count == 1  # one thread per DataLoader worker
        rgb = av.video.reformatter.VideoReformatter()
        for k, frame in enumerate(container.decode(video=0)):
            assert np.array_equal(video.to_rgb(frame, rgb), reference[k])
    finally:
        container.close()


def test_plan_runs_joins_a_gop_and_jumps_past_unreached_keyframes(videos):
    path, _ = videos["h264_gop8.mp4"]
    with av.open(path) as c:
        index = video.VideoIndex.scan(c, c.streams.video[0])
    keys = index.keyframes
    assert [len(r[2]) for r in video.plan_runs(index, [1, 2, 3])] == [3]  # one GOP: one run
    runs = video.plan_runs(index, [1, keys[2] + 1])
    assert len(runs) == 2 and runs[0][0] == 0                             # a jump over the GOPs between
    assert runs[1][0] == index.decode_rank[keys[2]]                       # ... to the keyframe before the frame
    just_before = int(np.flatnonzero(index.decode_rank == index.decode_rank[keys[1]] - 1)[0])
    assert len(video.plan_runs(index, [just_before, keys[1] + 1])) == 1   # no packet between: go on


def test_bad_input_is_still_bad_video(tmp_path):
    good = write_video(str(tmp_path / "fast.mp4"), "libx264", options={"movflags": "faststart"})
    data = open(good, "rb").read()
    cut = tmp_path / "cut.mp4"                                             # index first, data cut short
    cut.write_bytes(data[: int(len(data) * 0.6)])
    corrupt = tmp_path / "corrupt.mp4"                                     # garbage inside the frame data
    rng = np.random.RandomState(0)
    middle = bytearray(data)
    middle[len(data) // 2: len(data) // 2 + 2000] = rng.randint(0, 256, 2000, dtype=np.uint8).tobytes()
    corrupt.write_bytes(bytes(middle))
    for path in (cut, corrupt):
        for indices in ([N - 1], segment_indices(N, 8, train=False).tolist(), list(range(N))):
            try:
                frames, _ = read_video(str(path), indices)
                assert frames.shape[0] == len(indices)                      # concealed or within what decodes
            except BadVideo as e:
                assert str(path) in str(e)                                  # reported, never another error
    avi = write_video(str(tmp_path / "v.avi"), "mpeg4", 12, 2)
    data = open(avi, "rb").read()
    open(avi, "wb").write(data[: len(data) // 3])
    try:
        frames, _ = read_video(avi, [N - 1])
        assert frames.shape[0] == 1
    except BadVideo:
        pass


def test_avi_whose_second_packet_is_a_keyframe(tmp_path):
    # AVI timestamps are packet counts; a seek to the first keyframe's pts (1) landed on the second keyframe
    # (dts 1), so the frames before it never decoded (the seeking read_video raised BadVideo here)
    path = str(tmp_path / "v.avi")
    with av.open(path, "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.gop_size, s.codec_context.max_b_frames = 12, 2
        rng = np.random.RandomState(60)
        for i in range(60):
            a = (rng.rand(48, 64, 3) * 60).astype(np.uint8)
            a[:, (2 * i) % 64:(2 * i) % 64 + 6, 1] = 250
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with av.open(path) as c:
        packets = [p for p in c.demux(video=0) if p.size]
    assert packets[0].is_keyframe and packets[1].is_keyframe and packets[1].dts == packets[0].pts
    reference = full_decode(path)
    for indices in ([0], [1], [0, 30, 59]):
        check_equal(read_video(path, indices)[0], indices, reference)


# ---------------------------------------------------------------------------------------------- bench_decode
def test_bench_strategies_return_the_same_frames(videos):
    path, reference = videos["h264_bframes.mp4"]
    indices = segment_indices(N, 8, train=True, rng=np.random.RandomState(0)).tolist()
    for fn in (bench_decode.full_defaults, bench_decode.full, bench_decode.forward, bench_decode.seek_each,
               bench_decode.ours):
        out = fn(path, indices)
        assert all(np.array_equal(a, reference[i]) for a, i in zip(out, indices)), fn.__name__


def test_bench_tables(videos, tmp_path, capsys):
    cpu, wall, results = bench_decode.interleaved({"a": lambda r: r, "b": lambda r: -r}, 3)
    assert set(cpu) == set(wall) == {"a", "b"} and [o["b"] for o in results] == [0, -1, -2]
    path, _ = videos["h264_bframes.mp4"]
    folder = str(tmp_path / "frames")
    n = bench_decode.write_jpeg_folder(path, folder)
    assert n == N and os.path.isfile(os.path.join(folder, f"img_{N:05d}.jpg"))
    sources = [("mp4", Record(path, 0)), ("JPEG folder", Record(folder, 0, num_frames=n))]
    rate = bench_decode.loader_table(sources, repeats=1, clips_per_round=1)
    assert len(rate) == len(bench_decode.LOADER_MODES) * 2 and all(r > 0 for r in rate.values())
    bench_decode.coverage_table(rate, step_ms=200, batch=64)
    out = capsys.readouterr().out
    assert "| TSN sparse 8 (train offsets) | 8 | 224 px, uint8 (8, 3, 224, 224) |" in out
    assert "(32, 3, 112, 112)" in out and out.count("| N=1 |") == 1 and "workers to keep up (320 clips/s)" in out
    assert len([line for line in out.splitlines() if line.startswith("| ST-MANet")]) == 1 + 2
    assert "bench_decode" in bench_decode.header(5) and "PyAV" in bench_decode.header(5)


def test_wrong_frames_counts_frames_not_at_their_index(videos):
    path, reference = videos["h264_bframes.mp4"]
    thumbs = bench_decode.reference_thumbnails(path)
    assert len(thumbs) == N
    indices = [3, 40, 41, 89, N + 2]                                        # past the end: the last frame
    right = [reference[min(i, N - 1)] for i in indices]
    assert bench_decode.wrong_frames(right, indices, thumbs) == 0
    rounded = [np.clip(f.astype(np.int16) + 1, 0, 255).astype(np.uint8) for f in right]  # another converter
    assert bench_decode.wrong_frames(rounded, indices, thumbs) == 0
    shifted = [reference[i - 1] for i in indices[:4]]                      # one off, as a decode-order reader
    assert bench_decode.wrong_frames(shifted, indices[:4], thumbs) == 4
    results = [{"r": right}, {"r": None}]                                  # a call that raised: unreadable
    assert bench_decode.correctness(results, "r", [indices, indices], thumbs) == "0/10 / 1/2"


def test_awkward_table_on_a_pts_equal_dts_copy(videos, tmp_path, capsys):
    path, reference = videos["h264_bframes.mp4"]
    bad = bench_decode.pts_equal_dts(path, str(tmp_path / "pts_dts.mp4"))
    with av.open(bad) as c:
        packets = [p for p in c.demux(video=0) if p.size]
    assert all(p.pts == p.dts for p in packets) and packets[0].pts == 0
    bench_decode.awkward_table([("pts = dts", bad)], repeats=2, peers={"broken": lambda p, indices: 1 / 0})
    out = capsys.readouterr().out
    assert "| pts = dts | 90 |" in out
    assert out.count("0/16 / 0/2") == 1 and "0/16 / 2/2" in out           # ours exact; the peer raises
