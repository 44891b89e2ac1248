"""ST-MANet: Spatio-Temporal-based Multi-level Aggregation Network for Action Recognition (3D ResNet-50).

Paper: ../shared/papers/stmanet.txt (the extracted text carries no title page, so authors, venue and link are not
recorded here). Official code: none published (notes/tsm-family-reference.md: three code searches found nothing).

Idea: a plain 3D ResNet-50 (Sec. 3.1, trained from Kaiming initialisation) gets three additions.
- TDA (Sec. 3.2, Fig. 2, Eq. 1-3): a temporal-aggregation branch of C/2 channels runs beside stages 2-5. At each
  stage the main feature and the branch are concatenated, a T x T temporal self-attention (3x1x1 embeddings) mixes
  time steps, the aggregate is added back into the main branch, and a 3x1x1 conv + pooling carries it to the next
  stage; the last one (no pooling) is fused into stage 5.
- SDA (Sec. 3.3, Fig. 3, Eq. 4-5): a HW x HW spatial self-attention over features reshaped to (HW, CT).
- MF (Sec. 3.4, Eq. 6-9): the pooled outputs of stages 2-5 are concatenated for the classifier, and spatial and
  temporal diversity constraints (cosine similarity between the attention maps of different stages, aligned
  to one size) are added to the loss: L = CE + lambda1 Ls + lambda2 Lt.
This file implements Eq. 1-9, Fig. 1-3, Table 4's ablation switches, Fig. 4's single-stage classifiers and the
whole-video test of Sec. 4.1. The PDF's Eq. 1-9 came out damaged: each is rebuilt from the prose, Table 1's
notation and the Fig. 2/3 captions in the docstring of the code that computes it (TDA, SDA, align_temporal,
diversity_loss, STMANet, train_loss), and what was inferred is a `# Choice:` at the line that implements it.

Run:  python stmanet.py --data DIR            (UCF101/HMDB51/Diving48 lists; see CONVENTIONS.md)
      python stmanet.py --data DIR --evaluate --checkpoint RUN/best.pt      (Sec. 4.1: every window, 1 crop)
      python stmanet.py --complexity          (params/GFLOPs of 32x112x112 with and without the modules)
      python stmanet.py                       (demo: 3D ResNet-18, 20 frames of 40 px, CPU)

Expected results: every row of Tables 3-4, Fig. 4 and Sec. 4.5 is a command (PAPER_TABLES, in the appendix at the
end of this file; `python -m common.paper_tables stmanet` builds and prints them all, with notes). Accuracy in
percent (the paper prints fractions); one 32x112x112 clip. Table 3 (UCF-101, HMDB-51, Diving 48) as
`python -m common.paper_tables stmanet --brief --table "Table 3"` prints it (torch 2.14.1; a test keeps this copy
equal to the printer's):

stmanet.py, Table 3:

| row | flags (python stmanet.py --complexity FLAGS) | params (M): paper / ours | GFLOPs: paper / ours | paper accuracy (%) |
|---|---|---|---|---|
| ST-MANet (UCF-101) | (none) | 47.46 | 26.26 | top-1 96.05 |
| ST-MANet (HMDB-51) | `--num-classes 51` | 47.27 | 26.26 | top-1 68.72 |
| ST-MANet (Diving 48) | `--num-classes 48` | 47.26 | 26.26 | top-1 72.15 |

The paper gives no absolute params or FLOPs, only "approximately 24% more FLOPs than 3D ResNet-50" (Sec. 4.5,
Fig. 6); ours is +30.4 % (`python stmanet.py --complexity`: 26.26 vs 20.14 G; Table 4's rows: +TDA 20.88 G, +SDA
25.52 G). SDA's HW x HW products at stage 2 (5.0 G), fixed by Eq. 4-5's shapes, are +25 % by themselves; TDA costs
+3.7 % with eps's 3x1x1 conv in 32 groups (the paper is silent on groups; ungrouped: +64.5 %). Every reading of
the damaged shapes tried, with its overhead, is in the comment above PAPER_TABLES. Accuracy: none measured on these
datasets. Headline protocol (Sec. 4.1): 32 frames (64 at stride 2) from every consecutive window of the video,
1 centre crop (--test-clips 0, the default).
Demo (`python stmanet.py` / `python stmanet.py --baseline`, the 20 x 40 px profile, 8 epochs, 2-core CPU):
ST-MANet 100.0 % val top-1 from epoch 4 (71 / 87 / 99 % after epochs 0-2; 1775 s on the shared CPU at load ~8,
2026-12-08; L_s 11.995 -> 11.976, L_t 11.975 -> 11.839 over the run, lowest 11.972 and 11.767: both constraints
move); before eps's grouping 100.0 % (332 s, idle, 2026-12-03; L_s 11.97 -> 11.81, L_t 11.97 -> 11.47); plain 3D
ResNet-18 100.0 % (349 s, idle): both 3D models see temporal order; no gain is measurable at this size.
"""
# ==================================================================================================== imports
import argparse
import json
import math
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import checkpoint, cli, modes, training
from common.data import VideoDataset
from common.layers import TemporalConv3d
from common.predict import metrics_of, video_scores
from common.sampling import dense_indices, whole_video_starts
from common.transforms import EvalTransform, TrainTransform, normalize

SCRIPT = "stmanet"

# ================================================================================================== arguments
# The CPU-sized profile used when no --data is given (CONVENTIONS.md "The demo dataset"); flags given on the
# command line win over it. The model is the paper's (TDA, SDA, MF, both constraints); only the backbone depth,
# the clip (20 frames of 40 px instead of 32 of 112; 64 px was too slow on the shared 2-core CPU) and the schedule
# are smaller.
# Choice: 20 frames of 40 px is about the smallest clip whose stage 5 keeps 2 time steps and 2 x 2 positions
# (T: 20 -> 10 -> 10 -> 5 -> 3 -> 2; H: 40 -> 20 -> 10 -> 10 -> 5 -> 3 -> 2). With the earlier 16 frames of 32 px
# stage 5 was 1 x 1 x 1: every map aligned to it was one number, each cosine similarity 1, L_s = L_t = 12 (the
# 12 ordered stage pairs) with zero gradient, so the demo trained neither constraint (tests/test_stmanet.py).
DEMO_PROFILE = dict(arch="resnet18", input_size=40, num_segments=20, epochs=8, batch_size=16, lr=0.01,
                    lr_steps=[5, 7], weight_decay=5e-4, workers=2)
