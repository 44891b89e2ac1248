"""Annotation lists (CONVENTIONS.md "Dataset layout") and the map-style dataset shared by the five scripts.

A list line is `RELPATH LABEL` (a video file) or `RELPATH NUM_FRAMES LABEL` (a folder of JPEG frames); LABEL is
an int or, for multi-label data, a comma-separated list of ints. Numbers are taken from the right, so paths may
contain spaces. Errors name the file, the line number and the reason.

The dataset returns uint8 clips (decoding and cropping happen in the workers; conversion to float and
normalisation happen on the device). A sample that cannot be read is replaced by another one, and the paths of
the bad samples travel with the batch so the main process can warn once per path and count them per epoch.
"""
import os
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
import torch

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
    classes = read_classes(os.path.join(root, "classes.txt"))
    return read_list(os.path.join(root, f"{split}.txt"), root, len(classes), multi_label), classes


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
    (clip, label). Items are (clip, label, bad) with `bad` the newline-joined paths that failed before this
    sample was found (empty string when none)."""

    max_attempts = 20

    def __init__(self, records, sample, transform, num_clips=1, frame_template="img_{:05d}.jpg",
                 multi_label=False, num_classes=None):
        self.records, self.sample, self.transform = records, sample, transform
        self.num_clips, self.template = num_clips, frame_template
        self.multi_label, self.num_classes = multi_label, num_classes
        self._index_cache = {}
        self._warned = set()

    def __len__(self):
        return len(self.records)

    def _frames(self, record, rng):
        def indices(n):
            clips = self.num_clips(n) if callable(self.num_clips) else self.num_clips
            return np.concatenate([self.sample(n, k, rng) for k in range(clips)])

        if record.num_frames is not None:
            if not os.path.isdir(record.path):
                raise BadVideo(f"{record.path}: frame folder not found")
            return read_frame_folder(record.path, indices(record.num_frames), self.template)
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
        bad = []
        for _ in range(self.max_attempts):
            record = self.records[index]
            try:
                clip, label = self.transform(self._frames(record, rng), record.label, rng)
                return clip, self._target(label), "\n".join(bad)
            except BadVideo as e:
                bad.append(str(e))
                if record.path not in self._warned:
                    self._warned.add(record.path)
                    warnings.warn(f"skipping unreadable sample ({record.where}): {e}", stacklevel=1)
                index = int(rng.randint(len(self.records)))
        raise RuntimeError(f"{self.max_attempts} unreadable samples in a row; last: {bad[-1]}")
