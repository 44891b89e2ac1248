"""python -m common.check: each planted problem of a generated dataset found by path and reason, healthy awkward
videos not reported, --fix (keeps a readable video whose header promises more), a clean pass; cut WebM/MKV and
fragmented MP4 files found by their header's duration, healthy ones (variable frame rate, audio) not."""
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch

from common import check
from common.check import _spread, check_sample, main
from common.prepare import write_dataset_info
from common.video import BadVideo, decoded_frame_count, read_video, video_num_frames
from test_common import write_jpeg, write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_frames(folder, n, template="img_{:05d}.jpg", start=1, skip=()):
    os.makedirs(folder)
    g = torch.Generator().manual_seed(n)
    for i in range(n):
        if i not in skip:
            write_jpeg(torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8, generator=g),
                       os.path.join(folder, template.format(i + start)))


def eos_packet(like, stream):
    """A packet holding only an H.264 end-of-sequence NAL unit (length-prefixed, type 10), timed as `like`: the
    container counts it as a sample, a decoder yields no frame for it."""
    packet = av.Packet(b"\x00\x00\x00\x01\x0a")
    packet.stream, packet.time_base, packet.duration = stream, like.time_base, like.duration
    packet.pts, packet.dts = like.pts, like.dts
    return packet


def remux(src, dst, edit=lambda k, packet, stream: [packet]):
    """`src`'s video packets into `dst`, each replaced by edit(number, packet, output stream) (a list of packets)."""
    with av.open(src) as i, av.open(dst, "w") as o:
        stream = o.add_stream_from_template(i.streams.video[0])
        for k, packet in enumerate(p for p in i.demux(video=0) if p.size):
            packet.stream = stream
            for out in edit(k, packet, stream):
                o.mux(out)
    return dst


def write_trailing_video(src, dst, extra=3):
    """`src` plus `extra` end-of-sequence packets after its last frame: the header counts them as frames, a full
    decode yields no frame for them. A healthy file (the frame count is what a full decode yields)."""
    with av.open(src) as i, av.open(dst, "w") as o:
        stream = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(video=0):
            if packet.size:
                last, packet.stream = packet, stream
                o.mux(packet)
        for k in range(1, extra + 1):
            packet = eos_packet(last, stream)
            packet.pts = packet.dts = last.pts + k * last.duration
            o.mux(packet)
    return dst


def write_edited_video(src, dst, discard=3):
    """`src` with every timestamp `discard` frames earlier: the MP4 muxer writes an edit list that starts at 0, so
    the first `discard` samples are in the file and in its header's count but are never shown. A healthy file."""
    def edit(k, packet, stream):
        packet.pts, packet.dts = packet.pts - discard * packet.duration, packet.dts - discard * packet.duration
        return [packet]
    return remux(src, dst, edit)


def write_dropped_video(path, n=20):
    """An MPEG-4 AVI with a dropped frame, as capture tools and mencoder write one: a zero-size chunk, which the
    header counts and the demuxer does not deliver (a packet fewer than promised, the time still covered). Healthy."""
    src = write_video(path + ".src.avi", n=n, gop=8, codec="mpeg4")
    with av.open(src) as c:
        keys = [k for k, p in enumerate(p for p in c.demux(video=0) if p.size) if p.is_keyframe]

    def edit(k, packet, stream):
        if k != keys[2] - 1:  # the last frame of a group: no frame refers to it
            return [packet]
        empty = av.Packet(0)
        empty.stream, empty.time_base, empty.duration = stream, packet.time_base, packet.duration
        empty.pts, empty.dts = packet.pts, packet.dts
        return [empty]
    remux(src, path, edit)
    os.remove(src)
    return path


def write_hole_video(path, n=40):
    """An H.264 MP4 (no B-frames) with one P-frame in the middle replaced by an end-of-sequence packet, in a group
    that the check's spread read does not decode: the demux pass counts n frames, a full decode n - 1."""
    src = write_video(path + ".src.mp4", n=n, gop=8)
    with av.open(src) as c:
        keys = [k for k, p in enumerate(p for p in c.demux(video=0) if p.size) if p.is_keyframe]
    read = {k for f in _spread(n) for k in range(max(key for key in keys if key <= f), f + 1)}
    # the last P-frame of a group that no other frame refers to, after the second keyframe (a reader may take
    # frames lost before it for a cut stream's start)
    hole = min(key - 1 for key in keys[2:] if key - 1 not in read)
    remux(src, path, lambda k, packet, stream: [eos_packet(packet, stream) if k == hole else packet])
    os.remove(src)
    return path


def cut(src, dst, at):
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data[:at])
    return dst


def atom(path, name):
    """Byte offset of the first MP4 atom `name` (its size field)."""
    with open(path, "rb") as f:
        at = f.read().find(name.encode())
    assert at >= 4
    return at - 4


