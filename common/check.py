"""Pre-flight check of a prepared dataset (CONVENTIONS.md "Dataset layout"): python -m common.check DIR [--fix]

Checks every sample of DIR/train.txt, val.txt and test.txt (when present) in worker processes, with a progress bar:
- a video opens and decodes: a few frames spread from its first to its last (`read_video`); on a seeded random
  sample of videos (`--sample K`, every video with `--full`) the frame count of the demux pass (`video_num_frames`,
  what the loaders sample from) must equal the count of a full sequential decode (`decoded_frame_count`);
- a frame folder holds exactly the listed frames (each listed file exists, the next one does not) and its first
  and last frames decode (template and start index from DIR/dataset.json, `--frame-template` overrides);
- no path is listed in two splits, and no video or folder has the same content (sha1 of its bytes) as one of an
  earlier split (train, then val, then test);
- every class has a training sample. A malformed list line or a label out of range stops the check with that
  one line (exit code 2).

Prints a table per split; the last line is one JSON object with the counts. Writes one `path<TAB>reason` line per
problem to DIR/check_bad.txt (`--report FILE`; empty when all is well). Exit code 1 when a problem was found.
`--fix` writes train.clean.txt, val.clean.txt (test.clean.txt) beside the originals: their lines less the bad
samples and, in val/test, less the samples whose path or content is already in an earlier split. The originals
are never touched.
"""
import argparse
import hashlib
import json
import os
import random
import sys
import time
from multiprocessing import Pool

import numpy as np
from tqdm import tqdm

from .data import AnnotationError, load_split
from .prepare import read_dataset_info
from .video import BadVideo, decoded_frame_count, read_frame_folder, read_video, video_num_frames

SPLITS = ("train", "val", "test")
FRAMES_READ = 4  # frames decoded per video, spread evenly from the first to the last
# problem kinds (the report's and the JSON's names) and the summary's column titles
COLUMNS = {"unreadable": "unreadable", "count_mismatch": "count mismatch", "short_folder": "empty/short folder",
           "overlap": "in earlier split", "duplicate": "duplicate content"}


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


def check_video(path, count):
    """[(kind, reason)] for a video file; `count`: also compare the demux pass's frame count with a full decode."""
    problems = []
    try:
        read_video(path, _spread)
    except BadVideo as e:
        problems.append(("unreadable", _reason(e, path)))
    if count:
        try:
            demuxed, decoded = video_num_frames(path), decoded_frame_count(path)
            if demuxed != decoded:
                problems.append(("count_mismatch", f"{demuxed} frames by the demux pass, {decoded} by a full decode"))
        except BadVideo as e:
            if not problems:
                problems.append(("unreadable", _reason(e, path)))
    return problems


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
    """(path, [(kind, reason)], sha1 or None) for one video or frame folder; runs in the worker processes."""
    path, num_frames, template, start, count = job
    try:
        if num_frames is None:
            return path, check_video(path, count), _sha1([path])
        frames = [os.path.join(path, template.format(i + start)) for i in range(num_frames)]
        return path, check_folder(path, num_frames, template, start), _sha1(frames)
    except Exception as e:  # a reader's bug must not end the check of all other files: reported as this file's
        return path, [("unreadable", f"the reader failed: {type(e).__name__}: {e}")], None


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
    """DIR/<split>.clean.txt: the original lines less those of samples with a problem; {split: lines removed}."""
    removed = {}
    for split, records in splits.items():
        listed = records[0].where.rpartition(":")[0]
        drop = {int(r.where.rpartition(":")[2]) for r in records if r.where in problems}
        with open(listed, encoding="utf-8") as f:
            lines = [line for n, line in enumerate(f, 1) if n not in drop]
        with open(listed[: -len(".txt")] + ".clean.txt", "w", encoding="utf-8") as f:
            f.writelines(lines)
        removed[split] = len(drop)
    return removed


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
    results = {path: (found, digest) for path, found, digest in results}

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
    print(f"{total} problems; bad paths: {report} ({sum(map(len, problems.values()))} lines)")
    result = {"dir": root, "splits": counts, "empty_classes": len(empty_classes), "counts_compared": len(counted),
              "problems": total, "report": report}
    if args.fix:
        removed = write_clean_lists(splits, problems)
        print("cleaned lists: " + ", ".join(f"{split}.clean.txt ({n} of {len(splits[split])} removed)"
                                            for split, n in removed.items()))
        result["removed"] = removed
    print(json.dumps({**result, "seconds": round(time.time() - started, 1)}))
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
