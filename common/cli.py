"""The command line the five scripts share (CONVENTIONS.md "Command line").

A script declares the paper's flags itself: its recipe (defaults and `help=` citing the paper) and one argument
group titled `MODEL` that holds every flag that builds the model (backbone, clip, `--baseline`, the paper's
switches). That group is the single list of model keys: what a checkpoint's flags give back to `--evaluate`,
`--predict` and `--ensemble` (`model_keys`), and what `--baseline` makes pointless. `add_shared_flags` adds the
flags no paper mentions, in groups that keep `--help` readable; `parse` parses, takes the checkpoint's flags back
(common/checkpoint.py `adopt`), applies the demo profile and stops on combinations that cannot run, each with one
line.
"""
import argparse
import os

import torch

from . import checkpoint
from .transforms import parse_size

MODEL = "model (the paper's switches; a checkpoint records them and --evaluate/--predict take them from it)"
# model keys that build the baseline too: every other model key is a paper switch that --baseline leaves unused
BASELINE_KEYS = {"arch", "num_segments", "frame_stride", "input_size", "baseline"}


def parser(doc):
    """The script's ArgumentParser: its docstring's first line as description, defaults shown, no abbreviations
    (`--ep 3` would silently mean `--epochs` today and something else once a flag is added)."""
    return argparse.ArgumentParser(description=doc.splitlines()[0], allow_abbrev=False,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def option(dest):
    return "--" + dest.replace("_", "-")


def model_group(p):
    return next(g for g in p._action_groups if g.title == MODEL)


def model_keys(p):
    """The dests of the script's MODEL group, in the order declared."""
    return tuple(a.dest for a in model_group(p)._group_actions)


def bare_baseline(p):
    """What a bare `--baseline` means: the plain backbone the paper compares with ('tsn', 'r3d')."""
    return next(a.const for a in model_group(p)._group_actions if a.dest == "baseline")


def add_shared_flags(p):
    """The flags every script has and no paper mentions; returns `p`."""
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None, help="dataset root (CONVENTIONS.md layout); omitted: the demo dataset")
    g.add_argument("--frame-template", default=None,
                   help="file names inside frame folders; default: dataset.json's, else img_{:05d}.jpg (1-based)")
    g.add_argument("--flip-labels", default=None,
                   help="labels a horizontal flip swaps, 'A:B,B:A,...' or '' (none); default: dataset.json's pairs "
                        "(Something-Something's direction classes, found by name), none without dataset.json")
    g.add_argument("--no-flip", action="store_true", help="no horizontal flip in training")
    g.add_argument("--workers", type=int, default=min(8, len(os.sched_getaffinity(0))), help="loader processes")

    g = p.add_argument_group("training")
    g.add_argument("--finetune", default=None, metavar="PATH",
                   help="start from the weights of another run or release (TSN/TSM/EAN/mmaction2 key layouts; "
                        "matched by name and shape, the classifier kept only when K is equal)")
    g.add_argument("--allow-partial", action="store_true",
                   help="--pretrained/--finetune PATH: go on when fewer than 90 %% of the ResNet tensors match")
    g.add_argument("--output", default=None, help="run directory (default runs/<script>-<time>)")
    g.add_argument("--resume", default=None, help="continue a run from its last.pt (its flags come with it)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--max-steps", type=int, default=None, help="stop after N optimisation steps (smoke runs)")
    g.add_argument("--accumulate", type=int, default=1,
                   help="micro-batches per step: one GPU with --accumulate 8 sees the per-GPU batches of 8 GPUs")
    g.add_argument("--save-every", type=int, default=1000,
                   help="also write last.pt every N steps inside an epoch (0: at epoch ends only)")
    g.add_argument("--max-bad-fraction", type=float, default=0.05, help="stop past this fraction of bad samples")
    g.add_argument("--log-every", type=int, default=0,
                   help="a progress line every N steps, also off a terminal (0: about every 30 s)")

    g = p.add_argument_group("evaluation and prediction")
    g.add_argument("--evaluate", action="store_true", help="evaluation only (with --checkpoint or --ensemble)")
    g.add_argument("--checkpoint", default=None,
                   help="a checkpoint of this script (its model flags come with it) for --evaluate and --predict")
    g.add_argument("--ensemble", nargs="+", default=None, metavar="CKPT",
                   help="--evaluate several checkpoints and average their scores (the papers' 16f + 8f rows)")
    g.add_argument("--test-size", type=int, default=None,
                   help="test crops of this size from the short side scaled to it (full-resolution testing, Table 2: "
                        "256); default: --input-size crops from the short side at 256/224 of it")
    g.add_argument("--test-resize", default=None, metavar="HxW",
                   help="resize every test frame to HxW first, aspect not kept (the official release: 240x320)")
    g.add_argument("--save-scores", default=None, metavar="FILE",
                   help="--evaluate: write the videos' paths, labels and averaged probabilities (.npz)")
    g.add_argument("--predict", nargs="+", default=None, metavar="PATH",
                   help="with --checkpoint: the top classes of each video file, frame folder or list file")
    g.add_argument("--top-k", type=int, default=5, help="classes per video printed by --predict")
    g.add_argument("--visualize", default=None, metavar="DIR",
                   help="with --predict: one PNG per video in DIR (frames, top-k, Grad-CAM, the paper's VIS_MAPS; "
                        "with --window: a timeline of the class probabilities)")
    g.add_argument("--window", type=float, default=None, metavar="S",
                   help="with --predict: one prediction per window of S seconds along each video, the checkpoint's "
                        "clip sampled inside each window")
    g.add_argument("--stride", type=float, default=None, metavar="S",
                   help="seconds between windows (default: --window)")
    g.add_argument("--fps", type=float, default=30.0,
                   help="--window on frame folders: their frame rate (a folder has no timestamps)")
    g.add_argument("--export", default=None, metavar="FILE.onnx",
                   help="with --checkpoint: the eval model as ONNX (uint8 clips in, logits out, dynamic batch), "
                        "checked against PyTorch in onnxruntime")

    g = p.add_argument_group("run")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA, and CPUs with bf16 support)")
    g.add_argument("--channels-last", action="store_true",
                   help="channels_last memory format (channels_last_3d for 5-D weights) in training and --benchmark")
    g.add_argument("--compile", action="store_true", help="torch.compile the model in training and --benchmark")
    g.add_argument("--complexity", action="store_true", help="print params and GFLOPs of one clip and exit")
    g.add_argument("--count", default="macs", choices=["macs", "thop"],
                   help="--complexity's GFLOPs: multiply-accumulates (the papers' convention), or as thop counts "
                        "(BatchNorm's operations too: CAN's Table 12)")
    g.add_argument("--benchmark", action="store_true", help="print latency/throughput (and the baseline's), exit")
    return p


