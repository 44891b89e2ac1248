"""Per-video scores for evaluation, `--predict`, `--ensemble` and the files `--evaluate` writes.

Every script evaluates the same way: a video's views (clips x crops) go through the model, softmax probabilities
are averaged over the views (multi-label: sigmoid scores averaged over the crops of a clip, then the maximum over
clips; CONVENTIONS.md). An unreadable video is left out and reported (`skipped`, `skipped_paths`), never replaced
by another, so an accuracy never counts a video twice.
"""
import csv
import json
import os
import sys

import numpy as np
import torch

from . import run
from .data import AnnotationError, Record, count_frames, read_list
from .metrics import Predictions, average_precision
from .video import frame_times, read_frame_folder, stream_frames

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ogv", ".3gp")


@torch.no_grad()
def video_scores(forward, loader, device, crops=1, multi_label=False, chunk=0, bad=None):
    """(Predictions of this rank's videos with their dataset indices, [(index, message)] of the videos left out).
    `forward(uint8 clips (n,T,C,H,W) on the device) -> logits (n,K)`; loader batches come from
    `data.collate_eval`; views are fed `chunk` at a time (0: a batch at once) to bound memory. `bad`
    (run.BadSamples): the videos left out are added to it (a warning each, counted in a run's epoch)."""
    preds, skipped = Predictions(multi_label), []
    for clips, views, targets, ids, left_out in run.progress(loader, desc="eval", leave=False):
        skipped += left_out
        if clips is None:
            continue
        probs = torch.cat([score(forward(part.to(device, non_blocking=True)).float(), multi_label)
                           for part in clips.split(chunk or len(clips))])          # (sum V, K)
        if not torch.isfinite(probs).all():  # a score that may be wrong is an error, never a ranking
            sys.exit(f"error: the model gave non-finite scores (NaN/inf) for dataset item(s) {ids.tolist()}: "
                     f"broken weights, or --amp overflow")
        per_video = [over_views(p, crops, multi_label) for p in probs.split(views.tolist())]
        preds.update(torch.stack(per_video), targets, ids)
    if bad is not None:
        bad.add([message for _, message in skipped], "left out of the evaluation")
    return preds, skipped


def score(logits, multi_label):
    return logits.sigmoid() if multi_label else logits.softmax(-1)


def over_views(probs, crops, multi_label):
    """One video's scores (V, K), its views clips major -> (K,): the mean over the crops of a clip, then the mean
    over clips (the maximum for multi-label data)."""
    p = probs.view(-1, crops, probs.shape[-1]).mean(1)                              # (V, K) -> (clips, K)
    return p.amax(0) if multi_label else p.mean(0)


def metrics_of(preds, skipped):
    """The paper metrics over the readable videos of all ranks, with the videos left out named."""
    skipped = run.all_gather_list([message for _, message in skipped])
    return {**preds.compute(), "skipped": len(skipped), "skipped_paths": skipped}