NO_MODULES = "TDA, SDA or MF: the plain 3D ResNet"  # what --baseline lacks


def arguments():
    """The paper's recipe, and its model in one group (cli.MODEL: the flags a checkpoint records); the flags no
    paper mentions come from common/cli.py."""
    p = cli.parser(__doc__)
    g = p.add_argument_group("recipe (Sec. 4.1 \"Implementation Details\", Sec. 4.5)")
    g.add_argument("--epochs", type=int, default=90, help="Sec. 4.1")
    g.add_argument("--batch-size", type=int, default=32, help="clips per step over all GPUs (Sec. 4.1)")
    g.add_argument("--lr", type=float, default=0.01, help="for --batch-size 32 (Sec. 4.1)")
    g.add_argument("--lr-steps", type=int, nargs="+", default=[15, 30, 45, 60, 75],
                   help="epochs where lr x0.1 (Sec. 4.1: every 15 epochs)")
    g.add_argument("--weight-decay", type=float, default=1e-3,
                   help="paper silent; Hara et al.'s value for 3D ResNets trained from scratch")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (Sec. 4.1)")
    g.add_argument("--dropout", type=float, default=0.0, help="before the classifier (paper silent: none)")
    g.add_argument("--clip-grad", type=float, default=0.0, help="gradient-norm clipping (paper silent: off)")
    g.add_argument("--pretrained", default="none",
                   help="none (Kaiming init, Sec. 4.1) | PATH to 3D ResNet weights; there are no ImageNet 3D weights")
    g.add_argument("--num-classes", type=int, default=101, help="when no dataset is given (UCF101: 101)")
    g.add_argument("--test-clips", type=int, default=0,
                   help="0: the whole video in consecutive windows of T*stride frames (Sec. 4.1); K: K windows")
    g.add_argument("--test-crops", type=int, default=1, choices=[1, 3, 10], help="crops per clip (Sec. 4.1: centre)")
    g.add_argument("--lambda-s", type=float, default=0.01, help="lambda1, spatial diversity weight (Eq. 9, Sec. 4.5)")
    g.add_argument("--lambda-t", type=float, default=0.001, help="lambda2, temporal diversity weight (Eq. 9, Sec. 4.5)")
    m = p.add_argument_group(cli.MODEL)
    m.add_argument("--arch", default="resnet50", choices=["resnet18", "resnet34", "resnet50"],
                   help="3D ResNet depth (Sec. 3.1: 50)")
    m.add_argument("--num-segments", type=int, default=32, help="T, frames per clip (Sec. 4.1: 32)")
    m.add_argument("--frame-stride", type=int, default=2,
                   help="frame step inside a clip (Sec. 4.1: 64 consecutive frames subsampled by 2)")
    m.add_argument("--input-size", type=int, default=112, help="Sec. 4.1")
    m.add_argument("--baseline", nargs="?", const="r3d", default=None, choices=["r3d"],
                   help="all paper modules off: the plain 3D ResNet (Table 4, first row)")
    m.add_argument("--no-tda", action="store_true", help="without the temporal-based deep aggregation (Table 4)")
    m.add_argument("--no-sda", action="store_true", help="without the spatial-based deep aggregation (Table 4)")
    m.add_argument("--no-mf", action="store_true",
                   help="without multi-level fusion: stage 5 only, no diversity constraints (Table 4)")
    m.add_argument("--classify-stage", type=int, default=None, choices=[2, 3, 4, 5],
                   help="classify from this stage's features alone, the diversity constraints kept (Fig. 4, "
                        "Sec. 4.4); default: the multi-level fusion of stages 2-5")
    return cli.add_shared_flags(p)


def get_args(argv=None):
    """The flags; a paper switch or loss weight the model would not use stops here, before any work."""
    p = arguments()
    args, given = cli.parse(p, argv, SCRIPT, DEMO_PROFILE, baseline_has_no=NO_MODULES)
    if args.pretrained == "imagenet":
        p.error("--pretrained imagenet: there are no ImageNet weights for a 3D ResNet; ST-MANet trains from "
                "Kaiming initialisation (Sec. 4.1). Use 'none' or a PATH to 3D ResNet weights")
    if args.test_clips < 0:
        p.error("--test-clips must be >= 0 (0 = whole video)")
    for dest in ("lambda_s", "lambda_t"):  # Eq. (9)'s weights: recipe, not model keys, so cli.parse leaves them
        if args.baseline and dest in given:
            p.error(f"{cli.option(dest)} has no effect with --baseline {args.baseline} (no {NO_MODULES})")
    if args.no_mf and args.classify_stage is not None:
        p.error("--classify-stage keeps the diversity constraints of MF; --no-mf drops them and classifies from "
                "stage 5: give one of the two")
    constraints = not args.no_mf or args.classify_stage is not None
    for dest, module, off in (("lambda_s", "SDA", args.no_sda), ("lambda_t", "TDA", args.no_tda)):
        if dest in given and (off or not constraints):
            p.error(f"{cli.option(dest)} has no effect: its constraint needs {module} and MF (or --classify-stage)")
    return args


