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

Expected results: every row of the paper's Tables 1-8 is a command (PAPER_TABLES, in the appendix at the end of
this file; `python -m common.paper_tables stw` builds and prints them all, with notes). Table 1 (SSv1 val,
ResNet-50 from ImageNet; ensembles: the members' costs summed), as `python -m common.paper_tables stw --brief
--table "Table 1"` prints it (a test keeps this copy equal to the printer's):

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

Accuracy: none measured at full scale (no GPU, no datasets here). Headline protocol (Sec. IV-C): 8 or 16 frames x
1 clip x 1 centre crop of 224. Demo (`python stw.py` vs `python stw.py --baseline`, no --data, CPU, resnet18 64 px,
12 epochs, lr 0.005; order-only classes, chance 25 %): STW 100.0 % (from epoch 8), TSN 27.0 % val top-1 (docs/demo.md).
"""
# ==================================================================================================== imports
import math
import sys
from fractions import Fraction

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import checkpoint, cli, modes, training
from common.data import VideoDataset
from common.predict import metrics_of, video_scores
from common.sampling import segment_indices
from common.transforms import EvalTransform, TrainTransform, normalize
from common.tsm import TemporalShift

SCRIPT = "stw"

# ================================================================================================== arguments
# The CPU-sized profile used when no --data is given (CONVENTIONS.md "The demo dataset"); flags given on the
# command line win over it.
# Choice: lr 0.005, not the 0.02 of ean.py's profile: from scratch at 0.02 the first epoch overshoots (train loss 2.0
# > ln 4) and STW stayed on the TSN plateau for 12 epochs (28 %); at 0.005 it leaves it at epoch 1 (docs/demo.md).
DEMO_PROFILE = dict(arch="resnet18", pretrained="none", input_size=64, epochs=12, batch_size=16, lr=0.005,
                    lr_steps=[8, 11], weight_decay=5e-4, dropout=0.0, workers=2)


def arguments():
    """The paper's recipe, and its model in one group (cli.MODEL: the flags a checkpoint records); the flags no
    paper mentions come from common/cli.py."""
    p = cli.parser(__doc__)
    g = p.add_argument_group("recipe (Sec. IV-B \"Training\", Sec. IV-C)")
    g.add_argument("--epochs", type=int, default=50, help="Sec. IV-B")
    g.add_argument("--batch-size", type=int, default=64, help="clips per step over all GPUs (Sec. IV-B)")
    g.add_argument("--lr", type=float, default=0.01, help="for --batch-size 64 (Sec. IV-B); --finetune: 0.001")
    g.add_argument("--lr-steps", type=int, nargs="+", default=[30, 40, 45],
                   help="epochs where lr x0.1 (Sec. IV-B); --finetune: every 15 epochs")
    g.add_argument("--weight-decay", type=float, default=5e-4, help="Sec. IV-B")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (Sec. IV-B)")
    g.add_argument("--dropout", type=float, default=0.5, help="before the classifier (Choice: TSM's; paper silent)")
    g.add_argument("--clip-grad", type=float, default=20.0, help="gradient-norm clipping (Choice: TSM's; paper silent)")
    g.add_argument("--pretrained", default="imagenet", help="none | imagenet (IMAGENET1K_V1) | PATH")
    g.add_argument("--num-classes", type=int, default=174, help="when no dataset is given (SSv1/v2: 174)")
    g.add_argument("--test-clips", type=int, default=1, help="clips per video at test time")
    g.add_argument("--test-crops", type=int, default=1, choices=[1, 3, 10], help="crops per clip at test time")
    m = p.add_argument_group(cli.MODEL)
    m.add_argument("--arch", default="resnet50", choices=["resnet18", "resnet34", "resnet50"])
    m.add_argument("--num-segments", type=int, default=8, help="T, segments per clip: 8 or 16 (Sec. IV-B, Table 1)")
    m.add_argument("--input-size", type=int, default=224)
    m.add_argument("--baseline", nargs="?", const="tsn", default=None, choices=["tsn", "tsm"],
                   help="no STW blocks: 'tsn' (bare flag, Table 1) or 'tsm' (residual shift, Table 6)")
    m.add_argument("--stfm-ratio", default="4:2:4", choices=["4:2:4", "8:4/3:8", "16:8/7:16", "avg"],
                   help="STFM alpha:beta:gamma of Eq. (1), or 'avg' = average pooling of the 3 frames (Table 5)")
    m.add_argument("--no-stfm", action="store_true", help="TWM only (Table 6)")
    m.add_argument("--no-twm", action="store_true", help="STFM only (Table 6)")
    m.add_argument("--combine", default="parallel", choices=["parallel", "stfm-twm", "twm-stfm"],
                   help="parallel sum (Fig. 3a) or vertical STFM=>TWM / TWM=>STFM (Fig. 3b/c, Table 8)")
    m.add_argument("--stages", type=int, nargs="+", default=[2, 3, 4, 5], choices=[2, 3, 4, 5],
                   help="ResNet stages (2-5 = layer1-layer4) whose blocks get an STW block (Table 7)")
    return cli.add_shared_flags(p)


def get_args(argv=None):
    """The flags; a model switch the combination would not use stops here, before any work."""
    p = arguments()
    args, given = cli.parse(p, argv, SCRIPT, DEMO_PROFILE, baseline_has_no="STW blocks")
    if args.no_stfm and args.no_twm:
        p.error("--no-stfm with --no-twm removes the STW block: use --baseline")
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
    1.27-1.32 x TSN's against a FLOPs ratio of 1.01 (docs/performance.md). No loops are left to vectorise.
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


# ================================================================================= backbone surgery and model
def build_resnet(arch, pretrained):
    """torchvision ResNet without its classifier; `imagenet` = IMAGENET1K_V1 (the weights the papers used). A
    --pretrained PATH is loaded by main() after the surgery (common.checkpoint.load_initial: by name and shape)."""
    net = checkpoint.torchvision_model(arch, pretrained)
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
    """TSM baseline (`--baseline tsm`): the residual shift in front of conv1 of all 16 blocks (TSM 'blockres';
    common/tsm.py)."""
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


def build_model(args, num_classes):
    return Model(args, num_classes)


# ======================================================================================================= data
# Choice (train crops, differs from the paper's text): Sec. IV-B resizes every frame to short side 256 before the
# 224 crop; TrainTransform takes TSN's multi-scale crop (sides 1, .875, .75, .66 x the short side) from the frame as
# decoded and resizes the crop to --input-size. The two agree for frames stored at short side 256 (what
# `python -m common.prepare` advises); for other sizes the crop covers the same fraction of the frame but TSN's
# snapping of a side within 3 px of 224 (at short side 256) does not occur.
def frames_per_clip(args):
    return args.num_segments


def train_dataset(args, records, opts):
    """Sec. IV-B: T segments of the video, one random frame from each; TSN's multi-scale crop and a horizontal
    flip (swapping the labels of dataset.json's direction pairs)."""
    return VideoDataset(
        records, lambda n, k, rng: segment_indices(n, args.num_segments, train=True, rng=rng),
        TrainTransform(args.input_size, flip=not args.no_flip, flip_labels=opts.flip_labels), **opts.frames)


def test_dataset(args, records, opts):
    """The test protocol (Sec. IV-C): --test-clips clips of T segments (the middle frame of each), each in
    --test-crops crops; unreadable videos are left out, never replaced."""
    return VideoDataset(
        records, lambda n, k, rng: segment_indices(n, args.num_segments, train=False, clip=k, num_clips=args.test_clips),
        EvalTransform.from_args(args, frames_per_clip(args)), num_clips=args.test_clips, skip_bad=True,
        **opts.frames)


def protocol(args):
    return (f"{args.num_segments} frames x {args.test_clips} clips x {args.test_crops} crops "
            f"({EvalTransform.from_args(args, frames_per_clip(args)).describe()})")


# ========================================================================================= train and evaluate
def param_groups(model, weight_decay):
    """Sec. IV-B gives weight decay 5e-4 only; Choice: none on BatchNorm parameters and biases (TSM's policy)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def set_learning_rate(optimizer, args, epoch):
    """Sec. IV-B: lr x0.1 at each of --lr-steps (epochs 30, 40, 45 of 50; --finetune: every 15). Returns it."""
    lr = args.lr * 0.1 ** sum(epoch >= s for s in args.lr_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def train_loss(model, clips, targets, args):
    """Cross-entropy of one (micro-)batch of clips, and the extra terms to log (none here)."""
    return F.cross_entropy(model(clips).float(), targets), {}


def train_one_epoch(model, loader, optimizer, args, train):
    """One epoch of SGD (Sec. IV-B). `train` (common/training.py) resumes mid-epoch, counts unreadable samples,
    logs, writes checkpoints and stops on a signal or a non-finite loss."""
    model.train()
    for clips, targets in train.batches(loader):                           # uint8 (B,T,C,H,W), (B,) on the device
        optimizer.zero_grad(set_to_none=True)
        for micro_clips, micro_targets, context in train.micro_batches(normalize(clips), targets):  # --accumulate
            with context:
                loss, logged = train_loss(model, micro_clips, micro_targets, args)
            (loss / args.accumulate).backward()
            train.record(loss, logged)
        train.check_loss()
        if args.clip_grad:
            nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        optimizer.step()


def logits(model, clips):
    """uint8 clips (n, T, C, H, W) -> logits (n, K): what evaluation, --predict, --visualize and --export run."""
    return model(normalize(clips))


def evaluate(model, loader, args, device, bad):
    """The test of Sec. IV-C: each video's softmax probabilities averaged over its views (clips x crops), as
    (Predictions, videos left out) of this rank (common/predict.py)."""
    model.eval()

    def forward(clips):                                                      # uint8 (n,T,C,H,W) -> logits (n,K)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            return logits(model, clips)

    return video_scores(forward, loader, device, crops=args.test_crops, bad=bad)


# ======================================================================================================= main
def main(argv=None):
    args = get_args(argv)  # with --evaluate/--predict/--resume the model flags come from the checkpoint
    rank, world, device = training.start(args, DEMO_PROFILE)
    if modes.requested(args):  # --complexity, --benchmark, --predict, --evaluate: common/modes.py, with this file
        return modes.run(sys.modules[__name__], args, rank, world, device)
    train_loader, _, val_loader, classes, opts = training.loaders(args, rank, world, train_dataset, test_dataset)
    model = build_model(args, len(classes)).to(device)
    checkpoint.load_initial(model, model.backbone, args)  # --pretrained PATH, --finetune PATH: by name and shape
    optimizer = torch.optim.SGD(param_groups(model, args.weight_decay), lr=args.lr, momentum=args.momentum)  # Sec. IV-B
    with training.Training(args, SCRIPT, model, optimizer, classes, opts, device, world) as train:
        for epoch in train.epochs(train_loader):
            lr = set_learning_rate(optimizer, args, epoch)
            train_one_epoch(train.model, train_loader, optimizer, args, train)
            train.end_epoch(lr, metrics_of(*evaluate(train.model, val_loader, args, device, train.bad)))
    return train.finish(protocol(args))


# ================================================================= appendix: paper tables, visualisation maps
# ---- the paper's tables as data: `python -m common.paper_tables stw` builds every row and prints it --------------
# Rows per common/paper_tables.py: the flags build the row with `python stw.py --complexity FLAGS`; figures as
# printed (Tables 1-3 give GFLOPs only, Tables 5-8 accuracy only; all SSv1 val unless named).
SSV1_8F = "protocol: {T} frames x 1 clip x 1 crop (224 x 224 centre crop; Sec. IV-C). Top-1 test: {test}"
ENSEMBLE = ("`--evaluate --ensemble 16f.pt 8f.pt`: the softmax scores of the 16- and the 8-frame model averaged, "
            "1 clip x 1 crop each. Top-1 test: {test}")
ROUNDED = ("the paper rounds GFLOPs to integers ({paper}), so its +{inc} G stands for anything from {lo} to {hi} G (its "
           "text: STW_8f 33.5 G, +0.5 over TSN); ours is STFM's grouped 1x1 encoders (+0.18 G at 8 frames) and TWM "
           "(+0.13 G). The encoder reading that costs +0.5..1 G, grouped 3x3 convs (+1.75 G, 34.45 G), breaks the "
           "paper's 'less than 2 %' extra (STFM's docstring)")
STFM_ONLY = ("STFM alone (Table 5 = Table 6's STFM row at 4:2:4); the ratio sets STFM's group size b = {b}, so "
             "b MACs per input element")
PAPER_TABLES = [
    {"table": "Table 1", "row": "TSN 8f", "flags": "--baseline", "gflops": 33, "top1": 19.7, "note": ""},
    {"table": "Table 1", "row": "TSM 8f", "flags": "--baseline tsm", "gflops": 33, "top1": 43.4, "base": "TSN 8f",
     "note": "TSM pretrained on ImageNet + Kinetics-400 (its paper's row)"},
    {"table": "Table 1", "row": "TSM 16f", "flags": "--baseline tsm --num-segments 16", "gflops": 65, "top1": 44.8,
     "note": "TSM pretrained on ImageNet + Kinetics-400"},
    {"table": "Table 1", "row": "TSM_En 16f+8f", "flags": "--baseline tsm --num-segments 16",
     "ensemble": ["--baseline tsm"], "gflops": 98, "top1": 46.8, "note": "TSM's 16f + 8f score ensemble"},
    {"table": "Table 1", "row": "STW_8f", "flags": "", "gflops": 34, "top1": 46.3,
     "note": "Sec. IV-C's text: 33.5 GFLOPs. " + SSV1_8F.format(T=8, test=41.7), "base": "TSN 8f",
     "increment_note": ROUNDED.format(paper="33, 34", inc=1, lo=0, hi=2)},
    {"table": "Table 1", "row": "STW_16f", "flags": "--num-segments 16", "gflops": 67, "top1": 48.7,
     "note": SSV1_8F.format(T=16, test=43.9), "base": "TSM 16f",
     "increment_note": ROUNDED.format(paper="65, 67", inc=2, lo=1, hi=3)},
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


# ---- what `--predict ... --visualize DIR` draws (common/visualize.py: "Class.attr" specs) -------------------------
VIS_CAM = "backbone.layer4"  # the last stage, (B*T, C, h, w)
VIS_MAPS = {  # TWM.keep returns 1 - S as the forward computes it (recorded by a wrapper on that instance)
    "TWM map S (Eq. 5)": dict(at="TWM.keep", get=lambda m, x, keep: 1 - keep, kind="heat",
                             note="S = sigmoid(U), the share of X that Eq. (6) removes; last STW block"),
}


def visualization(args, model):
    return {"cam": VIS_CAM, "maps": VIS_MAPS}


if __name__ == "__main__":
    main()
