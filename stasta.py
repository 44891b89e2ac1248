"""STASTA: Short-Term Action Learning for Video Action Recognition (Short-term Action Spatio-Temporal Attention).

Liu Ting-Long, IEEE Access 2024 (research article). Paper: ../shared/papers/stasta.txt. No official code.
It builds on TCM (Liu, Yuan, Tu, "Motion-driven visual tempo learning", IEEE TIP 2022; its released TSM-R50 model
is the paper's Table 3 baseline) and on MotionSqueeze's displacement estimation (Kwon et al., ECCV 2020); the facts
used from their code are in ../shared/notes/tsm-family-reference.md, Sec. 3 and 4.

Idea. A TSM ResNet-50 (residual temporal shift in every bottleneck) gets one STASTA module after layer2. Fast
(frames t, t+1) and slow (half frame rate, t, t+2) temporal features are extracted from the feature sequence by a
15x15 correlation (Sec. III). ST-AFS-FF (Sec. III-A, Fig. 3) learns the importance of short-term actions: ST-ATA
up-samples the slow features to the fast length, projects them and turns them by a temporal convolution into an
attention added to the fast features; FS-FF relates those to the original slow features (two linear projections,
softmax relevance, LayerNorm) and fuses both paths residually. DM-TA (Sec. III-B, Fig. 4) estimates a
MotionSqueeze displacement map (2-channel displacement + 1-channel confidence) of the fused features and turns it
by TA (four convolutions, global pooling, cross-temporal interaction, temporal convolution) into features
weighted element-wise, added residually. The result is added to the layer2 features (Fig. 2). The paper writes no
equations; the comments cite its sections and figures. Widths, positions and kernels it leaves open are decided
with Table 1 (24.8M params, 40G at 8 frames, 80G at 16) and marked `# Choice:`.

Run:  python stasta.py --data DIR                       (SSv1, 8 frames, TSM recipe of Sec. IV-B)
      python stasta.py --data DIR --multi-label        (Charades: BCE, sigmoid scores, mAP)
      python stasta.py --complexity [--num-segments 16]
      python stasta.py                                  (CPU demo: ResNet-18, 64 px, order-only classes)

Expected results: every row of the paper's Tables 1-4 is a command (PAPER_TABLES, in the appendix at the end of
this file; `python -m common.paper_tables stasta` builds and prints them all, with notes). Table 1 (SSv1 and SSv2;
ensembles: the members' costs summed; GFLOPs per clip), as `python -m
common.paper_tables stasta --brief --table "Table 1"` prints it (a test keeps this copy equal to the printer's):

stasta.py, Table 1:

| row | flags (python stasta.py --complexity FLAGS) | params (M): paper / ours | GFLOPs: paper / ours | paper accuracy (%) |
|---|---|---|---|---|
| TSM 8 (SSv1) | `--baseline tsm` | 24.3 / 23.86 (-1.8 %) | 33 / 32.70 (-0.9 %) | top-1 45.6, top-5 74.2 |
| TSM 16 (SSv1) | `--baseline tsm --num-segments 16` | 24.3 / 23.86 (-1.8 %) | 65 / 65.40 (+0.6 %) | top-1 47.3, top-5 77.1 |
| TSM_en 16+8 (SSv1) | `--baseline tsm --num-segments 16` + `--baseline tsm` | 48.6 / 47.73 (-1.8 %) | 98 / 98.10 (+0.1 %) | top-1 49.7, top-5 78.5 |
| TCM 8 (SSv1) | `--baseline tcm` | 24.5 / 23.94 (-2.3 %) | 35 / 33.29 (**-4.9 %**) | top-1 52.2, top-5 80.4 |
| TCM 16 (SSv1) | `--baseline tcm --num-segments 16` | 24.5 / 23.94 (-2.3 %) | 77 / 66.61 (**-13.5 %**) | top-1 53.1, top-5 81.2 |
| TCM 16+8 (SSv1) | `--baseline tcm --num-segments 16` + `--baseline tcm` | 49.0 / 47.87 (-2.3 %) | 105 / 99.90 (**-4.9 %**) | top-1 54.7, top-5 82.6 |
| TCM 16+8 x 10 clips (SSv1) | `--baseline tcm --num-segments 16` + `--baseline tcm` | 49.0 / 47.87 (-2.3 %) | 105 / 99.90 (**-4.9 %**) | top-1 57.2, top-5 85.2 |
| STASTA 8 (SSv1) | (none) | 24.8 / 25.09 (+1.2 %) | 40 / 39.61 (-1.0 %) | top-1 53.8, top-5 81.3 |
| STASTA 16 (SSv1) | `--num-segments 16` | 24.8 / 25.09 (+1.2 %) | 80 / 79.36 (-0.8 %) | top-1 54.5, top-5 82.9 |
| STASTA 16+8 (SSv1) | `--num-segments 16` + (none) | 49.3 / 50.18 (+1.8 %) | 118 / 118.97 (+0.8 %) | top-1 55.6, top-5 83.4 |
| STASTA 16+8 x 10 clips (SSv1) | `--num-segments 16` + (none) | 49.3 / 50.18 (+1.8 %) | 118 / 118.97 (+0.8 %) | top-1 57.9, top-5 86.4 |
| TSM 8 (SSv2) | `--baseline tsm` | 24.3 / 23.86 (-1.8 %) | 33 / 32.70 (-0.9 %) | top-1 58.8, top-5 85.4 |
| TSM 16 (SSv2) | `--baseline tsm --num-segments 16` | 24.3 / 23.86 (-1.8 %) | 65 / 65.40 (+0.6 %) | top-1 61.2, top-5 86.9 |
| TSM_en 16+8 (SSv2) | `--baseline tsm --num-segments 16` + `--baseline tsm` | 48.6 / 47.73 (-1.8 %) | 98 / 98.10 (+0.1 %) | top-1 62.9, top-5 88.1 |
| TCM 8 (SSv2) | `--baseline tcm` | 24.5 / 23.94 (-2.3 %) | 35 / 33.29 (**-4.9 %**) | top-1 63.5, top-5 88.7 |
| TCM 16 (SSv2) | `--baseline tcm --num-segments 16` | 24.5 / 23.94 (-2.3 %) | 77 / 66.61 (**-13.5 %**) | top-1 65.1, top-5 89.6 |
| TCM 16+8 (SSv2) | `--baseline tcm --num-segments 16` + `--baseline tcm` | 49.0 / 47.87 (-2.3 %) | 105 / 99.90 (**-4.9 %**) | top-1 66.7, top-5 90.7 |
| TCM 16+8 x 10 clips (SSv2) | `--baseline tcm --num-segments 16` + `--baseline tcm` | 49.0 / 47.87 (-2.3 %) | 105 / 99.90 (**-4.9 %**) | top-1 67.8, top-5 92.2 |
| STASTA 8 (SSv2) | (none) | 24.8 / 25.09 (+1.2 %) | 40 / 39.61 (-1.0 %) | top-1 64.8, top-5 89.6 |
| STASTA 16 (SSv2) | `--num-segments 16` | 24.8 / 25.09 (+1.2 %) | 80 / 79.36 (-0.8 %) | top-1 66.1, top-5 90.2 |
| STASTA 16+8 (SSv2) | `--num-segments 16` + (none) | 49.3 / 50.18 (+1.8 %) | 118 / 118.97 (+0.8 %) | top-1 67.2, top-5 91.3 |
| STASTA 16+8 x 10 clips (SSv2) | `--num-segments 16` + (none) | 49.3 / 50.18 (+1.8 %) | 118 / 118.97 (+0.8 %) | top-1 68.5, top-5 92.8 |

Off by more than 3 %: TCM's 35G / 77G are TCM's own paper's figures (the official TCM code: 23.936M, 33.29 G at 8
frames, which ours reproduce). Accuracy: none measured at full scale (no GPU, no datasets here). Headline protocol
(57.9 on SSv1): the 16- and 8-frame models' scores averaged over 10 clips x 1 centre crop of 224: `python stasta.py
--data DIR --evaluate --ensemble RUN16/best.pt RUN8/best.pt --test-clips 10`.
Demo (`python stasta.py` vs `python stasta.py --baseline`, CPU, ResNet-18, 64 px, 12 epochs, lr 0.005; order-only
classes, chance 25 %): STASTA 100.0 % (from epoch 8), TSN 27.0 % val top-1 (docs/demo.md).
"""
# ==================================================================================================== imports
import functools
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import checkpoint, cli, complexity, modes, training
from common.data import VideoDataset
from common.layers import TemporalConv3d
from common.predict import metrics_of, video_scores
from common.sampling import segment_indices
from common.transforms import EvalTransform, TrainTransform, normalize
from common.tsm import TemporalShift

