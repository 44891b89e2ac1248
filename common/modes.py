"""The modes of a script that are not training, written once: `--complexity`, `--benchmark`, `--predict`,
`--evaluate` (with `--ensemble`). CONVENTIONS.md says what each prints.

`run(script, args, rank, world, device)` takes the script's module and uses these names of it (the same in all
five scripts; tests/test_skeleton.py keeps them so):
  SCRIPT, arguments() (the parser: its MODEL group is the list of model keys, `--baseline`'s const the bare
  baseline), build_model(args, num_classes), frames_per_clip(args), train_dataset / test_dataset(args, records,
  opts), evaluate(model, loader, args, device, bad) -> (Predictions, skipped), protocol(args),
  logits(model, uint8 clips) -> logits (what evaluation, --predict, --visualize and --export run),
  visualization(args, model) -> {"cam", "maps", optional "layout", "shown"} for --visualize;
and where a script has them: report_complexity(args) (its own --complexity line), release_weights(ckpt) (a foreign
release's tensors in the script's names, or None: EAN).
"""
import argparse
import contextlib
import json
import os
import sys
import time

import torch

from . import checkpoint, cli, complexity, predict, training, visualize
from .data import AnnotationError, data_options
from .video import BadVideo
from .run import BadSamples, print0


def requested(args):
    return args.complexity or args.benchmark or args.predict or args.evaluate or args.export


def run(script, args, rank, world, device):
    """The mode the flags ask for; a malformed list or dataset.json stops with one line."""
    if args.complexity:
        with complexity.counting(args.count):
            return report_complexity(script, args)
    if args.benchmark:
        return report_benchmark(script, args, device)
    if args.export:
        return export_onnx(script, args, device)
    try:
        if args.predict:
            return predict_videos(script, args, device)
        return evaluate_only(script, args, rank, world, device)
    except AnnotationError as e:
        sys.exit(f"error: {e}")


# ---- --complexity, --benchmark -----------------------------------------------------------------------------------
def clip_shape(script, args):
    """One clip as the model takes it: (frames, C, H, W)."""
    return (script.frames_per_clip(args), 3, args.input_size, args.input_size)


def complexity_row(script, args):
    """Params (M) and GFLOPs (multiply-accumulates) of one clip of the model `args` build, as --complexity and
    common/paper_tables.py report them. Built and run on the 'meta' device: shapes only, no weights, no arithmetic
    (the counts equal those of a real build, tested), so a ResNet-50 row takes about a second."""
    with torch.device("meta"):
        model = script.build_model(args, args.num_classes)
    gflops = complexity.gmacs(model, torch.zeros(1, *clip_shape(script, args), device="meta"))
    return {"params_m": complexity.params_m(model), "gflops": gflops}


def report_complexity(script, args):
    if hasattr(script, "report_complexity"):
        return script.report_complexity(args)
    row = complexity_row(script, args)
    print(json.dumps({"script": script.SCRIPT, "params_m": round(row["params_m"], 2), "gflops": round(row["gflops"], 2),
                      "num_segments": args.num_segments, "input_size": args.input_size,
                      "num_classes": args.num_classes, "frames_per_clip": script.frames_per_clip(args)}))


def report_benchmark(script, args, device):
    """The model and its bare baseline timed interleaved in one run (common/complexity.py `compare`)."""
    def model_and_input(base):
        cfg = argparse.Namespace(**{**vars(args), "baseline": base})
        return script.build_model(cfg, args.num_classes), lambda n: torch.randn(n, *clip_shape(script, cfg))  # n clips

    bare = cli.bare_baseline(script.arguments())
    result = complexity.compare(*model_and_input(args.baseline), *model_and_input(bare), device, args.batch_size,
                                args.amp, args.channels_last, args.compile)
    print(json.dumps({"script": script.SCRIPT, **result}))


