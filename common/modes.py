"""The modes of a script that are not training, written once: `--complexity`, `--benchmark`, `--predict`,
`--evaluate` (with `--ensemble`). CONVENTIONS.md says what each prints.

`run(script, args, rank, world, device)` takes the script's module and uses these names of it (the same in all
five scripts; tests/test_skeleton.py keeps them so):
  SCRIPT, arguments() (the parser: its MODEL group is the list of model keys, `--baseline`'s const the bare
  baseline), build_model(args, num_classes), frames_per_clip(args), train_dataset / test_dataset(args, records,
  opts), evaluate(model, loader, args, device, bad) -> (Predictions, skipped), protocol(args),
  visualization(args, model) -> {"forward", "cam", "maps", ...} for --visualize;
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
from .run import BadSamples, print0


def requested(args):
    return args.complexity or args.benchmark or args.predict or args.evaluate


def run(script, args, rank, world, device):
    """The mode the flags ask for; a malformed list or dataset.json stops with one line."""
    if args.complexity:
        return report_complexity(script, args)
    if args.benchmark:
        return report_benchmark(script, args, device)
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
        loader = training.eval_loader(script.test_dataset(args, records, opts), args)
        preds, skipped = script.evaluate(model, loader, args, device, BadSamples(1.0))
    unreadable = predict.print_predictions(preds, skipped, records, classes, args.top_k, script.protocol(args),
                                           multi_label)
    if args.visualize:
        view = script.visualization(args, model)
        visualize.write_sheets(model, view["forward"], loader, records, classes, args.visualize, view["maps"],
                               view["cam"], view.get("layout", "BT"), preds=preds, protocol=script.protocol(args),
                               top_k=args.top_k, multi_label=multi_label, shown=view.get("shown"))
    if unreadable:
        sys.exit(f"error: {unreadable} of {len(records)} videos unreadable")


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