def write_lists(root, classes, **splits):
    os.makedirs(root, exist_ok=True)
    for name, lines in {"classes": classes, **splits}.items():
        with open(os.path.join(root, f"{name}.txt"), "w") as f:
            f.write("".join(line + "\n" for line in lines))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A dataset with one planted problem per sample (named in the file names), good samples, and healthy videos
    that an older reader or a naive header check got wrong (trailing, edited, clip.webm)."""
    root = str(tmp_path_factory.mktemp("planted"))
    v = os.path.join(root, "videos")
    os.makedirs(v)
    for k in range(4):
        write_video(os.path.join(v, f"v{k}.mp4"), n=20 + k, gop=8)
    shutil.copyfile(os.path.join(v, "v1.mp4"), os.path.join(v, "copy.mp4"))
    # a faststart MP4 (header first) cut in the middle of its 13th packet: reads as 12 frames, header says 20
    whole = write_video(os.path.join(v, "whole.mp4"), n=20, gop=8, faststart=True)
    with av.open(whole) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    cut(whole, os.path.join(v, "truncated.mp4"), packets[12][0] + packets[12][1] // 2)
    # unreadable: an MP4 whose index (moov, at its end) is missing, one cut inside its header before the sample tables
    plain = write_video(os.path.join(v, "plain.mp4"), n=20, gop=8)
    cut(plain, os.path.join(v, "nomoov.mp4"), atom(plain, "moov"))
    cut(whole, os.path.join(v, "cutheader.mp4"), atom(whole, "stts"))
    open(os.path.join(v, "empty.mp4"), "wb").close()
    write_trailing_video(os.path.join(v, "v0.mp4"), os.path.join(v, "trailing.mp4"))
    write_edited_video(os.path.join(v, "v0.mp4"), os.path.join(v, "edited.mp4"))
    write_video(os.path.join(v, "clip.webm"), n=20, gop=8, codec="libvpx")
    write_hole_video(os.path.join(v, "hole.mp4"))
    write_dropped_video(os.path.join(v, "dropped.avi"))
    write_frames(os.path.join(root, "frames", "whole"), 20)
    write_frames(os.path.join(root, "frames", "short"), 20, skip=(7,))
    write_frames(os.path.join(root, "frames", "long"), 21)
    write_lists(root, ["a", "b", "c", "d"],
                train=["videos/v0.mp4 0", "videos/v1.mp4 1", "videos/v2.mp4 2", "videos/truncated.mp4 0",
                       "videos/nomoov.mp4 1", "videos/cutheader.mp4 2", "videos/empty.mp4 1", "videos/missing.mp4 2",
                       "videos/trailing.mp4 0", "videos/edited.mp4 1", "videos/clip.webm 2", "videos/hole.mp4 0",
                       "videos/dropped.avi 1", "frames/short 20 1", "frames/long 20 2", "frames/whole 20 2"],
                val=["videos/v0.mp4 0", "videos/copy.mp4 1", "videos/v3.mp4 3"])  # class d: no training sample
    return root


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, json.loads(out.out.strip().splitlines()[-1])


def report(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f]


def header_count(path):
    with av.open(path) as c:
        return c.streams.video[0].frames


def test_planted_videos_are_what_their_names_say(planted):
    """The premises: what each planted video's header promises, what the reader and a full decode count."""
    def counts(name):
        path = os.path.join(planted, "videos", name)
        return header_count(path), video_num_frames(path), decoded_frame_count(path)
    assert counts("truncated.mp4") == (20, 12, 12)   # readable, cut: the header promises 20
    assert counts("trailing.mp4") == (23, 20, 20)    # healthy: 3 packets that yield no frame
    assert counts("edited.mp4") == (20, 17, 17)      # healthy: 3 samples before the edit list's start
    assert counts("clip.webm") == (0, 20, 20)        # healthy: no frame count in a WebM header
    assert counts("hole.mp4") == (40, 40, 39)        # corrupt in the middle: only a full decode shows it
    assert counts("dropped.avi") == (20, 19, 19)     # healthy: the header counts the dropped frame
    read_video(os.path.join(planted, "videos", "hole.mp4"), _spread)  # ... the check's spread read does not
    for name in ("nomoov.mp4", "cutheader.mp4", "empty.mp4", "missing.mp4"):
        with pytest.raises(BadVideo):
            read_video(os.path.join(planted, "videos", name), _spread)


