"""A Novel Spatio-Temporal-Wise Network for Action Recognition (STW).

Zhengbao Cai. IEEE Access (the text at ../shared/papers/stw.txt gives no year or DOI; it cites 2022 work).
Official code: none published; this file follows the paper's text, figures and tables.

Idea: an STW block sits at the start of the residual branch of every ResNet-50 bottleneck (where TSM shifts,
Sec. III-C, Fig. 2) and feeds conv1 with the element-wise sum of two same-shape modules:
  * STFM, Spatio-Temporal Fusion Module (Sec. III-A, Eq. 1-2): 2D convolutions encode x_{t-1}, x_t, x_{t+1}
    to C/alpha, C/beta, C/gamma channels (4:2:4), concatenated back to C channels;
  * TWM, Temporal-Wise Module (Sec. III-B, Eq. 3-6): a 3x1x1 Conv3D to one channel, a sigmoid weight S,
    V = X*S, and the motion feature Z = X - V.
This file implements Eq. 1-6, Fig. 2 (parallel block), Fig. 3 (vertical variants), the ablation switches of
Tables 5-8, the TSN/TSM baselines, fine-tuning (Sec. IV-B) and the 16f+8f score ensemble (Tables 1-2).

Run:  python stw.py --data DIR [--num-segments 16]          (Something-Something: 1 clip x 1 centre crop)
      python stw.py --data DIR --finetune K400.pt --num-segments 16 --test-clips 10 --test-crops 3  (UCF/HMDB)
      python stw.py --evaluate --ensemble stw16f/best.pt stw8f/best.pt --data DIR      (Tables 1-2 "16f+8f")
      python stw.py --complexity                              (8 x 224^2, 174 classes)

Expected results: the paper's tables with our params/GFLOPs beside its figures, every row built now by
`python -m common.paper_tables stw` (Tables 1-8, each row with a note: its protocol or pretraining; the rows are
PAPER_TABLES, below the modules). SSv1 val, ResNet-50 from ImageNet; Tables 1, 5 and 6 as
`python -m common.paper_tables stw --brief --table "Table 1" "Table 5" "Table 6"` printed them (torch 2.14.1;
ensembles: the members' costs summed):

stw.py, Table 1:

| row | flags (python stw.py --complexity FLAGS) | params (M): paper / ours | GFLOPs: paper / ours | paper accuracy (%) |
|---|---|---|---|---|
| TSN 8f | `--baseline` | 23.86 | 33 / 32.70 (-0.9 %) | top-1 19.7 |
| TSM 8f | `--baseline tsm` | 23.86 | 33 / 32.70 (-0.9 %) | top-1 43.4 |
| TSM 16f | `--baseline tsm --num-segments 16` | 23.86 | 65 / 65.40 (+0.6 %) | top-1 44.8 |
| TSM_En 16f+8f | `--baseline tsm --num-segments 16` + `--baseline tsm` | 47.73 | 98 / 98.10 (+0.1 %) | top-1 46.8 |
| STW_8f | (none) | 23.96 | 34 / 33.01 (-2.9 %) | top-1 46.3 |
| STW_16f | `--num-segments 16` | 23.96 | 67 / 66.03 (-1.4 %) | top-1 48.7 |
| STW_16f+8f | `--num-segments 16` + (none) | 47.91 | 100 / 99.04 (-1.0 %) | top-1 49.9 |

stw.py, Table 5:

| row | flags (python stw.py --complexity FLAGS) | params (M): paper / ours | GFLOPs: paper / ours | paper accuracy (%) |
|---|---|---|---|---|
| Average Pooling | `--no-twm --stfm-ratio avg` | 23.86 | 32.70 | top-1 32.8, top-5 60.2 |
| Conv2d(16:8/7:16) & Concat | `--no-twm --stfm-ratio 16:8/7:16` | 24.07 | 33.42 | top-1 39.2, top-5 68.9 |
| Conv2d(8:4/3:8) & Concat | `--no-twm --stfm-ratio 8:4/3:8` | 23.97 | 33.06 | top-1 41.5, top-5 70.4 |
| Conv2d(4:2:4) & Concat | `--no-twm --stfm-ratio 4:2:4` | 23.92 | 32.88 | top-1 42.6, top-5 73.5 |

stw.py, Table 6:

| row | flags (python stw.py --complexity FLAGS) | params (M): paper / ours | GFLOPs: paper / ours | paper accuracy (%) |
|---|---|---|---|---|
| TSN | `--baseline` | 23.86 | 32.70 | top-1 19.7, top-5 46.6 |
| TSM | `--baseline tsm` | 23.86 | 32.70 | top-1 42.1, top-5 72.7 |
| STFM | `--no-twm` | 23.92 | 32.88 | top-1 42.6, top-5 73.5 |
| TWM | `--no-stfm` | 23.90 | 32.83 | top-1 41.9, top-5 72.3 |
| STW | (none) | 23.96 | 33.01 | top-1 46.3, top-5 76.6 |

Table 5's rows are STFM alone (its 4:2:4 row is Table 6's STFM row); the ratio sets STFM's group size b and with it
the cost (STFM's docstring). Accuracy: none measured at full scale (no GPU, no datasets here).
Headline protocol (Sec. IV-C): 8 or 16 frames x 1 clip x 1 centre crop of 224; "16f+8f" averages the scores of
both models: `python stw.py --data DIR --evaluate --ensemble RUN16/best.pt RUN8/best.pt`.
Demo (`python stw.py` vs `python stw.py --baseline`, no --data, CPU, resnet18 64 px, 12 epochs, lr 0.005; order-only
classes, chance 25 %): STW 100.0 % (from epoch 8), TSN 27.0 % val top-1 (README).
"""
# ==================================================================================================== imports
import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from fractions import Fraction

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from common import checkpoint, complexity, predict, run, visualize
from common.data import AnnotationError, EpochSampler, VideoDataset, collate_eval, data_options, load_split
from common.demo import demo_dataset
from common.predict import metrics_of, print_predictions, records_from_paths, video_scores, write_reports
from common.prepare import read_dataset_info
from common.sampling import segment_indices
from common.transforms import EvalTransform, TrainTransform, normalize, parse_size

SCRIPT = "stw"

# ================================================================================================== arguments
# The CPU-sized profile used when no --data is given (CONVENTIONS.md "The demo dataset"); flags given on the
# command line win over it.
# Choice: lr 0.005, not the 0.02 of ean.py's profile: from scratch at 0.02 the first epoch overshoots (train loss 2.0
# > ln 4) and STW stayed on the TSN plateau for 12 epochs (28 %); at 0.005 it leaves it at epoch 1 (README).
DEMO_PROFILE = dict(arch="resnet18", pretrained="none", input_size=64, epochs=12, batch_size=16, lr=0.005,
                    lr_steps=[8, 11], weight_decay=5e-4, dropout=0.0, workers=2)
# what a checkpoint decides about its model: --evaluate, --predict, --resume and --ensemble take these from it
MODEL_KEYS = ("arch", "num_segments", "input_size", "baseline", "stfm_ratio", "no_stfm", "no_twm", "combine", "stages")