# ============================================================================================== paper modules
def temporal_conv3d(cin, cout, kernel, groups=1, bias=False):
    """A (k, 1, 1) convolution with 'same' padding in time (TemporalConv3d)."""
    return TemporalConv3d(cin, cout, (kernel, 1, 1), padding=(kernel // 2, 0, 0), groups=groups, bias=bias)


class ChannelsLastMaxPool3d(nn.MaxPool3d):
    """nn.MaxPool3d computed on channels-last data (the same result, returned in the input's layout): CPU
    max_pool3d is 3x faster there (measured: 256x16x28x28, kernel 3, stride 2: 5.5 vs 18.5 ms)."""

    def forward(self, x):
        cl = torch.channels_last_3d
        layout = cl if x.is_contiguous(memory_format=cl) else torch.contiguous_format
        return super().forward(x.contiguous(memory_format=cl)).contiguous(memory_format=layout)


class TDA(nn.Module):
    """Temporal-based deep aggregation at one stage (Sec. 3.2, Fig. 2, Eq. 1-3).

    `channels`: C of the main feature Z^i; the branch input Z_TDA^{i-1} has C/2 channels, so the concatenation
    Z_c^i has 3C/2. `out_channels`: channels of Z_TDA^i (C_{i+1}/2 for stages 2-4, C at stage 5).
    `last`: stage 5, eps has no pooling and its output is added to the main branch (zero-initialised BN).
    `groups`: groups of eps's 3x1x1 conv (the paper is silent; 32, see the Choice in __init__).
    Returns Z_t^i (Eq. 3), Z_TDA^i (Eq. 2) and the attention map A_t^i (B, T, T) for the constraint L_t.
    Reconstructed equations (stage i = 2..5; stage 1 is the stem):
        Z_c^i   = [Z^i ; Z_TDA^{i-1}]                                (B, 3C/2, T, H, W)
        (1)  A_t^i  = softmax( phi(Z_c^i) omega(Z_c^i) / sqrt(d) )     (T x T), phi: T x d, omega: d x T, d = 3C/2*H*W
        (2)  Z_TDA^i = eps_i( A_t^i tau(Z_c^i) )                      tau: reshape to T x d; eps_i: reshape back,
                                                                       3x1x1 conv (32 groups), BN, ReLU, pool
                                                                       (none at stage 5)
        (3)  Z_t^i  = Z^i + gamma_t * sigma^-1( A_t^i sigma(Z^i) )    sigma: reshape to T x CHW
    """

    def __init__(self, channels, out_channels, last=False, groups=32):
        super().__init__()
        self.channels = channels
        cat = channels + channels // 2                                             # 3C/2
        # Choice: phi/omega are depthwise 3x1x1 convolutions: the paper names the 3x1x1 kernel and keeps the
        # embedding at T x 3/2(CWH); a full 3C/2 -> 3C/2 conv would cost 11 GMACs at stage 2 of ResNet-50 alone
        # (55 % of the backbone), against the paper's "approximately 24%" for all modules together (Sec. 4.5).
        self.phi = temporal_conv3d(cat, cat, 3, groups=cat, bias=True)             # phi(.) in Eq. (1)
        self.omega = temporal_conv3d(cat, cat, 3, groups=cat, bias=True)           # omega(.) in Eq. (1)
        # Choice: Eq. (3)'s post-attention operation is a reshape (as pi in Eq. 5), added through a zero-initialised
        # scale gamma_t (DANet-style), so the insert starts as identity (STYLE.md rule 6).
        self.gamma = nn.Parameter(torch.zeros(1))
        # Choice: eps's 3x1x1 conv (3C/2 -> C_{i+1}/2, before the pooling, as Sec. 3.2 orders them) is grouped, 32
        # groups (ResNeXt's cardinality, as in Hara et al.'s 3D ResNeXt; fewer where C/2 < 32, i.e. in tests): the
        # paper says only "a convolutional layer with a kernel size of 3x1x1". Ungrouped, the four cost 7.1 G at
        # 32 x 112^2 (35 % of the backbone; 18.9 M params at stage 5) and the model +64.5 % over the 3D ResNet-50,
        # while SDA's products at stage 2, fixed by Eq. 4-5's shapes, are already 5.0 G (25 %) of the paper's 24 %
        # (Sec. 4.5). Grouped: +30.4 %; any count from 8 to C/2 gives +29.5 to +33.7 %, 4 or fewer over +37 %
        # (every reading tried: the comment above PAPER_TABLES).
        conv = temporal_conv3d(cat, out_channels, 3, groups=math.gcd(groups, cat, out_channels))
        bn = nn.BatchNorm3d(out_channels)
        if last:  # eps without pooling; fused into stage 5 by addition, so its BN starts at zero
            self.epsilon = nn.Sequential(conv, bn)
            nn.init.zeros_(bn.weight)
        else:     # eps: 3x1x1 conv, BN, ReLU, then pooling to the next stage's resolution
            # Choice: 3x3x3 max pool with stride 2 halves T, H, W exactly as the next stage's strided conv does.
            self.epsilon = nn.Sequential(conv, bn, nn.ReLU(inplace=True), ChannelsLastMaxPool3d(3, 2, 1))

    def forward(self, z, branch):
        B, C, T, H, W = z.shape
        zc = torch.cat([z, branch], 1)                     # (B,C,T,H,W),(B,C/2,T,H,W) -> (B,3C/2,T,H,W) Z_c^i
        d = zc.shape[1] * H * W
        # Eq. (1): phi(Z_c) is T x d, omega(Z_c) is d x T; the product correlates every pair of time steps.
        # Choice: logits scaled by 1/sqrt(d) (d ~ 3e5 at stage 2: unscaled, the softmax would be one-hot).
        # sum over c of the (T, HW) @ (HW, T) products of each channel: no transpose of the (B,3C/2,T,H,W) maps
        phi, omega = self.phi(zc).flatten(3), self.omega(zc).flatten(3)                         # (B,3C/2,T,HW)
        logits = (phi @ omega.transpose(2, 3)).sum(1) / math.sqrt(d)                            # (B,T,T)
        attn = logits.softmax(-1)                                                                # A_t^i
        # A_t^i tau(Z_c^i): each time step becomes the attention-weighted sum of all time steps.
        # Choice (Eq. 2's operand): the prose multiplies A_t with "Z_TDA^{i-1} after the tau operation", but tau
        # reshapes to T x 3/2(CWH) and eps reshapes "back to 3C/2 x T x W x H": the shapes of Z_c^i, the
        # concatenation, which we follow. Read as the branch Z_TDA^{i-1} alone (C/2 channels), eps's 3x1x1 conv
        # would see a third of the channels: +29.7 % instead of +30.4 % over the 3D ResNet-50 (ungrouped eps: +41.0
        # instead of +64.5 %), so the FLOPs do not decide it.
        # Choice: no second softmax around this product (the text's "normalized using softmax" is read as
        # Eq. (1)'s normalisation; a softmax over a feature map would scale it by ~1/(CHW)).
        agg = (attn.unsqueeze(1) @ zc.flatten(3)).view_as(zc)        # (B,1,T,T) @ (B,3C/2,T,HW) -> (B,3C/2,T,H,W)
        # Eq. (2): Z_TDA^i = eps(A_t^i tau(Z_c^i))
        branch = self.epsilon(agg)                  # (B,C_{i+1}/2,T/2,H/2,W/2), or (B,C,T,H,W) at stage 5
        # Eq. (3): Z_t^i = Z^i + (A_t^i sigma(Z^i)) reshaped back; A_t sigma(Z) = the first C channels of agg
        z_t = z + self.gamma * agg[:, :C]
        return z_t, branch, attn


class SDA(nn.Module):
    """Spatial-based deep aggregation at one stage (Sec. 3.3, Fig. 3, Eq. 4-5).

    `channels`: C of Z^i. Features are reshaped to (HW, CT): every spatial position is described by its
    features over all channels and time steps, and a HW x HW attention A_s^i relates the positions.
    Memory: A_s^i is (B, HW, HW), 32 x 784 x 784 fp32 = 79 MB at stage 2 of a 112 px, batch-32 clip; no
    (THW)^2 map is ever formed. A_s^i is needed explicitly for the constraint L_s, so it is materialised once.
    Measured (saved-tensor hooks, fp32, one 32x112x112 clip, training): 769 MiB saved for backward by the full
    ST-MANet-50 vs 434 MiB by the plain 3D ResNet-50, i.e. ~24 GiB vs ~14 GiB at batch 32 on one GPU.
    Returns Z_s^i (Eq. 5) scaled by a zero-initialised gamma, and A_s^i. Reconstructed equations:
        (4)  A_s^i  = softmax( alpha(Z^i) beta(Z^i) / sqrt(CT) )     (HW x HW), alpha: HW x CT, beta: CT x HW
        (5)  Z_s^i  = gamma_s * pi( A_s^i eta(Z^i) )                  eta: reshape to HW x CT, pi: back to C,T,H,W
    """

    def __init__(self, channels):
        super().__init__()
        # Choice: alpha/beta are depthwise 1x1x1 convolutions ("the commonly used 1x1x1 kernels", Sec. 3.2),
        # keeping the paper's embedding shape WH x CT at negligible cost. DANet's query/key convs C -> C/8 would
        # cut the model to +20.7 % over the 3D ResNet-50 (from +30.4 %), but Eq. (4) states the size WH x CT.
        self.alpha = temporal_conv3d(channels, channels, 1, groups=channels, bias=True)   # alpha(.) in Eq. (4)
        self.beta = temporal_conv3d(channels, channels, 1, groups=channels, bias=True)    # beta(.) in Eq. (4)
        # Choice: Eq. (5) has no learned output layer; a zero-initialised scale (DANet's gamma) lets the insert
        # start as identity.
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, z):
        B, C, T, H, W = z.shape
        q = self.alpha(z).reshape(B, C * T, H * W)         # (B,C,T,H,W) -> (B,CT,HW) = alpha(Z)^T
        k = self.beta(z).reshape(B, C * T, H * W)          # (B,C,T,H,W) -> (B,CT,HW) = beta(Z)
        # Eq. (4): A_s = softmax(alpha(Z) beta(Z) / sqrt(CT))  (Choice: scaled as in Eq. 1)
        attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(C * T), -1)     # (B,HW,HW)
        v = z.reshape(B, C * T, H * W)                     # (B,C,T,H,W) -> (B,CT,HW) = eta(Z)^T
        # Eq. (5): Z_s = pi(A_s eta(Z)); computed transposed, eta(Z)^T A_s^T, to keep the (B,CT,HW) layout.
        # Choice: no second softmax around the product (as in TDA, Eq. 2-3).
        z_s = (v @ attn.transpose(1, 2)).view(B, C, T, H, W)  # (B,CT,HW) -> (B,C,T,H,W)
        return self.gamma * z_s, attn


