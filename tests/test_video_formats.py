"""common.video on real-world file kinds (issue 15): every case is built here from PyAV (or cut from a real sample
clip in tests/data), and every read is compared frame by frame with the plain sequential decode
(`container.decode`, the decoder's output order): 25 random sparse index sets per file, with and without a cached
index, and the frame count (`video_num_frames` == `decoded_frame_count` == frames of the full decode).

The awkward kinds: DivX/XviD packed B-frames (a P- and a B-VOP in one packet, then an N-VOP placeholder), stray
N-VOPs (dropped frames), H.264 whose pts equal their dts (muxer bug: decode order), missing, duplicate and
non-monotonic pts, an edit list that discards the first packets, variable frame rate, a last packet that fails
to decode (silently or with an error), trailing packets without a frame, headers that lie; and the ordinary ones: VP8/VP9 WebM, HEVC, MJPEG, MPEG-1/2.
"""
import os
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from common import bench_decode, video
from common.video import decoded_frame_count, read_video, video_num_frames
from reference import full_decode

N, W, H = 40, 64, 48
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
VOP = b"\x00\x00\x01\xb6"


# ---------------------------------------------------------------------------------------------- builders
def encode(path, codec, gop=12, max_b_frames=None, options=None, n=N, pix_fmt="yuv420p", times=None):
    """Smooth motion over noise (encoders choose B-frames); `times`: frame pts in ms (variable frame rate)."""
    with av.open(path, "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = W, H, pix_fmt
        s.codec_context.gop_size = gop
        if times is not None:
            s.codec_context.time_base = s.time_base = Fraction(1, 1000)
        if max_b_frames is not None:
            s.codec_context.max_b_frames = max_b_frames
        s.options = options or {}
        rng = np.random.RandomState(n)
        yy, xx = np.mgrid[0:H, 0:W]
        for i in range(n):
            a = np.stack([(2 * xx + i) % 256, (3 * yy) % 256, (xx + yy + 2 * i) % 256], -1).astype(np.float32)
            a[16:32, (3 * i) % (W - 12):(3 * i) % (W - 12) + 12] = 240          # a moving block
            frame = av.VideoFrame.from_ndarray(np.clip(a + rng.randn(H, W, 1) * 2, 0, 255).astype(np.uint8), "rgb24")
            if times is not None:
                frame.pts, frame.time_base = int(times[i]), Fraction(1, 1000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def packets_of(path):
    with av.open(path) as c:
        return [p for p in c.demux(video=0) if p.size]


def remux(src, dst, edit):
    """Copy the video packets of `src` into `dst`, through edit(packets) -> packets (timestamps changed there)."""
    with av.open(src) as c, av.open(dst, "w") as out:
        s = c.streams.video[0]
        o = out.add_stream_from_template(s)
        for p in edit([p for p in c.demux(s) if p.size]):
            p.stream = o
            out.mux(p)
    return dst


def write_packets(src, dst, chunks, tag=None):
    """An AVI of raw MPEG-4 chunks [(bytes, keyframe)] with the codec parameters of `src`; `tag` replaces the
    encoder's user data string (e.g. the DivX one that says 'packed')."""
    with av.open(src) as c:
        s = c.streams.video[0]
        extradata = s.codec_context.extradata
    fix = (lambda b: b) if tag is None else (lambda b: _retag(b, tag))
    with av.open(dst, "w") as out:
        o = out.add_stream("mpeg4", rate=25)
        o.width, o.height, o.pix_fmt = W, H, "yuv420p"
        o.codec_context.extradata = fix(extradata)
        for k, (data, key) in enumerate(chunks):
            p = av.Packet(fix(data))
            p.pts = p.dts = k
            p.is_keyframe = key
            p.stream = o
            out.mux(p)
    return dst


def _retag(data, tag):
    """Replace the user data string (start code 0x1B2) that follows the VOL header."""
    at = data.find(b"\x00\x00\x01\xb2")
    if at < 0:
        return data
    end = data.find(b"\x00\x00\x01", at + 4)
    return data[:at + 4] + tag + data[end if end >= 0 else len(data):]


def vop_type(data):
    return "IPBS"[data[data.find(VOP) + 4] >> 6]


def n_vop(b_vop):
    """An N-VOP (vop_coded = 0) with the time stamp of `b_vop`: a DivX placeholder, or an XviD dropped frame.
    FFmpeg writes vop_time_increment_resolution 25 at 25 fps: a 5-bit vop_time_increment."""
    at = b_vop.find(VOP) + 4
    bits = "".join(f"{b:08b}" for b in b_vop[at:at + 6])
    end = bits.index("0", 2)                                       # modulo_time_base: ones, then a zero
    head = "01" + bits[2:end + 1 + 1 + 5 + 1] + "0"                # P type, time, marker, vop_coded = 0
    head += "0" + "1" * (-(len(head) + 1) % 8)                     # stuffing to the byte
    return VOP + int(head, 2).to_bytes(len(head) // 8, "big")


def divx_packed(src, dst):
    """DivX/XviD packed bitstream: each I/P-VOP shares its packet with the first B-VOP after it, every other B
    moves one packet earlier, and an N-VOP fills the slot left at the end of the B-run (same packet count)."""
    data = [(bytes(p), p.is_keyframe) for p in packets_of(src)]
    chunks, k = [], 0
    while k < len(data):
        run = k + 1
        while run < len(data) and vop_type(data[run][0]) == "B":
            run += 1
        bs = [d for d, _ in data[k + 1:run]]
        chunks.append((data[k][0] + bs[0], data[k][1]) if bs else data[k])
        chunks += [(b, False) for b in bs[1:]] + ([(n_vop(bs[-1]), False)] if bs else [])
        k = run
    return write_packets(src, dst, chunks, tag=b"DivX503b1393p")


def with_dropped_frames(src, dst):
    """XviD's dropped frames: an N-VOP after every 7th packet (the decoder puts out no frame for it)."""
    chunks = []
    for k, p in enumerate(packets_of(src)):
        chunks.append((bytes(p), p.is_keyframe))
        if k % 7 == 6:
            chunks.append((n_vop(bytes(p)), False))
    return write_packets(src, dst, chunks)


def corrupt_last_packet(src, dst, how):
    def edit(packets):
        last = packets[-1]
        data = bytes(last)
        data = {"garbage": np.random.RandomState(0).randint(0, 256, len(data), dtype=np.uint8).tobytes(),
                "truncated": data[:len(data) // 3], "zeros": bytes(len(data))}[how]
        p = av.Packet(data)
        p.pts, p.dts, p.time_base = last.pts, last.dts, last.time_base
        return packets[:-1] + [p]
    return remux(src, dst, edit)


def end_of_sequence_packets(packets, extra=3):
    """`extra` packets holding only an H.264 end-of-sequence NAL unit after the last frame: listed as frames by the
    container, none by the decoder."""
    last = packets[-1]
    for k in range(1, extra + 1):
        p = av.Packet(b"\x00\x00\x00\x01\x0a")                          # length-prefixed NAL, type 10
        p.time_base, p.duration = last.time_base, last.duration
        p.pts = p.dts = max(q.pts for q in packets) + k * last.duration
        packets.append(p)
    return packets


def avi_header_lies(src, dst, factor=3):
    """Multiply the AVI header's frame counts (avih dwTotalFrames, strh dwLength)."""
    data = bytearray(open(src, "rb").read())
    for tag, offset in ((b"avih", 8 + 16), (b"strh", 8 + 32)):
        at = data.find(tag)
        count = int.from_bytes(data[at + offset:at + offset + 4], "little")
        data[at + offset:at + offset + 4] = (count * factor).to_bytes(4, "little")
    open(dst, "wb").write(bytes(data))
    return dst


def set_pts(fn):
    """An edit that sets every packet's pts (and dts where given) from fn(k, packet) -> (pts, dts)."""
    def edit(packets):
        for k, p in enumerate(packets):
            p.pts, dts = fn(k, p)
            if dts is not None:
                p.dts = dts
        return packets
    return edit


def duplicate_pts(packets):
    """Every 5th packet takes the pts of the packet shown next after its dts (pts >= dts stays true)."""
    for k in range(4, len(packets), 5):
        p = packets[k]
        p.pts = min(q.pts for q in packets if q is not p and q.pts >= p.dts)
    return packets


def swap_pts(packets):
    """pts two frames later than dts, with every 4th pair of neighbours swapped (no B-frames: still shown in
    decode order)."""
    step = packets[1].dts - packets[0].dts
    for k, p in enumerate(packets):
        p.pts = p.dts + 2 * step + (step if k % 4 == 1 else -step if k % 4 == 2 else 0)
    return packets


def build(name, tmp):
    """The file of case `name` in folder `tmp` (built once); its reference frames and skip_errors flag."""
    path = os.path.join(tmp, name)
    h264 = lambda: encode(os.path.join(tmp, "h264_b.mp4"), "libx264")                           # B-pyramid
    h264_no_b = lambda: encode(os.path.join(tmp, "h264_no_b.mp4"), "libx264", max_b_frames=0)
    mpeg4 = lambda b: encode(os.path.join(tmp, f"mpeg4_{b}b.avi"), "mpeg4", max_b_frames=b)
    builders = {
        "h264_pts_eq_dts.mp4": lambda: bench_decode.pts_equal_dts(h264(), path),
        "h264_pts_eq_dts_edit_list.mp4": lambda: remux(h264(), path, set_pts(lambda k, p: (p.dts, None))),
        "h264_pts_missing.ts": lambda: remux(h264(), path, set_pts(lambda k, p: (None if k % 3 == 2 else p.pts, None))),
        "h264_annexb_no_pts.h264": lambda: encode(path, "libx264", gop=12),
        "h264_pts_duplicate.ts": lambda: remux(h264(), path, duplicate_pts),
        "h264_pts_not_monotonic.mp4": lambda: remux(h264_no_b(), path, swap_pts),
        "vp8_pts_not_monotonic.mkv": lambda: remux(encode(os.path.join(tmp, "vp8.webm"), "libvpx"), path, swap_pts),
        "h264_vfr.mkv": lambda: encode(path, "libx264", gop=250, times=list(np.cumsum([0] + [20, 40, 33, 80] * N)[:N])),
        "mpeg4_packed_1b.avi": lambda: divx_packed(mpeg4(1), path),
        "mpeg4_packed_2b.avi": lambda: divx_packed(mpeg4(2), path),
        "mpeg4_dropped_frames.avi": lambda: with_dropped_frames(mpeg4(0), path),
        "mpeg4_2b.avi": lambda: mpeg4(2),
        "vp8_altref.webm": lambda: encode(path, "libvpx", options={"auto-alt-ref": "1", "lag-in-frames": "16"}),
        "vp9.webm": lambda: encode(path, "libvpx-vp9", options={"auto-alt-ref": "1", "lag-in-frames": "16"}),
        "hevc.mp4": lambda: encode(path, "libx265", options={"x265-params": "log-level=error"}),
        "mjpeg.avi": lambda: encode(path, "mjpeg", pix_fmt="yuvj420p"),
        "mpeg1.mpg": lambda: encode(path, "mpeg1video", max_b_frames=2),
        "mpeg2.ts": lambda: encode(path, "mpeg2video", max_b_frames=2),
        "last_packet_truncated_mpeg4.avi": lambda: corrupt_last_packet(mpeg4(2), path, "truncated"),
        "last_packet_zeros_vp9.webm": lambda: corrupt_last_packet(
            encode(os.path.join(tmp, "vp9_plain.webm"), "libvpx-vp9"), path, "zeros"),
        "last_packet_garbage_h264.mp4": lambda: corrupt_last_packet(h264(), path, "garbage"),
        "last_packets_end_of_sequence_h264.mp4": lambda: remux(h264(), path, end_of_sequence_packets),
        "header_lies.avi": lambda: avi_header_lies(mpeg4(2), path),
    }
    if name.startswith("real/"):
        path = os.path.join(DATA, name[len("real/"):])
    elif not os.path.exists(path):
        builders[name]()
    skip_errors = name.startswith("last_packet")                   # the decoder may reject that packet
    return path, full_decode(path, skip_errors=skip_errors)


# ---------------------------------------------------------------------------------------------- tests
REAL = sorted(f"real/{f}" for f in os.listdir(DATA) if f.endswith(".avi"))   # tests/data: real sample clips
CASES = ["h264_pts_eq_dts.mp4", "h264_pts_eq_dts_edit_list.mp4", "h264_pts_missing.ts", "h264_annexb_no_pts.h264",
         "h264_pts_duplicate.ts", "h264_pts_not_monotonic.mp4", "vp8_pts_not_monotonic.mkv",
         "h264_vfr.mkv", "mpeg4_packed_1b.avi",
         "mpeg4_packed_2b.avi", "mpeg4_dropped_frames.avi", "mpeg4_2b.avi", "vp8_altref.webm", "vp9.webm",
         "hevc.mp4", "mjpeg.avi", "mpeg1.mpg", "mpeg2.ts", "last_packet_truncated_mpeg4.avi",
         "last_packet_zeros_vp9.webm", "last_packet_garbage_h264.mp4", "last_packets_end_of_sequence_h264.mp4",
         "header_lies.avi"] + REAL


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return str(tmp_path_factory.mktemp("formats"))


def check_equal(frames, indices, reference, name):
    assert frames.dtype == torch.uint8 and frames.shape[0] == len(indices)
    for k, i in enumerate(indices):
        expected = reference[min(i, len(reference) - 1)]
        assert np.array_equal(frames[k].permute(1, 2, 0).numpy(), expected), f"{name}: frame {i} ({k}-th asked)"


def sparse_sets(n, seed, count=25):
    """Random sparse index sets: 1-8 positions, any order, repeats, sometimes one past the end."""
    rng = np.random.RandomState(seed)
    sets = []
    for _ in range(count):
        s = rng.randint(0, n, rng.randint(1, 9)).tolist()
        if rng.rand() < 0.2:
            s.append(n + int(rng.randint(0, 3)))                       # clamped to the last frame
        sets.append(s)
    return sets


@pytest.mark.parametrize("name", CASES)
def test_frames_equal_the_sequential_decode(folder, name):
    if name == "hevc.mp4" and "libx265" not in av.codecs_available:
        pytest.skip("PyAV's FFmpeg has no libx265 encoder")
    path, reference = build(name, folder)
    n = len(reference)
    assert n >= 20
    assert video_num_frames(path) == decoded_frame_count(path) == n, name
    index = None
    for k, indices in enumerate(sparse_sets(n, seed=len(name))):
        frames, fresh = read_video(path, indices)                           # demux pass, packets kept
        check_equal(frames, indices, reference, name)
        frames, index = read_video(path, indices, index)                    # cached index: demuxed again
        check_equal(frames, indices, reference, name)
        assert len(fresh) >= n and len(index) >= n                          # a dead last packet: left out once read
    frames, index = read_video(path, list(range(n + 2)))                   # every frame, then past the end
    check_equal(frames, list(range(n + 2)), reference, name)
    assert len(index) == n                                                  # the true end found on the way
    frames, _ = read_video(path, lambda count: [0, count // 2, count - 1])  # indices from the true count
    check_equal(frames, [0, n // 2, n - 1], reference, name)


@pytest.mark.parametrize("name,mode", [
    ("mpeg4_packed_2b.avi", "packet"), ("real/xvid_packed_megamind_cut.avi", "packet"), ("mpeg4_dropped_frames.avi",
    "packet"), ("vp8_pts_not_monotonic.mkv", "packet"), ("h264_pts_eq_dts.mp4", "count"),
    ("h264_pts_not_monotonic.mp4", "count"), ("h264_annexb_no_pts.h264", "count"), ("h264_pts_duplicate.ts", "count")])
def test_falls_back_only_as_far_as_needed(folder, name, mode, monkeypatch):
    """Packed MPEG-4 keeps the fast path (packet mode: B-VOPs that are not wanted are skipped); timestamps that
    cannot give the display order fall back to counting from keyframes, not to a decode from the start."""
    path, reference = build(name, folder)
    n = len(reference)
    index = read_video(path, [0])[1]
    assert index.mode == mode and len(index.keyframes) > 1
    counts, real_decode = [], video._decode

    def counting(codec, packet):
        frames = real_decode(codec, packet)
        counts.append(len(frames))
        return frames
    monkeypatch.setattr(video, "_decode", counting)
    keys = index.keyframes[1:] + [n]
    start, end = max(zip(keys, keys[1:]), key=lambda pair: pair[1] - pair[0])  # the longest group after the first
    wanted = (start + end) // 2
    frames, index = read_video(path, [wanted], index)                       # cached index
    check_equal(frames, [wanted], reference, name)
    if "packed" in name:                                                   # B-VOPs that are not wanted: skipped
        assert sum(counts) < wanted - start + 1
    else:                                                                  # all from the keyframe, none before it
        assert wanted - start + 1 <= sum(counts) <= wanted