def parse(p, argv, script, demo_profile, baseline_has_no=None, release_args=None):
    """Parse `argv` (None: sys.argv) with the script's parser `p`. Returns (args, the dests typed on the command
    line). Takes the model flags (on --resume every flag) back from the checkpoint of --resume, --checkpoint or the
    first --ensemble member; `release_args(ckpt)` reads the flags of a file written by other code (EAN's
    release). Without --data the demo profile replaces the defaults it names (a typed flag wins). A paper switch
    given with --baseline stops here, naming what the baseline lacks (`baseline_has_no`, e.g. "STW blocks"); the
    script checks its other combinations after this."""
    args = p.parse_args(argv)
    adopted = checkpoint.adopt(p, argv, args, script, model_keys(p), release_args)
    given = checkpoint.explicit_flags(p, argv)
    args.demo = args.data is None and not (args.complexity or args.benchmark or args.predict or args.export)
    if args.complexity or args.benchmark:
        args.pretrained = "none"  # weights change neither FLOPs nor speed
    if args.demo and not adopted:
        for key, value in demo_profile.items():
            if getattr(args, key) == p.get_default(key):
                setattr(args, key, value)
    if args.accumulate < 1 or args.batch_size % args.accumulate:
        p.error(f"--batch-size {args.batch_size} is not a multiple of --accumulate {args.accumulate}")
    if args.visualize and not args.predict:
        p.error("--visualize DIR draws the videos of --predict PATH...: it needs --predict")
    if (args.evaluate or args.predict) and not (args.checkpoint or args.ensemble):
        p.error(f"{'--evaluate' if args.evaluate else '--predict'} needs --checkpoint PATH")
    if args.export and not args.checkpoint:
        p.error("--export FILE.onnx writes the model of --checkpoint PATH: it needs --checkpoint")
    if args.window is not None and not args.predict:
        p.error("--window S predicts along the videos of --predict PATH...: it needs --predict")
    if args.stride is not None and args.window is None:
        p.error("--stride S is the step between the windows of --window S: it needs --window")
    if any(v is not None and v <= 0 for v in (args.window, args.stride, args.fps)):
        p.error("--window, --stride and --fps must be positive")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: no CUDA GPU is visible to PyTorch (use --device cpu)")
    if args.test_resize:
        try:
            parse_size(args.test_resize)
        except ValueError as e:
            p.error(f"--test-resize: {e}")
    if args.baseline and baseline_has_no:  # CONVENTIONS.md "paper switches": a flag the model would ignore stops
        for dest in model_keys(p):
            if dest in given and dest not in BASELINE_KEYS:
                p.error(f"{option(dest)} has no effect with --baseline {args.baseline} (no {baseline_has_no})")
    return args, given
