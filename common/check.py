"""Pre-flight check of a prepared dataset (CONVENTIONS.md "Dataset layout"): python -m common.check DIR [--fix]

Checks every sample of DIR/train.txt, val.txt and test.txt (when present) in worker processes, with a progress bar:
- a video opens and decodes: a few frames spread from its first to its last (`read_video`, which counts the frames
  a full sequential decode yields; CONVENTIONS.md "Bad input"). A file that cannot be read is `unreadable`;
- a readable video is not cut short: the frame count its container header promises (MP4/MOV sample count, AVI
  stream length) is held in full by the file. A header that promises more frames than the file holds packets for is
  a `header_mismatch` (a truncated download, or a header that lies): reported, but the video reads as the shorter
  video it is, so `--fix` keeps it. A header without a frame count (WebM/MKV, fragmented MP4) is counted, not
  compared;
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
    """None when the container header gives no frame count, else (frames the header promises, seconds it promises,
    packets of the video stream the file holds, seconds they span, whether the file falls short of the promise).

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
    timed = bool(duration) and end is not None
    short = held < promised and (not timed or end - start <= duration - duration / promised)
    return (promised, float(duration * unit) if duration else None, held,
            float((end - start) * unit) if timed else None, short)


def check_video(path, count):
    """([(kind, reason)], header) for a video file; `count`: also compare the demux pass's frame count with a full
    decode. header: True when the header's frame count was compared with the file, False when the header gives
    none, None when the video is unreadable (nothing compared)."""
    problems, decoded, header = [], None, None
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
    if frames is not None:
        try:
            shortfall = header_shortfall(path)
        except av.FFmpegError as e:  # read_video demuxed the same file: not expected, reported if it happens
            problems.append(("unreadable", f"demuxing for the header check failed ({e})"))
            return problems, None
        header = shortfall is not None
        if header and shortfall[4]:
            promised, promised_s, held, held_s, _ = shortfall
            times = held_s is not None  # seconds only when both are known
            found = f"a full decode gives {decoded}" if decoded is not None else f"the reader counts {frames}"
            problems.append(("header_mismatch", f"the header promises {promised} frames"
                             f"{f' ({promised_s:.2f} s)' if times else ''}, the file holds {held} of them"
                             f"{f' (up to {held_s:.2f} s)' if times else ''}, {found} (cut file?)"))
    return problems, header


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
    print(f"header frame counts compared (header vs the packets in the file): {sum(headers)} of {len(headers)} "
          f"readable videos" + (f" ({len(headers) - sum(headers)} without a frame count in the header, e.g. "
                                f"WebM/MKV: not compared)" if len(headers) > sum(headers) else ""))
    print(f"{total} problems; bad paths: {report} ({sum(map(len, problems.values()))} lines)")
    result = {"dir": root, "splits": counts, "empty_classes": len(empty_classes), "counts_compared": len(counted),
              "headers_compared": sum(headers), "headers_without_count": len(headers) - sum(headers),
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
