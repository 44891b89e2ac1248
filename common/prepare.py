"""Write the dataset layout of CONVENTIONS.md from the official annotation files.

    python -m common.prepare NAME SRC DIR [--split N]

NAME: ssv1 | ssv2 | kinetics400 | ucf101 | hmdb51 | diving48 | charades. SRC is the folder where the official
archives were unpacked as they come; DIR receives train.txt, val.txt, classes.txt (paths relative to DIR) and
dataset.json (name, classes, frame template, multi-label, the flip label pairs found by class name; see
`write_dataset_info`). Stops with one line when an annotation file is missing, a label names no class, or a
video is in both train and val; listed videos that do not exist are reported and left out; files found only by a
case-insensitive name match are counted in a warning. What each reader expects under SRC:

- ssv1: something-something-v1-{labels,train,validation}.csv (`id;label`), frame folders
  20bn-something-something-v1/<id>/%05d.jpg; classes sorted by name (TSM's order; the labels csv is not sorted)
- ssv2: something-something-v2-{labels,train,validation}.json (anywhere under SRC), videos <id>.webm (anywhere);
  the labels json's indices, checked to be 0..K-1
- kinetics400: {train,validate|val}.csv (`label,youtube_id,time_start,time_end,split[,is_cc]`), videos named
  <youtube_id>_<start:06d>_<end:06d>.mp4 anywhere under SRC; classes sorted by name
- ucf101: UCF-101/<Class>/*.avi and ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt (classInd is 1-based)
- hmdb51: <class>/*.avi (anywhere) and <class>_test_splitN.txt (1 = train, 2 = test, 0 = unused); classes sorted
- diving48: Diving48_V2_{train,test}.json or Diving48_{train,test}.json (`vid_name`, `label`),
  Diving48_vocab.json, videos <vid_name>.mp4 anywhere
- charades: Charades_v1_{train,test}.csv (`actions` = "c092 11.90 21.20;..."), Charades_v1_classes.txt,
  videos <id>.mp4 anywhere (multi-label: comma-separated labels; videos without actions are left out)
"""
import argparse
import csv
import datetime
import json
import os
import re
import sys

# flip_map, raw_dataset_hint, read_dataset_info: read by data.py, imported here too for callers of common.prepare
from .data import (AnnotationError, count_frames, flip_map, raw_dataset_hint, read_classes,  # noqa: F401
                   read_dataset_info, sha1_of)

FRAME_TEMPLATE = {"ssv1": "{:05d}.jpg"}  # datasets listed as frame folders (1-based file names); others: videos
MULTI_LABEL = {"charades"}


# ---------------------------------------------------------------------------------------- class names
_MIRROR = {"left": "right", "right": "left", "clockwise": "counterclockwise", "counterclockwise": "clockwise"}


def _key(name):
    """A class name as lower-case words: 'Pulling_something  from Left' -> ('pulling', 'something', 'from', 'left')."""
    return tuple(re.findall(r"[a-z0-9']+", name.lower()))


def _class_index(classes):
    """_key(name) -> label; two class names with one key (a name listed twice) is an error."""
    index = {}
    for i, name in enumerate(classes):
        j = index.setdefault(_key(name), i)
        if j != i:
            raise AnnotationError(f"the class list names one class twice (up to case, spaces, punctuation): "
                                  f"{classes[j]!r} (label {j}) and {name!r} (label {i})")
    return index


def flip_pairs(class_names):
    """[[a, b], ...] (a < b): the classes a horizontal flip swaps, found by name, never by index: two names that
    are equal, up to case and punctuation, once the words left <-> right (and clockwise <-> counterclockwise) are
    swapped ("Pulling something from left to right" / "... from right to left"). [] when no name has a mirror."""
    index = _class_index(class_names)
    pairs = []
    for key, a in index.items():
        b = index.get(tuple(_MIRROR.get(word, word) for word in key))
        if b is not None and a < b:
            pairs.append([a, b])
    return sorted(pairs)


