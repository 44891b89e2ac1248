"""Annotation lists (CONVENTIONS.md "Dataset layout") and the map-style dataset shared by the five scripts.

A list line is `RELPATH LABEL` (a video file) or `RELPATH NUM_FRAMES LABEL` (a folder of JPEG frames); LABEL is
an int or, for multi-label data, a comma-separated list of ints. Numbers are taken from the right, so paths may
contain spaces. Errors name the file, the line number and the reason.

The dataset returns uint8 clips (decoding and cropping happen in the workers; conversion to float and
normalisation happen on the device). In training a sample that cannot be read is replaced by another one, and
the paths of the bad samples travel with the batch so the main process can warn once per path and count them per
epoch. In evaluation (`skip_bad=True`) an unreadable video is never replaced: its item carries no clip, and
`collate_eval` leaves it out of the batch and reports it, so a metric never counts a video twice.

DIR/dataset.json (written by common.prepare) is read here too (`read_dataset_info`), and a raw official download
passed as --data is recognised (`raw_dataset_hint`): common.prepare writes the layout, this module reads it.
"""
import hashlib
import json
import os
import re
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from .run import print0
from .transforms import parse_label_map
from .video import BadVideo, read_frame_folder, read_video


class AnnotationError(ValueError):
    """A malformed list file, a label out of range or a missing dataset folder."""


@dataclass
class Record:
    path: str               # absolute path of the video file or frame folder
    label: object           # int, or a tuple of ints for multi-label data
    num_frames: int = None  # frame folders only (videos: counted when read)
    where: str = ""         # "file:line" for messages


def read_classes(path):
    if not os.path.isfile(path):
        raise AnnotationError(f"{path}: missing (one class name per line; the line number is the label)")
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise AnnotationError(f"{path}: no class names")
    return names


def _parse_label(text, where):
    try:
        labels = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise AnnotationError(f"{where}: label {text!r} is not an integer (or comma-separated integers)") from None
    return labels if "," in text else labels[0]


def read_list(path, root, num_classes, multi_label=False):
    """Parse a list file into `Record`s. Frame-folder lines are recognised by an integer frame count before the
    label whose path (without that number) is not an existing file."""
    if not os.path.isfile(path):
        raise AnnotationError(f"{path}: missing list file")
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n").strip()
            if not line or line.startswith("#"):
                continue
            where = f"{path}:{n}"
            head, _, label_text = line.rpartition(" ")
            if not head:
                raise AnnotationError(f"{where}: expected 'RELPATH LABEL' or 'RELPATH NUM_FRAMES LABEL', got {line!r}")
            label = _parse_label(label_text, where)
            num_frames = None
            rel, _, frames_text = head.strip().rpartition(" ")
            if rel and frames_text.isdigit() and not os.path.isfile(os.path.join(root, head.strip())):
                head, num_frames = rel, int(frames_text)
                if num_frames < 1:
                    raise AnnotationError(f"{where}: frame count must be positive, got {num_frames}")
            labels = label if isinstance(label, tuple) else (label,)
            if not multi_label and len(labels) > 1:
                raise AnnotationError(f"{where}: several labels {label_text!r} in a single-label dataset")
            bad = [x for x in labels if not 0 <= x < num_classes]
            if bad:
                raise AnnotationError(f"{where}: label {bad[0]} out of range [0, {num_classes}) "
                                      f"(classes.txt has {num_classes} lines)")
            records.append(Record(os.path.join(root, head.strip()), labels if multi_label else labels[0], num_frames, where))
    if not records:
        raise AnnotationError(f"{path}: no samples")
    return records


def load_split(root, split, multi_label=False):
    """(records, class_names) for DIR/split.txt and DIR/classes.txt."""
    if not os.path.isdir(root):
        raise AnnotationError(f"{root}: dataset folder not found")
    if not os.path.isfile(os.path.join(root, f"{split}.txt")):
        hint = raw_dataset_hint(root)
        if hint:
            raise AnnotationError(hint)
    classes = read_classes(os.path.join(root, "classes.txt"))
    return read_list(os.path.join(root, f"{split}.txt"), root, len(classes), multi_label), classes