# ---- --predict, --evaluate ----------------------------------------------------------------------------------------
def trained_model(script, args, num_classes, device, path):
    """The model the flags build, with the weights of checkpoint `path` (strictly: every tensor, same shapes)."""
    model = script.build_model(args, num_classes)
    checkpoint.load_weights(model, path, getattr(script, "release_weights", None))
    return model.to(device)


def predict_videos(script, args, device):
    """--predict: the top classes of each video file, frame folder or list file (common/predict.py); with
    --visualize DIR one picture per video (common/visualize.py)."""
    multi_label = getattr(args, "multi_label", False)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON lines alone
        meta = checkpoint.meta(args.checkpoint)
        classes = checkpoint.class_names(meta)
        opts = data_options(args, classes, meta["dataset"], "the checkpoint's dataset")
        records = predict.records_from_paths(args.predict, len(classes), opts.frame_template, opts.start_index)
        model = trained_model(script, args, len(classes), device, args.checkpoint)
        if args.window is None:
            loader = training.eval_loader(script.test_dataset(args, records, opts), args)
            preds, skipped = script.evaluate(model, loader, args, device, BadSamples(1.0))
    if args.window is not None:
        return predict_along(script, args, model, records, opts, classes, device)
    unreadable = predict.print_predictions(preds, skipped, records, classes, args.top_k, script.protocol(args),
                                           multi_label)
    if args.visualize:
        view = script.visualization(args, model)
        visualize.write_sheets(model, lambda clips: script.logits(model, clips), loader, records, classes,
                               args.visualize, view["maps"], view["cam"], view.get("layout", "BT"), preds=preds,
                               protocol=script.protocol(args), top_k=args.top_k, multi_label=multi_label,
                               shown=view.get("shown"))
    if unreadable:
        sys.exit(f"error: {unreadable} of {len(records)} videos unreadable")


@torch.no_grad()
def predict_along(script, args, model, records, opts, classes, device):
    """--predict PATH --window S [--stride S]: one JSON line per window {"path", "start", "end", "top"} in time
    order, printed as the video is decoded (common/predict.py `predict_windows`); with --visualize DIR a timeline
    picture per video. An unreadable video is one {"path", "error"} line; any makes the exit status 1."""
    model.eval()
    multi_label, stride = getattr(args, "multi_label", False), args.stride or args.window
    dataset = script.test_dataset(args, records, opts)

    def forward(clips):                                                          # uint8 views -> logits
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            return script.logits(model, clips.to(device))

    failed = 0
    for record in records:
        stats, rows = {}, []
        try:
            for row in predict.predict_windows(forward, dataset, record, args.window, stride, args.fps,
                                               max(1, args.batch_size), args.test_crops, multi_label,
                                               thumbnails=bool(args.visualize), stats=stats):
                top = predict.top_classes(row["probs"], classes, args.top_k)
                print(json.dumps({"path": record.path, "start": round(row["start"], 3), "end": round(row["end"], 3),
                                  "top": top}), flush=True)
                rows.append(row)
        except BadVideo as e:
            failed += 1
            print(json.dumps({"path": record.path, "error": str(e)}), flush=True)
            continue
        print(f"{record.path}: {stats['windows']} windows of {args.window:g} s every {stride:g} s ({stats['times']}); "
              f"{script.protocol(args)} in each; at most {stats['peak_frames']} frames held", file=sys.stderr)
        if args.visualize:
            visualize.write_timeline(rows, record.path, classes, args.visualize, args.top_k, multi_label)
    if failed:
        sys.exit(f"error: {failed} of {len(records)} videos unreadable")