class _Labels:
    """label = labels(name) for class names in annotations: the exact name, else one equal up to case, spaces and
    punctuation (counted); -1 for an unknown name (collected). `check()` stops on unknown names, warns on inexact."""

    def __init__(self, classes, where):
        self.classes, self.exact, self.where = classes, {c: i for i, c in enumerate(classes)}, where
        self.loose = _class_index(classes)
        self.unknown, self.inexact = {}, {}

    def __call__(self, name):
        if name in self.exact:
            return self.exact[name]
        label = self.loose.get(_key(name), -1)
        counts = self.unknown if label < 0 else self.inexact
        counts[name] = counts.get(name, 0) + 1
        return label

    def check(self):
        if self.unknown:
            names = ", ".join(repr(n) for n in list(self.unknown)[:3])
            _fail(f"{sum(self.unknown.values())} annotations name a class that is not in {self.where} "
                  f"({len(self.unknown)} names, e.g. {names})")
        if self.inexact:
            name = next(iter(self.inexact))
            print(f"warning: {sum(self.inexact.values())} annotations name their class with other case, spaces or "
                  f"punctuation than {self.where}, matched by name (e.g. {name!r} is "
                  f"{self.classes[self.loose[_key(name)]]!r})")


# ---------------------------------------------------------------------------------------- files under SRC
def _fail(message):
    sys.exit(f"error: {message}")


def _find(src, *names):
    """The path of the first file called one of `names` somewhere under `src` (sorted walk)."""
    for folder, dirs, files in os.walk(src):
        dirs.sort()
        for name in names:
            if name in files:
                return os.path.join(folder, name)
    _fail(f"{' or '.join(names)} not found under {src}")


def _lines(path):
    """Non-empty lines without surrounding whitespace (CRLF, trailing spaces and a BOM are common)."""
    with open(path, encoding="utf-8-sig") as f:
        return [line.strip() for line in f if line.strip()]


def _json(path):
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except ValueError as e:
        _fail(f"{path}: not valid JSON ({e})")


def _csv(path, columns):
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if rows and not set(columns) <= set(rows[0]):
        _fail(f"{path}: expected the columns {', '.join(columns)}, found {', '.join(rows[0])}")
    return rows


class _Files:
    """path = files.get(name, default): a file under `src` found by its name (sorted walk, first one found); a
    name found only case-insensitively is used and counted, `check()` warns about those and about repeated names."""

    def __init__(self, src, suffixes):
        self.exact, self.lower, self.repeated, self.inexact = {}, {}, [], []
        for folder, dirs, files in os.walk(src):
            dirs.sort()
            for f in sorted(files):
                if f.lower().endswith(suffixes):
                    path = os.path.join(folder, f)
                    if f in self.exact:
                        self.repeated.append(path)
                    self.exact.setdefault(f, path)
                    self.lower.setdefault(f.lower(), path)

    def get(self, name, default):
        if name in self.exact:
            return self.exact[name]
        if name.lower() in self.lower:
            self.inexact.append(name)
            return self.lower[name.lower()]
        return default

    def check(self):
        if self.inexact:
            print(f"warning: {len(self.inexact)} listed videos were found only by a case-insensitive name match "
                  f"(e.g. {self.inexact[0]} -> {self.lower[self.inexact[0].lower()]})")
        if self.repeated:
            print(f"warning: {len(self.repeated)} video file names occur more than once under SRC; the first one "
                  f"found is listed (e.g. {self.repeated[0]} is not)")