# ---- what --evaluate writes ----------------------------------------------------------------------------------
def write_reports(preds, records, classes, folder, save_scores=None):
    """eval_per_class.json (per-class top-1, or AP for multi-label) and confusion.csv (rows: true class,
    columns: predicted) in `folder`; with `save_scores`, an .npz of the videos' paths, labels and averaged
    probabilities. Rank 0 only."""
    scores, targets, ids = preds.gather()
    if not run.is_main() or len(ids) == 0:
        return
    os.makedirs(folder, exist_ok=True)
    order = ids.argsort()
    scores, targets, ids = scores[order], targets[order], ids[order]
    if save_scores:
        np.savez_compressed(save_scores, paths=np.array([records[i].path for i in ids.tolist()]),
                            labels=targets.numpy(), scores=scores.numpy(), classes=np.array(classes))
        run.print0(f"per-video scores: {save_scores}")
    per_class = {}
    if preds.multi_label:
        for k, name in enumerate(classes):
            positives = targets[:, k].numpy() > 0
            if positives.any():
                per_class[name] = {"samples": int(positives.sum()), "ap": 100 * average_precision(scores[:, k].numpy(), positives)}
    else:
        K = len(classes)
        confusion = torch.bincount(targets * K + scores.argmax(1), minlength=K * K).view(K, K)  # (true, predicted)
        for k, name in enumerate(classes):
            n = int(confusion[k].sum())
            if n:
                per_class[name] = {"samples": n, "top1": 100.0 * int(confusion[k, k]) / n}
        with open(os.path.join(folder, "confusion.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["true \\ predicted", *classes])
            writer.writerows([name, *row] for name, row in zip(classes, confusion.tolist()))
    with open(os.path.join(folder, "eval_per_class.json"), "w") as f:
        json.dump(per_class, f, indent=1)
    key = "ap" if preds.multi_label else "top1"
    worst = sorted(per_class.items(), key=lambda kv: kv[1][key])[:5]
    run.print0(f"per-class {key} and confusion matrix in {folder}; lowest: "
               + ", ".join(f"{name} {v[key]:.1f}" for name, v in worst))


# ---- --predict -------------------------------------------------------------------------------------------------
def records_from_paths(paths, num_classes, frame_template="img_{:05d}.jpg", start_index=1):
    """Records for the videos named on the command line: a video file, a folder of frames or a list file (the
    dataset format, or one path per line; relative paths are relative to the list's folder). Labels are -1 where
    unknown. A folder's frames are the files the frame template names, counted as the lists and common.check
    count them (data.count_frames); other image files in it (TSN's flow_x_/flow_y_ beside img_) are named once on
    stderr and not read; a folder without any such frame stops, naming what it holds."""
    records = []
    for path in paths:
        if os.path.isdir(path):
            n, others = count_frames(path, frame_template, start_index)
            shown = ", ".join(f"{count} x {name}" for name, count in others.items())
            if n == 0:
                sys.exit(f"error: {path}: no frame named {frame_template.format(start_index)} (frame template "
                         f"{frame_template} from {start_index}: the checkpoint's dataset.json, else --frame-template)"
                         + (f"; the folder holds {shown}" if others else ""))
            if others:
                print(f"note: {path}: {n} frames {frame_template}; left out, not frames of that template: {shown}",
                      file=sys.stderr)
            records.append(Record(path, -1, n, path))
        elif path.lower().endswith(VIDEO_SUFFIXES) or not os.path.isfile(path):
            records.append(Record(path, -1, None, path))  # a missing file is reported as unreadable
        else:
            records += list_records(path, num_classes)
    return records


def list_records(path, num_classes):
    root = os.path.dirname(os.path.abspath(path))
    try:
        return read_list(path, root, num_classes)
    except AnnotationError:  # not the dataset format: one path per line
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
        if not lines:
            sys.exit(f"error: {path}: an empty list")
        return [Record(os.path.join(root, line), -1, None, f"{path}:{n}") for n, line in enumerate(lines, 1)]


def print_predictions(preds, skipped, records, classes, top_k, protocol, multi_label):
    """One JSON line per video on stdout, {"path", "top": [{"label", "class", "prob"}], "protocol"}, in the order
    given; unreadable videos as {"path", "error"}; a table on stderr when it is a terminal. Returns the number of
    unreadable videos."""
    scores, _, ids = preds.gather()
    by_id = dict(zip(ids.tolist(), scores))
    errors = dict(run.all_gather_list(skipped))
    lines, table = [], []
    for i, record in enumerate(records):
        if i not in by_id:
            lines.append({"path": record.path, "error": errors.get(i, "unreadable")})
            table.append(f"{record.path}\n    unreadable: {lines[-1]['error']}")
            continue
        top = top_classes(by_id[i], classes, top_k)
        lines.append({"path": record.path, "top": top, "protocol": protocol})
        table.append(record.path + "".join(f"\n    {t['prob']:7.2%}  {t['label']:4d}  {t['class']}" for t in top))
    for line in lines:
        print(json.dumps(line), flush=True)
    if sys.stderr.isatty():
        kind = "sigmoid scores" if multi_label else "probabilities"
        print(f"\n{protocol}; top-{top_k} {kind}:\n" + "\n".join(table), file=sys.stderr)
    return sum("error" in line for line in lines)


def top_classes(probs, classes, top_k):
    """[{"label", "class", "prob"}] of the `top_k` highest scores of one video (K,)."""
    values, labels = probs.topk(min(top_k, len(classes)))
    return [{"label": int(k), "class": classes[k], "prob": round(float(p), 4)} for p, k in zip(values, labels.tolist())]


def average(members, multi_label=False):
    """The per-video mean of several Predictions of the same videos (an --ensemble), matched by dataset index;
    a video left out by any member is left out."""
    parts = [dict(zip(torch.cat(p.ids).tolist(), zip(torch.cat(p.scores), torch.cat(p.targets)))) if p.ids else {}
             for p in members]
    common = sorted(set.intersection(*(set(part) for part in parts)))
    out = Predictions(multi_label)
    if common:
        out.update(torch.stack([torch.stack([part[i][0] for part in parts]).mean(0) for i in common]),
                   torch.stack([parts[0][i][1] for i in common]), torch.tensor(common))
    return out


# ---- --predict VIDEO --window S --stride S -------------------------------------------------------------------------
def window_plan(times, window, stride):
    """[(start, end) in seconds, first frame, end frame (excluded))] of the windows [k*stride, k*stride + window)
    that start inside the video (its duration: the last frame's time plus the median frame interval). A window
    holds the frames whose time falls inside it, at least one; the last one may be shorter than `window`."""
    n = len(times)
    duration = float(times[-1]) + (float(np.median(np.diff(times))) if n > 1 else 0.0)
    plan, k = [], 0
    while k == 0 or k * stride < duration - 1e-9:
        start = k * stride
        end = min(start + window, duration) if duration > 0 else start + window
        a = min(int(np.searchsorted(times, start - 1e-6)), n - 1)
        b = max(int(np.searchsorted(times, end - 1e-6)), a + 1)
        plan.append((start, end, a, b))
        k += 1
    return plan


def predict_windows(forward, dataset, record, window, stride, fps, views_per_batch, crops, multi_label,
                    thumbnails=False, stats=None):
    """Scores along one video: for each window of `window_plan`, the checkpoint's test clip(s) sampled inside it
    as the dataset samples a whole video (`dataset.sample` on the window's frames: a window shorter than the clip
    repeats frames, as the papers' test sampling does for a short video) and its views (`dataset.transform`).
    Yields {"start", "end", "probs" (K,), "thumb"} in time order. The video is decoded once from front to back
    (video.stream_frames; frame folders frame by frame) and a frame is held only until the last window that needs
    it is scored, so memory is bounded by the window, not the video (`stats["peak_frames"]`: most frames held)."""
    if record.num_frames is None:
        times, how = frame_times(record.path)
        frames_of = lambda wanted: stream_frames(record.path, wanted)
    else:
        times, how = np.arange(record.num_frames) / fps, f"frame index / --fps {fps:g} (a folder has no timestamps)"
        frames_of = lambda wanted: ((i, read_frame_folder(record.path, [i], dataset.template, dataset.start_index)[0])
                                    for i in sorted(set(wanted)))
    plan, rng = window_plan(times, window, stride), np.random.RandomState(0)
    needs = []
    for _, _, a, b in plan:
        clips = dataset.num_clips(b - a) if callable(dataset.num_clips) else dataset.num_clips
        needs.append(a + np.concatenate([dataset.sample(b - a, k, rng) for k in range(clips)]))
    last_use = {int(i): w for w, idx in enumerate(needs) for i in idx}
    stats = {} if stats is None else stats
    stats.update(peak_frames=0, windows=len(plan), times=how)
    held, pending, w = {}, [], 0

    def scored(batch):
        views = torch.cat([clip for _, clip, _ in batch])
        probs = score(forward(views).float(), multi_label).cpu()
        for (k, clip, thumb), p in zip(batch, probs.split([len(clip) for _, clip, _ in batch])):
            yield {"start": plan[k][0], "end": plan[k][1], "probs": over_views(p, crops, multi_label), "thumb": thumb}

    for i, frame in frames_of(list(last_use)):
        held[i] = frame
        stats["peak_frames"] = max(stats["peak_frames"], len(held))
        while w < len(plan) and int(needs[w].max()) <= i:             # every frame of window w is decoded
            clip, _ = dataset.transform(torch.stack([held[int(j)] for j in needs[w]]), -1, rng)
            thumb = held[int(needs[w][len(needs[w]) // 2])] if thumbnails else None
            pending.append((w, clip, thumb))
            for j in set(needs[w].tolist()):
                if last_use[j] == w:
                    del held[j]
            w += 1
            if sum(len(clip) for _, clip, _ in pending) >= views_per_batch:
                yield from scored(pending)
                pending = []
    if pending:
        yield from scored(pending)