def get_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None, help="dataset root (CONVENTIONS.md layout); omitted: the demo dataset")
    p.add_argument("--frame-template", default=None,
                   help="file names inside frame folders; default: dataset.json's, else img_{:05d}.jpg (1-based)")
    # optimisation (paper Sec. IV-B "Training")
    p.add_argument("--epochs", type=int, default=50, help="Sec. IV-B")
    p.add_argument("--batch-size", type=int, default=64, help="clips per step over all GPUs (Sec. IV-B)")
    p.add_argument("--lr", type=float, default=0.01, help="for --batch-size 64 (Sec. IV-B); --finetune: 0.001")
    p.add_argument("--lr-steps", type=int, nargs="+", default=[30, 40, 45],
                   help="epochs where lr x0.1 (Sec. IV-B); --finetune: every 15 epochs")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="Sec. IV-B")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (Sec. IV-B)")
    p.add_argument("--dropout", type=float, default=0.5, help="before the classifier (Choice: TSM's; paper silent)")
    p.add_argument("--clip-grad", type=float, default=20.0, help="gradient-norm clipping (Choice: TSM's; paper silent)")
    p.add_argument("--finetune", default=None, metavar="PATH",
                   help="start from a checkpoint of another dataset (classifier dropped if K differs); sets "
                        "lr 0.001, x0.1 every 15 epochs unless given (Sec. IV-B, UCF101/HMDB51 from Kinetics)")
    # model
    p.add_argument("--num-segments", type=int, default=8, help="T, segments per clip: 8 or 16 (Sec. IV-B, Table 1)")
    p.add_argument("--arch", default="resnet50", choices=["resnet18", "resnet34", "resnet50"])
    p.add_argument("--pretrained", default="imagenet", help="none | imagenet (IMAGENET1K_V1) | PATH")
    p.add_argument("--allow-partial", action="store_true",
                   help="--pretrained/--finetune PATH: go on when fewer than 90 %% of the ResNet tensors match")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=174, help="when no dataset is given (SSv1/v2: 174)")
    p.add_argument("--baseline", nargs="?", const="tsn", default=None, choices=["tsn", "tsm"],
                   help="no STW blocks: 'tsn' (bare flag, Table 1) or 'tsm' (residual shift, Table 6)")
    p.add_argument("--flip-labels", default=None,
                   help="labels a horizontal flip swaps, 'A:B,B:A,...' or '' (none); default: dataset.json's pairs "
                        "(Something-Something's direction classes, found by name), none without dataset.json")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flip in training")
    # run
    p.add_argument("--workers", type=int, default=min(8, len(os.sched_getaffinity(0))), help="loader processes")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA, and CPUs with bf16 support)")
    p.add_argument("--channels-last", action="store_true",
                   help="channels_last memory format (channels_last_3d for 5-D weights) in training and --benchmark")
    p.add_argument("--compile", action="store_true", help="torch.compile the model in training and --benchmark")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="run directory (default runs/<script>-<time>)")
    p.add_argument("--log-every", type=int, default=0,
                   help="a progress line every N steps, also off a terminal (0: about every 30 s)")
    p.add_argument("--resume", default=None, help="continue a run from its last.pt (its flags come with it)")
    p.add_argument("--evaluate", action="store_true", help="evaluation only (with --checkpoint or --ensemble)")
    p.add_argument("--checkpoint", default=None,
                   help="a checkpoint of this script (its model flags come with it) for --evaluate and --predict")
    p.add_argument("--predict", nargs="+", default=None, metavar="PATH",
                   help="with --checkpoint: the top classes of each video file, frame folder or list file")
    p.add_argument("--top-k", type=int, default=5, help="classes per video printed by --predict")
    p.add_argument("--visualize", default=None, metavar="DIR",
                   help="with --predict: one PNG per video in DIR (frames, top-k, Grad-CAM, the paper's VIS_MAPS)")
    p.add_argument("--save-scores", default=None, metavar="FILE",
                   help="--evaluate: write the videos' paths, labels and averaged probabilities (.npz)")
    p.add_argument("--ensemble", nargs="+", default=None, metavar="CKPT",
                   help="--evaluate several checkpoints and average their scores (Tables 1-2 'STW 16f+8f')")
    p.add_argument("--test-clips", type=int, default=1, help="clips per video at test time")
    p.add_argument("--test-crops", type=int, default=1, choices=[1, 3, 10], help="crops per clip at test time")
    p.add_argument("--test-size", type=int, default=None,
                   help="test crops of this size from the short side scaled to it (full-resolution testing, Table 2: "
                        "256); default: --input-size crops from the short side at 256/224 of it")
    p.add_argument("--test-resize", default=None, metavar="HxW",
                   help="resize every test frame to HxW first, aspect not kept (the official release: 240x320)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimisation steps (smoke runs)")
    p.add_argument("--accumulate", type=int, default=1,
                   help="micro-batches per step: one GPU with --accumulate 8 sees the per-GPU batches of 8 GPUs")
    p.add_argument("--save-every", type=int, default=1000,
                   help="also write last.pt every N steps inside an epoch (0: at epoch ends only)")
    p.add_argument("--max-bad-fraction", type=float, default=0.05, help="stop past this fraction of bad samples")
    p.add_argument("--complexity", action="store_true", help="print params and GFLOPs of one clip and exit")
    p.add_argument("--benchmark", action="store_true", help="print latency/throughput (and the baseline's), exit")
    # paper switches
    p.add_argument("--stfm-ratio", default="4:2:4", choices=["4:2:4", "8:4/3:8", "16:8/7:16", "avg"],
                   help="STFM alpha:beta:gamma of Eq. (1), or 'avg' = average pooling of the 3 frames (Table 5)")
    p.add_argument("--no-stfm", action="store_true", help="TWM only (Table 6)")
    p.add_argument("--no-twm", action="store_true", help="STFM only (Table 6)")
    p.add_argument("--combine", default="parallel", choices=["parallel", "stfm-twm", "twm-stfm"],
                   help="parallel sum (Fig. 3a) or vertical STFM=>TWM / TWM=>STFM (Fig. 3b/c, Table 8)")
    p.add_argument("--stages", type=int, nargs="+", default=[2, 3, 4, 5], choices=[2, 3, 4, 5],
                   help="ResNet stages (2-5 = layer1-layer4) whose blocks get an STW block (Table 7)")
    args = p.parse_args(argv)
    adopted = checkpoint.adopt(p, argv, args, SCRIPT, MODEL_KEYS)  # the model flags of --checkpoint/--resume
    args.demo = args.data is None and not (args.complexity or args.benchmark or args.predict)
    if args.complexity or args.benchmark:
        args.pretrained = "none"  # weights change neither FLOPs nor speed
    if args.demo and not adopted:
        for key, value in DEMO_PROFILE.items():
            if getattr(args, key) == p.get_default(key):
                setattr(args, key, value)
    if args.accumulate < 1 or args.batch_size % args.accumulate:
        p.error(f"--batch-size {args.batch_size} is not a multiple of --accumulate {args.accumulate}")
    if args.visualize and not args.predict:
        p.error("--visualize DIR draws the videos of --predict PATH...: it needs --predict")
    if (args.evaluate or args.predict) and not (args.checkpoint or args.ensemble):
        p.error(f"{'--evaluate' if args.evaluate else '--predict'} needs --checkpoint PATH")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: no CUDA GPU is visible to PyTorch (use --device cpu)")
    if args.test_resize:
        try:
            parse_size(args.test_resize)
        except ValueError as e:
            p.error(f"--test-resize: {e}")
    if args.no_stfm and args.no_twm:
        p.error("--no-stfm with --no-twm removes the STW block: use --baseline")
    # a paper switch that the model would not use stops here, before any work (CONVENTIONS.md "paper switches")
    given = checkpoint.explicit_flags(p, argv)
    if args.baseline:
        for dest in ("stfm_ratio", "no_stfm", "no_twm", "combine", "stages"):
            if dest in given:
                p.error(f"{option(dest)} has no effect with --baseline {args.baseline} (no STW blocks)")
    if "combine" in given and (args.no_stfm or args.no_twm):
        p.error(f"--combine joins STFM and TWM: it has no effect with {'--no-stfm' if args.no_stfm else '--no-twm'}")
    if "stfm_ratio" in given and args.no_stfm:
        p.error("--stfm-ratio has no effect with --no-stfm")
    if args.finetune:  # Sec. IV-B: lr 0.001, x0.1 every 15 epochs (of 50)
        if args.lr == p.get_default("lr"):
            args.lr = 0.001
        if args.lr_steps == p.get_default("lr_steps"):
            args.lr_steps = list(range(15, args.epochs, 15))
    return args