SCRIPT = "stasta"

# ================================================================================================== arguments
# The CPU-sized profile used when no --data is given (CONVENTIONS.md "The demo dataset"); flags given on the
# command line win over it.
# Choice: lr 0.005, not the 0.02 of ean.py's profile: from scratch at 0.02 the first epoch overshoots and STASTA
# stayed on the TSN plateau for 12 epochs (25 %); at 0.005 it leaves it at epoch 2 (docs/demo.md).
DEMO_PROFILE = dict(arch="resnet18", pretrained="none", input_size=64, epochs=12, batch_size=16, lr=0.005,
                    lr_steps=[8, 11], weight_decay=5e-4, dropout=0.0, workers=2)


def arguments():
    """The paper's recipe, and its model in one group (cli.MODEL: the flags a checkpoint records); the flags no
    paper mentions come from common/cli.py."""
    p = cli.parser(__doc__)
    g = p.add_argument_group("recipe (Sec. IV-B: \"the same training strategy as TSM\")")
    g.add_argument("--epochs", type=int, default=50, help="Sec. IV-B")
    g.add_argument("--batch-size", type=int, default=32, help="clips per step over all GPUs (Sec. IV-B)")
    g.add_argument("--lr", type=float, default=0.01, help="for --batch-size 32; scale linearly (Sec. IV-B)")
    g.add_argument("--lr-steps", type=int, nargs="+", default=[30, 40, 45], help="epochs where lr x0.1 (Sec. IV-B)")
    g.add_argument("--weight-decay", type=float, default=5e-4, help="Sec. IV-B")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (TSM's, Sec. IV-B)")
    g.add_argument("--dropout", type=float, default=0.5, help="before the classifier (Sec. IV-B)")
    g.add_argument("--clip-grad", type=float, default=20.0, help="gradient-norm clipping (TSM's, Sec. IV-B)")
    g.add_argument("--pretrained", default="imagenet", help="none | imagenet (IMAGENET1K_V1) | PATH (Sec. IV-B)")
    g.add_argument("--num-classes", type=int, default=174, help="when no dataset is given (SSv1/v2: 174)")
    g.add_argument("--test-clips", type=int, default=1, help="clips per video at test time (Table 1: 1 or 10)")
    g.add_argument("--test-crops", type=int, default=1, choices=[1, 3, 10], help="crops per clip at test time")
    m = p.add_argument_group(cli.MODEL)
    m.add_argument("--arch", default="resnet50", choices=["resnet18", "resnet34", "resnet50"],
                   help="backbone, with TSM's residual shift (Sec. IV-B: ResNet-50)")
    m.add_argument("--num-segments", type=int, default=8, help="T, frames per clip (Table 1: 8 or 16)")
    m.add_argument("--input-size", type=int, default=224)
    m.add_argument("--baseline", nargs="?", const="tsn", default=None, choices=["tsn", "tsm", "tcm"],
                   help="tsn: plain ResNet, no shift, no module; tsm: TSM alone (Table 1's TSM rows); tcm: TSM + "
                        "TCM after layer2 (Table 3 baseline)")
    m.add_argument("--no-afs", action="store_true", help="without the ST-AFS-FF module (Table 3)")
    m.add_argument("--no-dmta", action="store_true", help="without the DM-TA module (Table 3)")
    m.add_argument("--order", default="afs-dmta", choices=["afs-dmta", "dmta-afs"],
                   help="order of ST-AFS-FF and DM-TA (Table 4)")
    m.add_argument("--multi-label", action="store_true",
                   help="Charades-style data (comma-separated labels): BCE loss, sigmoid scores, max over clips, mAP "
                        "(Sec. IV-A, Table 2)")
    return cli.add_shared_flags(p)


def get_args(argv=None):
    """The flags; a model switch the combination would not use stops here, before any work."""
    p = arguments()
    args, given = cli.parse(p, argv, SCRIPT, DEMO_PROFILE, baseline_has_no="STASTA module")
    if "order" in given and (args.no_afs or args.no_dmta):
        off = "--no-afs" if args.no_afs else "--no-dmta"
        p.error(f"--order orders ST-AFS-FF and DM-TA: it has no effect with {off}")
    if args.no_afs and args.no_dmta:
        args.baseline = "tcm"  # Table 3, first row: both modules off is the TCM baseline
    if args.num_segments < 3:
        p.error("--num-segments must be at least 3 (the slow stream needs two half-rate frames)")
    return args


# ============================================================================================== paper modules
# The modules first, in the order of Fig. 2-4 (then TCM, the Table 3 baseline); the correlation, soft-argmax and
# confidence they compute with, as in MotionSqueeze/TCM (notes Sec. 4.2, no custom CUDA), close the section.
PATCH = 15        # displacement window 15x15 (+-7 px), TCM/MotionSqueeze at layer2 (notes Sec. 3.2)
MATCH_DIM = 64    # channels of the features that are correlated (TCM/MotionSqueeze chnl_reduction 512 -> 64)


class FastSlowTempo(nn.Module):
    """Fast and slow temporal features from the feature sequence by correlation (Sec. III, Fig. 2).

    `C`: channels of the backbone features (512 after layer2 of ResNet-50); `T`: segments.
    Fast: correlation of frames (t, t+1), T-1 pairs padded to T. Slow: the half-rate sequence (frames 0, 2, 4, ...),
    pairs (t, t+2), ceil(T/2)-1 pairs padded to ceil(T/2) steps, so ST-ATA up-samples it to the fast length.
    Each 225-channel correlation volume is embedded to C channels by a linear projection + BN + ReLU."""

    def __init__(self, C, T, slow=True):
        super().__init__()
        self.T = T
        # Choice: TCM/MotionSqueeze reduce the features to 64 channels before correlating (notes Sec. 3.2).
        self.reduce = conv_bn_relu(C, MATCH_DIM)
        # Choice: the slow stream runs at half the frame rate (SlowFast's ratio 2): the paper up-samples slow
        # features to the fast temporal length, so they must be shorter; TCM's slow stream (frame 0, t+1) is not.
        # Choice: both streams are embedded to the backbone width C (linear 225 -> C): the module's
        # features then live at C = 512, which is what Table 1's +0.9M params / +7G FLOPs over TSM allow.
        self.fast = conv_bn_relu(PATCH * PATCH, C)
        self.slow = conv_bn_relu(PATCH * PATCH, C) if slow else None

    def stream(self, r, embed):
        B, L = r.shape[:2]
        corr = match(r[:, :-1].flatten(0, 1), r[:, 1:].flatten(0, 1))    # (B*(L-1), P*P, H, W)
        corr = repeat_last(corr.view(B, L - 1, *corr.shape[1:]), L)       # -> (B,L-1,P*P,H,W) -> (B,L,P*P,H,W)
        feat = embed(corr.flatten(0, 1))                                  # (B*L, C, H, W)
        return feat.view(B, L, *feat.shape[1:])                           # (B*L,C,H,W) -> (B,L,C,H,W)

    def forward(self, x):
        BT, _, H, W = x.shape
        r = self.reduce(x).view(BT // self.T, self.T, MATCH_DIM, H, W)   # (B*T,64,H,W) -> (B,T,64,H,W)
        fast = self.stream(r, self.fast)                                  # (B, T, C, H, W)
        slow = self.stream(r[:, ::2], self.slow) if self.slow is not None else None  # (B, ceil(T/2), C, H, W)
        return fast, slow


class STATA(nn.Module):
    """Short-Term Action Feature Attention (Sec. III-A-1, Fig. 3 lower left): up-sample the slow features to the
    fast length, project their channels linearly to the fast features, and let a temporal convolution produce
    attention weights that are ADDED to the fast features. `C`: channels of both paths."""

    def __init__(self, C):
        super().__init__()
        self.proj = nn.Conv2d(C, C, 1)   # linear layer projection (per pixel and frame)
        # Choice: a depthwise temporal convolution, kernel 3 (TSM/TCM's temporal kernel); a full C x C x 3 one would
        # add 0.8M params and 4.9G FLOPs at 8 frames, far past Table 1.
        self.tconv = TemporalConv3d(C, C, (3, 1, 1), padding=(1, 0, 0), groups=C)

    def forward(self, fast, slow_up):
        B, T, C, H, W = fast.shape
        p = self.proj(slow_up.flatten(0, 1)).view(B, T, C, H, W)          # (B*T,C,H,W) -> (B,T,C,H,W)
        a = self.tconv(p.transpose(1, 2)).transpose(1, 2)                 # (B,C,T,H,W) conv over T -> (B,T,C,H,W)
        return fast + a                                                   # attention added to the fast path


class FSFF(nn.Module):
    """Fast and Slow Feature Fusion (Sec. III-A-2, Fig. 3 lower right): two linear projections (of the ST-ATA output
    and of the up-sampled original slow features), a softmax relevance of every slow step to every fused step,
    LayerNorm, and a residual fusion of both input paths with the LayerNorm output. `C`: channels."""

    def __init__(self, C):
        super().__init__()
        # Choice: two linear layers, one per input. The paper names "a linear layer" (Sec. III-A-2) but says that
        # "after linear layer projection, two feature matrices are generated" from two inputs; we give each input
        # its own projection. One layer shared by both would save C*C + C weights (0.26M at C = 512): 24.83M in
        # all, nearer Table 1's 24.8M than our 25.09M (both within 3 %), so Table 1 may well count one shared layer.
        self.query = nn.Conv2d(C, C, 1)  # projection of the ST-ATA output
        self.key = nn.Conv2d(C, C, 1)    # projection of the slow features
        self.norm = nn.LayerNorm(C)

    def forward(self, fused, slow_up):
        B, T, C, H, W = fused.shape
        # contiguous: at B = 1 the reshape is a view whose batch stride is 1, which sends CPU bmm to a per-matrix
        # loop (34 ms instead of 2 ms per product, measured)
        to_seq = lambda z: z.permute(0, 3, 4, 1, 2).reshape(B * H * W, T, C).contiguous()  # (B,T,C,H,W) -> (B*H*W,T,C)
        q = to_seq(self.query(fused.flatten(0, 1)).view(B, T, C, H, W))
        k = to_seq(self.key(slow_up.flatten(0, 1)).view(B, T, C, H, W))
        # Choice: the relevance is a softmax over time at each pixel (scaled dot product), the values are the
        # original slow features (the paper names two projections only); a T x T relevance keeps the cost linear
        # in the pixels, so 16 frames cost twice 8 frames as in Table 1.
        relevance = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(C), -1)   # (B*H*W, T, T)
        out = self.norm(relevance @ to_seq(slow_up))                           # (B*H*W, T, C)
        out = out.view(B, H, W, T, C).permute(0, 3, 4, 1, 2)                   # (B*H*W,T,C) -> (B,T,C,H,W)
        return fused + slow_up + out                                           # residual fusion of both paths


class STAFSFF(nn.Module):
    """ST-AFS-FF (Sec. III-A, Fig. 3): ST-ATA then FS-FF; (fast (B,T,C,H,W), slow (B,Ts,C,H,W)) -> (B,T,C,H,W)."""

    def __init__(self, C):
        super().__init__()
        self.stata = STATA(C)
        self.fsff = FSFF(C)

    def forward(self, fast, slow):
        T = fast.shape[1]
        # Choice: nearest up-sampling in time; slow step s (frames 2s, 2s+2) covers fast steps 2s and 2s+1.
        slow_up = slow.repeat_interleave(2, dim=1)[:, :T]                 # (B,Ts,C,H,W) -> (B,T,C,H,W)
        return self.fsff(self.stata(fast, slow_up), slow_up)


class DisplacementMap(nn.Module):
    """Displacement Map (Sec. III-B-1, Fig. 4): MotionSqueeze's displacement of the features between frames t and
    t+1 (correlation, soft-argmax -> 2 channels) concatenated with the 1-channel confidence map; the T-1 pairs are
    brought back to T steps. (B, T, C, H, W) -> (B, T, 3, H, W)."""

    def __init__(self, C):
        super().__init__()
        self.reduce = conv_bn_relu(C, MATCH_DIM)   # Choice: MotionSqueeze's 64-channel matching features

    def forward(self, z):
        B, T, C, H, W = z.shape
        r = self.reduce(z.flatten(0, 1)).view(B, T, MATCH_DIM, H, W)     # (B*T,64,H,W) -> (B,T,64,H,W)
        # Choice: "the two-channel fused temporal feature and the single-channel confidence map are connected"
        # (Sec. III-B-1) is read as MotionSqueeze's pair: the 2-channel displacement (u, v) that soft-argmax
        # estimates from the correlation of the fused features between frames t and t+1, and the 1-channel
        # confidence of the same correlation. The paper does not say which frames are paired, nor whether the
        # "two channels" could be the fused features reduced to 2 channels instead; its citation of MotionSqueeze
        # and TA's input of "the Displacement Map" decide for MotionSqueeze's displacement.
        corr = match(r[:, :-1].flatten(0, 1), r[:, 1:].flatten(0, 1))    # (B*(T-1), P*P, H, W)
        disp, conf = soft_argmax(corr)                                    # (B*(T-1),2,H,W), (B*(T-1),1,H,W)
        dmap = torch.cat([disp, conf], 1).view(B, T - 1, 3, H, W)         # (B*(T-1),3,H,W) -> (B,T-1,3,H,W)
        return repeat_last(dmap, T)                                       # (B,T-1,3,H,W) -> (B,T,3,H,W)


class TA(nn.Module):
    """Temporal Attention (Sec. III-B-2, Fig. 4): four convolutions lift the displacement map to C channels (the
    generated features M); global pooling summarises space; a cross-temporal interaction and a temporal
    convolution produce per-(channel, frame) weights; M is multiplied element-wise by them.
    `C`: output channels; `r`: channel reduction of the cross-temporal interaction."""

    def __init__(self, C, r=16):
        super().__init__()
        # Choice: MotionSqueeze's four convolutions (3 -> 16 -> 32 -> 64 -> C; notes Sec. 4.3).
        first = conv_bn_relu(3, 3, 7, groups=3)
        self.convs = motion_convs(first, 3, C)
        # Choice: the cross-temporal interaction mixes all channels of neighbouring frames (Conv1d C -> C/r, kernel
        # 3 over T, BN, ReLU); the temporal convolution maps back (Conv1d C/r -> C, kernel 3), then a sigmoid.
        self.cross = nn.Sequential(nn.Conv1d(C, C // r, 3, padding=1, bias=False), nn.BatchNorm1d(C // r),
                                   nn.ReLU(inplace=True))
        self.temporal = nn.Conv1d(C // r, C, 3, padding=1)

    def forward(self, dmap):
        B, T = dmap.shape[:2]
        m = self.convs(dmap.flatten(0, 1))                                # (B*T, C, H, W)
        m = m.view(B, T, *m.shape[1:])                                    # (B*T,C,H,W) -> (B,T,C,H,W)
        g = m.mean((3, 4)).transpose(1, 2)                                # global pooling: (B,T,C) -> (B,C,T)
        w = torch.sigmoid(self.temporal(self.cross(g)))                   # (B, C, T)
        # Choice: "the generated features are fused with the original features through element-wise
        # multiplication": the weights w multiply M, the features generated from the displacement map (m * w),
        # and DMTA adds the result to its input (z + m * w). Weighting DM-TA's input instead (z * w) is the other
        # reading; the paper's "features with a temporal attention mechanism" and TCM's TAM (m * w, notes Sec. 3.2)
        # decide for m.
        return m * w.transpose(1, 2)[..., None, None]                     # (B,C,T) -> (B,T,C,1,1); x (B,T,C,H,W)


class DMTA(nn.Module):
    """DM-TA (Sec. III-B, Fig. 4): z + TA(DisplacementMap(z)), (B, T, C, H, W) -> (B, T, C, H, W)."""

    def __init__(self, C):
        super().__init__()
        self.dm = DisplacementMap(C)
        self.ta = TA(C)

    def forward(self, z):
        return z + self.ta(self.dm(z))


class STASTA(nn.Module):
    """Short-term Action Spatio-Temporal Attention (Fig. 2): fast/slow temporal features, ST-AFS-FF and DM-TA in
    `order`, and the result added to the input features. (B*T, C, H, W) -> (B*T, C, H, W).

    `C`: channels at the insertion point; `T`: segments; `afs`/`dmta`: the Table 3 switches; `order`: Table 4.

    Speed (measured, fp32, 2-core CPU, 8 x 224^2): STASTA takes ~21 % of the model's forward time for 18 % of its
    FLOPs; the model's latency is 1.4-1.55 x TSN's against a FLOPs ratio of 1.21 because TSM's shift in all 16 blocks
    costs no FLOPs but a copy of every block input (~5 % of TSN's time)."""

    def __init__(self, C, T, afs=True, dmta=True, order="afs-dmta"):
        super().__init__()
        self.T = T
        self.tempo = FastSlowTempo(C, T, slow=afs)
        self.afs = STAFSFF(C) if afs else None
        self.dmta = DMTA(C) if dmta else None
        self.order = [name for name in order.split("-") if getattr(self, name) is not None]
        # Choice: a BatchNorm with zero scale before the residual sum (zero_init_last), so at step 0 the model is
        # exactly the pretrained TSM; the paper adds the fused features to the input features.
        self.out_bn = nn.BatchNorm2d(C)
        nn.init.zeros_(self.out_bn.weight)

    def forward(self, x):
        fast, slow = self.tempo(x)                                        # (B,T,C,H,W), (B,Ts,C,H,W)
        for name in self.order:
            fast = self.afs(fast, slow) if name == "afs" else self.dmta(fast)
        return x + self.out_bn(fast.flatten(0, 1))                        # (B,T,C,H,W) -> (B*T,C,H,W)


# ---- Table 3 baseline: TCM (notes Sec. 3.2): x + TAM(MTDM(x)) after layer2 ----------------------------------
class MTDM(nn.Module):
    """TCM's Multi-scale Temporal Dynamics Module: fast (t, t+1) and slow (0, t+1) correlations of 64-channel
    features, each turned by soft-argmax into (u, v, confidence), T-1 pairs padded to T: (B*T,C,H,W) -> (B*T,6,H,W)."""

    def __init__(self, C, T):
        super().__init__()
        self.T = T
        self.reduce = conv_bn_relu(C, MATCH_DIM)

    def forward(self, x):
        BT, _, H, W = x.shape
        B, T = BT // self.T, self.T
        r = self.reduce(x).view(B, T, MATCH_DIM, H, W)                   # (B*T,64,H,W) -> (B,T,64,H,W)
        maps = []
        for first in (r[:, :-1], r[:, :1].expand(-1, T - 1, -1, -1, -1)):  # fast (t, t+1); slow (0, t+1)
            disp, conf = soft_argmax(match(first.flatten(0, 1), r[:, 1:].flatten(0, 1)))
            maps.append(repeat_last(torch.cat([disp, conf], 1).view(B, T - 1, 3, H, W), T))  # -> (B,T,3,H,W)
        return torch.cat(maps, 2).flatten(0, 1)                           # (B,T,6,H,W) -> (B*T,6,H,W)


class TAM(nn.Module):
    """TCM's Temporal Attention Module: four convolutions 6 -> C and ECA over time (kernel log2 T, made odd)."""

    def __init__(self, C, T):
        super().__init__()
        self.T = T
        first = nn.Sequential(*[conv_bn_relu(6, 6, 3, groups=3) for _ in range(3)])
        self.convs = motion_convs(first, 6, C)
        k = int(math.log2(T))
        k = k if k % 2 else k + 1
        self.eta = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)
        # Choice (not in TCM's code): zero-init the last BN so the insert starts as the identity.
        nn.init.zeros_(self.convs[-1][-1][1].weight)

    def forward(self, maps):
        m = self.convs(maps)                                              # (B*T, C, H, W)
        BT, C = m.shape[:2]
        g = m.view(BT // self.T, self.T, C, -1).mean(3).transpose(1, 2)   # (B*T,C,H,W) -> (B,T,C,HW) -> (B,C,T)
        w = torch.sigmoid(self.eta(g.reshape(-1, 1, self.T)))             # (B,C,T) -> (B*C,1,T)
        w = w.view(-1, C, self.T).transpose(1, 2).reshape(BT, C, 1, 1)    # (B*C,1,T) -> (B,T,C) -> (B*T,C,1,1)
        return m * w


class TCM(nn.Module):
    def __init__(self, C, T):
        super().__init__()
        self.mtdm, self.tam = MTDM(C, T), TAM(C, T)

    def forward(self, x):
        return x + self.tam(self.mtdm(x))


# ---- correlation, soft-argmax and confidence (MotionSqueeze/TCM), and the convolutions that lift a displacement map
def l2_normalize(x, dim=1):
    """x / sqrt(sum_c x^2 + 1e-6) over channels, as MotionSqueeze's L2normalize."""
    return x / torch.sqrt((x * x).sum(dim, keepdim=True) + 1e-6)


def correlation(f1, f2, patch=PATCH, max_elements=2 ** 28):
    """Local correlation: (N,C,H,W), (N,C,H,W) -> (N, patch*patch, H, W) with
    out[n, (dy+r)*patch + (dx+r), y, x] = sum_c f1[n,c,y,x] * f2[n,c,y+dy,x+dx], zero outside the image, r = patch//2
    (the semantics of SpatialCorrelationSampler(kernel_size=1, patch_size=15)).
    Computed as ONE batched matmul of all pixel pairs, (N,HW,C) @ (N,C,HW), from which each pixel's window is
    gathered: at the paper's 28x28 features that is 3.5x the window's multiply-adds, but a GEMM instead of an `unfold`
    that copies every feature 225 times (45 MB per frame pair): 10x faster on CPU and no large tensor to keep for
    backward (measured). The flop count keeps the correlation's own MACs (C*P*P per pixel, count_macs), not the
    matmul's. Frame pairs are processed in chunks of at most `max_elements` pair products (memory only)."""
    N, C, H, W = f1.shape
    chunk = max(1, max_elements // (H * W * H * W))
    if N > chunk:
        return torch.cat([correlation(a, b, patch, max_elements) for a, b in zip(f1.split(chunk), f2.split(chunk))])
    complexity.count_macs(N * C * patch * patch * H * W)
    with complexity.uncounted():
        pairs = torch.bmm(f1.flatten(2).transpose(1, 2), f2.flatten(2))  # (N,C,HW)^T @ (N,C,HW) -> (N,HW,HW)
    pairs = F.pad(pairs.flatten(1), (0, 1))                               # (N, HW*HW + 1): a zero at the end
    out = pairs.index_select(1, window_index(H, W, patch, f1.device))     # (N, P*P*HW)
    return out.view(N, patch * patch, H, W)                               # (N,P*P*HW) -> (N,P*P,H,W)


@functools.lru_cache(maxsize=16)
def window_index(H, W, patch, device):
    """Where `correlation` finds out[d, y, x] in its flattened (HW*HW + 1) pair products: (y*W + x)*HW + (y+dy)*W
    + (x+dx) for displacement d = (dy+r)*P + (dx+r), or HW*HW (the zero) outside the image. (P*P*H*W,) long."""
    r = patch // 2
    y, x = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")  # (H, W) each
    d = torch.arange(-r, r + 1)
    yy = y.reshape(1, 1, H * W) + d.view(patch, 1, 1)                      # (P, 1, HW): y + dy
    xx = x.reshape(1, 1, H * W) + d.view(1, patch, 1)                      # (1, P, HW): x + dx
    inside = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)                   # (P, P, HW)
    index = torch.arange(H * W) * (H * W) + yy * W + xx                    # (P, P, HW)
    return torch.where(inside, index, H * W * H * W).flatten().to(device)


def match(f1, f2):
    """ReLU(correlation) of L2-normalised features (MotionSqueeze's Matching_layer)."""
    return correlation(l2_normalize(f1), l2_normalize(f2)).relu()


def soft_argmax(corr, patch=PATCH, sigma=5.0, temperature=100.0):
    """MotionSqueeze's match_to_flow_soft: (N, P*P, H, W) -> displacement (N, 2, H, W) = (u, v) in [-1, 1] and
    confidence (N, 1, H, W) = the maximum correlation. A Gaussian (sigma 5) centred at the argmax suppresses other
    peaks, x temperature 100, softmax over the window, expectation of the marginal offsets, divided by r = 7."""
    N, _, H, W = corr.shape
    r = patch // 2
    confidence, idx = corr.max(1, keepdim=True)                           # (N,1,H,W)
    grid = torch.arange(patch, device=corr.device, dtype=corr.dtype)
    iy, ix = (idx // patch).to(corr.dtype), (idx % patch).to(corr.dtype)  # (N,1,H,W) argmax row (dy), column (dx)
    gauss = torch.exp(-((grid.view(1, patch, 1, 1, 1) - iy.unsqueeze(2)) ** 2 +
                        (grid.view(1, 1, patch, 1, 1) - ix.unsqueeze(2)) ** 2) / (2 * sigma ** 2))  # (N,P,P,H,W)
    corr = corr.view(N, patch, patch, H, W) * gauss                       # (N,P*P,H,W) -> (N,P,P,H,W)
    prob = (corr * temperature).flatten(1, 2).softmax(1)                  # (N,P,P,H,W) -> (N,P*P,H,W)
    prob = prob.view(N, patch, patch, H, W)                               # (N,P*P,H,W) -> (N,P,P,H,W)
    offsets = (grid - r).view(1, patch, 1, 1)
    u = (prob.sum(1) * offsets).sum(1, keepdim=True) / r                  # marginal over dy -> dx: (N,1,H,W)
    v = (prob.sum(2) * offsets).sum(1, keepdim=True) / r                  # marginal over dx -> dy: (N,1,H,W)
    return torch.cat([u, v], 1), confidence                               # (N,2,H,W), (N,1,H,W)


def repeat_last(x, length):
    """(B, L, ...) -> (B, length, ...) by repeating the last step (T-1 frame pairs -> T, as MotionSqueeze/TCM)."""
    return torch.cat([x, x[:, -1:].expand(-1, length - x.shape[1], *x.shape[2:])], 1)


def conv_bn_relu(cin, cout, k=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def motion_convs(first, first_out, out_channels):
    """The four convolutions that lift a displacement map to feature width (MotionSqueeze Flow_refinement, TCM TAM):
    `first` then 1x1 -> 16, [dw3x3 + 1x1 -> 32], [dw3x3 + 1x1 -> 64], [dw3x3 + 1x1 -> out_channels]."""
    return nn.Sequential(
        nn.Sequential(first, conv_bn_relu(first_out, 16)),
        nn.Sequential(conv_bn_relu(16, 16, 3, groups=16), conv_bn_relu(16, 32)),
        nn.Sequential(conv_bn_relu(32, 32, 3, groups=32), conv_bn_relu(32, 64)),
        nn.Sequential(conv_bn_relu(64, 64, 3, groups=64), conv_bn_relu(64, out_channels)))


# ================================================================================= backbone surgery and model
def build_resnet(arch, pretrained):
    """torchvision ResNet without its classifier; `imagenet` = IMAGENET1K_V1 (the weights the papers used). A
    --pretrained PATH is loaded by main() after the surgery (common.checkpoint.load_initial: by name and shape)."""
    net = checkpoint.torchvision_model(arch, pretrained)
    net.fc = nn.Identity()
    return net


def insert_stasta(backbone, num_segments, module="stasta", afs=True, dmta=True, order="afs-dmta"):
    """TSM surgery + the paper module: wraps conv1 of every block of layer1..layer4 in TemporalShift (TSM
    'blockres', common/tsm.py; TSM's own `conv1.net` names) and appends STASTA (or TCM; nothing for 'tsm') to
    layer2, so it sees layer2's output (28x28x512 for ResNet-50 at 224).
    Choice: after layer2, TCM's and MotionSqueeze's position (the paper names none; Table 1's FLOPs fit it)."""
    for name in ("layer1", "layer2", "layer3", "layer4"):
        for block in getattr(backbone, name):
            block.conv1 = TemporalShift(num_segments, net=block.conv1)
    last = backbone.layer2[-1]
    C = (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels
    if module == "tcm":
        backbone.layer2.add_module("tcm", TCM(C, num_segments))
    elif module == "stasta":
        backbone.layer2.add_module("stasta", STASTA(C, num_segments, afs, dmta, order))
    return backbone


class Model(nn.Module):
    """TSN head over a (TSM + STASTA) ResNet: a classifier on every frame, logits averaged over the T segments.
    `args.baseline`: None = STASTA, 'tcm' = TSM + TCM (Table 3 baseline), 'tsm' = TSM alone, 'tsn' = plain
    ResNet."""

    def __init__(self, args, num_classes):
        super().__init__()
        self.num_segments = args.num_segments
        self.backbone = build_resnet(args.arch, args.pretrained)
        if args.baseline != "tsn":
            insert_stasta(self.backbone, args.num_segments, args.baseline or "stasta",
                          afs=not args.no_afs, dmta=not args.no_dmta, order=args.order)
        width = 512 if args.arch in ("resnet18", "resnet34") else 2048
        self.dropout = nn.Dropout(args.dropout)
        self.fc = nn.Linear(width, num_classes)
        nn.init.normal_(self.fc.weight, 0, 0.001)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        B, T = x.shape[:2]
        x = x.flatten(0, 1)                                 # (B,T,C,H,W) -> (B*T,C,H,W)
        x = self.backbone(x)                                # (B*T, D)
        x = self.fc(self.dropout(x))                        # (B*T, K)
        return x.view(B, T, -1).mean(1)                     # (B*T,K) -> (B,T,K) -> (B,K) segment consensus


def build_model(args, num_classes):
    return Model(args, num_classes)


# ======================================================================================================= data
def frames_per_clip(args):
    return args.num_segments


def train_dataset(args, records, opts):
    """TSM's training sampling (Sec. IV-B): T segments of the video, one random frame from each; TSN's multi-scale
    crop and a horizontal flip (swapping the labels of dataset.json's direction pairs; --no-flip: TSM's own SS
    recipe); multi-hot targets for --multi-label."""
    return VideoDataset(
        records, lambda n, k, rng: segment_indices(n, args.num_segments, train=True, rng=rng),
        TrainTransform(args.input_size, flip=not args.no_flip, flip_labels=opts.flip_labels), **opts.frames,
        multi_label=args.multi_label, num_classes=len(opts.classes))


def test_dataset(args, records, opts):
    """TSM's test (Sec. IV-B): --test-clips clips of T segments (the middle frame of each), each in --test-crops
    crops; unreadable videos are left out, never replaced."""
    return VideoDataset(
        records, lambda n, k, rng: segment_indices(n, args.num_segments, train=False, clip=k, num_clips=args.test_clips),
        EvalTransform.from_args(args, frames_per_clip(args)), num_clips=args.test_clips, skip_bad=True,
        **opts.frames, multi_label=args.multi_label, num_classes=len(opts.classes))


def protocol(args):
    return (f"{args.num_segments} frames x {args.test_clips} clips x {args.test_crops} crops "
            f"({EvalTransform.from_args(args, frames_per_clip(args)).describe()})")


# ========================================================================================= train and evaluate
def param_groups(model, weight_decay):
    """TSM's optimisation policy (Sec. IV-B trains as TSM does): no weight decay on BatchNorm parameters and
    biases."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def set_learning_rate(optimizer, args, epoch):
    """TSM's step schedule (Sec. IV-B): lr x0.1 at each of --lr-steps (epochs 30, 40, 45 of 50). Returns it."""
    lr = args.lr * 0.1 ** sum(epoch >= s for s in args.lr_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def loss_fn(args):
    """Cross-entropy (Something-Something) or binary cross-entropy on multi-hot targets (Charades, Sec. IV-A)."""
    return F.binary_cross_entropy_with_logits if args.multi_label else F.cross_entropy


def train_loss(model, clips, targets, args):
    """The loss of one (micro-)batch of clips (`loss_fn`), and the extra terms to log (none here)."""
    return loss_fn(args)(model(clips).float(), targets), {}


def train_one_epoch(model, loader, optimizer, args, train):
    """One epoch of SGD with TSM's recipe (Sec. IV-B). `train` (common/training.py) resumes mid-epoch, counts
    unreadable samples, logs, writes checkpoints and stops on a signal or a non-finite loss."""
    model.train()
    for clips, targets in train.batches(loader):                           # uint8 (B,T,C,H,W), labels on the device
        optimizer.zero_grad(set_to_none=True)
        for micro_clips, micro_targets, context in train.micro_batches(normalize(clips), targets):  # --accumulate
            with context:
                loss, logged = train_loss(model, micro_clips, micro_targets, args)
            (loss / args.accumulate).backward()
            train.record(loss, logged)
        train.check_loss()
        if args.clip_grad:
            nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)  # TSM's 20
        optimizer.step()


def logits(model, clips):
    """uint8 clips (n, T, C, H, W) -> logits (n, K): what evaluation, --predict, --visualize and --export run."""
    return model(normalize(clips))


def evaluate(model, loader, args, device, bad):
    """Per-video scores, as (Predictions, videos left out) of this rank (common/predict.py). Single-label: softmax
    probabilities averaged over the views (clips x crops). Multi-label: sigmoid scores averaged over the crops of
    a clip, then the maximum over clips (CONVENTIONS.md)."""
    model.eval()

    def forward(clips):                                                      # uint8 (n,T,C,H,W) -> logits (n,K)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            return logits(model, clips)

    return video_scores(forward, loader, device, crops=args.test_crops, multi_label=args.multi_label, bad=bad)


# ======================================================================================================= main
def main(argv=None):
    args = get_args(argv)  # with --evaluate/--predict/--resume the model flags come from the checkpoint
    rank, world, device = training.start(args, DEMO_PROFILE)
    if modes.requested(args):  # --complexity, --benchmark, --predict, --evaluate: common/modes.py, with this file
        return modes.run(sys.modules[__name__], args, rank, world, device)
    train_loader, _, val_loader, classes, opts = training.loaders(args, rank, world, train_dataset, test_dataset)
    model = build_model(args, len(classes)).to(device)
    checkpoint.load_initial(model, model.backbone, args)  # --pretrained PATH, --finetune PATH: by name and shape
    optimizer = torch.optim.SGD(param_groups(model, args.weight_decay), lr=args.lr, momentum=args.momentum)  # TSM's
    with training.Training(args, SCRIPT, model, optimizer, classes, opts, device, world) as train:
        for epoch in train.epochs(train_loader):
            lr = set_learning_rate(optimizer, args, epoch)
            train_one_epoch(train.model, train_loader, optimizer, args, train)
            train.end_epoch(lr, metrics_of(*evaluate(train.model, val_loader, args, device, train.bad)))
    return train.finish(protocol(args))


# ================================================================= appendix: paper tables, visualisation maps
# ---- the paper's tables as data: `python -m common.paper_tables stasta` builds every row and prints it ------------
# Rows per common/paper_tables.py: the flags build the row with `python stasta.py --complexity FLAGS`; figures as
# printed. Table 1's "FLOPs x clips": `gflops` is per clip, the clips are in the note. Tables 3-4's top-5 column
# (62.7 ... 64.8) disagrees with Table 1's (80.4 TCM, 81.3 STASTA); both are copied as printed.
TCM_COST = ("24.5M / 35G / 77G are TCM's own paper's figures; the official TCM code has 23.936M params and "
            "33.29 G MACs at 8 frames (conv + fc + correlation, notes/tsm-family-reference.md Sec. 3.4), which "
            "ours reproduce; 16 frames double the MACs")
ONE_MODULE = ("the paper's row is the TSM+TCM baseline of row 1 with {ours} added; ours is STASTA without {other} "
              "({ours} on STASTA's own correlation features, no TCM): the paper does not say how one module joins "
              "TCM, and its row 4 (both modules) is the full STASTA, which has no TCM either")
PROTOCOL = "protocol: {T} frames x {clips} x 1 crop (224 x 224 centre crop; TSM's test, Sec. IV-B)"
OVER_TSM = ("the module's cost is the row minus TSM's (STASTA is TSM + the module after layer2). The paper's TSM row "
            "(24.3M) is TSM's own count with a 400-class head, its STASTA row (24.8M) has the 174-class one, so its "
            "+0.5M is not the module's; over TSM at 174 classes (23.86M) the paper's STASTA is +0.94M, ours +1.23M "
            "(+31 %). The paper gives no widths (the correlated channels, FS-FF's projections): its FLOPs decided "
            "them, and its +7 G per 8 frames is met (+6.91 G)")
PAPER_TABLES = [
    *[row for data, acc in (("SSv1", ((45.6, 74.2), (47.3, 77.1), (49.7, 78.5), (52.2, 80.4), (53.1, 81.2),
                                      (54.7, 82.6), (57.2, 85.2), (53.8, 81.3), (54.5, 82.9), (55.6, 83.4),
                                      (57.9, 86.4))),
                            ("SSv2", ((58.8, 85.4), (61.2, 86.9), (62.9, 88.1), (63.5, 88.7), (65.1, 89.6),
                                      (66.7, 90.7), (67.8, 92.2), (64.8, 89.6), (66.1, 90.2), (67.2, 91.3),
                                      (68.5, 92.8))))
      for row in (
        {"table": "Table 1", "row": f"TSM 8 ({data})", "flags": "--baseline tsm", "params_m": 24.3, "gflops": 33,
         "top1": acc[0][0], "top5": acc[0][1], "note": "24.3M is TSM's own figure, with a 400-class head"},
        {"table": "Table 1", "row": f"TSM 16 ({data})", "flags": "--baseline tsm --num-segments 16",
         "params_m": 24.3, "gflops": 65, "top1": acc[1][0], "top5": acc[1][1], "note": ""},
        {"table": "Table 1", "row": f"TSM_en 16+8 ({data})", "flags": "--baseline tsm --num-segments 16",
         "ensemble": ["--baseline tsm"], "params_m": 48.6, "gflops": 98, "top1": acc[2][0], "top5": acc[2][1],
         "note": ""},
        {"table": "Table 1", "row": f"TCM 8 ({data})", "flags": "--baseline tcm", "params_m": 24.5, "gflops": 35,
         "top1": acc[3][0], "top5": acc[3][1], "note": TCM_COST},
        {"table": "Table 1", "row": f"TCM 16 ({data})", "flags": "--baseline tcm --num-segments 16",
         "params_m": 24.5, "gflops": 77, "top1": acc[4][0], "top5": acc[4][1], "note": TCM_COST},
        {"table": "Table 1", "row": f"TCM 16+8 ({data})", "flags": "--baseline tcm --num-segments 16",
         "ensemble": ["--baseline tcm"], "params_m": 49.0, "gflops": 105, "top1": acc[5][0], "top5": acc[5][1],
         "note": TCM_COST},
        {"table": "Table 1", "row": f"TCM 16+8 x 10 clips ({data})", "flags": "--baseline tcm --num-segments 16",
         "ensemble": ["--baseline tcm"], "params_m": 49.0, "gflops": 105, "top1": acc[6][0], "top5": acc[6][1],
         "note": TCM_COST + "; 10 clips"},
        {"table": "Table 1", "row": f"STASTA 8 ({data})", "flags": "", "params_m": 24.8, "gflops": 40,
         "top1": acc[7][0], "top5": acc[7][1], "note": PROTOCOL.format(T=8, clips="1 clip"),
         "base": f"TSM 8 ({data})", "increment_note": OVER_TSM},
        {"table": "Table 1", "row": f"STASTA 16 ({data})", "flags": "--num-segments 16", "params_m": 24.8,
         "gflops": 80, "top1": acc[8][0], "top5": acc[8][1], "note": PROTOCOL.format(T=16, clips="1 clip"),
         "base": f"TSM 16 ({data})", "increment_note": OVER_TSM},
        {"table": "Table 1", "row": f"STASTA 16+8 ({data})", "flags": "--num-segments 16", "ensemble": [""],
         "params_m": 49.3, "gflops": 118, "top1": acc[9][0], "top5": acc[9][1],
         "note": "`--evaluate --ensemble 16f.pt 8f.pt`: the 16- and 8-frame models' scores averaged, 1 clip each"},
        {"table": "Table 1", "row": f"STASTA 16+8 x 10 clips ({data})", "flags": "--num-segments 16",
         "ensemble": [""], "params_m": 49.3, "gflops": 118, "top1": acc[10][0], "top5": acc[10][1],
         "note": "`--evaluate --ensemble 16f.pt 8f.pt --test-clips 10`: 10 clips x 1 crop per model (118 G per "
                 "clip), the paper's headline protocol"})],
    {"table": "Table 2", "row": "STASTA 8", "flags": "--multi-label --num-classes 157", "gflops": 40, "map": 39.5,
     "note": "Charades, mAP; protocol not given (1 clip)"},
    {"table": "Table 2", "row": "STASTA 16", "flags": "--multi-label --num-classes 157 --num-segments 16",
     "gflops": 40, "map": 41.3,
     "note": "Charades, mAP; the paper prints 40G for 16 frames here, where Table 1 gives 80G for the same model"},
    {"table": "Table 3", "row": "- / - (baseline)", "flags": "--baseline tcm", "top1": 52.2, "top5": 62.7,
     "note": "TSM + TCM (= Table 1 'TCM 8')"},
    {"table": "Table 3", "row": "ST-AFS-FF / -", "flags": "--no-dmta", "top1": 53.4, "top5": 64.1,
     "note": ONE_MODULE.format(ours="ST-AFS-FF", other="DM-TA")},
    {"table": "Table 3", "row": "- / DM-TA", "flags": "--no-afs", "top1": 52.6, "top5": 63.4,
     "note": ONE_MODULE.format(ours="DM-TA", other="ST-AFS-FF")},
    {"table": "Table 3", "row": "ST-AFS-FF / DM-TA", "flags": "", "top1": 53.8, "top5": 64.8,
     "note": "= Table 1 'STASTA 8'"},
    {"table": "Table 4", "row": "- / - (baseline)", "flags": "--baseline tcm", "top1": 52.2, "top5": 62.7,
     "note": "TSM + TCM"},
    {"table": "Table 4", "row": "DM-TA -> ST-AFS-FF", "flags": "--order dmta-afs", "top1": 53.6, "top5": 64.3,
     "note": ""},
    {"table": "Table 4", "row": "ST-AFS-FF -> DM-TA", "flags": "--order afs-dmta", "top1": 53.8, "top5": 64.8,
     "note": "the default"},
]


# ---- what `--predict ... --visualize DIR` draws (common/visualize.py: "Class.attr" specs) -------------------------
VIS_CAM = "backbone.layer4"  # the last stage, (B*T, C, h, w)
VIS_MAPS = {  # DisplacementMap: (B, T, 3, H, W) = (u, v) / r and the confidence; TA's weights: sigmoid(temporal(.))
    "DM displacement field (Sec. III-B-1)": dict(at="DisplacementMap", kind="flow", layout="BTC", scale=PATCH // 2,
                                                 note="soft-argmax (u, v) from frame t to t+1, in feature cells"),
    "DM confidence map": dict(at="DisplacementMap", get=lambda m, x, out: out[:, :, 2:], kind="heat",
                              layout="BTC", note="the maximum correlation"),
    "TA weights (Sec. III-B-2)": dict(at="TA.temporal", get=lambda m, x, out: out.sigmoid(), kind="temporal",
                                      note="sigmoid weights of the generated features M"),
}


def visualization(args, model):
    return {"cam": VIS_CAM, "maps": VIS_MAPS}


if __name__ == "__main__":
    main()