@dataclass
class DataOptions:
    """How a run reads its dataset: frame-folder names and the labels a horizontal flip swaps."""
    frame_template: str = "img_{:05d}.jpg"
    start_index: int = 1
    flip_labels: dict = None
    info: dict = None        # DIR/dataset.json, or None
    classes: list = None

    @property
    def frames(self):
        return {"frame_template": self.frame_template, "start_index": self.start_index}


def data_options(args, classes, info, source):
    """The run's DataOptions: a command-line flag (--frame-template, --flip-labels) wins over dataset.json
    (`info`, written by common.prepare; from the checkpoint for --predict); without either, TSN's img_{:05d}.jpg
    from 1 and no label swap. Prints what it uses and where it comes from."""
    info = info or {}
    template = args.frame_template or info.get("frame_template") or DataOptions.frame_template
    start = 1 if info.get("start_index") is None else info["start_index"]
    if args.flip_labels is not None:
        try:
            flips, origin = parse_label_map(args.flip_labels), "--flip-labels"
        except ValueError as e:
            raise AnnotationError(str(e)) from None
    else:
        flips = flip_map(info)
        origin = "dataset.json" if info else "no dataset.json: none"
    bad = [k for pair in flips.items() for k in pair if not 0 <= k < len(classes)]
    if bad:
        raise AnnotationError(f"flip label {bad[0]} out of range [0, {len(classes)}) ({origin})")
    pairs = sorted({tuple(sorted(pair)) for pair in flips.items()})
    shown = ", ".join(f"{a} {classes[a]!r} <-> {b} {classes[b]!r}" for a, b in pairs) or "none"
    name = f" ({info['name']})" if info.get("name") else ""
    print0(f"data: {source}{name}; frame template {template} from {start} "
           f"({'--frame-template' if args.frame_template else 'dataset.json' if info.get('frame_template') else 'default'}); "
           f"labels swapped by a flip ({origin}): {shown}")
    return DataOptions(template, start, flips, info or None, list(classes))


def count_frames(folder, template="img_{:05d}.jpg", start=1):
    """(n, others) for a folder of frames: n = the frames template(start), template(start + 1), ... present without
    a gap (the rule of the lists and of common.check); others = {template: count} of the image files that are not
    those frames, each named by its own numbering (TSN's dense-flow extraction writes `flow_x_00001.jpg`,
    `flow_y_00001.jpg` beside `img_00001.jpg`), so a caller can say what it leaves out."""
    names = set(os.listdir(folder))
    n = 0
    while template.format(start + n) in names:
        n += 1
    frames = {template.format(start + i) for i in range(n)}
    others = {}
    for name in sorted(names - frames):
        if name.lower().endswith((".jpg", ".jpeg", ".png")):
            other = re.sub(r"\d+", lambda m: f"{{:0{len(m.group())}d}}", name)   # flow_x_00001.jpg -> flow_x_{:05d}.jpg
            others[other] = others.get(other, 0) + 1
    return n, others


def sample_seed(seed, epoch, index):
    """Per-sample random seed: the same sample of the same epoch sees the same augmentation whatever the
    worker count, which makes `--resume` exact."""
    return zlib.crc32(f"{seed}/{epoch}/{index}".encode())