def option(dest):
    return "--" + dest.replace("_", "-")


# ============================================================================================== paper modules
def from_frame(x, d):
    """x (B, T, ...) -> out[:, t] = x[:, t + d], zeros where t + d falls outside the clip (TSM's zero padding)."""
    if d == 0:
        return x
    pad = [0, 0] * (x.dim() - 2)                                          # no padding after dim 1
    return F.pad(x[:, d:], pad + [0, d]) if d > 0 else F.pad(x[:, :d], pad + [-d, 0])  # zero frames at the end/start


def layout(x):
    """The memory format of a (B*T, C, H, W) tensor, so a module can return its result in its input's layout
    (--channels-last: a concatenation would otherwise hand the next conv a standard-layout tensor)."""
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


def parse_ratio(text):
    """Table 5 setting 'alpha:beta:gamma' -> the channel fractions (1/alpha, 1/beta, 1/gamma), summing to 1."""
    fractions = tuple(1 / Fraction(a) for a in text.split(":"))
    if len(fractions) != 3 or sum(fractions) != 1:
        raise ValueError(f"--stfm-ratio {text}: need alpha:beta:gamma with 1/alpha + 1/beta + 1/gamma = 1")
    return fractions


class STFM(nn.Module):
    """Spatio-Temporal Fusion Module (Sec. III-A, Eq. 1-2, Fig. 2); input/output (B*T, C, H, W).

    `channels`: C; `num_segments`: T; `ratio`: 'alpha:beta:gamma' of Eq. (1) (Table 5: '4:2:4' default,
    '8:4/3:8', '16:8/7:16') or 'avg', Table 5's "Average Pooling" row, y_t = (x_{t-1} + x_t + x_{t+1}) / 3.

    Choice (the encoders' form; the paper only says "2D convolution", Eq. 1): a 1x1 convolution with channel
    groups of b channels (b = 4 for 4:2:4; b = lcm of the ratio's denominators), each group of x_{t-1} giving
    b/alpha channels of l_t, each group of x_t b/beta channels of m_t, each group of x_{t+1} b/gamma channels
    of r_t. The cost figures decide it:
      * the paper gives 33 G (TSN) vs 33.5 G (STW) and "less than 2 %" extra (Tables 1-2, Sec. IV-C), i.e. at
        most ~0.65 G over the 32.70 G TSN-R50 (8 x 224^2) for STFM + TWM, and TWM alone costs 0.13 G;
      * a dense 1x1 Conv2D C -> C/alpha (+ C/beta + C/gamma) at each block input costs C^2 per pixel:
        STW 57.6 G and 39.8M parameters (measured), so it is excluded;
      * grouped 3x3 encoders cost 9b MACs per input element: STW 34.45 G (+5.4 %) and 24.38M parameters
        (+2.1 %), also beyond "less than 2 %";
      * grouped 1x1 encoders cost b = 4 MACs per element: STW 33.01 G (+0.96 %; the paper's 33.5 G within
        1.5 %) and 23.96M parameters (+92k with TWM, +0.4 %), and every channel of all three frames still
        reaches y_t, the property the paper claims over TSM ("encodes and stacks all channels of three
        adjacent frames, preserving all information").
    Table 5's ratios therefore differ in cost as well as in the split: the group size b is 4 for 4:2:4, 8 for
    8:4/3:8 and 16 for 16:8/7:16, i.e. b MACs per input element and b x C weights per block (STFM alone at
    8 x 224^2: +0.18, +0.36, +0.72 GMACs over TSN's 32.70; `python -m common.paper_tables stw --table "Table 5"`).
    One grouped conv computes all three encoders on every frame (a per-frame conv commutes with picking the
    neighbour frame afterwards): output slots [0, b/alpha) of each group are theta (taken from frame t-1),
    the middle b/beta slots phi (frame t), the last b/gamma slots varphi (frame t+1).
    Choice (Concat order, Eq. 2): l, m, r are concatenated inside each group of b channels, so every output
    channel sits at the index of an input channel of its group; the encoders start as the copy of that channel
    (weight 1, rest 0), i.e. STFM starts as a TSM-style shift of 1/alpha and 1/gamma of the channels and the
    ImageNet conv1 that follows sees its own features at step 0. Frames outside the clip are zeros (as TSM).
    """

    def __init__(self, channels, num_segments, ratio="4:2:4"):
        super().__init__()
        self.num_segments, self.average = num_segments, ratio == "avg"
        if self.average:
            return
        fractions = parse_ratio(ratio)
        self.b = math.lcm(*(f.denominator for f in fractions))          # channels per group
        if channels % self.b:
            raise ValueError(f"STFM: C={channels} is not a multiple of the group size {self.b} ({ratio})")
        self.n_l, self.n_m, self.n_r = (int(f * self.b) for f in fractions)  # slots per group: b/alpha, ...
        # theta, phi, varphi of Eq. (1) as the slot ranges of one grouped 1x1 conv (C -> C, groups C/b)
        self.encode = nn.Conv2d(channels, channels, 1, groups=channels // self.b, bias=False)
        with torch.no_grad():  # each output channel starts as a copy of the input channel at its index
            w = torch.zeros_like(self.encode.weight)                      # (C, b, 1, 1)
            w[torch.arange(channels), torch.arange(channels) % self.b] = 1.0
            self.encode.weight.copy_(w)

    def forward(self, x):
        T = self.num_segments
        BT, C, H, W = x.shape
        if self.average:  # Table 5 "Average Pooling"
            x = x.view(BT // T, T, C, H, W)                               # (B*T,C,H,W) -> (B,T,C,H,W)
            y = (from_frame(x, -1) + x + from_frame(x, 1)) / 3
            return y.view(BT, C, H, W)                                    # (B,T,C,H,W) -> (B*T,C,H,W)
        # every frame through theta|phi|varphi: the grouped 1x1 conv, computed as the same product per group of b
        # channels with a batched matmul (b x b weights), 1.5x faster than the grouped conv on CPU (measured)
        w = self.encode.weight.reshape(C // self.b, self.b, self.b)       # (C,b,1,1) -> (C/b, b out, b in)
        e = torch.matmul(w, x.reshape(BT, C // self.b, self.b, H * W))    # (B*T,C,H,W) -> (B*T,C/b,b,HW)
        e = e.view(BT // T, T, C // self.b, self.b, H, W)                 # (B*T,C/b,b,HW) -> (B,T,C/b,b,H,W)
        # Eq. (1): l_t = Conv2D(x_{t-1}, theta), m_t = Conv2D(x_t, phi), r_t = Conv2D(x_{t+1}, varphi)
        l_t = from_frame(e[:, :, :, : self.n_l], -1)                      # (B,T,C/b,b/alpha,H,W)
        m_t = e[:, :, :, self.n_l: self.n_l + self.n_m]                   # (B,T,C/b,b/beta,H,W)
        r_t = from_frame(e[:, :, :, self.n_l + self.n_m:], 1)             # (B,T,C/b,b/gamma,H,W)
        # Eq. (2): y_t = Concat(l_t, m_t, r_t)
        y = torch.cat([l_t, m_t, r_t], dim=3)                             # -> (B,T,C/b,b,H,W)
        y = y.view(BT, C, H, W)                                           # (B,T,C/b,b,H,W) -> (B*T,C,H,W)
        return y.contiguous(memory_format=layout(x))                      # channels_last in, channels_last out


class TWM(nn.Module):
    """Temporal-Wise Module (Sec. III-B, Eq. 3-6); input/output (B*T, C, H, W).

    `channels`: C; `num_segments`: T. The Conv3D of Eq. (4) has parameters lambda, kernel 3x1x1 and one output
    channel (3C weights, 3C MACs per position: "the same as depth-wise convolution").
    Choice: no bias (the paper writes Conv3D(X, lambda) only) and zero padding in time (frames 0 and T-1 see a
    zero neighbour, as STFM and TSM). Choice: lambda starts at zero, so S = 1/2 and Z = X/2 for every frame at
    step 0 (no arbitrary motion gating of the pretrained features); the gradient on lambda is non-zero.
    """

    def __init__(self, channels, num_segments):
        super().__init__()
        self.num_segments = num_segments
        self.conv = nn.Conv3d(channels, 1, (3, 1, 1), padding=(1, 0, 0), bias=False)
        nn.init.zeros_(self.conv.weight)

    def keep(self, x):
        """1 - S of Eq. (5), (B*T, 1, H, W): the share of X that Eq. (6) keeps, Z = X - X.S = X.(1 - S)."""
        T = self.num_segments
        BT, C, H, W = x.shape
        # Eq. (3)-(4): U = Conv3D(X~, lambda) on X~ = X as C x T x H x W. With one output channel the 3x1x1 kernel
        # is three 1x1 projections C -> 1 of every frame (the weights of taps t-1, t, t+1) summed over neighbouring
        # frames: one 1x1 Conv2d C -> 3 on X as it is, no transpose (the same 3C MACs per position; the CPU Conv3d
        # on the transposed X took 10x longer, measured).
        p = F.conv2d(x, self.conv.weight.reshape(C, 3).t()[:, :, None, None])   # (1,C,3,1,1) -> (3,C,1,1): (B*T,3,H,W)
        p = p.view(BT // T, T, 3, H, W)                                         # (B*T,3,H,W) -> (B,T,3,H,W)
        u = from_frame(p[:, :, 0], -1) + p[:, :, 1] + from_frame(p[:, :, 2], 1)  # U_t = p0(t-1) + p1(t) + p2(t+1)
        # Eq. (5): S = Sigmoid(U), broadcast over the C channels
        return 1 - torch.sigmoid(u).view(BT, 1, H, W)                           # (B,T,H,W) -> (B*T,1,H,W)

    def forward(self, x):
        # Eq. (5)-(6): V = X~ . S, Z = X~ - V = X . (1 - S), in one pass (x is already in the T x C x H x W layout)
        return x * self.keep(x)


class STWBlock(nn.Module):
    """The STW block (Sec. III-C, Fig. 2; Fig. 3 for the vertical variants), in front of a bottleneck's conv1.

    `combine`: 'parallel' = STFM(x) + TWM(x) (Fig. 3a, the paper's model), 'stfm-twm' = TWM(STFM(x)) (Fig. 3b),
    'twm-stfm' = STFM(TWM(x)) (Fig. 3c); `use_stfm`/`use_twm` off give the single-module rows of Table 6.

    Speed (measured, fp32, 2-core CPU, 8 x 224^2): the 16 blocks add 1 % of TSN's FLOPs but are memory-bound: each
    reads the block input three times (STFM's grouped 1x1, TWM's projection, the sum) and writes three tensors of
    its size (STFM's codes, their shifted concatenation, the output), ~15 % of the forward time; STW's latency is
    1.27-1.32 x TSN's against a FLOPs ratio of 1.01 (README "Performance"). No loops are left to vectorise.
    """

    def __init__(self, channels, num_segments, ratio="4:2:4", use_stfm=True, use_twm=True, combine="parallel"):
        super().__init__()
        self.stfm = STFM(channels, num_segments, ratio) if use_stfm else None
        self.twm = TWM(channels, num_segments) if use_twm else None
        self.combine = combine

    def forward(self, x):
        if self.twm is None:
            return self.stfm(x)
        if self.stfm is None:
            return self.twm(x)
        if self.combine == "stfm-twm":
            return self.twm(self.stfm(x))
        if self.combine == "twm-stfm":
            return self.stfm(self.twm(x))
        return torch.addcmul(self.stfm(x), x, self.twm.keep(x))          # Fig. 2: STFM(x) + TWM(x), one pass


class TemporalShift(nn.Module):
    """TSM's residual shift (Table 6 "TSM" row, `--baseline tsm`): of C channels, C/8 take frame t+1, C/8 take
    frame t-1, zeros at the clip ends; no parameters, no FLOPs (notes/tsm-family-reference.md Sec. 1.5)."""

    def __init__(self, num_segments, n_div=8):
        super().__init__()
        self.num_segments, self.n_div = num_segments, n_div

    def forward(self, x):
        T = self.num_segments
        BT, C, H, W = x.shape
        fold = C // self.n_div
        x = x.view(BT // T, T, C, H, W)                                   # (B*T,C,H,W) -> (B,T,C,H,W)
        out = torch.cat([from_frame(x[:, :, :fold], 1), from_frame(x[:, :, fold: 2 * fold], -1),
                         x[:, :, 2 * fold:]], dim=2)                      # -> (B,T,C,H,W)
        return out.view(BT, C, H, W)                                      # (B,T,C,H,W) -> (B*T,C,H,W)


# ============================================================================================== paper modules
# (the EAN helper writes EAB, SOI-Tr, LMC here)


# ---- what `--predict ... --visualize DIR` draws beside Grad-CAM of VIS_CAM (common/visualize.py: "Class.attr" specs)
VIS_CAM = "backbone.layer4"  # the last stage, (B*T, C, h, w)
VIS_MAPS = {  # TWM.keep returns 1 - S as the forward computes it (recorded by a wrapper on that instance)
    "TWM map S (Eq. 5)": dict(at="TWM.keep", get=lambda m, x, keep: 1 - keep, kind="heat",
                             note="S = sigmoid(U), the share of X that Eq. (6) removes; last STW block"),
}


# ---- the paper's tables as data: `python -m common.paper_tables stw` builds every row and prints it --------------
# Rows per common/paper_tables.py: the flags build the row with `python stw.py --complexity FLAGS`; figures as
# printed (Tables 1-3 give GFLOPs only, Tables 5-8 accuracy only; all SSv1 val unless named).
SSV1_8F = "protocol: {T} frames x 1 clip x 1 crop (224 x 224 centre crop; Sec. IV-C). Top-1 test: {test}"
ENSEMBLE = ("`--evaluate --ensemble 16f.pt 8f.pt`: the softmax scores of the 16- and the 8-frame model averaged, "
            "1 clip x 1 crop each. Top-1 test: {test}")
STFM_ONLY = ("STFM alone (Table 5 = Table 6's STFM row at 4:2:4); the ratio sets STFM's group size b = {b}, so "
             "b MACs per input element")
PAPER_TABLES = [
    {"table": "Table 1", "row": "TSN 8f", "flags": "--baseline", "gflops": 33, "top1": 19.7, "note": ""},
    {"table": "Table 1", "row": "TSM 8f", "flags": "--baseline tsm", "gflops": 33, "top1": 43.4,
     "note": "TSM pretrained on ImageNet + Kinetics-400 (its paper's row)"},
    {"table": "Table 1", "row": "TSM 16f", "flags": "--baseline tsm --num-segments 16", "gflops": 65, "top1": 44.8,
     "note": "TSM pretrained on ImageNet + Kinetics-400"},
    {"table": "Table 1", "row": "TSM_En 16f+8f", "flags": "--baseline tsm --num-segments 16",
     "ensemble": ["--baseline tsm"], "gflops": 98, "top1": 46.8, "note": "TSM's 16f + 8f score ensemble"},
    {"table": "Table 1", "row": "STW_8f", "flags": "", "gflops": 34, "top1": 46.3,
     "note": "Sec. IV-C's text: 33.5 GFLOPs. " + SSV1_8F.format(T=8, test=41.7)},
    {"table": "Table 1", "row": "STW_16f", "flags": "--num-segments 16", "gflops": 67, "top1": 48.7,
     "note": SSV1_8F.format(T=16, test=43.9)},
    {"table": "Table 1", "row": "STW_16f+8f", "flags": "--num-segments 16", "ensemble": [""], "gflops": 100,
     "top1": 49.9, "note": ENSEMBLE.format(test=45.2)},
    {"table": "Table 2", "row": "TSN 16f x 10", "flags": "--baseline --num-segments 16", "views": 30,
     "gflops": 1950, "top1": 30.0, "note": "SSv2; 10 clips x 3 crops (1950 = 65 x 30)"},
    {"table": "Table 2", "row": "TSM 8f x 10", "flags": "--baseline tsm", "views": 30, "gflops": 990,
     "top1": 59.1, "note": "SSv2; 10 clips x 3 crops (990 = 33 x 30); ImageNet + Kinetics-400 pretraining"},
    {"table": "Table 2", "row": "TSM 16f x 10", "flags": "--baseline tsm --num-segments 16", "views": 30,
     "gflops": 1950, "top1": 59.4, "note": "SSv2; 10 clips x 3 crops; top-1 test 60.4"},
    {"table": "Table 2", "row": "STW_8f", "flags": "", "gflops": 34, "top1": 61.7,
     "note": "SSv2. " + SSV1_8F.format(T=8, test=60.8)},
    {"table": "Table 2", "row": "STW_16f", "flags": "--num-segments 16", "gflops": 67, "top1": 63.0,
     "note": "SSv2. " + SSV1_8F.format(T=16, test=62.1)},
    {"table": "Table 2", "row": "STW_16f+8f", "flags": "--num-segments 16", "ensemble": [""], "gflops": 100,
     "top1": 64.6, "note": "SSv2. " + ENSEMBLE.format(test=63.7)},
    {"table": "Table 3", "row": "STW_16f x 10", "flags": "--num-segments 16 --num-classes 400", "gflops": 67,
     "top1": 75.1, "top5": 91.7, "note": "Kinetics-400; protocol: 16 frames x 10 clips x 3 crops (67 x 30 GFLOPs)"},
    {"table": "Table 4", "row": "STW_16f x 10 (UCF101)", "flags": "--num-segments 16 --num-classes 101",
     "top1": 96.2, "note": "`--finetune` from Kinetics-400 (lr 0.001, Sec. IV-B); 16 frames x 10 clips; mean of "
                          "3 splits"},
    {"table": "Table 4", "row": "STW_16f x 10 (HMDB51)", "flags": "--num-segments 16 --num-classes 51",
     "top1": 73.3, "note": "`--finetune` from Kinetics-400 (lr 0.001, Sec. IV-B); 16 frames x 10 clips; mean of "
                          "3 splits"},
    {"table": "Table 5", "row": "Average Pooling", "flags": "--no-twm --stfm-ratio avg", "top1": 32.8,
     "top5": 60.2, "note": "STFM alone, y_t = (x_{t-1} + x_t + x_{t+1}) / 3: no parameters, no MACs"},
    *[{"table": "Table 5", "row": f"Conv2d({ratio}) & Concat", "flags": f"--no-twm --stfm-ratio {ratio}",
       "top1": top1, "top5": top5, "note": STFM_ONLY.format(b=b)}
      for ratio, b, top1, top5 in (("16:8/7:16", 16, 39.2, 68.9), ("8:4/3:8", 8, 41.5, 70.4),
                                   ("4:2:4", 4, 42.6, 73.5))],
    {"table": "Table 6", "row": "TSN", "flags": "--baseline", "top1": 19.7, "top5": 46.6, "note": ""},
    {"table": "Table 6", "row": "TSM", "flags": "--baseline tsm", "top1": 42.1, "top5": 72.7,
     "note": "ImageNet pretraining (Table 1's 43.4 is TSM's own, with Kinetics-400)"},
    {"table": "Table 6", "row": "STFM", "flags": "--no-twm", "top1": 42.6, "top5": 73.5, "note": ""},
    {"table": "Table 6", "row": "TWM", "flags": "--no-stfm", "top1": 41.9, "top5": 72.3, "note": ""},
    {"table": "Table 6", "row": "STW", "flags": "", "top1": 46.3, "top5": 76.6, "note": ""},
    *[{"table": "Table 7", "row": f"stage {name} ({blocks} blocks)", "flags": f"--stages {stages}", "top1": top1,
       "top5": top5, "note": ""}
      for name, stages, blocks, top1, top5 in (("2", "2", 3, 40.0, 70.2), ("3", "3", 4, 41.1, 71.5),
                                               ("4", "4", 6, 43.9, 73.7), ("5", "5", 3, 43.1, 73.8),
                                               ("2-5", "2 3 4 5", 16, 46.3, 76.7), ("3-5", "3 4 5", 13, 45.9, 76.1),
                                               ("4-5", "4 5", 9, 45.6, 76.1))],
    {"table": "Table 8", "row": "Parallel", "flags": "--combine parallel", "top1": 46.3, "top5": 76.6, "note": ""},
    {"table": "Table 8", "row": "Vertical STFM => TWM", "flags": "--combine stfm-twm", "top1": 42.1, "top5": 73.3,
     "note": ""},
    {"table": "Table 8", "row": "Vertical TWM => STFM", "flags": "--combine twm-stfm", "top1": 41.8, "top5": 73.5,
     "note": ""},
]


# ============================================================================================ backbone surgery
def build_resnet(arch, pretrained):
    """torchvision ResNet without its classifier; `imagenet` = IMAGENET1K_V1 (the weights the papers used). A
    --pretrained PATH is loaded by main() after the surgery (common.checkpoint.load_foreign: by name and shape)."""
    weights = None
    if pretrained == "imagenet":
        weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    try:
        net = torchvision.models.get_model(arch, weights=weights)
    except OSError as e:  # no network and no cached file
        sys.exit(f"error: cannot load {weights} ({e}); put the file in $TORCH_HOME/hub/checkpoints, "
                 f"pass --pretrained PATH, or --pretrained none")
    net.fc = nn.Identity()
    return net


STAGES = {2: "layer1", 3: "layer2", 4: "layer3", 5: "layer4"}  # the paper's stage numbers (Table 7)


def insert_stw(backbone, num_segments, stages=(2, 3, 4, 5), ratio="4:2:4", use_stfm=True, use_twm=True,
               combine="parallel"):
    """Put an STW block at the start of the residual branch of every block of `stages` (Sec. III-C, Fig. 2:
    "similar to TSM, we place the STW block inside the residual branch"; Sec. IV-B: "all residual blocks"):
    block.conv1 becomes Sequential(STWBlock, conv1), the identity path is untouched. Returns the blocks' count.
    No zero-init is needed to keep the pretrained network usable: STFM starts as a channel shift (see STFM)."""
    count = 0
    for stage in stages:
        for block in getattr(backbone, STAGES[stage]):
            stw = STWBlock(block.conv1.in_channels, num_segments, ratio, use_stfm, use_twm, combine)
            block.conv1 = nn.Sequential(stw, block.conv1)
            count += 1
    return count


def insert_tsm(backbone, num_segments):
    """TSM baseline (`--baseline tsm`): the residual shift in front of conv1 of all 16 blocks (TSM 'blockres')."""
    for stage in STAGES.values():
        for block in getattr(backbone, stage):
            block.conv1 = nn.Sequential(TemporalShift(num_segments), block.conv1)



class Model(nn.Module):
    """TSN (`--baseline`), TSM (`--baseline tsm`) or STW: a 2D ResNet on every frame, a classifier, logits
    averaged over the T segments (Sec. IV-B: "The outputs of the T frames were averaged")."""

    def __init__(self, args, num_classes):
        super().__init__()
        self.num_segments = args.num_segments
        self.backbone = build_resnet(args.arch, args.pretrained)
        if args.baseline == "tsm":
            insert_tsm(self.backbone, args.num_segments)
        elif args.baseline is None:
            insert_stw(self.backbone, args.num_segments, args.stages, args.stfm_ratio, not args.no_stfm,
                       not args.no_twm, args.combine)
        width = 512 if args.arch in ("resnet18", "resnet34") else 2048
        self.dropout = nn.Dropout(args.dropout)
        self.fc = nn.Linear(width, num_classes)
        nn.init.normal_(self.fc.weight, 0, 0.001)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        B, T = x.shape[:2]
        assert T == self.num_segments, f"clip has {T} frames, the model was built for {self.num_segments}"
        x = x.flatten(0, 1)                                 # (B,T,C,H,W) -> (B*T,C,H,W)
        x = self.backbone(x)                                # (B*T, D)
        x = self.fc(self.dropout(x))                        # (B*T, K)
        return x.view(B, T, -1).mean(1)                     # (B*T,K) -> (B,T,K) -> (B,K) segment consensus


# ======================================================================================================= data
# Choice (train crops, differs from the paper's text): Sec. IV-B resizes every frame to short side 256 before the
# 224 crop; TrainTransform takes TSN's multi-scale crop (sides 1, .875, .75, .66 x the short side) from the frame as
# decoded and resizes the crop to --input-size. The two agree for frames stored at short side 256 (what
# `python -m common.prepare` advises); for other sizes the crop covers the same fraction of the frame but TSN's
# snapping of a side within 3 px of 224 (at short side 256) does not occur.
def frames_per_clip(args):
    return args.num_segments


def eval_dataset(args, records, opts):
    """The test protocol: --test-clips clips of T segments, each in --test-crops crops; unreadable videos are
    left out, never replaced."""
    return VideoDataset(
        records, lambda n, k, rng: segment_indices(n, args.num_segments, train=False, clip=k, num_clips=args.test_clips),
        EvalTransform.from_args(args, frames_per_clip(args)), num_clips=args.test_clips, skip_bad=True,
        **opts.frames)


def eval_loader(dataset, args, rank, world):
    return torch.utils.data.DataLoader(
        dataset, max(1, args.batch_size // world // (args.test_clips * args.test_crops)), collate_fn=collate_eval,
        sampler=EpochSampler(len(dataset), shuffle=False, rank=rank, world=world), num_workers=args.workers,
        pin_memory=torch.cuda.is_available())


def build_loaders(args, rank, world):
    """(train loader or None with --evaluate, val records, val loader, classes, DataOptions)."""
    if args.data is None:
        args.data = demo_dataset()
    val_records, classes = load_split(args.data, "val")
    opts = data_options(args, classes, read_dataset_info(args.data), args.data)
    val_loader = eval_loader(eval_dataset(args, val_records, opts), args, rank, world)
    if args.evaluate:
        return None, val_records, val_loader, classes, opts
    train_records, _ = load_split(args.data, "train")
    train_set = VideoDataset(
        train_records, lambda n, k, rng: segment_indices(n, args.num_segments, train=True, rng=rng),
        TrainTransform(args.input_size, flip=not args.no_flip, flip_labels=opts.flip_labels), **opts.frames)
    per_rank = max(1, args.batch_size // world)
    train_loader = torch.utils.data.DataLoader(
        train_set, per_rank, sampler=EpochSampler(len(train_set), shuffle=True, seed=args.seed, rank=rank, world=world),
        drop_last=True, num_workers=args.workers, pin_memory=torch.cuda.is_available(),
        persistent_workers=args.workers > 0, generator=torch.Generator())  # not the global RNG: exact resume
    if len(train_loader) == 0:
        raise AnnotationError(f"{args.data}/train.txt: fewer samples ({len(train_set)}) than --batch-size {per_rank}")
    return train_loader, val_records, val_loader, classes, opts


# ============================================================================================ train/evaluate
def param_groups(model, weight_decay):
    """No weight decay on BatchNorm/LayerNorm parameters and biases (TSM's optimisation policy)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def learning_rate(args, epoch):
    return args.lr * 0.1 ** sum(epoch >= s for s in args.lr_steps)


def autocast(args, device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp)


def train_loss(model, clips, targets, args):
    """Cross-entropy of one (micro-)batch of clips, and the extra terms to log (none here)."""
    return F.cross_entropy(model(clips).float(), targets), {}


def new_sums():
    """Per-epoch sums of the training statistics (step counts, clips, loss, seconds), kept in the checkpoint."""
    return {"loss": 0.0, "steps": 0.0, "samples": 0.0, "data_time": 0.0, "time": 0.0}


def train_one_epoch(model, loader, optimizer, args, device, state, bad, stop, save):
    """The rest of epoch state["epoch"]: a resumed run starts at step state["epoch_step"] (the sampler skips the
    batches done), and state["sums"] carries the partial epoch's sums, so its log record equals an uninterrupted
    one. One loader batch = one step of --accumulate micro-batches. Returns True when a signal asked to stop."""
    model.train()
    sums, A = state["sums"], args.accumulate
    steps = run.StepLog(f"epoch {state['epoch']}", state["epoch_step"] + len(loader), args.log_every,
                        first=state["epoch_step"])
    start = time.perf_counter()
    for clips, targets, bad_paths in run.progress(loader, desc=f"epoch {state['epoch']}", leave=False):
        data_time = time.perf_counter() - start
        bad.add(bad_paths)
        clips = normalize(clips.to(device, non_blocking=True))                # uint8 -> float (B,T,C,H,W)
        targets = targets.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss, logged = 0.0, {}
        for m in range(A):  # micro-batch m = every A-th clip: exactly the per-GPU batch of rank m of A ranks
            no_sync = model.no_sync() if m < A - 1 and hasattr(model, "no_sync") else contextlib.nullcontext()
            with no_sync, autocast(args, device):
                micro, extra = train_loss(model, clips[m::A], targets[m::A], args)
            (micro / A).backward()
            loss = loss + micro.detach() / A
            logged = {k: logged.get(k, 0.0) + v.detach() / A for k, v in extra.items()}
        # one all-reduce per step (none in a single process): every rank stops at the same step
        nonfinite, stopping = run.all_reduce_sum([float(not torch.isfinite(loss)), float(stop.requested)], device)
        if nonfinite:
            run.cleanup_distributed()
            kept = "no checkpoint was written" if state["saved_step"] is None else \
                f"the last checkpoint (step {state['saved_step']}) is left as it was"
            sys.exit(f"error: non-finite loss at epoch {state['epoch']}, step {state['step'] + 1} (not applied); {kept}")
        if args.clip_grad:
            nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        optimizer.step()
        state["step"] += 1
        state["epoch_step"] += 1
        for key, value in {"loss": loss.item(), "steps": 1, "samples": len(targets), "data_time": data_time,
                           **{k: v.item() for k, v in logged.items()}}.items():
            sums[key] = sums.get(key, 0.0) + value
        sums["time"] += time.perf_counter() - start
        steps.step(loss.item(), optimizer.param_groups[0]["lr"], data_time, len(targets))
        if stopping:
            return True
        if args.max_steps and state["step"] >= args.max_steps:
            break
        if args.save_every and state["step"] % args.save_every == 0:
            save(["last.pt"])
        start = time.perf_counter()
    return False


def epoch_record(sums, device):
    """The epoch's training statistics over all ranks: means per step, and the number of training clips."""
    total = dict(zip(sums, run.all_reduce_sum(list(sums.values()), device)))
    steps = max(total.pop("steps"), 1)
    samples = int(total.pop("samples"))
    return {**{("train_" + k if k not in ("data_time", "time") else k): v / steps for k, v in total.items()},
            "train_samples": samples}


def evaluate(model, loader, args, device, bad):
    """Per-video softmax probabilities averaged over the views (clips x crops), as (Predictions, videos left
    out) of this rank (common/predict.py)."""
    model.eval()

    def forward(clips):                                                      # uint8 (n,T,C,H,W) -> logits (n,K)
        with autocast(args, device):
            return model(normalize(clips))

    preds, skipped = video_scores(forward, loader, device, crops=args.test_crops)
    bad.add([message for _, message in skipped], "left out of the evaluation")
    return preds, skipped


# ======================================================================================================= main
def protocol(args):
    return (f"{args.num_segments} frames x {args.test_clips} clips x {args.test_crops} crops "
            f"({EvalTransform.from_args(args, frames_per_clip(args)).describe()})")


def build_model(args, num_classes):
    return Model(args, num_classes)


def clip_shape(args):
    return (frames_per_clip(args), 3, args.input_size, args.input_size)


def complexity_row(args):
    """Params (M) and GFLOPs (multiply-accumulates) of one clip of the model `args` build, as --complexity and
    common/paper_tables.py report them. Built and run on the 'meta' device: shapes only, no weights, no arithmetic
    (the counts equal those of a real build, tested), so a ResNet-50 row takes well under a second."""
    with torch.device("meta"):
        model = build_model(args, args.num_classes)
    gflops = complexity.gmacs(model, torch.zeros(1, *clip_shape(args), device="meta"))
    return {"params_m": complexity.params_m(model), "gflops": gflops}


def report_complexity(args):
    row = complexity_row(args)
    out = {"script": SCRIPT, "params_m": round(row["params_m"], 2), "gflops": round(row["gflops"], 2),
           "num_segments": args.num_segments, "input_size": args.input_size, "num_classes": args.num_classes,
           "frames_per_clip": frames_per_clip(args)}
    print(json.dumps(out))


def report_benchmark(args, device):
    """--benchmark: the model and its baseline (--baseline) timed interleaved in one run (common/complexity.py)."""
    def model_and_input(base):
        cfg = argparse.Namespace(**{**vars(args), "baseline": base})
        return build_model(cfg, args.num_classes), lambda n: torch.randn(n, *clip_shape(cfg))  # n clips

    result = complexity.compare(*model_and_input(args.baseline), *model_and_input("tsn"), device, args.batch_size,
                                args.amp, args.channels_last, args.compile)
    print(json.dumps({"script": SCRIPT, **result}))


def trained_model(args, num_classes, device, path):
    """The model the flags build, with the weights of checkpoint `path`."""
    model = build_model(args, num_classes)
    checkpoint.load_weights(model, path)
    return model.to(device)


def predict_videos(args, device):
    """--predict: the top classes of each video file, frame folder or list file (common/predict.py)."""
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON lines alone
        meta = checkpoint.meta(args.checkpoint)
        classes = checkpoint.class_names(meta)
        opts = data_options(args, classes, meta["dataset"], "the checkpoint's dataset")
        records = records_from_paths(args.predict, len(classes), lambda name: name.lower().endswith((".jpg", ".jpeg")))
        model = trained_model(args, len(classes), device, args.checkpoint)
        loader = eval_loader(eval_dataset(args, records, opts), args, 0, 1)
        preds, skipped = evaluate(model, loader, args, device, run.BadSamples(1.0))
    unreadable = print_predictions(preds, skipped, records, classes, args.top_k, protocol(args), multi_label=False)
    if args.visualize:  # one PNG per video: Grad-CAM and the paper's maps (common/visualize.py)
        visualize.write_sheets(model, lambda clips: model(normalize(clips)), loader, records, classes, args.visualize,
                               VIS_MAPS, VIS_CAM, preds=preds, protocol=protocol(args), top_k=args.top_k)
    if unreadable:
        sys.exit(f"error: {unreadable} of {len(records)} videos unreadable")


def evaluate_only(args, rank, world, device):
    """--evaluate --checkpoint X (or --ensemble X Y ...): metrics over the readable val videos, per-class
    accuracy and confusion matrix in the run directory, optionally the per-video scores (--save-scores)."""
    _, records, loader, classes, opts = build_loaders(args, rank, world)
    bad, t0 = run.BadSamples(1.0), time.time()
    members = []
    for path in args.ensemble or [args.checkpoint]:
        cfg = checkpoint.member_args(args, path, MODEL_KEYS) if args.ensemble else args
        checkpoint.check_classes(checkpoint.meta(path), classes, os.path.join(args.data, "classes.txt"))
        model = trained_model(cfg, len(classes), device, path)
        member_loader = loader if cfg is args else eval_loader(eval_dataset(cfg, records, opts), cfg, rank, world)
        preds, skipped = evaluate(model, member_loader, cfg, device, bad)
        members.append((path, protocol(cfg), preds, skipped))
    preds, skipped = (predict.average([m[2] for m in members]), members[0][3]) if args.ensemble else members[0][2:]
    frames = "+".join(proto.split(" frames")[0] for _, proto, _, _ in members)   # the papers' "16+8 frames"
    result = {**metrics_of(preds, skipped), "protocol": frames + " frames" + members[0][1].split(" frames", 1)[1],
              "seconds": round(time.time() - t0, 1)}
    if args.ensemble:
        result["members"] = [{"checkpoint": p, "frames": int(proto.split(" frames")[0].split("x")[0]),
                              "protocol": proto, **metrics_of(m, s)} for p, proto, m, s in members]
    folder = args.output or os.path.dirname(os.path.abspath(args.ensemble[0] if args.ensemble else args.checkpoint))
    write_reports(preds, records, classes, folder, args.save_scores)
    run.print0(f"protocol: {result['protocol']}")
    run.print0(json.dumps(result))
    return result


def main(argv=None):
    args = get_args(argv)  # with --evaluate/--predict/--resume the model flags come from the checkpoint
    if args.complexity:
        return report_complexity(args)
    rank, world, device = run.init_distributed(args.device)
    if args.benchmark:
        return report_benchmark(args, device)
    run.seed_everything(args.seed + rank)
    if args.demo:
        run.print0(f"demo profile (no --data): {json.dumps({k: getattr(args, k) for k in DEMO_PROFILE})}")
    try:
        if args.predict:
            return predict_videos(args, device)
        if args.evaluate:
            return evaluate_only(args, rank, world, device)
        train_loader, val_records, val_loader, classes, opts = build_loaders(args, rank, world)
    except AnnotationError as e:
        sys.exit(f"error: {e}")
    model = build_model(args, len(classes)).to(device)
    if args.pretrained not in ("none", "imagenet") and not args.resume:  # a file: matched by name and shape
        checkpoint.load_foreign(model.backbone, args.pretrained, "--pretrained", args.allow_partial)
    if args.finetune and not args.resume:
        checkpoint.load_foreign(model, args.finetune, "--finetune", args.allow_partial)
    if args.channels_last:
        complexity.to_channels_last(model)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    ddp = torch.compile(ddp) if args.compile else ddp
    optimizer = torch.optim.SGD(param_groups(model, args.weight_decay), lr=args.lr, momentum=args.momentum)
    bad = run.BadSamples(args.max_bad_fraction)
    t0 = time.time()

    output = args.output or os.path.join("runs", f"{SCRIPT}-{time.strftime('%Y%m%d-%H%M%S')}")
    state = {"epoch": 0, "step": 0, "best": -math.inf, "epoch_step": 0, "saved_step": None, "bad_samples": 0,
             "sums": new_sums()}
    if args.resume:
        ckpt = checkpoint.load(args.resume)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        if not run.is_main():  # rank 0 carries the partial epoch's sums and bad paths of all ranks
            state["sums"] = dict.fromkeys(state["sums"], 0.0)
        bad.paths = list(ckpt["bad"]) if run.is_main() else []
        output = args.output or os.path.dirname(os.path.abspath(args.resume))
        run.set_rng_state(ckpt["rng"])
    if run.is_main():
        os.makedirs(output, exist_ok=True)
        with open(os.path.join(output, "args.json"), "w") as f:
            json.dump(vars(args), f, indent=1)
    log = run.JsonlLog(os.path.join(output, "log.jsonl"))
    log.truncate(state["epoch"])
    meta = checkpoint.describe(args, SCRIPT, classes, opts.info)

    def save(names):
        """Called by every rank (it gathers the sums, bad paths and RNG states of all ranks); rank 0 writes.
        best.pt holds the weights and what built them; the optimiser and run state stay in last.pt."""
        sums = dict(zip(state["sums"], run.all_reduce_sum(list(state["sums"].values()), device)))
        state["saved_step"] = state["step"]
        ckpt = {"model": model.state_dict(), "meta": meta, "optimizer": optimizer.state_dict(),
                "state": {**state, "sums": sums}, "bad": run.all_gather_list(bad.paths), "rng": run.gathered_rng_state()}
        for name in names:
            if run.is_main():
                run.save_checkpoint(ckpt if name == "last.pt" else {"model": ckpt["model"], "meta": meta},
                                    os.path.join(output, name))

    metrics = {}
    with run.StopRequest() as stop:
        while state["epoch"] < args.epochs and not (args.max_steps and state["step"] >= args.max_steps):
            epoch = state["epoch"]
            lr = learning_rate(args, epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            train_loader.sampler.set_epoch(epoch, skip=state["epoch_step"] * train_loader.batch_size)
            if state["epoch_step"] == 0:
                bad.new_epoch()
            if train_one_epoch(ddp, train_loader, optimizer, args, device, state, bad, stop, save):
                save(["last.pt"])
                run.print0(f"stopped by {stop.name} at epoch {epoch}, step {state['step']}; checkpoint written. "
                           f"Continue with --resume {os.path.join(output, 'last.pt')}")
                run.cleanup_distributed()
                sys.exit(128 + (stop.signum or signal.SIGTERM))
            train_stats = epoch_record(state["sums"], device)
            metrics = metrics_of(*evaluate(ddp, val_loader, args, device, bad))
            bad_paths = bad.check(train_stats["train_samples"] + metrics["samples"], final=True)
            state["bad_samples"] += len(bad_paths)
            key = "val_map" if "val_map" in metrics else "val_top1"
            state.update(epoch=epoch + 1, epoch_step=0, sums=new_sums())
            is_best = metrics[key] > state["best"]
            state["best"] = max(state["best"], metrics[key])
            record = {"epoch": epoch, "lr": lr, **train_stats, **metrics, "bad_samples": len(bad_paths),
                      "bad_paths": bad_paths, "step": state["step"]}
            log.write(record)
            run.print0(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                                   for k, v in record.items() if k not in ("bad_paths", "skipped_paths")}))
            save(["last.pt", "best.pt"] if is_best else ["last.pt"])
    final = {k: metrics.get(k) for k in ("val_top1", "val_top5", "val_map") if k in metrics}
    final.update({"epochs": state["epoch"], "seconds": round(time.time() - t0, 1), "bad_samples": state["bad_samples"],
                  "skipped": metrics.get("skipped", 0), "protocol": protocol(args), "output": output})
    run.print0(json.dumps(final))
    run.cleanup_distributed()
    return final


if __name__ == "__main__":
    main()