def test_check_finds_each_planted_problem(planted, capsys):
    code, out, counts = run(capsys, planted, "--full", "--workers", "2")
    assert code == 1
    found = {}
    for path, reason in report(os.path.join(planted, "check_bad.txt")):
        found.setdefault(path, []).append(reason)
    assert found.pop("videos/truncated.mp4") == ["header_mismatch: the header promises 20 frames (0.80 s), the file "
                                                 "holds 13 of them (up to 0.52 s), a full decode gives 12 (cut file?) "
                                                 "(train.txt:4)"]
    (nomoov,) = found.pop("videos/nomoov.mp4")
    assert nomoov.startswith("unreadable: cannot open (") and nomoov.endswith(") (train.txt:5)")
    assert found.pop("videos/cutheader.mp4") == ["unreadable: no frames (train.txt:6)"]
    assert found.pop("videos/empty.mp4") == ["unreadable: zero-length file (train.txt:7)"]
    assert found.pop("videos/missing.mp4") == ["unreadable: file not found (train.txt:8)"]
    assert found.pop("videos/hole.mp4") == ["count_mismatch: 40 frames by the demux pass, 39 by a full decode "
                                            "(train.txt:12)"]
    assert found.pop("frames/short") == ["short_folder: 1 of 20 listed frames missing (first: img_00008.jpg) "
                                         "(train.txt:14)"]
    assert found.pop("frames/long") == ["count_mismatch: more frames than the 20 listed (img_00021.jpg exists) "
                                        "(train.txt:15)"]
    assert found.pop("videos/v0.mp4") == ["overlap: also listed in train (train.txt:1) (val.txt:1)"]
    (dup,) = found.pop("videos/copy.mp4")
    assert dup.startswith("duplicate: same content (sha1 ") and dup.endswith("as videos/v1.mp4 in train (val.txt:2)")
    assert found == {}  # v1, v2, v3, trailing, edited, clip.webm, dropped.avi and frames/whole are fine
    assert "classes with no training sample: 1 (3 'd')" in out
    assert ("headers compared (header vs the packets in the file): 11 of 11 readable videos (10 by frame count, 1 by "
            "duration: WebM/MKV, fragmented MP4)\n") in out
    assert counts["splits"] == {
        "train": {"samples": 16, "unreadable": 4, "header_mismatch": 1, "count_mismatch": 2, "short_folder": 1,
                  "overlap": 0, "duplicate": 0},
        "val": {"samples": 3, "unreadable": 0, "header_mismatch": 0, "count_mismatch": 0, "short_folder": 0,
                "overlap": 1, "duplicate": 1}}
    assert (counts["empty_classes"], counts["counts_compared"]) == (1, 15)  # every listed video file
    assert (counts["headers_compared"], counts["headers_by_duration"], counts["headers_not_compared"]) == (11, 1, 0)
    assert counts["problems"] == 4 + 1 + 2 + 1 + 1 + 1 + 1


def test_fix_writes_clean_lists_and_keeps_the_originals(planted, capsys, tmp_path):
    lists = {name: open(os.path.join(planted, name)).read() for name in ("train.txt", "val.txt", "classes.txt")}
    report_path = str(tmp_path / "bad.txt")
    code, out, counts = run(capsys, planted, "--fix", "--sample", "0", "--workers", "1", "--report", report_path)
    # without frame counts compared: the header check still runs on every readable video; hole.mp4 is not found
    assert (code, counts["counts_compared"], counts["headers_compared"]) == (1, 0, 11)
    assert ["videos/truncated.mp4", "header_mismatch: the header promises 20 frames (0.80 s), the file holds 13 of "
            "them (up to 0.52 s), the reader counts 12 (cut file?) (train.txt:4)"] in report(report_path)
    assert counts["removed"] == {"train": 6, "val": 2} and counts["kept"] == {"train": 1, "val": 0}
    assert ("cleaned lists: train.clean.txt (6 of 16 removed), val.clean.txt (2 of 3 removed); kept 1 with a "
            "problem: header_mismatch only") in out
    assert {name: open(os.path.join(planted, name)).read() for name in lists} == lists
    with open(os.path.join(planted, "train.clean.txt")) as f:
        train = f.read().splitlines()
    assert train == ["videos/v0.mp4 0", "videos/v1.mp4 1", "videos/v2.mp4 2", "videos/truncated.mp4 0",
                     "videos/trailing.mp4 0", "videos/edited.mp4 1", "videos/clip.webm 2", "videos/hole.mp4 0",
                     "videos/dropped.avi 1", "frames/whole 20 2"]
    with open(os.path.join(planted, "val.clean.txt")) as f:
        assert f.read() == "videos/v3.mp4 3\n"
    # the cleaned lists, checked in full: the kept cut file, the hole that only a full decode finds and the class
    # without a training sample, which no list edit can fix; --fix then removes the hole and keeps the cut file
    clean = tmp_path / "clean"
    for name in ("videos", "frames"):
        os.makedirs(clean, exist_ok=True)
        os.symlink(os.path.join(planted, name), clean / name)
    write_lists(str(clean), ["a", "b", "c", "d"], train=train, val=["videos/v3.mp4 3"])
    code, out, counts = run(capsys, str(clean), "--full", "--fix", "--workers", "1")
    assert (code, counts["problems"], counts["empty_classes"]) == (1, 3, 1)
    assert [line[0] for line in report(clean / "check_bad.txt")] == ["videos/truncated.mp4", "videos/hole.mp4"]
    assert (counts["removed"], counts["kept"]) == ({"train": 1, "val": 0}, {"train": 1, "val": 0})


