"""Write the dataset layout of CONVENTIONS.md from the official annotation files.

    python -m common.prepare NAME SRC DIR [--split N]

NAME: ssv1 | ssv2 | kinetics400 | ucf101 | hmdb51 | diving48 | charades. SRC is the folder where the official
archives were unpacked as they come; DIR receives train.txt, val.txt, classes.txt (paths relative to DIR).
Listed videos that do not exist are reported and left out. What each reader expects under SRC:

- ssv1: something-something-v1-{labels,train,validation}.csv (`id;label`), frames 20bn-something-something-v1/<id>/%05d.jpg
- ssv2: something-something-v2-{labels,train,validation}.json (anywhere under SRC), videos <id>.webm (anywhere)
- kinetics400: {train,validate|val}.csv (`label,youtube_id,time_start,time_end,split`), videos named
  <youtube_id>_<start:06d>_<end:06d>.mp4 anywhere under SRC
- ucf101: UCF-101/<Class>/*.avi and ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt (classInd is 1-based)
- hmdb51: <class>/*.avi (anywhere) and <class>_test_splitN.txt (1 = train, 2 = test, 0 = unused)
- diving48: Diving48_V2_{train,test}.json or Diving48_{train,test}.json (`vid_name`, `label`),
  Diving48_vocab.json, videos <vid_name>.mp4 anywhere
- charades: Charades_v1_{train,test}.csv (`actions` = "c092 11.90 21.20;..."), Charades_v1_classes.txt,
  videos <id>.mp4 anywhere (multi-label: comma-separated labels; videos without actions are left out)
"""
import argparse
import csv
import json
import os
import sys


def _find(src, name):
    """The path of a file called `name` somewhere under `src` (the first one found)."""
    for folder, _, files in os.walk(src):
        if name in files:
            return os.path.join(folder, name)
    sys.exit(f"error: {name} not found under {src}")


def _index(src, suffixes):
    """basename -> path for every file under `src` with one of `suffixes`."""
    found = {}
    for folder, _, files in os.walk(src):
        for f in files:
            if f.lower().endswith(suffixes):
                found.setdefault(f, os.path.join(folder, f))
    return found


def ssv1(src, split):
    with open(_find(src, "something-something-v1-labels.csv")) as f:
        classes = [line.strip() for line in f if line.strip()]
    label_of = {c: i for i, c in enumerate(classes)}
    frames_root = os.path.dirname(_find(src, "something-something-v1-labels.csv"))
    folders = {d: os.path.join(dp, d) for dp, ds, _ in os.walk(src) for d in ds if d.isdigit()}
    out = {}
    for part, name in (("train", "train"), ("val", "validation")):
        items = []
        with open(_find(src, f"something-something-v1-{name}.csv")) as f:
            for line in f:
                if line.strip():
                    vid, label = line.strip().split(";", 1)
                    folder = folders.get(vid, os.path.join(frames_root, "20bn-something-something-v1", vid))
                    items.append((folder, label_of.get(label, -1), "frames"))
        out[part] = items
    return classes, out


def ssv2(src, split):
    with open(_find(src, "something-something-v2-labels.json")) as f:
        labels = json.load(f)
    classes = [name for name, _ in sorted(labels.items(), key=lambda kv: int(kv[1]))]
    videos = _index(src, (".webm", ".mp4"))
    out = {}
    for part, name in (("train", "train"), ("val", "validation")):
        with open(_find(src, f"something-something-v2-{name}.json")) as f:
            entries = json.load(f)
        out[part] = [(videos.get(f"{e['id']}.webm", os.path.join(src, f"{e['id']}.webm")),
                      int(labels.get(e["template"].replace("[", "").replace("]", ""), -1)), "video") for e in entries]
    return classes, out


def kinetics400(src, split):
    videos = _index(src, (".mp4", ".mkv", ".webm"))
    rows = {}
    for part, names in (("train", ("train.csv",)), ("val", ("validate.csv", "val.csv"))):
        path = next((p for p in (os.path.join(dp, n) for dp, _, fs in os.walk(src) for n in names if n in fs)), None)
        if path is None:
            sys.exit(f"error: {' or '.join(names)} not found under {src}")
        with open(path, newline="") as f:
            rows[part] = list(csv.DictReader(f))
    classes = sorted({r["label"] for r in rows["train"]})
    label_of = {c: i for i, c in enumerate(classes)}
    out = {}
    for part, items in rows.items():
        out[part] = []
        for r in items:
            base = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}"
            path = next((videos[base + ext] for ext in (".mp4", ".mkv", ".webm") if base + ext in videos),
                        os.path.join(src, base + ".mp4"))
            out[part].append((path, label_of.get(r["label"], -1), "video"))
    return classes, out