# ---------------------------------------------------------------------------------------- readers
# Each returns (classes, {"train": [(path, label), ...], "val": [...]}); label -1 never leaves a reader.
def ssv1(src, split):
    labels_csv = _find(src, "something-something-v1-labels.csv")
    classes = sorted(_lines(labels_csv))  # TSM's gen_label_sthv1.py: class names sorted
    labels = _Labels(classes, labels_csv)
    frames_root = os.path.join(os.path.dirname(labels_csv), "20bn-something-something-v1")
    folders = {d: os.path.join(dp, d) for dp, ds, _ in os.walk(src) for d in ds if d.isdigit()}
    out = {}
    for part, name in (("train", "train"), ("val", "validation")):
        path = _find(src, f"something-something-v1-{name}.csv")
        out[part] = []
        for line in _lines(path):
            vid, sep, label = line.partition(";")
            if not sep:
                _fail(f"{path}: expected 'id;label', got {line!r}")
            out[part].append((folders.get(vid, os.path.join(frames_root, vid)), labels(label.strip())))
    labels.check()
    return classes, out


def ssv2(src, split):
    labels_json = _find(src, "something-something-v2-labels.json")
    index = _json(labels_json)
    try:
        order = sorted(index, key=lambda name: int(index[name]))
        ok = [int(index[name]) for name in order] == list(range(len(index)))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        _fail(f"{labels_json}: expected {{class name: index}} with the indices 0..{len(index) - 1} once each")
    classes = order
    labels, videos = _Labels(classes, labels_json), _Files(src, (".webm", ".mp4"))
    out = {}
    for part, name in (("train", "train"), ("val", "validation")):
        entries = _json(_find(src, f"something-something-v2-{name}.json"))
        out[part] = [(videos.get(f"{e['id']}.webm", os.path.join(src, f"{e['id']}.webm")),
                      labels(e["template"].replace("[", "").replace("]", ""))) for e in entries]
    labels.check()
    videos.check()
    return classes, out


def kinetics400(src, split):
    columns = ("label", "youtube_id", "time_start", "time_end")
    rows = {"train": _csv(_find(src, "train.csv"), columns),
            "val": _csv(_find(src, "validate.csv", "val.csv"), columns)}
    classes = sorted({r["label"].strip() for r in rows["train"]})
    labels, videos = _Labels(classes, "the labels of train.csv"), _Files(src, (".mp4", ".mkv", ".webm"))
    out = {}
    for part, items in rows.items():
        out[part] = []
        for r in items:
            base = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}"
            path = next((p for p in (videos.get(base + ext, None) for ext in (".mp4", ".mkv", ".webm")) if p),
                        os.path.join(src, base + ".mp4"))
            out[part].append((path, labels(r["label"].strip())))
    labels.check()
    videos.check()
    return classes, out


def ucf101(src, split):
    class_ind = _find(src, "classInd.txt")
    rows = [line.split() for line in _lines(class_ind)]
    if any(len(r) != 2 for r in rows) or sorted(int(r[0]) for r in rows) != list(range(1, len(rows) + 1)):
        _fail(f"{class_ind}: expected lines 'INDEX NAME' with the indices 1..{len(rows)}")
    classes = [name for _, name in sorted(rows, key=lambda r: int(r[0]))]  # classInd is 1-based
    labels, videos = _Labels(classes, class_ind), _Files(src, (".avi",))
    out = {}
    for part, name in (("train", f"trainlist{split:02d}.txt"), ("val", f"testlist{split:02d}.txt")):
        path = os.path.join(os.path.dirname(class_ind), name)
        if not os.path.isfile(path):
            _fail(f"{name} not found under {src} (beside {class_ind})")
        out[part] = []
        for line in _lines(path):
            rel, *given = line.split()  # the test lists have no label
            label = labels(rel.split("/")[0])
            if given and label >= 0 and int(given[0]) != label + 1:
                _fail(f"{path}: {rel} has the label {given[0]}, but classInd.txt numbers {classes[label]} {label + 1}")
            out[part].append((videos.get(os.path.basename(rel), os.path.join(src, "UCF-101", rel)), label))
    labels.check()
    videos.check()
    return classes, out