T = 2  # ticks a frame in the fake container of test_header_shortfall_rule (5 frames promised)


@pytest.mark.parametrize("packets,duration,short,start", [
    ([(1, 0), (1, T), (1, 2 * T)], 5 * T, True, 0),           # packets missing, and they end 2 frames early: cut
    ([(1, k * T) for k in range(4)], 5 * T, True, 0),         # the last frame missing: cut
    ([(1, k * T) for k in (0, 1, 3, 4)], 5 * T, False, 0),    # a packet missing, its time covered: a dropped frame
    ([(1, k * T) for k in (0, 1, 2, 2, 2)], 5 * T, False, 0),  # every packet there, stamps end early: no cut
    ([(1, k * T) for k in range(3)] + [(1, 3 * T, T + 1)], 5 * T, False, 0),  # less than a frame short: rounding
    ([(1, None), (1, None)], 5 * T, True, 0),                 # no timestamps: the packet count decides
    ([(1, None)] * 5, 5 * T, False, 0),
    ([(1, 0), (1, T), (1, 2 * T)], None, True, 0),            # no duration in the header: the packet count decides
    ([(1, k * T) for k in range(4)] + [(0, None)], 5 * T, True, 0),  # the demuxer's flush packet is no sample
    ([(1, 30 * T + k * T) for k in range(3)], 5 * T, True, 30 * T),  # starts late (empty edit), cut
    ([(1, 30 * T + k * T) for k in range(5)], 5 * T, False, 30 * T),  # starts late, whole
])
def test_header_shortfall_rule(monkeypatch, packets, duration, short, start):
    """`header_shortfall` on a fake container promising 5 frames (no muxer writes the guard cases): short only when
    packets are missing and, where timestamps tell, a frame's time or more is missing too."""
    class Packet:
        def __init__(self, size, t, ticks=T):
            self.size, self.pts, self.dts, self.duration = size, t, t, ticks if t is not None else 0

    class Container:
        streams = SimpleNamespace(video=[SimpleNamespace(frames=5, duration=duration, start_time=start,
                                                         time_base=Fraction(1, 25 * T))])

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def demux(self, stream):
            return iter([Packet(*p) for p in packets])
    monkeypatch.setattr(check.av, "open", lambda path: Container())
    assert check.header_shortfall("fake.mp4")[4] is short


def test_video_without_codec_is_reported_unreadable(tmp_path):
    """An MP4 cut inside its header after the track's handler, before its sample description: a video stream with
    no codec. The check names it as unreadable whatever the reader raises."""
    whole = write_video(str(tmp_path / "whole.mp4"), n=20, gop=8, faststart=True)
    path = cut(whole, str(tmp_path / "nocodec.mp4"), atom(whole, "stsd"))
    path_, found, digest, header = check_sample((path, None, "img_{:05d}.jpg", 1, True))
    assert (path_, [kind for kind, _ in found], header) == (path, ["unreadable"], None)


def test_reader_raises_badvideo_on_a_video_stream_without_codec(tmp_path):
    whole = write_video(str(tmp_path / "whole.mp4"), n=20, gop=8, faststart=True)
    path = cut(whole, str(tmp_path / "nocodec.mp4"), atom(whole, "stsd"))
    with pytest.raises(BadVideo):
        read_video(path, [0])