class EpochSampler(torch.utils.data.Sampler):
    """Yields (index, seed) pairs for one epoch. Train: a seeded permutation, equal shards per rank
    (DistributedSampler-style padding by wrap-around) and `skip` for mid-epoch resume. Eval: every index
    exactly once over all ranks (rank::world), so metrics are exact after the reduction."""

    def __init__(self, size, shuffle, seed=0, rank=0, world=1):
        self.size, self.shuffle, self.seed, self.rank, self.world = size, shuffle, seed, rank, world
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch, skip=0):
        self.epoch, self.skip = epoch, skip

    def _indices(self):
        if not self.shuffle:
            return list(range(self.rank, self.size, self.world))
        order = np.random.RandomState(sample_seed(self.seed, self.epoch, -1)).permutation(self.size).tolist()
        per_rank = -(-self.size // self.world)
        order += order[: per_rank * self.world - self.size]
        return order[self.rank::self.world]

    def __iter__(self):
        for i in self._indices()[self.skip:]:
            yield i, sample_seed(self.seed, self.epoch, i)

    def __len__(self):
        return len(self._indices()) - self.skip


class VideoDataset(torch.utils.data.Dataset):
    """Clips of `Record`s.

    sample(num_frames, clip, rng) -> frame indices of one clip; `num_clips` clips per video (an int, or a
    function of the frame count for whole-video testing); transform(frames uint8 (N,C,H,W), label, rng) ->
    (clip, label). Training items are (clip, label, bad) with `bad` the newline-joined messages of the samples
    that failed before this one was found (empty string when none). With `skip_bad` (evaluation) items are
    (clip or None, label, message, index): an unreadable video is left out (`collate_eval`), never replaced."""

    max_attempts = 20

    def __init__(self, records, sample, transform, num_clips=1, frame_template="img_{:05d}.jpg", start_index=1,
                 multi_label=False, num_classes=None, skip_bad=False):
        self.records, self.sample, self.transform = records, sample, transform
        self.num_clips, self.template, self.start_index = num_clips, frame_template, start_index
        self.multi_label, self.num_classes, self.skip_bad = multi_label, num_classes, skip_bad
        self._index_cache = {}

    def __len__(self):
        return len(self.records)

    def _frames(self, record, rng):
        def indices(n):
            clips = self.num_clips(n) if callable(self.num_clips) else self.num_clips
            return np.concatenate([self.sample(n, k, rng) for k in range(clips)])

        if record.num_frames is not None:
            if not os.path.isdir(record.path):
                raise BadVideo(f"{record.path}: frame folder not found")
            return read_frame_folder(record.path, indices(record.num_frames), self.template, self.start_index)
        frames, index = read_video(record.path, indices, self._index_cache.get(record.path))
        if index is not None and len(self._index_cache) < 100_000:  # one demux pass per video and worker
            self._index_cache[record.path] = index
        return frames

    def _target(self, label):
        if not self.multi_label:
            return torch.tensor(label)
        target = torch.zeros(self.num_classes)
        target[list(label)] = 1.0
        return target

    def __getitem__(self, item):
        index, seed = item if isinstance(item, tuple) else (item, item)
        rng = np.random.RandomState(seed)
        if self.skip_bad:
            record = self.records[index]
            try:
                clip, label = self.transform(self._frames(record, rng), record.label, rng)
                return clip, self._target(label), "", index
            except BadVideo as e:
                return None, self._target(record.label), str(e), index
        bad = []
        for _ in range(self.max_attempts):
            record = self.records[index]
            try:
                clip, label = self.transform(self._frames(record, rng), record.label, rng)
                return clip, self._target(label), "\n".join(bad)
            except BadVideo as e:
                bad.append(str(e))
                index = int(rng.randint(len(self.records)))
        raise RuntimeError(f"{self.max_attempts} unreadable samples in a row; last: {bad[-1]}")


def collate_eval(batch):
    """Evaluation items -> (views of the readable videos concatenated (sum V, T, C, H, W) or None, views per
    video (B,), targets (B, ...), dataset indices (B,), [(dataset index, message)] of the videos left out).
    Videos may have different numbers of views (whole-video testing)."""
    kept = [item for item in batch if item[0] is not None]
    skipped = [(item[3], item[2]) for item in batch if item[0] is None]
    if not kept:
        return None, None, None, None, skipped
    clips, targets, _, ids = zip(*kept)
    return (torch.cat(clips), torch.tensor([len(c) for c in clips]), torch.stack(targets), torch.tensor(ids),
            skipped)


# ---- dataset.json (written by common.prepare) and raw downloads passed as --data -----------------------------
def sha1_of(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


_INFO_KEYS = ("name", "num_classes", "split", "frame_template", "start_index", "multi_label", "flip_pairs",
              "classes_sha1")


def read_dataset_info(root):
    """DIR/dataset.json as a dict (see write_dataset_info), or None when DIR has none. Raises AnnotationError when
    it no longer describes DIR/classes.txt (class count or sha1 differ) or is malformed."""
    path = os.path.join(root, "dataset.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except ValueError as e:
        raise AnnotationError(f"{path}: not valid JSON ({e}); rerun `python -m common.prepare`") from None
    missing = [k for k in _INFO_KEYS if k not in info]
    if missing:
        raise AnnotationError(f"{path}: no {', '.join(missing)}; rerun `python -m common.prepare`")
    classes_path = os.path.join(root, "classes.txt")
    num_classes, sha1 = len(read_classes(classes_path)), sha1_of(classes_path)
    if info["num_classes"] != num_classes or info["classes_sha1"] != sha1:
        raise AnnotationError(f"{path} no longer describes {classes_path} ({info['num_classes']} classes, sha1 "
                              f"{str(info['classes_sha1'])[:10]} there; {num_classes}, {sha1[:10]} now): rerun "
                              f"`python -m common.prepare` or delete dataset.json")
    pairs, template = info["flip_pairs"], info["frame_template"]
    labels = [x for pair in pairs for x in pair]
    if (any(len(pair) != 2 for pair in pairs) or len(set(labels)) != len(labels)
            or not all(isinstance(x, int) and 0 <= x < num_classes for x in labels)):
        raise AnnotationError(f"{path}: flip_pairs {pairs} must be pairs of distinct labels in [0, {num_classes}), "
                              f"each label in one pair at most")
    if template is not None and not (isinstance(template, str) and "{" in template
                                     and template.format(1) != template.format(2)):
        raise AnnotationError(f"{path}: frame_template {template!r} is not a file name with a frame number field "
                              f"like '{{:05d}}.jpg'")
    return info


def flip_map(info):
    """{a: b, b: a, ...} from dataset.json's flip pairs: the label of a horizontally flipped clip. {} for None."""
    pairs = info["flip_pairs"] if info else []
    return {**{a: b for a, b in pairs}, **{b: a for a, b in pairs}}


# ---------------------------------------------------------------------------------------- raw download detection
_RAW_MARKERS = {"something-something-v1-labels.csv": "ssv1", "20bn-something-something-v1": "ssv1",
                "something-something-v2-labels.json": "ssv2", "20bn-something-something-v2": "ssv2",
                "UCF-101": "ucf101", "ucfTrainTestlist": "ucf101", "classInd.txt": "ucf101",
                "testTrainMulti_7030_splits": "hmdb51", "Diving48_vocab.json": "diving48",
                "Diving48_V2_train.json": "diving48", "Diving48_train.json": "diving48",
                "Charades_v1_classes.txt": "charades", "Charades_v1_train.csv": "charades"}


def _raw_kind(name, path):
    """Which official download a file or folder called `name` belongs to, or None."""
    if name.endswith("_test_split1.txt"):
        return "hmdb51"
    if name in ("train.csv", "validate.csv", "val.csv") and os.path.isfile(path):
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            return "kinetics400" if f.readline().startswith("label,youtube_id") else None
    return _RAW_MARKERS.get(name)


def raw_dataset_hint(root):
    """One line of advice when `root` (or a folder directly in it) holds an official raw download instead of the
    prepared layout, else None."""
    if not os.path.isdir(root):
        return None
    entries = sorted((e.name, e.path) for e in os.scandir(root))
    if len(entries) <= 100:  # a few folders (annotations/, UCF-101/ ...), not a folder of videos or frames
        for name, path in list(entries):
            if os.path.isdir(path):
                entries += sorted((e.name, e.path) for e in os.scandir(path))
    for name, path in entries:
        kind = _raw_kind(name, path)
        if kind:
            return (f"{root} looks like the raw {kind} download: run `python -m common.prepare {kind} {root} OUT` "
                    f"first and pass OUT as --data")
    return None