def align_temporal(attn, size):
    """Eq. (6) for A_t: (B, T, T) -> (B, t*t), adaptive average pooling over both time axes.
    Reconstructed: (6) Ahat^i = S^i(A^i), adaptive average pooling of both axes of a map to the stage-5 size
    (T5 x T5 for A_t; (H5 W5)^2 for A_s, align_spatial)."""
    return F.adaptive_avg_pool2d(attn.unsqueeze(1), (size, size)).flatten(1)  # (B,1,T,T) -> (B,1,t,t) -> (B,t*t)


def align_spatial(attn, grid, size):
    """Eq. (6) for A_s: (B, HW, HW) on an H x W grid -> (B, hw*hw) on an h x w grid.

    Both position axes are H x W grids; each is adaptive-average-pooled to h x w (Choice: the paper names a
    "downsampling function" only)."""
    B = attn.shape[0]
    (H, W), (h, w) = grid, size
    x = F.adaptive_avg_pool2d(attn.reshape(B * H * W, 1, H, W), size)      # (B,HW,HW) -> (B*HW,1,h,w) keys
    x = x.view(B, H * W, h * w).transpose(1, 2).reshape(B * h * w, 1, H, W)  # -> (B,hw,HW) -> (B*hw,1,H,W)
    x = F.adaptive_avg_pool2d(x, size)                                     # -> (B*hw,1,h,w) queries
    return x.view(B, h * w, h * w).transpose(1, 2).flatten(1)              # -> (B,hw_q,hw_k) -> (B,hw*hw)