def test_clean_dataset_passes(tmp_path):
    """The command line on a clean dataset whose frame folders follow dataset.json (SSv1 style: 00001.jpg)."""
    root = str(tmp_path)
    os.makedirs(tmp_path / "videos")
    for k in range(3):
        write_video(str(tmp_path / "videos" / f"v{k}.mp4"), n=20 + k, gop=8)
    write_frames(str(tmp_path / "frames" / "f0"), 12, template="{:05d}.jpg")
    write_lists(root, ["a", "b"], train=["videos/v0.mp4 0", "frames/f0 12 1"], val=["videos/v1.mp4 1"],
                test=["videos/v2.mp4 0"])
    write_dataset_info(root, "test", frame_template="{:05d}.jpg")
    done = subprocess.run([sys.executable, "-m", "common.check", root, "--sample", "2", "--workers", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert (counts["problems"], counts["counts_compared"], counts["splits"]["test"]["samples"]) == (0, 2, 1)
    assert "checking" in done.stderr and "4/4" in done.stderr  # the progress bar
    assert open(tmp_path / "check_bad.txt").read() == ""
    # the same folder with the default template is empty
    assert main([root, "--frame-template", "img_{:05d}.jpg", "--sample", "0", "--workers", "1"]) == 1
    assert report(tmp_path / "check_bad.txt") == [["frames/f0", "short_folder: empty: none of the 12 listed frames "
                                                   "(img_00001.jpg ...) exists; frame template 'img_{:05d}.jpg', "
                                                   "start 1 (train.txt:2)"]]


@pytest.mark.parametrize("line,message", [("videos/v0.mp4 7", "train.txt:2: label 7 out of range [0, 2)"),
                                          ("videos/v0.mp4", "train.txt:2: expected 'RELPATH LABEL'"),
                                          ("v0.mp4 x", "train.txt:2: label 'x' is not an integer")])
def test_unparsable_list_stops_with_one_line(tmp_path, capsys, line, message):
    write_lists(str(tmp_path), ["a", "b"], train=["videos/v1.mp4 0", line], val=["videos/v1.mp4 1"])
    assert main([str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1 and message in out.err


# ---------------------------------------------------------------------------------------------- by duration
MS = Fraction(1, 1000)
GAPS = [20, 40, 33, 80, 5]  # ms between frames of the variable-frame-rate clips


def write_clip(path, codec="libvpx", n=100, times=None, hold=None, audio=None, audio_s=None, options=None):
    """A real encoded 64x48 clip written by PyAV: 25 fps, or frames at `times` (ms, time base 1/1000: variable frame
    rate); `hold`: the muxer's duration of the last frame in seconds (a still held at the end); `audio`: a 48 kHz stereo
    track of that codec, as long as the video or `audio_s` seconds, interleaved with it; `options`: the muxer's."""
    with av.open(path, "w", options=options or {}) as c:
        video = c.add_stream(codec, rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.codec_context.gop_size = 25
        if times is not None:
            video.codec_context.time_base = MS
        sound = c.add_stream(audio, rate=48000) if audio else None
        rng, packets, samples = np.random.RandomState(n), [], 0

        def sound_until(seconds):
            nonlocal samples
            size = sound.codec_context.frame_size or 1024
            while samples < seconds * 48000:
                frame = av.AudioFrame.from_ndarray((rng.rand(1, 2 * size).astype(np.float32) - 0.5) * 0.1,
                                                   format="flt", layout="stereo")
                frame.sample_rate, frame.pts, samples = 48000, samples, samples + size
                for packet in sound.encode(frame):
                    c.mux(packet)
        for i in range(n):
            a = (rng.rand(48, 64, 3) * 60).astype(np.uint8)
            a[:, (2 * i) % 64:(2 * i) % 64 + 6, 1] = 250                   # a moving bar: every frame differs
            frame = av.VideoFrame.from_ndarray(a, format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = times[i], MS
            packets += video.encode(frame)
            if hold is None:
                for packet in packets:
                    c.mux(packet)
                packets = []
            if sound:
                sound_until((i + 1) / 25)
        packets += video.encode()
        if hold is not None:
            last = max(packets, key=lambda p: p.pts)
            last.duration = round(hold / last.time_base)
        for packet in packets:
            c.mux(packet)
        if sound:
            sound_until(audio_s or n / 25)
            for packet in sound.encode():
                c.mux(packet)
    return path


def cut_at(src, dst, fraction=0.55):
    """`src`'s first `fraction` of bytes, as a broken download leaves it."""
    return cut(src, dst, int(os.path.getsize(src) * fraction))


def unknown_size(src, dst):
    """`src` with its Matroska Segment's size written as "unknown" (8-byte size of all ones), as a live muxer
    writes it."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    at = data.find(b"\x18\x53\x80\x67") + 4
    assert data[at] == 0x01  # FFmpeg writes the Segment's size in 8 bytes
    data[at:at + 8] = b"\x01" + b"\xff" * 7
    with open(dst, "wb") as f:
        f.write(data)
    return dst


CUT = ["cut_vp8.webm", "cut_h264.mkv", "cut_vp9_opus.webm", "cut_unknown_size.webm", "cut_frag.mp4",
       "cut_frag_sidx.mp4", "cut_frag_moov.mp4"]
HEALTHY = ["vp8.webm", "h264.mkv", "vp9_opus.webm", "vfr.webm", "vfr.mkv", "vfr_held.webm", "held.webm",
           "long_audio.mkv", "late.webm", "cut_in_cues.webm", "frag.mp4", "frag_sidx.mp4", "frag_moov.mp4"]
NOT_COMPARED = ["live.webm", "whole.ts", "cut.ts"]


@pytest.fixture(scope="module")
def durations(tmp_path_factory):
    """Real WebM/MKV, fragmented MP4 and MPEG-TS files (4 s): healthy ones, and copies cut at 55 % of their bytes."""
    root = str(tmp_path_factory.mktemp("durations"))
    v = os.path.join(root, "videos")
    os.makedirs(v)
    times = list(np.cumsum([0] + GAPS * 40)[:100])  # variable frame rate: irregular gaps, 3.6 s
    frag = {"frag.mp4": "frag_keyframe+empty_moov+default_base_moof",
            "frag_sidx.mp4": "frag_keyframe+empty_moov+default_base_moof+global_sidx",  # a fragment index in front
            "frag_moov.mp4": "frag_keyframe"}  # the moov holds the first fragment's samples: a partial frame count
    for name, made in {
            "vp8.webm": lambda p: write_clip(p),
            "h264.mkv": lambda p: write_clip(p, "libx264"),  # B-frames: pts out of order
            "vp9_opus.webm": lambda p: write_clip(p, "libvpx-vp9", audio="libopus"),
            "vfr.webm": lambda p: write_clip(p, times=times),
            "vfr.mkv": lambda p: write_clip(p, "libx264", times=times),
            "vfr_held.webm": lambda p: write_clip(p, times=times, hold=1.5),  # the last frame shown 1.5 s
            "long_audio.mkv": lambda p: write_clip(p, "libx264", audio="aac", audio_s=5),  # audio 1 s past the video
            "late.webm": lambda p: write_clip(p, times=[5000 + 40 * k for k in range(100)]),  # starts at 5 s
            "live.webm": lambda p: write_clip(p, options={"live": "1"}),  # written live: no duration in the header
            "whole.ts": lambda p: write_clip(p, "libx264"),
            **{name: (lambda flags: lambda p: write_clip(p, "libx264", options={"movflags": flags}))(flags)
               for name, flags in frag.items()}}.items():
        made(os.path.join(v, name))
    for name in ("vp8.webm", "h264.mkv", "vp9_opus.webm", "frag.mp4", "frag_sidx.mp4", "frag_moov.mp4"):
        cut_at(os.path.join(v, name), os.path.join(v, "cut_" + name))
    cut_at(os.path.join(v, "whole.ts"), os.path.join(v, "cut.ts"))
    # the last frame held 1.5 s in a track without a default duration: the muxer counts it in the Segment's
    # duration, its SimpleBlock carries none (FFmpeg's demuxer guesses 40 ms from the frame rate)
    remux(os.path.join(v, "vp8.webm"), os.path.join(v, "held.webm"),
          lambda k, packet, stream: [setattr(packet, "duration", 1500) if k == 99 else None, packet][1:])
    unknown_size(os.path.join(v, "cut_vp8.webm"), os.path.join(v, "cut_unknown_size.webm"))
    with open(os.path.join(v, "vp8.webm"), "rb") as f:
        cues = f.read().rfind(b"\x1c\x53\xbb\x6b")  # the Cues (the index) after the last cluster
    cut(os.path.join(v, "vp8.webm"), os.path.join(v, "cut_in_cues.webm"), cues + 8)
    names = CUT + HEALTHY + NOT_COMPARED  # one of them in val
    write_lists(root, ["a", "b"], val=["videos/late.webm 0"],
                train=[f"videos/{name} {k % 2}" for k, name in enumerate(names) if name != "late.webm"])
    return root


def test_duration_videos_are_what_their_names_say(durations):
    """The premises: a cut file still opens, reads (as the shorter video it is) and its header still states the whole
    file's duration, no frame count, and a size the file no longer holds; what each healthy file's header says."""
    v = os.path.join(durations, "videos")

    def header(name):
        path = os.path.join(v, name)
        with av.open(path) as c:
            s = c.streams.video[0]
            duration = c.duration / av.time_base if c.duration is not None else None
            return s.frames, duration, s.duration is not None, check.bytes_promised(path, check.MATROSKA
                                                                                      if "matroska" in c.format.name
                                                                                      else check.MP4)
    for name in ("vp8.webm", "h264.mkv", "vp9_opus.webm"):
        whole, cut_ = header(name), header("cut_" + name)
        assert whole[:3] == cut_[:3] and whole[0] == 0 and not whole[2]  # the Segment's duration, no stream's
        size, cut_size = (os.path.getsize(os.path.join(v, n)) for n in (name, "cut_" + name))
        assert whole[3] == size == cut_[3] > cut_size  # the Segment's size: the whole file's
        assert 0 < video_num_frames(os.path.join(v, "cut_" + name)) < video_num_frames(os.path.join(v, name))
    assert header("vp8.webm")[1] == pytest.approx(4.0) and header("vp9_opus.webm")[1] >= 4.0
    assert header("cut_unknown_size.webm")[1:] == (pytest.approx(4.0), False, None)  # duration, but no size
    assert header("cut_in_cues.webm")[1:3] == header("vp8.webm")[1:3]
    assert video_num_frames(os.path.join(v, "cut_in_cues.webm")) == 100  # every frame: only the index is cut
    assert header("long_audio.mkv")[1] == pytest.approx(5.0, abs=0.05)  # the audio's end, not the video's (4 s)
    assert header("vfr_held.webm")[1] == pytest.approx(header("vfr.webm")[1] - 0.04 + 1.5)  # the held last frame
    assert header("held.webm")[1] == pytest.approx(3.96 + 1.5)

    def packets_end(name):
        with av.open(os.path.join(v, name)) as c:
            return max(float((p.pts + p.duration) * p.time_base) for p in c.demux(video=0) if p.size)
    assert packets_end("vfr_held.webm") == pytest.approx(header("vfr_held.webm")[1])  # its last block's duration
    assert packets_end("held.webm") == pytest.approx(4.0)  # the track's default duration: 1.46 s short, all bytes
    assert header("live.webm")[1] is None
    for name in ("frag.mp4", "frag_sidx.mp4", "frag_moov.mp4"):  # no frame count (or the first fragment's)
        frames, duration, _, _ = header(name)
        assert frames < 100 and duration == pytest.approx(4.0, abs=0.1)
    assert header("cut_frag_sidx.mp4")[1] == header("frag_sidx.mp4")[1]  # the sidx states the whole duration
    assert header("cut_frag.mp4")[1] < 3.0  # without one, FFmpeg's duration is that of the fragments in the file
    with av.open(os.path.join(v, "cut.ts")) as c:  # MPEG-TS: no frame count, its duration read from its end
        assert c.streams.video[0].frames == 0 and c.duration / av.time_base < 3.0


def test_check_reports_cut_webm_mkv_and_fragmented_mp4(durations, capsys):
    """Every cut file is a header_mismatch (kept by --fix); healthy files (variable frame rate, a held last frame,
    audio outlasting the video, B-frames, a late start, a cut within the trailing index) are not; live WebM and
    MPEG-TS are counted, not compared."""
    code, out, counts = run(capsys, durations, "--full", "--fix", "--workers", "2")
    assert code == 1
    found = {path: reason for path, reason in report(os.path.join(durations, "check_bad.txt"))}
    assert sorted(found) == sorted(f"videos/{name}" for name in CUT)
    pattern = (r"header_mismatch: the header promises (\d+\.\d\d) s, the packets end at (\d+\.\d\d) s(?:, the file "
               r"holds (\d+) of the (\d+) bytes it promises)?, a full decode gives (\d+) frames \(cut file\?\) "
               r"\(train\.txt:\d+\)")
    for path, reason in found.items():
        match = re.fullmatch(pattern, reason)
        assert match, reason
        promised, held = float(match[1]), float(match[2])
        assert 1.5 < held < 3.0 and held < promised  # about 55 % of the time is left
        # the header's whole duration, but for a fragmented MP4 without sidx: the fragments found, the cut one's
        # whole sample table included
        assert promised >= 4.0 or path in ("videos/cut_frag.mp4", "videos/cut_frag_moov.mp4")
        assert int(match[5]) == decoded_frame_count(os.path.join(durations, path))
        if path.endswith("unknown_size.webm"):
            assert match[3] is None  # no size in the header: the time alone decides
        else:
            assert int(match[3]) == os.path.getsize(os.path.join(durations, path)) < int(match[4])
    assert counts["splits"]["train"]["header_mismatch"] == len(CUT) and counts["problems"] == len(CUT)
    assert (counts["headers_compared"], counts["headers_by_duration"], counts["headers_not_compared"]) == (
        len(CUT) + len(HEALTHY), len(CUT) + len(HEALTHY), len(NOT_COMPARED))
    assert (f"headers compared (header vs the packets in the file): {len(CUT) + len(HEALTHY)} of "
            f"{len(CUT) + len(HEALTHY) + len(NOT_COMPARED)} readable videos (0 by frame count, "
            f"{len(CUT) + len(HEALTHY)} by duration: WebM/MKV, fragmented MP4); 3 with neither in the header (e.g. "
            f"MPEG-TS, a WebM written live): counted, not compared") in out
    assert counts["kept"] == {"train": len(CUT), "val": 0} and counts["removed"] == {"train": 0, "val": 0}


MKV_DURATION = 4000  # ms the header of the fake Matroska container of test_duration_shortfall_rule promises


def frames_to(end, step=40):
    """Video packets (stream 0) every `step` ms whose last one ends at `end` ms."""
    return [(0, t, step) for t in range(end - step, -1, -step)][::-1]


@pytest.mark.parametrize("fmt,packets,promised,short", [
    ("matroska,webm", frames_to(4000), "short", False),                # whole
    ("matroska,webm", frames_to(2000), "short", True),                 # cut: 2 s missing, bytes missing
    ("matroska,webm", frames_to(2000), "whole", False),                # every byte there: a held last frame
    ("matroska,webm", frames_to(2000), None, True),                    # no size in the header: time decides
    ("matroska,webm", frames_to(3560), "short", False),                # 0.44 s missing: within GAP_S
    ("matroska,webm", frames_to(3440), "short", True),                 # 0.56 s
    ("matroska,webm", [(0, t, 0) for t in range(0, 4000, 40)], "short", False),  # no packet durations: 40 ms off
    ("matroska,webm", [(0, t + 40 - 80 * (k % 2), 40) for k, t in enumerate(range(0, 4000, 40))], "short",
     False),                                                           # B-frames: the last packet is not the last frame
    ("matroska,webm", frames_to(3000) + [(1, t, 20) for t in range(0, 4000, 20)], "short", False),  # audio to the end
    ("matroska,webm", frames_to(4000, 1000)[:2], "short", False),     # 1 fps: 2 s missing, 2 frame intervals
    ("matroska,webm", frames_to(4000, 1000)[:1] + [(0, 1000, 0)], "short", True),  # 1 fps: 3 s missing
    ("mov,mp4,m4a,3gp,3g2,mj2", frames_to(3920), "short", True),      # MP4: 2 frames missing
    ("mov,mp4,m4a,3gp,3g2,mj2", frames_to(3960), "short", False),     # MP4: one frame (rounding)
    ("mov,mp4,m4a,3gp,3g2,mj2", frames_to(2000), "whole", False),     # MP4: every byte there
    ("mpegts", frames_to(2000), "short", None),                       # not compared
])
def test_duration_shortfall_rule(monkeypatch, tmp_path, fmt, packets, promised, short):
    """`duration_shortfall` on a fake container promising 4 s (Matroska: the Segment's duration; MP4: the video
    track's), on a file of 1000 bytes whose structure promises 2000 ("short"), 1000 ("whole") or says nothing."""
    class Packet:
        def __init__(self, stream, t, ticks):
            self.stream, self.size, self.pts, self.dts = SimpleNamespace(index=stream), 1, t, t
            self.duration, self.time_base = ticks, MS

    mkv = fmt.startswith("matroska")
    video = SimpleNamespace(index=0, frames=0, duration=None if mkv else MKV_DURATION, start_time=0, time_base=MS)

    class Container:
        format = SimpleNamespace(name=fmt)
        duration, start_time = (MKV_DURATION * 1000 if mkv else None), 0
        streams = SimpleNamespace(video=[video])

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def demux(self, *streams):
            return iter([Packet(*p) for p in packets if p[0] == 0 or not streams])
    path = tmp_path / "fake"
    path.write_bytes(bytes(1000))
    monkeypatch.setattr(check.av, "open", lambda path: Container())
    monkeypatch.setattr(check, "bytes_promised", lambda path, kind: {"short": 2000, "whole": 1000}.get(promised))
    result = check.duration_shortfall(str(path))
    assert (result if result is None else result[4]) is short


def test_duration_shortfall_not_compared(monkeypatch, tmp_path):
    """No duration in a Matroska header, or one FFmpeg estimated from the bitrate (then it sets stream durations):
    nothing to compare."""
    for duration, stream_duration in ((None, None), (4_000_000, 4000)):
        container = SimpleNamespace(format=SimpleNamespace(name="matroska,webm"), duration=duration, start_time=0,
                                    streams=SimpleNamespace(video=[SimpleNamespace(duration=stream_duration)]))
        monkeypatch.setattr(check.av, "open", lambda path: contextlib.nullcontext(container))
        assert check.duration_shortfall("fake.webm") is None


@pytest.mark.parametrize("data,size", [
    (b"\x1a\x45\xdf\xa3\x84abcd\x18\x53\x80\x67\x88" + bytes(8), 9 + 5 + 8),  # 1-byte sizes: 8 bytes
    (b"\x1a\x45\xdf\xa3\x84abcd\x18\x53\x80\x67\x01\x00\x00\x00\x00\x00\x01\x00", 9 + 12 + 256),
    (b"\x1a\x45\xdf\xa3\x84abcd\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff", None),  # unknown (live)
    (b"\x1a\x45\xdf\xa3\x84abcd\x1f\x43\xb6\x75\x88", None),                           # no Segment next
])
def test_bytes_promised_matroska(tmp_path, data, size):
    path = tmp_path / "f.mkv"
    path.write_bytes(data)
    assert check.bytes_promised(str(path), check.MATROSKA) == size


def test_bytes_promised_mp4(tmp_path):
    """The end of the last top-level box: 32-bit sizes, a 64-bit size, a box "to the end", a cut header."""
    box = lambda kind, body: (8 + len(body)).to_bytes(4, "big") + kind + body
    whole = box(b"ftyp", bytes(8)) + box(b"moov", bytes(20)) + (1).to_bytes(4, "big") + b"mdat" + \
        (16 + 100).to_bytes(8, "big") + bytes(100)
    for data, size in ((whole, len(whole)), (whole[:-30], len(whole)), (whole[:20], 16 + 8),
                       (whole + b"\x00\x00", len(whole) + 8), (box(b"ftyp", b"") + bytes(4) + b"mdat" + bytes(9), 25)):
        path = tmp_path / "f.mp4"
        path.write_bytes(data)
        assert check.bytes_promised(str(path), check.MP4) == size