def hmdb51(src, split):
    suffix = f"_test_split{split}.txt"
    split_files = {f[: -len(suffix)]: os.path.join(dp, f)
                   for dp, _, fs in os.walk(src) for f in fs if f.endswith(suffix)}
    if not split_files:
        _fail(f"no *{suffix} files found under {src}")
    classes = sorted(split_files)
    videos = _Files(src, (".avi",))
    out = {"train": [], "val": []}
    for label, name in enumerate(classes):
        for line in _lines(split_files[name]):
            parts = line.split()  # "VIDEO.avi 1 " (a trailing space)
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                _fail(f"{split_files[name]}: expected 'VIDEO.avi 0|1|2', got {line!r}")
            if parts[1] != "0":
                video = videos.get(parts[0], os.path.join(src, name, parts[0]))
                out["train" if parts[1] == "1" else "val"].append((video, label))
    videos.check()
    return classes, out


def diving48(src, split):
    vocab = _json(_find(src, "Diving48_vocab.json"))
    classes = [" ".join(v) if isinstance(v, list) else str(v) for v in vocab]  # ["Back", "15som", "05Twis", "FREE"]
    videos = _Files(src, (".mp4",))
    out = {}
    for part, name in (("train", "train"), ("val", "test")):
        path = _find(src, f"Diving48_V2_{name}.json", f"Diving48_{name}.json")  # V2 (cleaned labels) first
        out[part] = []
        for e in _json(path):
            if not 0 <= int(e["label"]) < len(classes):
                _fail(f"{path}: {e['vid_name']} has the label {e['label']}, outside [0, {len(classes)})")
            out[part].append((videos.get(f"{e['vid_name']}.mp4", os.path.join(src, f"{e['vid_name']}.mp4")),
                              int(e["label"])))
    videos.check()
    return classes, out


def charades(src, split):
    classes_txt = _find(src, "Charades_v1_classes.txt")
    codes = [line.split(" ", 1) for line in _lines(classes_txt)]  # "c000 Holding some clothes"
    classes = [name.strip() for _, name in codes]
    label_of = {code: i for i, (code, _) in enumerate(codes)}
    videos = _Files(src, (".mp4",))
    out = {}
    for part, name in (("train", "train"), ("val", "test")):
        path = _find(src, f"Charades_v1_{name}.csv")
        out[part], empty = [], 0
        for r in _csv(path, ("id", "actions")):
            actions = [a.split()[0] for a in r["actions"].split(";") if a.strip()]
            unknown = [a for a in actions if a not in label_of]
            if unknown:
                _fail(f"{path}: video {r['id']} has the action {unknown[0]!r}, not in {classes_txt}")
            if actions:
                out[part].append((videos.get(f"{r['id']}.mp4", os.path.join(src, f"{r['id']}.mp4")),
                                  tuple(sorted({label_of[a] for a in actions}))))
            else:
                empty += 1
        if empty:
            print(f"note: {empty} videos of {os.path.basename(path)} have no actions and are left out")
    videos.check()
    return classes, out


READERS = {"ssv1": ssv1, "ssv2": ssv2, "kinetics400": kinetics400, "ucf101": ucf101, "hmdb51": hmdb51,
           "diving48": diving48, "charades": charades}


# ---------------------------------------------------------------------------------------- checks and output
def check_disjoint(splits):
    """Stop when a video is in both train and val."""
    both = sorted({path for path, _ in splits["train"]} & {path for path, _ in splits["val"]})
    if both:
        _fail(f"{len(both)} videos are in both train and val (e.g. {', '.join(both[:3])}): "
              f"the annotation files do not describe one split")


def _frame_count(folder, template):
    """Number of frames named template(1), template(2), ... (data.count_frames; other files, e.g. TSN's flow_x_*.jpg
    beside them, are not counted), or None when there is none."""
    return count_frames(folder, template, 1)[0] or None