def ucf101(src, split):
    lists = os.path.dirname(_find(src, "classInd.txt"))
    videos_root = os.path.join(src, "UCF-101")
    with open(os.path.join(lists, "classInd.txt")) as f:
        pairs = [line.split() for line in f if line.strip()]
    classes = [name for _, name in sorted(pairs, key=lambda p: int(p[0]))]    # classInd is 1-based
    label_of = {c: i for i, c in enumerate(classes)}
    out = {}
    for part, name in (("train", f"trainlist0{split}.txt"), ("val", f"testlist0{split}.txt")):
        with open(os.path.join(lists, name)) as f:
            rels = [line.split()[0] for line in f if line.strip()]             # test lists have no label
        out[part] = [(os.path.join(videos_root, rel), label_of.get(rel.split("/")[0], -1), "video") for rel in rels]
    return classes, out


def hmdb51(src, split):
    suffix = f"_test_split{split}.txt"
    split_files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(src) for f in fs if f.endswith(suffix))
    if not split_files:
        sys.exit(f"error: no *{suffix} files under {src}")
    classes = [os.path.basename(p)[: -len(suffix)] for p in split_files]
    videos = _index(src, (".avi",))
    out = {"train": [], "val": []}
    for label, path in enumerate(split_files):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[1] in ("1", "2"):
                    video = videos.get(parts[0], os.path.join(src, classes[label], parts[0]))
                    out["train" if parts[1] == "1" else "val"].append((video, label, "video"))
    return classes, out


def diving48(src, split):
    with open(_find(src, "Diving48_vocab.json")) as f:
        vocab = json.load(f)
    classes = [" ".join(v) if isinstance(v, list) else str(v) for v in vocab]
    videos = _index(src, (".mp4",))
    out = {}
    for part, name in (("train", "train"), ("val", "test")):
        found = [os.path.join(dp, f) for dp, _, fs in os.walk(src) for f in fs
                 if f in (f"Diving48_V2_{name}.json", f"Diving48_{name}.json")]
        if not found:
            sys.exit(f"error: Diving48_V2_{name}.json not found under {src}")
        found.sort(key=lambda p: "_V2_" not in p)  # the V2 annotations (cleaned labels) when both exist
        with open(found[0]) as f:
            entries = json.load(f)
        out[part] = [(videos.get(f"{e['vid_name']}.mp4", os.path.join(src, f"{e['vid_name']}.mp4")),
                      int(e["label"]), "video") for e in entries]
    return classes, out


def charades(src, split):
    with open(_find(src, "Charades_v1_classes.txt")) as f:
        codes = [line.split(" ", 1) for line in f if line.strip()]
    classes = [name.strip() for _, name in codes]
    label_of = {code: i for i, (code, _) in enumerate(codes)}
    videos = _index(src, (".mp4",))
    out = {}
    for part, name in (("train", "train"), ("val", "test")):
        with open(_find(src, f"Charades_v1_{name}.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        items = []
        for r in rows:
            labels = sorted({label_of[a.split()[0]] for a in r["actions"].split(";") if a.strip()})
            if labels:
                items.append((videos.get(f"{r['id']}.mp4", os.path.join(src, f"{r['id']}.mp4")), tuple(labels), "video"))
        out[part] = items
    return classes, out


READERS = {"ssv1": ssv1, "ssv2": ssv2, "kinetics400": kinetics400, "ucf101": ucf101, "hmdb51": hmdb51,
           "diving48": diving48, "charades": charades}


def write_layout(classes, splits, dest):
    """Write DIR/{train,val}.txt and classes.txt; returns {split: (kept, missing paths)}."""
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, "classes.txt"), "w") as f:
        f.write("".join(c + "\n" for c in classes))
    report = {}
    for part, items in splits.items():
        lines, missing = [], []
        for path, label, kind in items:
            if isinstance(label, int) and label < 0:
                missing.append(f"{path} (unknown label)")
                continue
            label_text = ",".join(map(str, label)) if isinstance(label, tuple) else str(label)
            rel = os.path.relpath(path, dest)
            if kind == "frames":
                if not os.path.isdir(path):
                    missing.append(path)
                    continue
                n = sum(1 for f in os.listdir(path) if f.lower().endswith(".jpg"))
                lines.append(f"{rel} {n} {label_text}\n")
            elif os.path.isfile(path):
                lines.append(f"{rel} {label_text}\n")
            else:
                missing.append(path)
        with open(os.path.join(dest, f"{part}.txt"), "w") as f:
            f.writelines(lines)
        report[part] = (len(lines), missing)
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("name", choices=sorted(READERS))
    p.add_argument("src", help="folder where the official archives were unpacked")
    p.add_argument("dest", help="dataset root to write (DIR)")
    p.add_argument("--split", type=int, default=1, help="UCF101/HMDB51 split number")
    args = p.parse_args(argv)
    classes, splits = READERS[args.name](args.src, args.split)
    report = write_layout(classes, splits, args.dest)
    for part, (kept, missing) in report.items():
        print(f"{part}: {kept} samples written, {len(missing)} left out")
        for m in missing[:20]:
            print(f"  missing: {m}")
        if len(missing) > 20:
            print(f"  ... and {len(missing) - 20} more")
    print(f"classes: {len(classes)} -> {os.path.join(args.dest, 'classes.txt')}")
    return report


if __name__ == "__main__":
    main()
