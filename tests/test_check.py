"""python -m common.check: each planted problem of a generated dataset found by path and reason, --fix, a clean pass."""
import json
import os
import shutil
import subprocess
import sys

import av
import pytest
import torch
from torchvision.io import encode_jpeg, write_file

from common.check import main
from common.prepare import write_dataset_info
from common.video import decoded_frame_count, video_num_frames
from test_common import write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_frames(folder, n, template="img_{:05d}.jpg", start=1, skip=()):
    os.makedirs(folder)
    g = torch.Generator().manual_seed(n)
    for i in range(n):
        if i not in skip:
            write_file(os.path.join(folder, template.format(i + start)),
                       encode_jpeg(torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8, generator=g)))


def write_lying_video(src, dst, extra=3):
    """`src` remuxed plus `extra` packets holding only an H.264 end-of-sequence NAL unit: the container lists
    them as frames (its header and the demux pass count them), a full decode yields no frame for them."""
    with av.open(src) as i, av.open(dst, "w") as o:
        stream = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(video=0):
            if packet.size:
                last, packet.stream = packet, stream
                o.mux(packet)
        for k in range(1, extra + 1):
            packet = av.Packet(b"\x00\x00\x00\x01\x0a")  # length-prefixed NAL, type 10: end of sequence
            packet.stream, packet.time_base, packet.duration = stream, last.time_base, last.duration
            packet.pts = packet.dts = last.pts + k * last.duration
            o.mux(packet)


def write_lists(root, classes, **splits):
    os.makedirs(root, exist_ok=True)
    for name, lines in {"classes": classes, **splits}.items():
        with open(os.path.join(root, f"{name}.txt"), "w") as f:
            f.write("".join(line + "\n" for line in lines))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A dataset with one planted problem per sample (named in the file names) and four good samples."""
    root = str(tmp_path_factory.mktemp("planted"))
    v = os.path.join(root, "videos")
    os.makedirs(v)
    for k in range(4):
        write_video(os.path.join(v, f"v{k}.mp4"), n=20 + k, gop=8)
    shutil.copyfile(os.path.join(v, "v1.mp4"), os.path.join(v, "copy.mp4"))
    with open(write_video(os.path.join(v, "whole.mp4"), n=20, gop=8, faststart=True), "rb") as f:
        data = f.read()
    with open(os.path.join(v, "truncated.mp4"), "wb") as f:
        f.write(data[: len(data) * 6 // 10])
    open(os.path.join(v, "empty.mp4"), "wb").close()
    write_lying_video(os.path.join(v, "v0.mp4"), os.path.join(v, "lies.mp4"))
    write_frames(os.path.join(root, "frames", "whole"), 20)
    write_frames(os.path.join(root, "frames", "short"), 20, skip=(7,))
    write_frames(os.path.join(root, "frames", "long"), 21)
    write_lists(root, ["a", "b", "c", "d"],
                train=["videos/v0.mp4 0", "videos/v1.mp4 1", "videos/v2.mp4 2", "videos/truncated.mp4 0",
                       "videos/empty.mp4 1", "videos/missing.mp4 2", "videos/lies.mp4 0", "frames/short 20 1",
                       "frames/long 20 2", "frames/whole 20 2"],
                val=["videos/v0.mp4 0", "videos/copy.mp4 1", "videos/v3.mp4 3"])  # class d: no training sample
    return root


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, json.loads(out.out.strip().splitlines()[-1])


def report(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f]


def test_check_finds_each_planted_problem(planted, capsys):
    lies = os.path.join(planted, "videos", "lies.mp4")
    assert (video_num_frames(lies), decoded_frame_count(lies)) == (23, 20)  # the premise of the planted lie
    code, out, counts = run(capsys, planted, "--full", "--workers", "2")
    assert code == 1
    found = {}
    for path, reason in report(os.path.join(planted, "check_bad.txt")):
        found.setdefault(path, []).append(reason)
    assert [r.split(":")[0] for r in found.pop("videos/truncated.mp4")] == ["unreadable"]
    assert found.pop("videos/empty.mp4") == ["unreadable: zero-length file (train.txt:5)"]
    assert found.pop("videos/missing.mp4") == ["unreadable: file not found (train.txt:6)"]
    assert found.pop("frames/short") == ["short_folder: 1 of 20 listed frames missing (first: img_00008.jpg) "
                                         "(train.txt:8)"]
    # the reader of today also fails on the promised last frame; a reader that stops at the decoded end would not
    assert ("count_mismatch: 23 frames by the demux pass, 20 by a full decode (train.txt:7)"
            in found.pop("videos/lies.mp4"))
    assert found.pop("frames/long") == ["count_mismatch: more frames than the 20 listed (img_00021.jpg exists) "
                                        "(train.txt:9)"]
    assert found.pop("videos/v0.mp4") == ["overlap: also listed in train (train.txt:1) (val.txt:1)"]
    (dup,) = found.pop("videos/copy.mp4")
    assert dup.startswith("duplicate: same content (sha1 ") and dup.endswith("as videos/v1.mp4 in train (val.txt:2)")
    assert found == {}  # v1, v2, v3 and frames/whole are fine
    assert "classes with no training sample: 1 (3 'd')" in out
    assert counts["splits"]["val"] == {"samples": 3, "unreadable": 0, "count_mismatch": 0, "short_folder": 0,
                                       "overlap": 1, "duplicate": 1}
    train = counts["splits"]["train"]
    assert (train["samples"], train["count_mismatch"], train["short_folder"]) == (10, 2, 1)
    assert train["unreadable"] in (3, 4)  # truncated, empty, missing (and lies.mp4 while its last frame fails)
    assert (counts["empty_classes"], counts["counts_compared"]) == (1, 9)  # every listed video file
    assert counts["problems"] == train["unreadable"] + 2 + 1 + 1 + 1 + 1


def test_fix_writes_clean_lists_and_keeps_the_originals(planted, capsys, tmp_path):
    lists = {name: open(os.path.join(planted, name)).read() for name in ("train.txt", "val.txt", "classes.txt")}
    report_path = str(tmp_path / "bad.txt")
    code, out, counts = run(capsys, planted, "--fix", "--sample", "0", "--workers", "1", "--report", report_path)
    assert code == 1 and counts["removed"] == {"train": 5 + (counts["splits"]["train"]["unreadable"] == 4), "val": 2}
    assert {name: open(os.path.join(planted, name)).read() for name in lists} == lists
    with open(os.path.join(planted, "train.clean.txt")) as f:
        train = f.read().splitlines()
    assert train[:3] == ["videos/v0.mp4 0", "videos/v1.mp4 1", "videos/v2.mp4 2"] and train[-1] == "frames/whole 20 2"
    assert set(train[3:-1]) <= {"videos/lies.mp4 0"}  # kept only when no frame count was compared and it reads
    with open(os.path.join(planted, "val.clean.txt")) as f:
        assert f.read() == "videos/v3.mp4 3\n"
    # the cleaned lists pass but for the class without a training sample, which no list edit can fix
    clean = tmp_path / "clean"
    for name in ("videos", "frames"):
        os.makedirs(clean, exist_ok=True)
        os.symlink(os.path.join(planted, name), clean / name)
    write_lists(str(clean), ["a", "b", "c", "d"], train=[t for t in train if "lies" not in t], val=["videos/v3.mp4 3"])
    code, out, counts = run(capsys, str(clean), "--full", "--workers", "1")
    assert (code, counts["problems"], counts["empty_classes"]) == (1, 1, 1)


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
