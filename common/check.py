"""Pre-flight check of a prepared dataset (CONVENTIONS.md "Dataset layout"): python -m common.check DIR [--fix]

Checks every sample of DIR/train.txt, val.txt and test.txt (when present) in worker processes, with a progress bar:
- a video opens and decodes: a few frames spread from its first to its last (`read_video`, which counts the frames
  a full sequential decode yields; CONVENTIONS.md "Bad input"). A file that cannot be read is `unreadable`;
- a readable video is not cut short (one demux pass, no decoding): the file holds what its container's header
  promises. A file that falls short is a `header_mismatch` (a truncated download, or a header that lies):
  reported, but the video reads as the shorter video it is, so `--fix` keeps it. What is compared:
  - MP4/MOV (sample count), AVI (stream length): the header's frame count against the video packets in the file
    (short: fewer packets, ending a frame or more before the header's duration where timestamps tell; a count
    below the packets in the file promises nothing: fragmented MP4, below; an AVI: counted, not compared);
  - Matroska/WebM (a duration, no frame count): the Segment's duration against the end of the packets of all
    streams (the latest pts + duration: audio that outlasts the video counts), and the Segment's size against
    the file's bytes. Short: the packets end more than max(0.5 s, 2 x the longest frame interval) early and the
    file holds fewer bytes than its Segment promises (where the Segment's size is unknown, the time alone
    decides). A download cut in its last half second, or only in its trailing index (Cues), is not found; a file
    whose header has no duration (written live) is counted, not compared;
  - fragmented MP4 (the moov counts no samples, or only its first fragment's): the video track's duration as
    FFmpeg gives it (the fragment index's (sidx) total when the muxer wrote one at the front; else the sum of the
    fragments in the file, the cut last one's whole sample table included) against the end of its packets, and
    the top-level boxes' sizes against the file's bytes. Short: a frame or more missing and bytes missing. Without
    sidx only the cut last fragment can show it: a file cut at a fragment boundary is not found (one cut inside a
    moof box does not open: `unreadable`);
  - MPEG-TS/PS and other containers: no frame count and no duration of their own (FFmpeg reads a TS's duration
    from the timestamps at its end), counted, not compared; a cut one reads as the shorter video it is;
- on a seeded random sample of videos (`--sample K`, every video with `--full`) the frame count of the demux pass
  (`video_num_frames`, what the loaders sample from) must equal the count of a full sequential decode
  (`decoded_frame_count`), else `count_mismatch` (a packet in the middle of the file that yields no frame);
- a frame folder holds exactly the listed frames (each listed file exists, the next one does not) and its first
  and last frames decode (template and start index from DIR/dataset.json, `--frame-template` overrides);
- no path is listed in two splits, and no video or folder has the same content (sha1 of its bytes) as one of an
  earlier split (train, then val, then test);
- every class has a training sample. A malformed list line or a label out of range stops the check with that
  one line (exit code 2).

Prints a table per split; the last line is one JSON object with the counts. Writes one `path<TAB>reason` line per
problem to DIR/check_bad.txt (`--report FILE`; empty when all is well). Exit code 1 when a problem was found.
`--fix` writes train.clean.txt, val.clean.txt (test.clean.txt) beside the originals: their lines less the bad
samples (all problems but `header_mismatch`) and, in val/test, less the samples whose path or content is already
in an earlier split. The originals are never touched.
"""
import argparse
import hashlib
import json
import os
import random
import sys
import time
from multiprocessing import Pool

import av
import numpy as np
from tqdm import tqdm

from .data import AnnotationError, load_split
from .prepare import read_dataset_info
from .video import BadVideo, decoded_frame_count, read_frame_folder, read_video, video_num_frames

SPLITS = ("train", "val", "test")
FRAMES_READ = 4  # frames decoded per video, spread evenly from the first to the last
# problem kinds (the report's and the JSON's names) and the summary's column titles
COLUMNS = {"unreadable": "unreadable", "header_mismatch": "header mismatch", "count_mismatch": "count mismatch",
           "short_folder": "empty/short folder", "overlap": "in earlier split", "duplicate": "duplicate content"}
