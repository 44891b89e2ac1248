"""python -m common.check: each planted problem of a generated dataset found by path and reason, healthy awkward
videos not reported, --fix (keeps a readable video whose header promises more), a clean pass."""
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from types import SimpleNamespace

import av
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
    assert ("header frame counts compared (header vs the packets in the file): 10 of 11 readable videos (1 without a "
            "frame count in the header, e.g. WebM/MKV: not compared)") in out
    assert counts["splits"] == {
        "train": {"samples": 16, "unreadable": 4, "header_mismatch": 1, "count_mismatch": 2, "short_folder": 1,
                  "overlap": 0, "duplicate": 0},
        "val": {"samples": 3, "unreadable": 0, "header_mismatch": 0, "count_mismatch": 0, "short_folder": 0,
                "overlap": 1, "duplicate": 1}}
    assert (counts["empty_classes"], counts["counts_compared"]) == (1, 15)  # every listed video file
    assert (counts["headers_compared"], counts["headers_without_count"]) == (10, 1)
    assert counts["problems"] == 4 + 1 + 2 + 1 + 1 + 1 + 1


def test_fix_writes_clean_lists_and_keeps_the_originals(planted, capsys, tmp_path):
    lists = {name: open(os.path.join(planted, name)).read() for name in ("train.txt", "val.txt", "classes.txt")}
    report_path = str(tmp_path / "bad.txt")
    code, out, counts = run(capsys, planted, "--fix", "--sample", "0", "--workers", "1", "--report", report_path)
    # without frame counts compared: the header check still runs on every readable video; hole.mp4 is not found
    assert (code, counts["counts_compared"], counts["headers_compared"]) == (1, 0, 10)
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