def write_layout(classes, splits, dest, frame_template=None):
    """Write DIR/{train,val}.txt and classes.txt; returns {split: (kept, missing paths)}."""
    lines, report = {}, {}
    for part, items in splits.items():
        lines[part], missing = [], []
        for path, label in items:
            label_text = ",".join(map(str, label)) if isinstance(label, tuple) else str(label)
            rel = os.path.relpath(path, dest)
            if frame_template is None:
                if os.path.isfile(path):
                    lines[part].append(f"{rel} {label_text}\n")
                else:
                    missing.append(path)
            elif not os.path.isdir(path):
                missing.append(path)
            elif (n := _frame_count(path, frame_template)) is None:
                missing.append(f"{path} (frames not named {frame_template.format(1)}, {frame_template.format(2)}, ...)")
            else:
                lines[part].append(f"{rel} {n} {label_text}\n")
        if not lines[part]:
            _fail(f"none of the {len(items)} {part} videos was found (e.g. {missing[0] if missing else 'none listed'})")
        report[part] = (len(lines[part]), missing)
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, "classes.txt"), "w", encoding="utf-8") as f:
        f.write("".join(c + "\n" for c in classes))
    for part in lines:
        with open(os.path.join(dest, f"{part}.txt"), "w", encoding="utf-8") as f:
            f.writelines(lines[part])
    return report


def write_dataset_info(dest, name, split=1, frame_template=None, multi_label=False, source=None, created=True):
    """Write DIR/dataset.json describing DIR/classes.txt (written first) and return it as a dict:
    {"name", "num_classes", "split", "frame_template" (None for videos), "start_index" (1 for frame folders, else
    None), "multi_label", "flip_pairs" (flip_pairs of the class names), "classes_sha1" (of classes.txt's bytes),
    "source", "created" (ISO time, None when `created` is False: the demo's files are the same bytes every build)}."""
    classes_path = os.path.join(dest, "classes.txt")
    classes = read_classes(classes_path)
    info = {"name": name, "num_classes": len(classes), "split": split, "frame_template": frame_template,
            "start_index": 1 if frame_template else None, "multi_label": multi_label,
            "flip_pairs": flip_pairs(classes), "classes_sha1": sha1_of(classes_path), "source": source,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds") if created else None}
    path = os.path.join(dest, "dataset.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:  # one key per line
        f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in info.items()) + "\n}\n")
    os.replace(path + ".tmp", path)
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(READERS))
    p.add_argument("src", help="folder where the official archives were unpacked")
    p.add_argument("dest", help="dataset root to write (DIR)")
    p.add_argument("--split", type=int, default=1, help="UCF101/HMDB51 split number (1-3)")
    args = p.parse_args(argv)
    if not os.path.isdir(args.src):
        _fail(f"{args.src}: no such folder")
    if args.split != 1 and args.name not in ("ucf101", "hmdb51"):
        _fail(f"{args.name} has one split; --split is for ucf101 and hmdb51")
    try:
        classes, splits = READERS[args.name](args.src, args.split)
        check_disjoint(splits)
        template = FRAME_TEMPLATE.get(args.name)
        report = write_layout(classes, splits, args.dest, template)
        info = write_dataset_info(args.dest, args.name, args.split, template, args.name in MULTI_LABEL,
                                  os.path.abspath(args.src))
    except AnnotationError as e:
        _fail(str(e))
    for part, (kept, missing) in report.items():
        print(f"{part}: {kept} samples written, {len(missing)} left out")
        for m in missing[:20]:
            print(f"  missing: {m}")
        if len(missing) > 20:
            print(f"  ... and {len(missing) - 20} more")
    pairs = "; ".join(f"{a} {classes[a]!r} <-> {b} {classes[b]!r}" for a, b in info["flip_pairs"]) or "none"
    print(f"classes: {len(classes)} -> {os.path.join(args.dest, 'classes.txt')}")
    print(f"dataset.json: frame template {template}, multi-label {info['multi_label']}, flip pairs: {pairs}")
    return report


if __name__ == "__main__":
    main()