KEPT_BY_FIX = {"header_mismatch"}  # the video reads (as the shorter video it is): --fix keeps it, the user decides


# ---------------------------------------------------------------------------------------------- one sample
def _reason(error, path):
    """A BadVideo message without the leading path (the report names the path)."""
    return str(error).removeprefix(path + ": ").removeprefix(path + os.sep)


def _sha1(files):
    """sha1 of the files' bytes in order; None when there are no bytes (missing or empty files)."""
    digest, size = hashlib.sha1(), 0
    for name in files:
        if os.path.isfile(name):
            with open(name, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
                    size += len(block)
    return digest.hexdigest() if size else None


def _spread(n):
    return np.linspace(0, n - 1, min(n, FRAMES_READ)).round().astype(np.int64)


def header_shortfall(path):
    """None when the container header gives no frame count, or one below the packets in the file (a fragmented
    MP4 whose moov holds its first fragment's samples counts those: `duration_shortfall` compares it), else
    (frames the header promises, seconds it promises, packets of the video stream the file holds, seconds they
    span, whether the file falls short of the promise).

    The promise is PyAV's `stream.frames` (FFmpeg's nb_frames: the MP4/MOV sample count, the AVI stream length;
    0 for WebM/MKV, fragmented MP4, MPEG-TS/PS), the muxer's own count of what it wrote, with `stream.duration`.
    It is held against the packets the demuxer finds in the file, not against the decoded frames: a healthy file
    may decode fewer frames than its header counts (an edit list that discards the first samples, trailing
    packets that yield no frame; a full decode and `read_video` leave both out), but it holds every sample; a
    truncated download does not. Short means both fewer packets than promised and packets that end a frame or
    more before the promised duration (when the timestamps tell; less is rounding): an AVI's dropped frames are
    zero-size chunks that the header counts and the demuxer does not deliver, but their time stays in the later
    packets' stamps.
    Duration x rate is not used as the promise: the rate is FFmpeg's estimate (an average, off for variable frame
    rate) and in some containers the duration is estimated from the bitrate, so healthy files would differ."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        if not stream.frames:
            return None
        held, end = 0, None
        for packet in container.demux(stream):
            if not packet.size:  # the demuxer's final flush packet
                continue
            held += 1
            t = packet.pts if packet.pts is not None else packet.dts
            if t is not None:
                end = max(end if end is not None else t, t + (packet.duration or 0))
        promised, duration, start, unit = stream.frames, stream.duration, stream.start_time or 0, stream.time_base
    if held > promised:
        return None
    timed = bool(duration) and end is not None
    short = held < promised and (not timed or end - start <= duration - duration / promised)
    return (promised, float(duration * unit) if duration else None, held,
            float((end - start) * unit) if timed else None, short)


MATROSKA, MP4 = "matroska", "mp4"  # names in PyAV's container.format.name ("matroska,webm", "mov,mp4,m4a,...")
EBML, SEGMENT = 0x1A45DFA3, 0x18538067
GAP_S = 0.5  # Matroska: seconds missing at the end below which a file is not short (duration_shortfall)


def _vint(data, at, marker):
    """(value, next offset) of the EBML variable-size integer at data[at] (an ID keeps its length marker, a size
    does not); value None for a size of all ones ("unknown": written live) or when data ends inside it."""
    if at >= len(data) or not data[at]:
        return None, len(data)
    length = 9 - data[at].bit_length()
    if at + length > len(data):
        return None, len(data)
    value = int.from_bytes(data[at:at + length], "big")
    if marker:
        return value, at + length
    value &= (1 << 7 * length) - 1
    return (None if value == (1 << 7 * length) - 1 else value), at + length


def bytes_promised(path, kind):
    """The bytes the file's own structure says it holds, or None where it does not say. Matroska: the end of the
    Segment (EBML header, then the Segment's size; unknown when written live). MP4/MOV: the end of the last
    top-level box (each box starts with its size; 0 means "to the end of the file")."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if kind == MATROSKA:
            data = f.read(4096)
            element, at = _vint(data, 0, True)
            length, at = _vint(data, at, False)
            if element != EBML or length is None:
                return None
            element, at = _vint(data, at + length, True)
            length, at = _vint(data, at, False)
            return at + length if element == SEGMENT and length is not None else None
        at = 0
        while at < size:
            f.seek(at)
            head = f.read(16)
            if len(head) < 8:
                return at + 8  # the file ends inside a box's header
            length = int.from_bytes(head[:4], "big")
            if length == 1:
                length = int.from_bytes(head[8:16], "big") if len(head) == 16 else 16
            if length == 0:
                return size
            if length < 8:
                return None  # not a box: nothing to say
            at += length
        return at


def duration_shortfall(path):
    """None when the header gives no duration to compare (module docstring: which containers), else (seconds the
    header promises, seconds the packets reach, bytes in the file, bytes its structure promises or None, whether
    the file falls short of the promise).

    The promise: Matroska/WebM, the Segment's duration (PyAV `container.duration`; FFmpeg's Matroska demuxer
    sets no stream durations, and where the Segment states none FFmpeg may estimate one from the bitrate and then
    sets them: a video `stream.duration` is that estimate, not compared); fragmented MP4, the video track's
    (`stream.duration`: the sidx's total, else the sum of the sample tables of the fragments in the file).
    What the file holds: the latest pts + duration, not the last packet's (B-frames leave the file out of display
    order), of every stream for Matroska, whose Segment duration is the end of the last packet of any stream as
    the muxer saw it (audio that outlasts the video sets it), of the video track for MP4 (whose duration is its
    own). Taken from 0 (the Segment's duration is an end time: a file that starts late is not short) or from the
    stream's start (an MP4 track's duration counts from its first sample), whichever gives more."""
    with av.open(path) as container:
        video, names = container.streams.video[0], container.format.name.split(",")
        if MATROSKA in names:
            if container.duration is None or video.duration is not None:
                return None  # no duration in the header (written live), or FFmpeg's estimate from the bitrate
            kind, promised, streams = MATROSKA, container.duration / av.time_base, ()
            start = (container.start_time or 0) / av.time_base
        elif MP4 in names and video.duration:
            kind, promised, streams = MP4, float(video.duration * video.time_base), (video,)
            start = float((video.start_time or 0) * video.time_base)
        else:
            return None
        end, shown = None, set()
        for packet in container.demux(*streams):  # Matroska: every stream
            if not packet.size:  # the demuxer's final flush packet
                continue
            t = packet.pts if packet.pts is not None else packet.dts
            if t is None:
                continue
            if packet.stream.index == video.index:
                shown.add(float(t * packet.time_base))
            t = float((t + (packet.duration or 0)) * packet.time_base)
            end = t if end is None else max(end, t)
    if end is None:
        return None  # no timestamps: nothing to compare
    held = max(end, end - start)
    shown = sorted(shown)
    frame = max((b - a for a, b in zip(shown, shown[1:])), default=0.0)  # the longest frame interval
    size, expected = os.path.getsize(path), bytes_promised(path, kind)
    # Choice: how early the packets must end. Matroska: a block carries a duration only where its muxer writes one
    # (FFmpeg's: where it differs from the track's default duration; none in a track without one), so the last
    # frame's display time, which the muxer counted in the Segment's duration, may be lost (FFmpeg's demuxer then
    # guesses one frame at the stream's rate, or says 0): one frame interval, or more when the last frame is held
    # (variable frame rate: a still at the end). Audio adds codec delay and padding (AAC priming, Opus pre-skip:
    # tens of ms; a Vorbis block up to ~0.2 s) and timestamps are rounded to 1 ms. So more than GAP_S and more than
    # two of the longest frame intervals; a download cut within its last half second is not found. MP4: every
    # sample's duration is in its fragment's table, so a frame or more is short (less is rounding).
    # Time alone cannot tell a cut from a last frame held longer than that (or a header that lies); where the
    # file's structure states its size (the Segment's size; the top-level boxes of an MP4) the file must also
    # hold fewer bytes than it promises: a cut download does, a healthy file does not. A file cut only within
    # its trailing index (Matroska Cues, the MP4 mfra) holds every frame and is not short.
    slack = max(GAP_S, 2 * frame) if kind == MATROSKA else frame
    short = promised - held > slack and (expected is None or expected > size)
    return promised, held, size, expected, short


def check_video(path, count):
    """([(kind, reason)], header) for a video file; `count`: also compare the demux pass's frame count with a full
    decode. header: what the header check compared with the file, "frames" (the header's frame count),
    "duration" (its duration: Matroska/WebM, fragmented MP4) or "none" (the header states neither); None when
    the video is unreadable (nothing compared)."""
    problems, decoded = [], None
    try:
        frames = len(read_video(path, _spread)[1])  # the index after the read: the frames a full decode yields
    except BadVideo as e:
        problems.append(("unreadable", _reason(e, path)))
        frames = None
    if count:
        try:
            demuxed, decoded = video_num_frames(path), decoded_frame_count(path)
            if demuxed != decoded:
                problems.append(("count_mismatch", f"{demuxed} frames by the demux pass, {decoded} by a full decode"))
        except BadVideo as e:
            if not problems:
                problems.append(("unreadable", _reason(e, path)))
    if frames is None:
        return problems, None
    try:
        by_frames = header_shortfall(path)
        by_time = duration_shortfall(path) if by_frames is None else None
    except av.FFmpegError as e:  # read_video demuxed the same file: not expected, reported if it happens
        problems.append(("unreadable", f"demuxing for the header check failed ({e})"))
        return problems, None
    found = f"a full decode gives {decoded}" if decoded is not None else f"the reader counts {frames}"
    if by_frames is not None and by_frames[4]:
        promised, promised_s, held, held_s, _ = by_frames
        times = held_s is not None  # seconds only when both are known
        problems.append(("header_mismatch", f"the header promises {promised} frames"
                         f"{f' ({promised_s:.2f} s)' if times else ''}, the file holds {held} of them"
                         f"{f' (up to {held_s:.2f} s)' if times else ''}, {found} (cut file?)"))
    if by_time is not None and by_time[4]:
        promised_s, held_s, size, expected, _ = by_time
        problems.append(("header_mismatch", f"the header promises {promised_s:.2f} s, the packets end at "
                         f"{held_s:.2f} s" + (f", the file holds {size} of the {expected} bytes it promises"
                                             if expected is not None else "") + f", {found} frames (cut file?)"))
    return problems, "frames" if by_frames is not None else "duration" if by_time is not None else "none"


def check_folder(path, num_frames, template, start):
    """[(kind, reason)] for a JPEG frame folder listed with `num_frames` frames."""
    if not os.path.isdir(path):
        return [("unreadable", "frame folder not found")]
    names = [template.format(i + start) for i in range(num_frames + 1)]  # the last one must not exist
    missing = [name for name in names[:-1] if not os.path.isfile(os.path.join(path, name))]
    if len(missing) == num_frames:
        return [("short_folder", f"empty: none of the {num_frames} listed frames ({names[0]} ...) exists; "
                                 f"frame template {template!r}, start {start}")]
    if missing:
        return [("short_folder", f"{len(missing)} of {num_frames} listed frames missing (first: {missing[0]})")]
    if os.path.isfile(os.path.join(path, names[-1])):
        return [("count_mismatch", f"more frames than the {num_frames} listed ({names[-1]} exists)")]
    try:
        read_frame_folder(path, [0, num_frames - 1], template, start)
    except BadVideo as e:
        return [("unreadable", _reason(e, path))]
    return []


def check_sample(job):
    """(path, [(kind, reason)], sha1 or None, header) for one video or frame folder (header: `check_video`'s;
    None for a folder); runs in the worker processes."""
    path, num_frames, template, start, count = job
    try:
        if num_frames is None:
            found, header = check_video(path, count)
            return path, found, _sha1([path]), header
        frames = [os.path.join(path, template.format(i + start)) for i in range(num_frames)]
        return path, check_folder(path, num_frames, template, start), _sha1(frames), None
    except Exception as e:  # a reader's bug must not end the check of all other files: reported as this file's
        return path, [("unreadable", f"the reader failed: {type(e).__name__}: {e}")], None, None


# ---------------------------------------------------------------------------------------------- the dataset
def find_problems(splits, results, root):
    """{record.where: [(kind, reason)]} from the per-file results, overlaps and duplicates (`where` is
    "list file:line", unique over the splits)."""
    problems, first_path, first_hash = {}, {}, {}
    for split, records in splits.items():
        for r in records:
            found = list(results[r.path][0])
            earlier = first_path.get(r.path)
            if earlier and earlier[0] != split:
                found.append(("overlap", f"also listed in {earlier[0]} ({os.path.basename(earlier[1].where)})"))
            first_path.setdefault(r.path, (split, r))
            digest = results[r.path][1]
            original = first_hash.get(digest)
            if original and original[0] != split and original[1].path != r.path:
                found.append(("duplicate", f"same content (sha1 {digest[:12]}) as "
                                           f"{os.path.relpath(original[1].path, root)} in {original[0]}"))
            if digest:
                first_hash.setdefault(digest, (split, r))
            if found:
                problems[r.where] = found
    return problems


def write_clean_lists(splits, problems):
    """DIR/<split>.clean.txt: the original lines less those of samples with a problem that --fix removes (all but
    KEPT_BY_FIX); ({split: lines removed}, {split: lines kept although they have a problem})."""
    removed, kept = {}, {}
    for split, records in splits.items():
        listed = records[0].where.rpartition(":")[0]
        bad = [r for r in records if r.where in problems]
        drop = {int(r.where.rpartition(":")[2]) for r in bad
                if any(kind not in KEPT_BY_FIX for kind, _ in problems[r.where])}
        with open(listed, encoding="utf-8") as f:
            lines = [line for n, line in enumerate(f, 1) if n not in drop]
        with open(listed[: -len(".txt")] + ".clean.txt", "w", encoding="utf-8") as f:
            f.writelines(lines)
        removed[split], kept[split] = len(drop), len(bad) - len(drop)
    return removed, kept


def main(argv=None):
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", help="dataset root (train.txt, val.txt, optional test.txt, classes.txt)")
    p.add_argument("--fix", action="store_true", help="write <split>.clean.txt lists without the bad samples")
    p.add_argument("--full", action="store_true", help="compare the demux and full-decode frame counts of every video")
    p.add_argument("--sample", type=int, default=50, help="videos whose frame counts are compared (random, seeded)")
    p.add_argument("--seed", type=int, default=0, help="seed of that sample")
    p.add_argument("--workers", type=int, default=min(cpus, 8), help="worker processes")
    p.add_argument("--frame-template", help="frame file names (default: dataset.json's, else img_{:05d}.jpg)")
    p.add_argument("--report", help="where to write the bad paths (default: DIR/check_bad.txt)")
    args = p.parse_args(argv)
    started, root = time.time(), args.dir
    try:
        info = read_dataset_info(root) or {}  # frame folders: template and start index; multi-label or not
        template = args.frame_template or info.get("frame_template") or "img_{:05d}.jpg"
        start = info.get("start_index") or 1
        splits, classes = {}, None
        for split in SPLITS:
            if split != "test" or os.path.isfile(os.path.join(root, "test.txt")):
                splits[split], classes = load_split(root, split, bool(info.get("multi_label", False)))
    except AnnotationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    samples = {r.path: r for records in splits.values() for r in records}  # each file checked once
    videos = sorted(path for path, r in samples.items() if r.num_frames is None)
    counted = set(videos if args.full else random.Random(args.seed).sample(videos, min(args.sample, len(videos))))
    jobs = [(path, r.num_frames, template, start, path in counted) for path, r in samples.items()]
    bar = dict(total=len(jobs), desc=f"checking {root}", unit="file")
    if args.workers > 1:
        with Pool(min(args.workers, len(jobs))) as pool:
            results = list(tqdm(pool.imap_unordered(check_sample, jobs, chunksize=4), **bar))
    else:
        results = list(tqdm(map(check_sample, jobs), **bar))
    headers = [header for path, _, _, header in results if header is not None]  # readable videos
    results = {path: (found, digest) for path, found, digest, _ in results}

    problems = find_problems(splits, results, root)
    trained = {c for r in splits["train"] for c in (r.label if isinstance(r.label, tuple) else (r.label,))}
    empty_classes = [f"{k} {name!r}" for k, name in enumerate(classes) if k not in trained]
    report = args.report or os.path.join(root, "check_bad.txt")
    with open(report, "w", encoding="utf-8") as f:
        for split, records in splits.items():
            for r in records:
                for kind, reason in problems.get(r.where, ()):
                    f.write(f"{os.path.relpath(r.path, root)}\t{kind}: {reason} "
                            f"({os.path.basename(r.where)})\n")

    counts = {}
    for split, records in splits.items():
        kinds = [{kind for kind, _ in problems.get(r.where, ())} for r in records]
        counts[split] = {"samples": len(records), **{kind: sum(kind in k for k in kinds) for kind in COLUMNS}}
    total = sum(len(found) for found in problems.values()) + len(empty_classes)
    print(f"{'split':<6}{'samples':>9}" + "".join(f"{title:>{len(title) + 2}}" for title in COLUMNS.values()))
    for split, c in counts.items():
        print(f"{split:<6}{c['samples']:>9}" + "".join(f"{c[k]:>{len(title) + 2}}" for k, title in COLUMNS.items()))
    print(f"classes with no training sample: {len(empty_classes)}"
          + (f" ({', '.join(empty_classes)})" if empty_classes else ""))
    print(f"frame counts compared (demux pass vs full decode): {len(counted)} of {len(videos)} videos")
    by = {way: headers.count(way) for way in ("frames", "duration", "none")}
    print(f"headers compared (header vs the packets in the file): {by['frames'] + by['duration']} of {len(headers)} "
          f"readable videos ({by['frames']} by frame count, {by['duration']} by duration: WebM/MKV, fragmented MP4)"
          + (f"; {by['none']} with neither in the header (e.g. MPEG-TS, a WebM written live): counted, not compared"
             if by["none"] else ""))
    print(f"{total} problems; bad paths: {report} ({sum(map(len, problems.values()))} lines)")
    result = {"dir": root, "splits": counts, "empty_classes": len(empty_classes), "counts_compared": len(counted),
              "headers_compared": by["frames"] + by["duration"],
              "headers_by_duration": by["duration"], "headers_not_compared": by["none"],
              "problems": total, "report": report}
    if args.fix:
        removed, kept = write_clean_lists(splits, problems)
        print("cleaned lists: " + ", ".join(f"{split}.clean.txt ({n} of {len(splits[split])} removed)"
                                            for split, n in removed.items())
              + (f"; kept {sum(kept.values())} with a problem: header_mismatch only (the video reads, shorter than "
                 f"its header promises: a cut download? fetch it again or remove it by hand)"
                 if sum(kept.values()) else ""))
        result["removed"], result["kept"] = removed, kept
    print(json.dumps({**result, "seconds": round(time.time() - started, 1)}))
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