def export_onnx(script, args, device):
    """--export FILE.onnx --checkpoint X: the eval-mode model at the checkpoint's clip shape, uint8 clips
    (B, T, 3, H, W) in (normalised inside, as in evaluation), logits (B, K) out, B dynamic; the file is then run
    in onnxruntime on batches of 1 and 3 random clips and its logits compared with PyTorch's: more than 1e-4 apart
    is an error."""
    import numpy as np
    import onnxruntime  # the export's check needs it: requirements.txt

    meta = checkpoint.meta(args.checkpoint)
    model = trained_model(script, args, len(checkpoint.class_names(meta)), torch.device("cpu"), args.checkpoint).eval()

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, clips):
            return script.logits(self.model, clips)

    shape = clip_shape(script, args)
    # Choice: batch 1 to 1024 (STASTA's correlation picks its chunk size from the batch, a guard the exporter needs
    # bounded; 1024 clips is past any real batch)
    example = torch.randint(0, 256, (2, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.onnx.export(Logits().eval(), (example,), args.export, input_names=["clips"], output_names=["logits"],
                      dynamic_shapes={"clips": {0: torch.export.Dim("batch", min=1, max=1024)}}, dynamo=True,
                      verbose=False)
    session = onnxruntime.InferenceSession(args.export, providers=["CPUExecutionProvider"])
    diff, generator = 0.0, torch.Generator().manual_seed(1)
    for batch in (1, 3):  # other batch sizes than the example's: the batch dimension is dynamic
        clips = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=generator)
        with torch.no_grad():
            ref = Logits()(clips).float().numpy()
        out = session.run(None, {"clips": clips.numpy()})[0]
        diff = max(diff, float(np.abs(out - ref).max()))
    result = {"script": script.SCRIPT, "export": args.export, "input": f"clips uint8 (B, {', '.join(map(str, shape))})",
              "output": f"logits (B, {ref.shape[1]})", "max_abs_diff": diff, "logit_std": float(ref.std())}
    print(json.dumps(result))
    if not diff <= 1e-4:
        sys.exit(f"error: {args.export}: onnxruntime's logits differ from PyTorch's by {diff:.3g} (> 1e-4)")
    return result


def evaluate_only(script, args, rank, world, device):
    """--evaluate --checkpoint X (or --ensemble X Y ...): metrics over the readable val videos, per-class
    accuracy and confusion matrix in the run directory, optionally the per-video scores (--save-scores)."""
    _, records, loader, classes, opts = training.loaders(args, rank, world, script.train_dataset, script.test_dataset)
    bad, t0 = BadSamples(1.0), time.time()
    keys = cli.model_keys(script.arguments())
    members = []
    for path in args.ensemble or [args.checkpoint]:
        cfg = checkpoint.member_args(args, path, keys) if args.ensemble else args
        checkpoint.check_classes(checkpoint.meta(path), classes, os.path.join(args.data, "classes.txt"))
        model = trained_model(script, cfg, len(classes), device, path)
        member_loader = loader if cfg is args else training.eval_loader(script.test_dataset(cfg, records, opts), cfg,
                                                                        rank, world)
        preds, skipped = script.evaluate(model, member_loader, cfg, device, bad)
        members.append((path, script.protocol(cfg), preds, skipped))
    multi_label = getattr(args, "multi_label", False)
    preds, skipped = (predict.average([m[2] for m in members], multi_label), members[0][3]) if args.ensemble \
        else members[0][2:]
    frames = "+".join(proto.split(" frames")[0] for _, proto, _, _ in members)   # the papers' "16+8 frames"
    result = {**predict.metrics_of(preds, skipped),
              "protocol": frames + " frames" + members[0][1].split(" frames", 1)[1],
              "seconds": round(time.time() - t0, 1)}
    if args.ensemble:
        result["members"] = [{"checkpoint": p, "frames": int(proto.split(" frames")[0].split("x")[0]),
                              "protocol": proto, **predict.metrics_of(m, s)} for p, proto, m, s in members]
    folder = args.output or os.path.dirname(os.path.abspath(args.ensemble[0] if args.ensemble else args.checkpoint))
    predict.write_reports(preds, records, classes, folder, args.save_scores)
    print0(f"protocol: {result['protocol']}")
    print0(json.dumps(result))
    return result