def diversity_loss(maps):
    """Eq. (7): sum over ordered stage pairs (i, j), i != j, of the cosine similarity f(Ahat^i, Ahat^j) of the
    aligned (flattened) attention maps, averaged over the batch. `maps`: list of (B, D) tensors.
    Reconstructed: (7) L_s = sum_{(i,j) in theta} f(Ahat_s^i, Ahat_s^j), L_t likewise; theta = {(i,j): 2 <= i,j <= 5,
    i != j}, f = cosine similarity of the flattened maps."""
    if len(maps) < 2:
        return maps[0].new_zeros(()) if maps else torch.zeros(())
    unit = F.normalize(torch.stack(maps, 1), dim=-1)   # S x (B,D) -> (B,S,D), unit rows
    cos = unit @ unit.transpose(1, 2)                  # (B,S,S): f(Ahat^i, Ahat^j)
    # theta = {(i,j) | 2 <= i,j <= 5, i != j}: every off-diagonal entry, both orders
    return (cos.sum((1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(-1)).mean()


# ================================================================================= backbone surgery and model
def conv3d(cin, cout, kernel, stride=1, groups=1, bias=False):
    """3D convolution with 'same' padding for odd kernels; `kernel`/`stride` are ints or (t, h, w)."""
    kernel = (kernel,) * 3 if isinstance(kernel, int) else tuple(kernel)
    return nn.Conv3d(cin, cout, kernel, stride, tuple(k // 2 for k in kernel), groups=groups, bias=bias)




LAYERS = ("layer1", "layer2", "layer3", "layer4")  # the paper's stages 2-5


def kaiming_init(module):
    """Kaiming initialisation (Sec. 4.1) of every convolution, BN at (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class BasicBlock3d(nn.Module):
    """Two 3x3x3 convolutions (3D ResNet-18/34)."""
    expansion = 1

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1, self.bn1 = conv3d(cin, planes, 3, stride), nn.BatchNorm3d(planes)
        self.conv2, self.bn2 = conv3d(planes, planes, 3), nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != planes:  # Hara et al.'s shortcut B: 1x1x1 conv + BN
            self.downsample = nn.Sequential(conv3d(cin, planes, 1, stride), nn.BatchNorm3d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck3d(nn.Module):
    """1x1x1 -> 3x3x3 (stride) -> 1x1x1 (x4 channels), each with BN (Sec. 3.1 "Bottleneck Residual Block")."""
    expansion = 4

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1, self.bn1 = conv3d(cin, planes, 1), nn.BatchNorm3d(planes)
        self.conv2, self.bn2 = conv3d(planes, planes, 3, stride), nn.BatchNorm3d(planes)
        self.conv3, self.bn3 = conv3d(planes, planes * 4, 1), nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(conv3d(cin, planes * 4, 1, stride), nn.BatchNorm3d(planes * 4))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet3d(nn.Module):
    """3D ResNet (Sec. 3.1, Fig. 1), the layout of Hara et al.'s 3D-ResNets-PyTorch (shortcut B), whose
    parameter names it shares so their Kinetics weights load with --pretrained PATH.

    Stage 1: 7x7x7 conv, temporal stride 1, spatial stride 2, BN, ReLU. Stage 2 (layer1): 3x3x3 max pool with
    stride 2, then blocks. Stages 3-5 (layer2-4): the first block strides 2 in T, H and W. Each stage 2-5 halves
    T, H, W and doubles the channels: 32x112x112 -> (256,16,28,28), (512,8,14,14), (1024,4,7,7), (2048,2,4,4).
    Choice: the paper does not give the stem kernel; 7x7x7 as in Hara et al.
    """
    configs = {"resnet18": (BasicBlock3d, (2, 2, 2, 2)), "resnet34": (BasicBlock3d, (3, 4, 6, 3)),
               "resnet50": (Bottleneck3d, (3, 4, 6, 3))}

    def __init__(self, arch="resnet50"):
        super().__init__()
        block, depths = self.configs[arch]
        self.conv1 = conv3d(3, 64, 7, (1, 2, 2))
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(3, 2, 1)
        cin, self.widths = 64, []
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, planes, 2 if i > 0 and j == 0 else 1))
                cin = planes * block.expansion
            setattr(self, LAYERS[i], nn.Sequential(*blocks))
            self.widths.append(cin)
        kaiming_init(self)

    def stem(self, x):
        """Stage 1 and stage 2's max pool: (B,3,T,H,W) -> (B,64,T/2,H/4,W/4)."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


def insert_aggregation(backbone, tda=True, sda=True):
    """Backbone surgery: walks layer1..layer4 (stages 2-5) and builds the TDA branch and one SDA per stage.

    Returns (tda_entry, tda_modules, sda_modules), None where switched off. The TDA branch width at stage i is
    C_i/2; its entry (Z_TDA^1) is a 3x1x1 conv + BN + ReLU on the stage-2 input (Choice: the paper has no stage-1
    TDA). Every insert starts as identity (gamma = 0, last BN = 0), so the model equals the plain backbone at
    initialisation (tested)."""
    widths = [getattr(backbone, name)[-1].expansion * getattr(backbone, name)[-1].bn1.num_features
              for name in LAYERS]
    entry = tda_modules = sda_modules = None
    if tda:
        entry = nn.Sequential(temporal_conv3d(64, widths[0] // 2, 3), nn.BatchNorm3d(widths[0] // 2),
                              nn.ReLU(inplace=True))
        outs = [w // 2 for w in widths[1:]] + [widths[-1]]          # C_{i+1}/2, and C_5 for the fused last one
        tda_modules = nn.ModuleList(TDA(w, o, last=i == len(LAYERS) - 1)
                                    for i, (w, o) in enumerate(zip(widths, outs)))
    if sda:
        sda_modules = nn.ModuleList(SDA(w) for w in widths)
    for m in (entry, tda_modules, sda_modules):
        if m is not None:
            kaiming_init(m)
    if tda:  # kaiming_init reset the zero-initialised BN of the fused last eps
        nn.init.zeros_(tda_modules[-1].epsilon[1].weight)
    return entry, tda_modules, sda_modules


class STMANet(nn.Module):
    """ST-MANet (Fig. 1): 3D ResNet + TDA + SDA per stage + multi-level fusion. With all three off it is the
    plain 3D ResNet (global average pool of stage 5, classifier). Input (B, T, C, H, W) from the loader.
    forward returns (logits, {"ls": L_s, "lt": L_t}); the constraints are computed in training mode only.
    Reconstructed: (8) Z = Con(GAP(Zhat^2), ..., GAP(Zhat^5)), Zhat^i = Z^i (+) Z_t^i (+) Z_s^i = Z_t^i + Z_s^i.
    Choice: Eq. 8's (+) is element-wise addition with Z^i counted once (Z_t^i already holds it through Eq. 3's
    residual); "Con" concatenates the globally average-pooled stage outputs. The last TDA's eps (no pooling, "same
    dimensions as the ResNet branch") maps to C channels and is added to stage 5's output; its BN starts at zero.
    `mf=False` (--no-mf) drops both the concatenation and the diversity constraints (Sec. 3.4 "multi-level fusion
    loss"); `classify_stage` (--classify-stage N, Fig. 4, Sec. 4.4) classifies from stage N alone and keeps them."""

    def __init__(self, arch, num_classes, tda=True, sda=True, mf=True, dropout=0.0, pretrained="none",
                 classify_stage=None):
        super().__init__()
        self.backbone = ResNet3d(arch)
        self.tda_entry, self.tda, self.sda = insert_aggregation(self.backbone, tda, sda)
        # Fig. 4 / Sec. 4.4: classify from one stage (2-5) with the constraints kept; None: MF's fusion (mf=True)
        # or stage 5 alone without constraints (mf=False, Table 4)
        self.mf, self.classify_stage = mf, classify_stage
        widths = self.backbone.widths
        self.dropout = nn.Dropout(dropout)
        width = widths[classify_stage - 2] if classify_stage else sum(widths) if mf else widths[-1]
        self.fc = nn.Linear(width, num_classes)   # Choice: default init (Kaiming-uniform)

    def forward(self, x):
        x = x.permute(0, 2, 1, 3, 4)                      # (B,T,C,H,W) -> (B,C,T,H,W)
        z = self.backbone.stem(x)                         # (B,64,T/2,H/4,W/4)
        branch = self.tda_entry(z) if self.tda is not None else None   # Z_TDA^1: (B,C_2/2,T/2,H/4,W/4)
        pooled, maps_t, maps_s = [], [], []
        for i, name in enumerate(LAYERS):
            z = getattr(self.backbone, name)(z)           # Z^i: (B,C,T,H,W)
            out = z
            if self.tda is not None:
                out, branch, a_t = self.tda[i](z, branch)    # Eq. (1)-(3): Z_t^i, Z_TDA^i, A_t^i
                maps_t.append(a_t)
            if self.sda is not None:
                z_s, a_s = self.sda[i](z)                    # Eq. (4)-(5): Z_s^i, A_s^i
                out = out + z_s                              # Eq. (8): Zhat^i = Z^i (+) Z_t^i (+) Z_s^i
                maps_s.append((a_s, z.shape[-2:]))
            if self.tda is not None and i == len(LAYERS) - 1:
                out = out + branch                           # the last TDA (no pooling) fused into stage 5
            z = out
            pooled.append(z.mean((2, 3, 4)))              # (B,C,T,H,W) -> (B,C)
        # Eq. (8): Z = Con(Z^2, Z^3, Z^4, Z^5) along channels (of the pooled stage outputs)
        if self.classify_stage:                                     # Fig. 4: one stage alone, (B, C_i)
            feature = pooled[self.classify_stage - 2]
        else:
            feature = torch.cat(pooled, 1) if self.mf else pooled[-1]   # (B, sum C_i) or (B, C_5)
        logits = self.fc(self.dropout(feature))
        zero = logits.new_zeros(())
        losses = {"ls": zero, "lt": zero}
        if self.training and (self.mf or self.classify_stage):
            if maps_t:   # Eq. (6)-(7), temporal: align to stage 5's T x T
                t = maps_t[-1].shape[-1]
                losses["lt"] = diversity_loss([align_temporal(a, t) for a in maps_t])
            if maps_s:   # Eq. (6)-(7), spatial: align to stage 5's (HW) x (HW)
                size = tuple(maps_s[-1][1])
                losses["ls"] = diversity_loss([align_spatial(a, tuple(g), size) for a, g in maps_s])
        return logits, losses


def build_model(args, num_classes):
    """The model of the flags: ST-MANet, a Table 4 ablation, or with --baseline the plain 3D ResNet."""
    if args.baseline:
        return STMANet(args.arch, num_classes, tda=False, sda=False, mf=False, dropout=args.dropout,
                       pretrained=args.pretrained)
    return STMANet(args.arch, num_classes, tda=not args.no_tda, sda=not args.no_sda, mf=not args.no_mf,
                   dropout=args.dropout, pretrained=args.pretrained, classify_stage=args.classify_stage)


# ======================================================================================================= data
# Choice (test crop): Sec. 4.1 says only "central cropping"; EvalTransform resizes the short side to 128
# (= 112 x 256/224, the TSN/TSM convention) and crops the central 112 x 112, i.e. 0.875 of the short side, inside
# the 0.5-1 range of the training crops. A crop of the full short side resized to 112 is the other reading.
def frames_per_clip(args):
    return args.num_segments


def test_starts(num_frames, window):
    """Sec. 4.1 test: consecutive windows of `window` frames over the whole video.
    Choice: the last window is moved back to end at the last frame (the paper does not say what happens to the
    remainder), so every window is a true run of consecutive frames; a video shorter than one window loops."""
    return [min(s, max(num_frames - window, 0)) for s in whole_video_starts(num_frames, window)]


def train_dataset(args, records, opts):
    """Sec. 4.1 train: a random run of T*stride consecutive frames, every stride-th kept; a crop of 0.5-1 x the
    short side resized to --input-size, and a horizontal flip (swapping the labels of dataset.json's pairs)."""
    return VideoDataset(
        records, lambda n, k, rng: dense_indices(n, args.num_segments, args.frame_stride, train=True, rng=rng),
        TrainTransform(args.input_size, crop="side", flip=not args.no_flip, flip_labels=opts.flip_labels),
        **opts.frames)


def test_dataset(args, records, opts):
    """Sec. 4.1 test: the whole video in consecutive windows of T*stride frames (--test-clips 0) or K windows,
    each in --test-crops crops; unreadable videos are left out, never replaced. A whole-video batch holds
    --batch-size videos (common/training.py eval_loader); evaluate feeds their views --batch-size at a time."""
    T, stride = args.num_segments, args.frame_stride
    window = T * stride
    if args.test_clips == 0:   # the whole video, one clip per window
        num_clips = lambda n: len(test_starts(n, window))
        sample = lambda n, k, rng: (test_starts(n, window)[k] + np.arange(T) * stride) % n
    else:
        num_clips = args.test_clips
        sample = lambda n, k, rng: dense_indices(n, T, stride, train=False, clip=k, num_clips=args.test_clips)
    return VideoDataset(records, sample, EvalTransform.from_args(args, T), num_clips=num_clips, skip_bad=True,
                        **opts.frames)


def protocol(args):
    clips = (f"whole-video windows of {args.num_segments * args.frame_stride} frames" if args.test_clips == 0
             else f"{args.test_clips} clips")
    return (f"{args.num_segments} frames (stride {args.frame_stride}) x {clips} x {args.test_crops} crops "
            f"({EvalTransform.from_args(args, frames_per_clip(args)).describe()})")


# ========================================================================================= train and evaluate
def param_groups(model, weight_decay):
    """No weight decay on BatchNorm parameters, biases and the gammas (paper silent; TSM's policy)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def set_learning_rate(optimizer, args, epoch):
    """Sec. 4.1: lr x0.1 at each of --lr-steps (every 15 epochs). Returns it."""
    lr = args.lr * 0.1 ** sum(epoch >= s for s in args.lr_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def train_loss(model, clips, targets, args):
    """Eq. (9): L = L_ce + lambda1 L_s + lambda2 L_t for one (micro-)batch, lambda1 = --lambda-s = 0.01 and
    lambda2 = --lambda-t = 0.001 (Sec. 4.5, Fig. 5); L_s and L_t are logged too."""
    logits, div = model(clips)
    loss = F.cross_entropy(logits.float(), targets) + args.lambda_s * div["ls"].float() \
        + args.lambda_t * div["lt"].float()
    return loss, {"ls": div["ls"].float(), "lt": div["lt"].float()}


def train_one_epoch(model, loader, optimizer, args, train):
    """One epoch of SGD (Sec. 4.1). `train` (common/training.py) resumes mid-epoch, counts unreadable samples,
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
    return model(normalize(clips))[0]  # STMANet returns (logits, the diversity terms)


def evaluate(model, loader, args, device, bad):
    """Per-video softmax probabilities averaged over the views (windows x crops, Sec. 4.1), as (Predictions,
    videos left out) of this rank (common/predict.py); views go through the model --batch-size at a time."""
    model.eval()

    def forward(clips):                                                      # uint8 (n,T,C,H,W) -> logits (n,K)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            return logits(model, clips)

    preds, skipped = video_scores(forward, loader, device, crops=args.test_crops, chunk=max(1, args.batch_size))
    bad.add([message for _, message in skipped], "left out of the evaluation")
    return preds, skipped


# ======================================================================================================= main
def main(argv=None):
    args = get_args(argv)  # with --evaluate/--predict/--resume the model flags come from the checkpoint
    rank, world, device = training.start(args, DEMO_PROFILE)
    if modes.requested(args):  # --complexity, --benchmark, --predict, --evaluate: common/modes.py, with this file
        return modes.run(sys.modules[__name__], args, rank, world, device)
    train_loader, _, val_loader, classes, opts = training.loaders(args, rank, world, train_dataset, test_dataset)
    model = build_model(args, len(classes)).to(device)
    checkpoint.load_initial(model, model.backbone, args)  # --pretrained PATH (3D ResNet), --finetune PATH
    optimizer = torch.optim.SGD(param_groups(model, args.weight_decay), lr=args.lr, momentum=args.momentum)
    with training.Training(args, SCRIPT, model, optimizer, classes, opts, device, world) as train:
        for epoch in train.epochs(train_loader):
            lr = set_learning_rate(optimizer, args, epoch)
            train_one_epoch(train.model, train_loader, optimizer, args, train)
            train.end_epoch(lr, metrics_of(*evaluate(train.model, val_loader, args, device, train.bad)))
    return train.finish(protocol(args))


# ============================================================ appendix: paper tables, visualisation maps, FLOPs
# ---- the paper's tables as data: `python -m common.paper_tables stmanet` builds every row and prints it -----------
# Rows per common/paper_tables.py: the flags build the row with `python stmanet.py --complexity FLAGS`. The paper
# prints accuracies as fractions (0.9605); here in percent. It gives no params or GFLOPs, only Sec. 4.5's FLOPs
# increase over the 3D ResNet-50.
# FLOPs (common.modes.complexity_row, multiply-accumulates on the 'meta' device) include the attention products
# (torch.bmm, 5.5 G of our 26.3 G at 32 x 112^2). Our +30.4 % over the 3D ResNet-50's 20.14 G: SDA 5.38 G (5.04 G of
# it stage 2's HW x HW products over CT = 4096), TDA 0.44 G, its entry conv (Z_TDA^1) 0.31 G, MF's wider
# classifier 0.0004 G. Sec. 4.5's "approximately 24%" against the readings the damaged Sec. 3.2-3.4 allow, each
# this file changed in the one respect named (measured with a throw-away script; "convs only": a counter that
# misses torch.bmm, e.g. module hooks):
#   reading                                                                  GFLOPs  over R50  convs only
#   this file: eps on Z_c, 3x1x1 conv in 32 groups, then pool                 26.26   +30.4 %     +2.9 %
#   eps ungrouped (this file's previous reading)                              33.12   +64.5 %    +36.9 %
#     + Eq. 2's literal operand, the branch Z_TDA^{i-1} (C/2 in, not 3C/2)   28.40   +41.0 %    +13.5 %
#     + eps pools before its conv (Sec. 3.2 orders conv, then pooling)        27.49   +36.5 %     +9.0 %
#     + both of the last two                                                  26.52   +31.7 %     +4.2 %
#     + eps's conv strided 2 in time, pooling only in space                   29.88   +48.4 %    +20.8 %
#   eps in 2 / 4 / 8 / 16 / 64 / C/2 groups: +46.9 / +38.1 / +33.7 / +31.5 / +29.9 / +29.5 %
#   eps (32 groups) on the branch Z_TDA^{i-1} / pooling before it             26.11 / 26.09  +29.7 / +29.5 %
#   phi/omega full 3x1x1 convs 3C/2 -> 3C/16 / 3C/2 -> 3C/4, not depthwise     28.80 / 36.80  +43.0 / +82.7 %
#   SDA alpha/beta full 1x1x1 convs C -> C / C -> C/8 (DANet's query/key)      29.40 / 24.30  +46.0 / +20.7 %
#   SDA positions compared by time-averaged features (HW x C logits)           23.76   +18.0 %     +2.9 %
#   SDA at stages 3-5 only                                                     21.22    +5.4 %     +2.8 %
#   Eq. 3's post-attention op read as a 3x1x1 conv C -> C (not a reshape)     30.98   +53.8 %    +26.3 %
#   MF: a 1x1x1 conv of each stage to width w before GAP and Con: + w x 4.28 M MACs (w 512: +10.9, 2048: +43.5 pts)
# No reading that keeps Eq. 4-5's stated shapes (alpha, beta, eta: WH x CT) at stages 2-5 (Eq. 6-7's i = 2..5) reaches
# +24 % while the products are counted: SDA alone is +26.7 % (--no-tda). Ours keeps every stated shape and order
# and chooses only what the text leaves open (eps's groups). Fitting alternatives each contradict the text: SDA's
# query/key at C/8 (+20.7 %) its WH x CT size, time-averaged SDA (+18.0 %) the same, SDA off stage 2 (+5.4 %)
# Eq. 6-7, ungrouped eps on the branch pooled first (+31.7 %) tau's and eps's stated 3C/2 and the conv-then-pool order.
WHOLE_VIDEO = ("protocol: 32 frames (64 at stride 2) x every consecutive window of the video x 1 centre crop of "
               "112 (Sec. 4.1; `--test-clips 0`, the default)")
PAPER_TABLES = [
    {"table": "Table 3", "row": "ST-MANet (UCF-101)", "flags": "", "top1": 96.05, "note": WHOLE_VIDEO},
    {"table": "Table 3", "row": "ST-MANet (HMDB-51)", "flags": "--num-classes 51", "top1": 68.72,
     "note": WHOLE_VIDEO},
    {"table": "Table 3", "row": "ST-MANet (Diving 48)", "flags": "--num-classes 48", "top1": 72.15,
     "note": WHOLE_VIDEO},
    {"table": "Table 4", "row": "3D ResNet-50", "flags": "--baseline", "top1": 83.17, "note": "UCF-101"},
    {"table": "Table 4", "row": "3D ResNet-50 + TDA", "flags": "--no-sda --no-mf", "top1": 89.45, "note": "",
     "base": "3D ResNet-50"},
    {"table": "Table 4", "row": "3D ResNet-50 + SDA", "flags": "--no-tda --no-mf", "top1": 90.12, "note": "",
     "base": "3D ResNet-50"},
    {"table": "Table 4", "row": "3D ResNet-50 + TDA + SDA", "flags": "--no-mf", "top1": 92.78, "note": "",
     "base": "3D ResNet-50"},
    {"table": "Table 4", "row": "3D ResNet-50 + MF", "flags": "--no-tda --no-sda", "top1": 84.16,
     "note": "the concatenation of stages 2-5 only: without TDA and SDA there are no attention maps to constrain",
     "base": "3D ResNet-50"},
    {"table": "Table 4", "row": "ST-MANet (TDA + SDA + MF)", "flags": "", "top1": 96.05, "note": "",
     "base": "3D ResNet-50"},
    *[{"table": "Fig. 4", "row": f"stage {stage}", "flags": f"--classify-stage {stage}",
       "note": "Fig. 4's bars carry no numbers in the text; Sec. 4.4: accuracy falls from stage 5 to stage 2"}
      for stage in (2, 3, 4, 5)],
    {"table": "Fig. 4", "row": "multi-level fusion", "flags": "",
     "note": "Sec. 4.4: above every single stage"},
    {"table": "Sec. 4.5 (Fig. 6)", "row": "ST-MANet over 3D ResNet-50 (UCF-101)", "flags": "", "over": "--baseline",
     "gflops_over_pct": 24,
     "note": "SDA's HW x HW products at stage 2, fixed by Eq. 4-5's WH x CT shapes, are +25 % alone, more than "
             "the paper's figure for all modules (ours: SDA +26.7 %, TDA +3.7 % with eps's conv in 32 groups); the "
             "paper names no FLOPs counter; ours counts the attention products (5.5 G of torch.bmm; convs only: "
             "+2.9 %)",
     "increment_note": "as the note says; every reading tried, with its overhead, is in the comment above "
                       "PAPER_TABLES (ungrouped eps: +64.5 %; SDA's query/key at C/8, against Eq. 4's size: +20.7 %)"},
]


def report_complexity(args):
    """--complexity: params and GFLOPs of one clip, beside those of the plain 3D ResNet (--baseline), so the
    modules' overhead is the paper's Sec. 4.5 figure (counted as the comment above PAPER_TABLES says)."""
    out = {"script": SCRIPT}
    for prefix, base in (("", args.baseline), ("baseline_", "r3d")):
        row = modes.complexity_row(sys.modules[__name__], argparse.Namespace(**{**vars(args), "baseline": base}))
        out[prefix + "params_m"] = round(row["params_m"], 2)
        out[prefix + "gflops"] = round(row["gflops"], 2)
    out["gflops_overhead_pct"] = round(100 * (out["gflops"] / out["baseline_gflops"] - 1), 1)
    out.update({"arch": args.arch, "num_segments": args.num_segments, "input_size": args.input_size,
                "num_classes": args.num_classes, "frames_per_clip": frames_per_clip(args),
                "modules": "+".join(m for m, off in (("tda", args.no_tda), ("sda", args.no_sda), ("mf", args.no_mf))
                                    if not off and not args.baseline) or "none",
                "classify_stage": args.classify_stage})
    print(json.dumps(out))


# ---- what `--predict ... --visualize DIR` draws beside Grad-CAM (common/visualize.py: "Class.attr" specs) --------
# Grad-CAM: the output of a stage, (B, C, T', h, w), layout "BCT" (visualization picks the stage)
VIS_MAPS = {  # TDA returns (Z_t, Z_TDA, A_t), SDA (gamma Z_s, A_s)
    "TDA attention A_t (Eq. 1)": dict(at="TDA", get=lambda m, x, out: out[2], kind="matrix", pick="all",
                                      signed=False, note="T x T softmax of stages 2-5 (row: query time step)"),
    "SDA attention A_s (Eq. 4)": dict(at="SDA", get=lambda m, x, out: out[1].mean(1).unflatten(1, x[0].shape[-2:]),
                                      kind="spatial", pick="all",
                                      note="the attention each position receives (mean over the queries), "
                                           "stages 2-5, over the middle frame"),
}


def stage_grids(args):
    """(h, w) of the outputs of stages 2-5 for a clip of --predict (--test-size or --input-size crops): the
    backbone of --arch built and run on the 'meta' device (shapes only)."""
    size = args.test_size or args.input_size
    with torch.device("meta"):
        net = ResNet3d(args.arch).eval()                   # eval: BatchNorm of a 1 x 1 x 1 map is fine
        z = net.stem(torch.zeros(1, 3, frames_per_clip(args), size, size))
        grids = []
        for name in LAYERS:
            z = getattr(net, name)(z)                     # (1, C, T', h, w)
            grids.append(tuple(z.shape[-2:]))
    return grids


def visualization(args, model):
    """Grad-CAM of the last stage the classifier sees (stage 5, or --classify-stage's) whose map keeps at least
    2 x 2 positions at the clip's size: stage 5 is 1 x 1 up to 32 px (stage 4 up to 16 px, ...), and a 1 x 1 map
    colours each frame in one colour. Where every such stage is 1 x 1 (clips of 4 px or less) Grad-CAM stays at the
    last one and the sheet gets a row saying why it is uniform."""
    grids = stage_grids(args)
    last = (args.classify_stage or 5) - 2
    wide = [i for i in range(last + 1) if min(grids[i]) >= 2]
    stage = wide[-1] if wide else last
    maps = VIS_MAPS
    if not wide:  # a row of its own: common/visualize.py writes the Grad-CAM row's note itself
        h, w = grids[stage]
        maps = {"Grad-CAM is uniform": dict(
            at=f"ResNet3d.{LAYERS[stage]}", get=lambda m, x, out: out.mean((1, 2)), kind="spatial",
            note=f"stage {stage + 2} ({LAYERS[stage]}, its channel mean drawn here) is {h} x {w} at the clip's "
                 f"{args.test_size or args.input_size} px, as is every stage: Grad-CAM has one value per frame. "
                 f"A larger --input-size (or --test-size) gives it spatial extent"), **VIS_MAPS}  # under Grad-CAM
    return {"cam": f"backbone.{LAYERS[stage]}", "maps": maps,
            "layout": "BCT"}


if __name__ == "__main__":
    main()
