"""Context-Aware Network Based on Multi-scale Spatio-temporal Attention for Action Recognition in Videos (CAN).

Xiaoyang Li, Wenzhu Yang, Kanglin Wang, Tiebiao Wang, Qingsong Fei (Hebei University), 2025. arXiv 2512.18750.
Official code: none published; the paper's text and tables decide.

Idea: a TSN ResNet-50 whose every bottleneck gets two attention modules after its 3x3 conv (Fig. 1, Table 11 (c)):
  * GSCM (Sec. 3.3, Eq. 6-10) splits the channels into four groups: identity, PMM (per-pixel temporal difference
    attention), LMM (3x3x3 conv on a channel-pooled map) and GMM (temporal difference attention on the spatially
    pooled descriptor); each group is recalibrated residually, x * sigma(.) + x.
  * MTCM (Sec. 3.2, Eq. 3-5) follows: 1x1x1 reduction by r, N depthwise temporal convs with dilation 1..N mixed by
    softmax-normalised weights alpha, 1x1x1 back to C, sigmoid, residual recalibration.
The file implements Eq. (1)-(10), the ablation switches of Tables 7-12 and the TSN/TSM baselines.

Run:  python can.py --data DIR --pretrained imagenet            (Sec. 4.2 recipe: T=8, batch 8, lr 0.0025, 50 ep)
      python can.py --complexity --num-classes 48                (Table 10, Diving48 head)
      python can.py                                              (demo dataset, CPU profile)

Expected results: every row of Tables 2-12 is a command (PAPER_TABLES, the appendix; `python -m common.paper_tables
can` prints them all). Table 2 (SSv1/SSv2, 8 x 224^2), as `python -m common.paper_tables can --brief --table
"Table 2"` prints it (a test keeps this copy equal to the printer's):

can.py, Table 2:

| row | flags (python can.py --complexity FLAGS) | params (M): paper / ours | GFLOPs: paper / ours | paper accuracy (%) |
|---|---|---|---|---|
| TSN 8f (SSv1) | `--baseline` | 23.9 / 23.86 (-0.1 %) | 33 / 32.70 (-0.9 %) | top-1 19.7 |
| TSM 8f (SSv1) | `--baseline tsm` | 24.3 / 23.86 (-1.8 %) | 33 / 32.70 (-0.9 %) | top-1 45.6, top-5 74.2 |
| TSM 16f (SSv1) | `--baseline tsm --num-segments 16` | 24.3 / 23.86 (-1.8 %) | 65 / 65.40 (+0.6 %) | top-1 47.3, top-5 77.1 |
| CAN 8f (SSv1) | (none) | 25.3 / 25.54 (+0.9 %) | 35 / 34.64 (-1.0 %) | top-1 50.4, top-5 78.2 |
| CAN 16f (SSv1) | `--num-segments 16` | 25.3 / 25.54 (+0.9 %) | 70 / 69.29 (-1.0 %) | top-1 53.9, top-5 82.0 |
| TSN 8f (SSv2) | `--baseline` | 23.9 / 23.86 (-0.1 %) | 33 / 32.70 (-0.9 %) | top-1 33.4 |
| TSM 8f (SSv2) | `--baseline tsm` | 24.3 / 23.86 (-1.8 %) | 33 / 32.70 (-0.9 %) | top-1 58.8, top-5 85.4 |
| TSM 16f (SSv2) | `--baseline tsm --num-segments 16` | 24.3 / 23.86 (-1.8 %) | 65 / 65.40 (+0.6 %) | top-1 61.2, top-5 86.9 |
| CAN 8f (SSv2) | (none) | 25.3 / 25.54 (+0.9 %) | 35 / 34.64 (-1.0 %) | top-1 63.9, top-5 89.1 |
| CAN 16f (SSv2) | `--num-segments 16` | 25.3 / 25.54 (+0.9 %) | 70 / 69.29 (-1.0 %) | top-1 64.4, top-5 89.7 |

The paper counts FLOPs as thop does (BN included: TSN R50 33.05G); ours are multiply-accumulates (32.70G), about
0.35G below at equal models (Table 12, where BN weighs more, is counted as thop: `--count thop`). Headline protocol
(Sec. 4.2): T = 8 or 16 frames x 1 clip x 1 centre crop of 224 (short side 256).
Demo (CPU, `python can.py` vs `python can.py --baseline`, 16 epochs at lr 0.005): CAN 76.0 % (`--seed 1`: 99.0 %),
TSN 24.0 % val top-1. From scratch the modules' convs get the backbone's He init (`he_init_`); with zero-initialised
gates CAN stayed at chance (28.0 %), see the two-class probe in docs/demo.md.
"""
# ==================================================================================================== imports
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from common import checkpoint, cli, modes, training
from common.data import VideoDataset
from common.layers import TemporalConv3d
from common.predict import metrics_of, video_scores
from common.sampling import segment_indices
from common.transforms import EvalTransform, TrainTransform, normalize
from common.tsm import TemporalShift

SCRIPT = "can"

# ================================================================================================== arguments
# The CPU-sized profile used when no --data is given (CONVENTIONS.md "The demo dataset"); flags given on the
# command line win over it. The CAN modules keep their paper settings; only backbone and schedule shrink.
# Choice: lr 0.005 (at 0.02 the first epochs overshoot, train loss 2.0 > ln 4, and CAN stayed at chance: 26 %) and
# 16 epochs with the drop at 12: from scratch CAN leaves the TSN plateau at epoch 6-7, later than STW/STASTA
# (docs/demo.md).
DEMO_PROFILE = dict(arch="resnet18", pretrained="none", input_size=64, epochs=16, batch_size=16, lr=0.005,
                    lr_steps=[12, 15], weight_decay=5e-4, dropout=0.0, workers=2)
ARCHS = ["resnet18", "resnet34", "resnet50", "mobilenet_v2", "shufflenet_v2"]
PATHS = ["pmm", "lmm", "gmm"]
# Table 11: where GSCM and MTCM sit in a bottleneck (1x1 -> 3x3 -> 1x1). Slots: "input" (before the first 1x1, on
# the residual branch), "reduce" (after the first 1x1), "spatial" (after the 3x3), "output" (after the last 1x1).
POSITIONS = {"a": ("input", "input"), "b": ("reduce", "reduce"), "c": ("spatial", "spatial"),
             "d": ("output", "output"), "e": ("input", "reduce"), "f": ("input", "spatial"),
             "g": ("input", "output")}  # (GSCM slot, MTCM slot)


def arguments():
    """The paper's recipe, and its model in one group (cli.MODEL: the flags a checkpoint records); the flags no
    paper mentions come from common/cli.py."""
    p = cli.parser(__doc__)
    g = p.add_argument_group("recipe (Sec. 4.2 \"Implementation details\")")
    g.add_argument("--epochs", type=int, default=50, help="Sec. 4.2")
    g.add_argument("--batch-size", type=int, default=8, help="clips per step over all GPUs (Sec. 4.2)")
    g.add_argument("--lr", type=float, default=0.0025, help="for --batch-size 8 (Sec. 4.2); scale linearly")
    g.add_argument("--lr-steps", type=int, nargs="+", default=[30, 40, 45], help="epochs where lr x0.1 (Sec. 4.2)")
    g.add_argument("--weight-decay", type=float, default=1e-4, help="Sec. 4.2")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (Sec. 4.2)")
    g.add_argument("--dropout", type=float, default=0.5,
                   help="before the classifier (paper silent; TSN/TSM practice)")
    g.add_argument("--clip-grad", type=float, default=20.0, help="gradient-norm clipping (paper silent; TSM practice)")
    g.add_argument("--pretrained", default="imagenet", help="none | imagenet (IMAGENET1K_V1) | PATH")
    g.add_argument("--num-classes", type=int, default=174, help="when no dataset is given (SSv1/v2: 174)")
    g.add_argument("--test-clips", type=int, default=1, help="clips per video at test time (Sec. 4.2: 1)")
    g.add_argument("--test-crops", type=int, default=1, choices=[1, 3, 10], help="crops per clip (Sec. 4.2: 1)")
    m = p.add_argument_group(cli.MODEL)
    m.add_argument("--arch", default="resnet50", choices=ARCHS,
                   help="backbone (Sec. 4.2 ResNet-50; Table 12 MobileNetV2 / ShuffleNetV2 x2.0)")
    m.add_argument("--num-segments", type=int, default=8, help="T, segments per clip (Sec. 4.2: 8 or 16)")
    m.add_argument("--input-size", type=int, default=224)
    m.add_argument("--baseline", nargs="?", const="tsn", default=None, choices=["tsn", "tsm"],
                   help="all CAN modules off: TSN (Tables 7-10 '-'), or TSM (Table 12's baseline)")
    m.add_argument("--reduction", type=int, default=2, help="channel reduction r of MTCM/PMM/GMM (Sec. 4.2: 2)")
    m.add_argument("--mtcm-branches", type=int, default=3, help="N, MTCM branches with dilation 1..N (Table 7)")
    m.add_argument("--lmm-kernel", type=int, default=3, choices=[3, 5, 7], help="LMM kernel size (Table 8)")
    m.add_argument("--gscm-paths", nargs="+", default=PATHS, choices=PATHS,
                   help="GSCM paths kept; a dropped path's group passes unchanged (Table 9)")
    m.add_argument("--no-mtcm", action="store_true", help="GSCM only (Table 10 'GSCM')")
    m.add_argument("--no-gscm", action="store_true", help="MTCM only (Table 10 'MTCM')")
    m.add_argument("--order", default="gscm-mtcm", choices=["gscm-mtcm", "mtcm-gscm", "parallel"],
                   help="how GSCM and MTCM combine (Table 10)")
    m.add_argument("--position", default=None, choices=sorted(POSITIONS),
                   help="where in the block (Table 11); default c (ResNet), a (MobileNetV2/ShuffleNetV2, see gets_can)")
    return cli.add_shared_flags(p)


def get_args(argv=None):
    """The flags; a model switch the combination would not use stops here, before any work."""
    p = arguments()
    args, given = cli.parse(p, argv, SCRIPT, DEMO_PROFILE, baseline_has_no="CAN modules")
    args.position = args.position or ("c" if args.arch.startswith("resnet") else "a")  # Table 11 (c); see gets_can
    if args.no_mtcm and args.no_gscm:
        p.error("--no-mtcm with --no-gscm is the TSN baseline: use --baseline")
    if args.mtcm_branches < 1 or args.reduction < 1:
        p.error("--mtcm-branches and --reduction must be >= 1")
    if "order" in given and (args.no_mtcm or args.no_gscm):
        p.error(f"--order combines GSCM and MTCM: it has no effect with {'--no-mtcm' if args.no_mtcm else '--no-gscm'}")
    if "order" in given and POSITIONS[args.position][0] != POSITIONS[args.position][1]:
        p.error(f"--order has no effect at --position {args.position}: GSCM and MTCM sit at different places there "
                f"(Table 11: GSCM first)")
    if "mtcm_branches" in given and args.no_mtcm:
        p.error("--mtcm-branches has no effect with --no-mtcm")
    if "gscm_paths" in given and args.no_gscm:
        p.error("--gscm-paths has no effect with --no-gscm")
    if "lmm_kernel" in given and (args.no_gscm or "lmm" not in args.gscm_paths):
        p.error("--lmm-kernel has no effect without LMM (--no-gscm, or --gscm-paths without lmm)")
    if "reduction" in given and args.no_mtcm and not {"pmm", "gmm"} & set(args.gscm_paths):
        p.error("--reduction has no effect: neither MTCM nor PMM/GMM is built")
    return args


# ============================================================================================== paper modules
def temporal_difference(x):
    """x(t+1) - x(t) along dim 1 (T), with a zero difference for the last frame.  (B,T,...) -> (B,T,...)"""
    # Choice: the paper gives no value for the last frame (it has no t+1); zero, as in TEA's motion excitation.
    return F.pad(x[:, 1:] - x[:, :-1], [0, 0] * (x.dim() - 2) + [0, 1])


def zero_init_(conv):
    """Zero the last conv of an attention branch: sigma(0) = 1/2, so at step 0 every recalibration x*sigma+x is the
    same uniform gain 1.5 x (the (1 + sigma) design of Eq. 5, 8-10 cannot start as an exact identity). Kept when the
    backbone starts from pretrained weights; from scratch `he_init_` replaces it (Model)."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class MTCM(nn.Module):
    """Multi-scale Temporal Cue Module (Sec. 3.2, Eq. 3-5, Fig. 1).

    `channels`: C; `num_segments`: T; `reduction`: r (C -> C/r, Sec. 4.2: 2); `branches`: N, depthwise temporal convs
    Conv_i of kernel 3 and dilation i = 1..N (Table 7); `alpha`: the branch weights alpha_i, initialised to 1/N.
    Input and output (B*T, C, H, W).
    """

    def __init__(self, channels, num_segments, reduction=2, branches=3):
        super().__init__()
        self.T = num_segments
        hidden = channels // reduction
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=False)                      # 1x1x1, C -> C/r
        # Choice: dilation i on a kernel of 3 as the text says ("dilation rates ... range from 1 to N"), i.e. a
        # receptive field of 2i+1 frames; the text's "(2^i + 1)" agrees for i = 1, 2 only.
        self.branches = nn.ModuleList(
            nn.Conv3d(hidden, hidden, (3, 1, 1), padding=(i, 0, 0), dilation=(i, 1, 1), groups=hidden, bias=False)
            for i in range(1, branches + 1))
        self.alpha = nn.Parameter(torch.full((branches,), 1.0 / branches))
        # taps of the dilated kernel of Conv_i inside a (2N+1)-tap kernel: -i, 0, +i around the centre N
        self.register_buffer("taps", torch.tensor([[branches - i, branches, branches + i]
                                                   for i in range(1, branches + 1)]), persistent=False)
        # Choice: no BN/ReLU between the convs; Eq. (3)-(4) have none. The projection back carries a bias.
        self.expand = zero_init_(nn.Conv2d(hidden, channels, 1))                       # 1x1x1, C/r -> C

    def forward(self, g):
        BT, C, H, W = g.shape
        m_f = self.reduce(g)                                                          # M^f (B*T, C/r, H, W)
        m_f = m_f.view(BT // self.T, self.T, -1, H * W).transpose(1, 2)             # -> (B, C/r, T, H*W)
        # Eq. (3): M^m = sum_i Softmax(alpha)_i * Conv_i(M^f). The Conv_i are linear, so the weighted sum is ONE
        # depthwise temporal conv whose 2N+1 taps are the weighted sum of the dilated kernels (Conv_i at taps -i, 0,
        # +i): the same map, computed in one pass instead of N convs and N-1 sums (2N+1 instead of 3N MACs).
        weights = self.alpha.softmax(0)
        kernel = self.alpha.new_zeros(m_f.shape[1], 2 * len(self.branches) + 1)    # (C/r, 2N+1)
        for w, conv, taps in zip(weights, self.branches, self.taps):                 # N kernels, no data touched
            kernel = kernel.index_add(1, taps, w * conv.weight.flatten(1))           # (C/r,1,3,1,1) -> (C/r,3)
        m_m = F.conv2d(m_f, kernel[:, None, :, None], padding=(len(self.branches), 0), groups=kernel.shape[0])
        m_m = m_m.transpose(1, 2).reshape(BT, -1, H, W)                               # -> (B*T, C/r, H, W)
        # Eq. (4): M^s = sigma(Conv_1x1x1(M^m))
        m_s = torch.sigmoid(self.expand(m_m))
        # Eq. (5): M^o = M^s * G^o + G^o (one fused pass)
        return torch.addcmul(g, m_s, g)


class PMM(nn.Module):
    """Pointwise Motion Module (Sec. 3.3.2, Eq. 8, Fig. 2): per-pixel temporal-difference attention.

    `channels`: C/4 of one GSCM group; `reduction`: r (G_2^r has C/(4r) channels). Input/output (B*T, C/4, H, W).
    """

    def __init__(self, channels, num_segments, reduction=2):
        super().__init__()
        self.T = num_segments
        hidden = channels // reduction
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=False)                      # 1x1x1, C/4 -> C/4r
        # Choice: the 3x1x1 conv maps the concatenation (2 C/4r) back to C/4r and the 1x1x1 expands to C/4 (a
        # bottleneck as in MTCM). Tables 9/10 cannot fit every row: this width gives CAN 25.28M (paper 25.3M) and
        # PMM +0.26 GMACs (paper +0.28G) but PMM +0.20M (paper +0.30M); keeping 2 C/4r through the 3x1x1 would give
        # GSCM 24.31M (paper 24.31M) but CAN 25.59M and PMM +0.46G (every reading measured: PMM_GMM_READINGS).
        self.temporal = TemporalConv3d(2 * hidden, hidden, (3, 1, 1), padding=(1, 0, 0), bias=False)
        self.expand = zero_init_(nn.Conv2d(hidden, channels, 1))                       # 1x1x1, C/4r -> C/4

    def forward(self, f):
        BT, _, H, W = f.shape
        B = BT // self.T
        # Eq. (8): G_2^r = Conv_1x1x1(F_2); G_2^s = Concat(G_2^r; G_2^r(t+1) - G_2^r(t))
        g_r = self.reduce(f).view(B, self.T, -1, H, W)                                # G_2^r (B*T,c,H,W) -> (B,T,c,H,W)
        # the concatenation is written in (B, 2c, T, H, W) order, the layout the 3x1x1 conv reads
        g_s = torch.cat([g_r.transpose(1, 2), temporal_difference(g_r).transpose(1, 2)], dim=1)  # G_2^s (B,2c,T,H,W)
        g_s = self.temporal(g_s)                                                      # (B,2c,T,H,W) -> (B,c,T,H,W)
        g_s = g_s.transpose(1, 2).reshape(BT, -1, H, W)                               # -> (B*T, c, H, W)
        # Eq. (8): G_2^PMM = sigma(Conv_1x1x1(Conv_3x1x1(G_2^s))); G_2^o = G_2^PMM * F_2 + F_2
        attention = torch.sigmoid(self.expand(g_s))                                   # G_2^PMM
        return torch.addcmul(f, attention, f)


class LMM(nn.Module):
    """Local Motion Module (Sec. 3.3.3, Eq. 9, Fig. 2): a k x k x k conv on the channel-pooled map.

    `kernel`: k (Table 8: 3, 5, 7). Input/output (B*T, C/4, H, W).
    """

    def __init__(self, channels, num_segments, kernel=3):
        super().__init__()
        self.T = num_segments
        # Choice: ChannelPool = the channel mean (one map) and a cubic k x k x k kernel. Table 8's parameter steps
        # (3 -> 5 -> 7: +0.001M, +0.005M over 16 blocks) fit 1 x (5^3 - 3^3) x 16 = 1568 and 1 x (7^3 - 3^3) x 16
        # = 5056; a 3 x k x k kernel would add only 768 / 1920, two pooled maps (mean + max) 1536 / 3840 or more.
        self.conv = zero_init_(nn.Conv3d(1, 1, kernel, padding=kernel // 2))

    def forward(self, f):
        BT, _, H, W = f.shape
        # Eq. (9): G_3^pool = ChannelPool(F_3); G_3^LMM = sigma(Conv_3x3x3(G_3^pool)); G_3^o = G_3^LMM * F_3 + F_3
        pooled = f.mean(1).view(BT // self.T, 1, self.T, H, W)                        # G_3^pool (B*T,H,W) -> (B,1,T,H,W)
        attention = torch.sigmoid(self.conv(pooled))                                  # G_3^LMM (B, 1, T, H, W)
        attention = attention.transpose(1, 2).reshape(BT, 1, H, W)                   # -> (B*T, 1, H, W)
        return torch.addcmul(f, attention, f)


class GMM(nn.Module):
    """Global Motion Module (Sec. 3.3.4, Eq. 10, Fig. 2): temporal-difference attention on the pooled descriptor.

    `channels`: C/4 of one GSCM group; `reduction`: r. Input/output (B*T, C/4, H, W).
    """

    def __init__(self, channels, num_segments, reduction=2):
        super().__init__()
        self.T = num_segments
        hidden = channels // reduction
        self.reduce = nn.Conv1d(channels, hidden, 1, bias=False)                      # Conv_1, C/4 -> C/4r
        # Choice: the same widths as PMM (Table 9 lists PMM and GMM with equal parameters, 23.91M each).
        self.temporal = nn.Conv1d(2 * hidden, hidden, 3, padding=1, bias=False)        # Conv_3
        self.expand = zero_init_(nn.Conv1d(hidden, channels, 1))                       # Conv_1, back to C/4

    def forward(self, f):
        BT, C, H, W = f.shape
        # Eq. (10): G_4^r = Conv_1(SpatialPool(F_4)); G_4^c = Concat(G_4^r; G_4^r(t+1) - G_4^r(t))
        pooled = f.mean((2, 3)).view(BT // self.T, self.T, C).transpose(1, 2)        # SpatialPool (B*T,C) -> (B,C,T)
        g_r = self.reduce(pooled)                                                     # G_4^r (B, c, T)
        g_c = torch.cat([g_r, temporal_difference(g_r.transpose(1, 2)).transpose(1, 2)], dim=1)  # G_4^c (B, 2c, T)
        # Eq. (10): G_4^GMM = sigma(Conv_1(Conv_3(G_4^c))); G_4^o = G_4^GMM * F_4 + F_4
        attention = torch.sigmoid(self.expand(self.temporal(g_c)))                    # G_4^GMM (B, C, T)
        attention = attention.transpose(1, 2).reshape(BT, C, 1, 1)                   # (B,C,T) -> (B*T, C, 1, 1)
        return torch.addcmul(f, attention, f)


class GSCM(nn.Module):
    """Group Spatial Cue Module (Sec. 3.3, Eq. 6-7): identity | PMM | LMM | GMM on four channel groups.

    `paths`: the paths kept (Table 9); a dropped path leaves its group unchanged. Input/output (B*T, C, H, W).
    """

    def __init__(self, channels, num_segments, reduction=2, lmm_kernel=3, paths=PATHS):
        super().__init__()
        group = channels // 4
        # Choice: when C is not a multiple of 4 (ShuffleNetV2 x2.0: 122, 244, 488) the identity group takes the rest.
        self.sizes = [channels - 3 * group, group, group, group]
        self.pmm = PMM(group, num_segments, reduction) if "pmm" in paths else nn.Identity()
        self.lmm = LMM(group, num_segments, lmm_kernel) if "lmm" in paths else nn.Identity()
        self.gmm = GMM(group, num_segments, reduction) if "gmm" in paths else nn.Identity()

    def forward(self, f):
        f1, f2, f3, f4 = torch.split(f, self.sizes, dim=1)                           # (B*T,C,H,W) -> 4 x (B*T,C/4,H,W)
        # Eq. (6): G_1 = F_1, G_2 = PMM(F_2), G_3 = LMM(F_3), G_4 = GMM(F_4); Eq. (7): concatenation
        return torch.cat([f1, self.pmm(f2), self.lmm(f3), self.gmm(f4)], dim=1)       # -> (B*T, C, H, W)


class CANUnit(nn.Module):
    """GSCM and MTCM at one place of a block, combined as Table 10 orders them (Eq. 1-2 for "gscm-mtcm")."""

    def __init__(self, gscm=None, mtcm=None, order="gscm-mtcm"):
        super().__init__()
        self.gscm, self.mtcm, self.order = gscm, mtcm, order

    def forward(self, f):
        if self.gscm is None or self.mtcm is None:
            return (self.gscm or self.mtcm)(f)
        if self.order == "parallel":
            # Choice: "Paralleled" (Table 10) adds both modules' recalibrations to the one shared input.
            return self.gscm(f) + self.mtcm(f) - f
        if self.order == "mtcm-gscm":
            return self.gscm(self.mtcm(f))
        g_o = self.gscm(f)                                                            # Eq. (1): G^o = G(F)
        return self.mtcm(g_o)                                                         # Eq. (2): M^o = M(G^o)


# ================================================================================= backbone surgery and model
def build_backbone(arch, pretrained):
    """torchvision backbone without its classifier, and its feature width; `imagenet` = IMAGENET1K_V1 (a PATH is
    loaded by main() after the surgery: common.checkpoint.load_initial, by name and shape).

    Choice: Table 12's "ShuffleNet V2" is the x2.0 model: its TSM row (5.4M, 4.8G with 48 classes) matches x2.0
    (5.44M, 4.74 GMACs) and no other width (x1.0: 1.35M, 1.17G)."""
    net = checkpoint.torchvision_model("shufflenet_v2_x2_0" if arch == "shufflenet_v2" else arch, pretrained)
    if arch == "mobilenet_v2":
        net.classifier = nn.Identity()
        return net, net.last_channel
    width = net.fc.in_features
    net.fc = nn.Identity()
    return net, width


def block_slots(backbone, arch):
    """Every block of the backbone as (info, {slot: (channels, insert)}): insert(module) places `module` at the slot;
    info = {"stage": 1.. (MobileNetV2: 0), "index": the block's place in its stage from 0, "shortcut": whether the
    block adds an identity shortcut, "expand": whether it has a first 1x1 before its 3x3 (MobileNetV2's first block,
    t = 1, has none)}.

    ResNet bottleneck (Fig. 1): input = before conv1 (residual branch only), reduce = after conv1/bn1/relu,
    spatial = after conv2/bn2/relu (the 3x3), output = after bn3 (before the addition).
    Choice (ResNet-18/34 basic block, two 3x3s): reduce and spatial = between the two convs, output = after bn2.
    MobileNetV2 inverted residual (1x1 -> dw 3x3 -> 1x1) and ShuffleNetV2 branch2 (the same): the same slots around
    the depthwise 3x3.
    """
    def wrap(parent, name, before):
        old = getattr(parent, name)
        return lambda m: setattr(parent, name, nn.Sequential(m, old) if before else nn.Sequential(old, m))

    def wrap_at(seq, i, before):  # the same inside an nn.Sequential, by index
        return lambda m: seq.__setitem__(i, nn.Sequential(m, seq[i]) if before else nn.Sequential(seq[i], m))

    out = []
    if arch.startswith("resnet"):
        for stage, layer in enumerate((backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4), 1):
            for index, block in enumerate(layer):
                info = {"stage": stage, "index": index, "shortcut": True, "expand": True}
                if isinstance(block, torchvision.models.resnet.Bottleneck):
                    width = block.conv2.out_channels
                    out.append((info, {"input": (block.conv1.in_channels, wrap(block, "conv1", True)),
                                       "reduce": (width, wrap(block, "conv2", True)),
                                       "spatial": (width, wrap(block, "conv3", True)),
                                       "output": (block.bn3.num_features, wrap(block, "bn3", False))}))
                else:
                    width = block.conv1.out_channels
                    out.append((info, {"input": (block.conv1.in_channels, wrap(block, "conv1", True)),
                                       "reduce": (width, wrap(block, "conv2", True)),
                                       "spatial": (width, wrap(block, "conv2", True)),
                                       "output": (block.bn2.num_features, wrap(block, "bn2", False))}))
    elif arch == "mobilenet_v2":
        blocks = [b for b in backbone.features if isinstance(b, torchvision.models.mobilenetv2.InvertedResidual)]
        for index, block in enumerate(blocks):
            seq = block.conv  # [expand 1x1 (+bn, relu6), dw 3x3 (+bn, relu6), project 1x1, bn]; no expand if t=1
            dw = len(seq) - 3
            info = {"stage": 0, "index": index, "shortcut": block.use_res_connect, "expand": dw == 1}
            out.append((info, {"input": (seq[0][0].in_channels, wrap_at(seq, 0, True)),
                               "reduce": (seq[dw][0].in_channels, wrap_at(seq, dw, True)),
                               "spatial": (seq[dw][0].out_channels, wrap_at(seq, dw + 1, True)),
                               "output": (seq[dw + 2].num_features, wrap_at(seq, dw + 2, False))}))
    elif arch == "shufflenet_v2":
        for stage, layer in enumerate((backbone.stage2, backbone.stage3, backbone.stage4), 2):
            for index, block in enumerate(layer):
                seq = block.branch2  # [1x1, bn, relu, dw 3x3, bn, 1x1, bn, relu]; stride 1: half the channels
                info = {"stage": stage, "index": index, "shortcut": len(block.branch1) == 0,  # stride 1: the other
                        "expand": True}                                                         # half passes
                width = seq[3].out_channels
                out.append((info, {"input": (seq[0].in_channels, wrap_at(seq, 0, True)),
                                   "reduce": (width, wrap_at(seq, 3, True)),
                                   "spatial": (width, wrap_at(seq, 5, True)),
                                   "output": (seq[6].num_features, wrap_at(seq, 6, False))}))
    return out


def gets_can(arch, info):
    """Which blocks get CAN. ResNets: all 16 (Fig. 1).
    Choice (Table 12; the paper gives no placement for the light backbones, so its figures decide, counted as the
    paper counts them, thop: PAPER_TABLES; default position (a) there, get_args). On MobileNetV2 the modules sit
    at (a), before the first 1x1, in the 16 inverted residuals that have one (all but the first, t = 1): 2.46M,
    2.62 G as `--complexity` prints it, 2.83 G counted as thop (paper 2.5M, 2.8G). In all 17 blocks (a) gives 2.46M /
    2.96 G thop (the first block works at 112 x 112); in the 10 blocks with a shortcut, where TSM shifts, 2.40M /
    2.73 G; after the depthwise 3x3 at the expanded width, position (c), 8.25M / 7.75 G (`--position c`; 6.31M /
    6.41 G in the 10 shortcut blocks). On ShuffleNetV2 x2.0 they sit at (a) in the three downsampling units (on the
    input of branch2): 5.84M, 5.54 G (thop 5.66 G; paper 5.8M, 5.6G); the stride-1 units of stages 2-3 give 6.06M /
    5.86 G thop, all stride-1 units 7.00M / 6.19 G, the stride-1 units of stage 3 6.00M / 5.53 G."""
    if arch == "mobilenet_v2":
        return info["expand"]
    if arch == "shufflenet_v2":
        return not info["shortcut"]
    return True


def insert_can(backbone, args):
    """Put GSCM and MTCM into every block at the slots of `args.position` (Table 11; default (c): after the 3x3).
    Both in one slot form one CANUnit ordered by `args.order` (Table 10); in two slots GSCM comes first."""
    T = args.num_segments
    gscm_slot, mtcm_slot = POSITIONS[args.position]
    make_gscm = lambda c: None if args.no_gscm else GSCM(c, T, args.reduction, args.lmm_kernel, args.gscm_paths)
    make_mtcm = lambda c: None if args.no_mtcm else MTCM(c, T, args.reduction, args.mtcm_branches)
    for info, slots in block_slots(backbone, args.arch):
        if not gets_can(args.arch, info):
            continue
        if gscm_slot == mtcm_slot:
            channels, insert = slots[gscm_slot]
            insert(CANUnit(make_gscm(channels), make_mtcm(channels), args.order))
            continue
        for slot, make in ((gscm_slot, make_gscm), (mtcm_slot, make_mtcm)):
            channels, insert = slots[slot]
            module = make(channels)
            if module is not None:
                insert(module)
    return backbone


def insert_tsm(backbone, args):
    """TSM baseline (Table 12): the temporal shift on the residual-branch input ("blockres") of every block with an
    identity shortcut (TSM's own rule for ResNet and MobileNetV2; ShuffleNetV2: its stride-1 units)."""
    for info, slots in block_slots(backbone, args.arch):
        if info["shortcut"]:
            slots["input"][1](TemporalShift(args.num_segments))
    return backbone


def he_init_(backbone):
    """Re-initialise every conv inside the CAN modules of `backbone` as torchvision initialises ResNet's own convs
    (kaiming_normal_, fan_out, ReLU gain; biases zero), the zero-initialised last convs included.

    Choice (the paper is silent on initialisation; it fine-tunes ImageNet weights): from pretrained weights the last
    conv of every gate starts at zero (`zero_init_`: a uniform gain, the pretrained features keep their pattern);
    from scratch (`--pretrained none`) all convs of the modules get the backbone's He init, so the gates vary with
    the frames from step 0. Measured on the demo (docs/demo.md, the two-class probe): with zero-initialised gates,
    or PyTorch's default init (at step 0 its pre-sigmoid values have 1.2-34x smaller std than He's, depending on
    module and stage), CAN stayed on the TSN plateau for 12-60 epochs; with He init it learns the order-only
    classes."""
    for module in backbone.modules():
        if isinstance(module, (MTCM, PMM, LMM, GMM)):
            for conv in module.modules():
                if isinstance(conv, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
                    if conv.bias is not None:
                        nn.init.zeros_(conv.bias)
    return backbone


class Model(nn.Module):
    """TSN frame: a 2D backbone (with CAN, TSM or nothing inside) on every frame, a classifier, logits averaged over
    the T segments ("temporal consistency function (commonly average pooling)", Sec. 3.1)."""

    def __init__(self, args, num_classes):
        super().__init__()
        self.num_segments = args.num_segments
        self.backbone, width = build_backbone(args.arch, args.pretrained)
        if args.baseline == "tsm":
            insert_tsm(self.backbone, args)
        elif args.baseline is None:
            insert_can(self.backbone, args)
            if args.pretrained == "none":
                he_init_(self.backbone)
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
    """CAN (the paper's model), or the plain TSN / TSM baseline when --baseline is given."""
    return Model(args, num_classes)


# ======================================================================================================= data
# Choice (train crops, differs from the paper's text): Sec. 4.2 resizes every frame to short side 256 before the
# 224 crop; TrainTransform takes TSN's multi-scale crop (sides 1, .875, .75, .66 x the short side) from the frame as
# decoded and resizes the crop to --input-size. The two agree for frames stored at short side 256 (what
# `python -m common.prepare` advises); for other sizes the crop covers the same fraction of the frame but TSN's
# snapping of a side within 3 px of 224 (at short side 256) does not occur.
def frames_per_clip(args):
    return args.num_segments


def train_dataset(args, records, opts):
    """Sec. 4.2: T segments of the video, one random frame from each (TSN sampling); TSN's multi-scale crop and a
    horizontal flip (swapping the labels of dataset.json's direction pairs)."""
    return VideoDataset(
        records, lambda n, k, rng: segment_indices(n, args.num_segments, train=True, rng=rng),
        TrainTransform(args.input_size, flip=not args.no_flip, flip_labels=opts.flip_labels), **opts.frames)


def test_dataset(args, records, opts):
    """Sec. 4.2 test: --test-clips clips of T segments (the middle frame of each), each in --test-crops crops
    (the paper: 1 x 1 centre crop); unreadable videos are left out, never replaced."""
    return VideoDataset(
        records, lambda n, k, rng: segment_indices(n, args.num_segments, train=False, clip=k, num_clips=args.test_clips),
        EvalTransform.from_args(args, frames_per_clip(args)), num_clips=args.test_clips, skip_bad=True,
        **opts.frames)


def protocol(args):
    return (f"{args.num_segments} frames x {args.test_clips} clips x {args.test_crops} crops "
            f"({EvalTransform.from_args(args, frames_per_clip(args)).describe()})")


# ========================================================================================= train and evaluate
def param_groups(model, weight_decay):
    """Sec. 4.2 gives weight decay 1e-4 only; Choice: none on BatchNorm parameters and biases (TSM's policy)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def set_learning_rate(optimizer, args, epoch):
    """Sec. 4.2: lr x0.1 at each of --lr-steps (epochs 30, 40, 45 of 50). Returns it."""
    lr = args.lr * 0.1 ** sum(epoch >= s for s in args.lr_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def train_loss(model, clips, targets, args):
    """Cross-entropy of one (micro-)batch of clips (Sec. 4.2), and the extra terms to log (none here)."""
    return F.cross_entropy(model(clips).float(), targets), {}


def train_one_epoch(model, loader, optimizer, args, train):
    """One epoch of SGD (Sec. 4.2: momentum 0.9, lr 0.0025 for batch 8). `train` (common/training.py) resumes
    mid-epoch, counts unreadable samples, logs, writes checkpoints and stops on a signal or a non-finite loss."""
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
            nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)  # paper silent: TSM's 20
        optimizer.step()


def logits(model, clips):
    """uint8 clips (n, T, C, H, W) -> logits (n, K): what evaluation, --predict, --visualize and --export run."""
    return model(normalize(clips))


def evaluate(model, loader, args, device, bad):
    """The test of Sec. 4.2: each video's softmax probabilities averaged over its views (1 clip x 1 centre crop in
    the paper), as (Predictions, videos left out) of this rank (common/predict.py)."""
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
    optimizer = torch.optim.SGD(param_groups(model, args.weight_decay), lr=args.lr, momentum=args.momentum)  # Sec. 4.2
    with training.Training(args, SCRIPT, model, optimizer, classes, opts, device, world) as train:
        for epoch in train.epochs(train_loader):
            lr = set_learning_rate(optimizer, args, epoch)
            train_one_epoch(train.model, train_loader, optimizer, args, train)
            train.end_epoch(lr, metrics_of(*evaluate(train.model, val_loader, args, device, train.bad)))
    return train.finish(protocol(args))


# ================================================================= appendix: paper tables, visualisation maps
# ---- the paper's tables as data: `python -m common.paper_tables can` builds every row and prints it --------------
# Rows per common/paper_tables.py: the flags build the row with `python can.py --complexity FLAGS`; figures as
# printed. The paper counts FLOPs like thop (BN included: its TSN R50 is 33.05 G, thop's count of ours 33.05 G);
# `--complexity` counts conv+linear multiply-accumulates (TSN R50 32.70 G), so ours sit ~0.35 G (~1 %) below the
# paper at equal models, except in Table 12, whose light backbones are counted as the paper counts ("count": "thop"):
# there BN is 8 % of MobileNetV2's FLOPs, and the placement on the light backbones (gets_can) was chosen under it.
# Each `base` row gives the modules' increment; `increment_note` says, measured, why ours differs where it does.
D48 = "--num-classes 48"  # Diving48 (Tables 3, 6-12)
THOP = ("GFLOPs counted as the paper counts them, as thop does (BatchNorm at 4 operations per output element, "
        "common/complexity.py THOP_OPS); `--complexity` prints conv+linear MACs, {macs} G")
ONE_CAN_FIGURE = ("the paper prints one CAN figure, 25.3M, whatever the head (Tables 2, 4, 6, 10, 12): over Table "
                  "10's TSN (23.6M, 48 classes) it adds 1.7M, over Table 2's (23.9M, 174 classes) 1.4M, for the same "
                  "modules; ours add 1.68M with any head")
# Measured readings of PMM/GMM (Eq. 8, 10), increments over TSN R50 (params / GFLOPs, PMM alone; GMM's GFLOPs < 0.01)
PMM_GMM_READINGS = (
    "no width of Eq. (8)/(10) gives Table 9's parameters with its FLOPs and Table 10's CAN: PMM's convs all work per "
    "pixel at stride 1, so over these 16 blocks 1M of its weights cost 1.31 G, and the paper's +0.30M would cost "
    "+0.39 G, its +0.28 G needs +0.21M; and GSCM +0.70M with MTCM +1.3M (Tables 7, 10, Sec. 4.6.1) make 2.0M where "
    "CAN adds 1.7M. Measured, PMM alone: the 3x1x1 2C/4r -> C/4r then 1x1x1 -> C/4 (ours) +0.197M / +0.257 G "
    "(CAN +1.67M / +1.94 G); the 3x1x1 keeping 2C/4r (or going straight to C/4) +0.355M / +0.462 G (+18 % / +65 %; "
    "All paths +0.71M / +0.47 G, CAN +1.99M / +2.15 G); the 3x1x1 grouped by appearance and difference +0.237M / "
    "+0.308 G (-21 % / +10 %); depthwise +0.122M / +0.162 G; C/r of Eq. (8) read as half the block's C (2x the "
    "group) +2.20M / +2.88 G. GMM has PMM's widths (Table 9 gives both 23.91M): +0.197M, +0.355M, +0.237M, +0.122M. "
    "Ours keeps every FLOPs figure and CAN's total")
LMM_READINGS = (
    "Table 8 prints the same model (3x3, 79.2 / 98.2 in both) as 23.617M, +0.011M over TSN, and its steps (5x5 "
    "+0.001M, 7x7 +0.005M) fit one pooled map and a k x k x k kernel (ours: +1568, +5056 weights over 16 blocks); "
    "Table 9's 23.72M is 10x Table 8's increment. Measured at k = 3 / 5 / 7: the channel mean, 1 -> 1 (ours) "
    "+0.0004M / +0.0020M / +0.0055M; mean and max maps +0.0009M / +0.0040M / +0.0110M; one map to C/4 attention "
    "maps +0.026M / +0.119M / +0.325M (steps 60-100x Table 8's); mean and max to C/4 +0.052M / +0.237M / +0.649M: "
    "none with Table 8's steps reaches +0.11M")
HEADLINE = "protocol: {T} frames x 1 clip x 1 crop (224 x 224 centre crop of the short side 256, Sec. 4.2)"
POSITION_COST = ("the paper gives no cost for Table 11; here {what} on the block {where} (256-2048 channels, 4x "
                 "the width of the 3x3's 64-512), which the params/GFLOPs beside this row show")
PAPER_TABLES = [
    *[row for data, tsn, tsm8, tsm16, can8, can16 in (
        ("SSv1", (19.7,), (45.6, 74.2), (47.3, 77.1), (50.4, 78.2), (53.9, 82.0)),
        ("SSv2", (33.4,), (58.8, 85.4), (61.2, 86.9), (63.9, 89.1), (64.4, 89.7)))
      for row in (
        {"table": "Table 2", "row": f"TSN 8f ({data})", "flags": "--baseline", "params_m": 23.9, "gflops": 33,
         "top1": tsn[0], "note": ""},
        {"table": "Table 2", "row": f"TSM 8f ({data})", "flags": "--baseline tsm", "params_m": 24.3, "gflops": 33,
         "top1": tsm8[0], "top5": tsm8[1],
         "note": "24.3M is TSM's own figure with a 400-class head; with 174 classes the network has 23.87M"},
        {"table": "Table 2", "row": f"TSM 16f ({data})", "flags": "--baseline tsm --num-segments 16", "params_m": 24.3,
         "gflops": 65, "top1": tsm16[0], "top5": tsm16[1], "note": "24.3M: TSM's 400-class figure, as above"},
        {"table": "Table 2", "row": f"CAN 8f ({data})", "flags": "", "params_m": 25.3, "gflops": 35,
         "top1": can8[0], "top5": can8[1], "note": HEADLINE.format(T=8), "base": f"TSN 8f ({data})",
         "increment_note": ONE_CAN_FIGURE},
        {"table": "Table 2", "row": f"CAN 16f ({data})", "flags": "--num-segments 16", "params_m": 25.3, "gflops": 70,
         "top1": can16[0], "top5": can16[1], "note": HEADLINE.format(T=16), "base": f"TSM 16f ({data})",
         "increment_note": "TSM's 24.3M / 65G are TSM's own figures (a 400-class head; MACs, ours 65.40 G), CAN's "
                           "25.3M / 70G the paper's (one figure for every head; thop, ours 69.29 G MACs, 70.0 G as "
                           "thop counts): the difference spans two heads and two counts; ours counts both alike, "
                           "+1.68M / +3.89 G (twice the 8f row's +1.94 G)"})],
    {"table": "Table 3", "row": "TSN from [14] (ResNet50, 16f)", "flags": f"--baseline --num-segments 16 {D48}",
     "top1": 78.9, "note": "quoted from GC-TSN [14]; its protocol may differ"},
    {"table": "Table 3", "row": "TSM from [14] (ResNet50, 16f)", "flags": f"--baseline tsm --num-segments 16 {D48}",
     "top1": 83.2, "note": "quoted from GC-TSN [14]; its protocol may differ"},
    {"table": "Table 3", "row": "CAN (Ours) 16f", "flags": f"--num-segments 16 {D48}", "top1": 88.4,
     "note": HEADLINE.format(T=16)},
    {"table": "Table 4", "row": "TSM 16f", "flags": "--baseline tsm --num-segments 16 --num-classes 400",
     "params_m": 24.3, "top1": 74.7, "top5": 91.4, "note": "30 clips (TSM's own protocol, quoted)"},
    {"table": "Table 4", "row": "CAN (Ours) 16f", "flags": "--num-segments 16 --num-classes 400", "params_m": 25.3,
     "top1": 74.9, "top5": 91.8,
     "note": "protocol: 16 frames x 10 clips (crops not stated); the paper prints its 174-class 25.3M here, "
             "ours counts the 400-class head", "base": "TSM 16f",
     "increment_note": "beside TSM's 400-class 24.3M the paper's 25.3M is its figure for smaller heads (Table 2: "
                       "174 classes); with 400 classes the modules' 1.7M (Table 10) would make 26.0M; ours +1.68M"},
    {"table": "Table 5", "row": "TSN", "flags": "--baseline --num-classes 101", "top1": 85.7,
     "note": "UCF101, mean over 3 splits; frames and protocol not given (8 frames here)"},
    {"table": "Table 5", "row": "TSM", "flags": "--baseline tsm --num-classes 101", "top1": 83.2,
     "note": "UCF101, mean over 3 splits; frames and protocol not given (8 frames here)"},
    {"table": "Table 5", "row": "CAN (Ours)", "flags": "--num-classes 101", "top1": 86.9,
     "note": "UCF101, mean over 3 splits; frames and protocol not given (8 frames here)"},
    {"table": "Table 6", "row": "GSCM (Ours)", "flags": f"--no-mtcm {D48}", "params_m": 24.3, "gflops": 33.3,
     "note": "paper: 24 ms, 49 videos/s on an RTX 4070 Ti (`--benchmark` times ours)"},
    {"table": "Table 6", "row": "MTCM (Ours)", "flags": f"--no-gscm {D48}", "params_m": 24.9, "gflops": 34.8,
     "note": "paper: 16 ms, 80 videos/s on an RTX 4070 Ti"},
    {"table": "Table 6", "row": "CAN (Ours)", "flags": D48, "params_m": 25.3, "gflops": 35.1,
     "note": "paper: 32 ms, 37 videos/s on an RTX 4070 Ti"},
    {"table": "Table 7", "row": "-", "flags": f"--baseline {D48}", "params_m": 23.6, "gflops": 33.1, "top1": 72.7,
     "top5": 97.1, "note": "TSN R50"},
    *[{"table": "Table 7", "row": f"N = {n}", "flags": f"--no-gscm --mtcm-branches {n} {D48}", "params_m": 24.9,
       "gflops": gflops, "top1": top1, "top5": top5, "base": "-",
       "note": "MTCM alone (= Table 10 'MTCM' at N = 3); N adds 3 x C/r weights per block and branch"
               if n == 3 else "MTCM alone"}
      for n, gflops, top1, top5 in ((1, 34.8, 78.8, 97.5), (2, 34.8, 79.6, 97.8), (3, 34.8, 81.0, 98.2),
                                    (4, 34.9, 80.1, 98.0), (5, 34.9, 78.5, 97.8))],
    *[{"table": "Table 8", "row": f"{k}x{k}", "flags": f"--no-mtcm --gscm-paths lmm --lmm-kernel {k} {D48}",
       "params_m": params, "gflops": 33.06, "top1": top1, "top5": top5, "base": "Table 9: -",
       "note": "GSCM with the LMM path alone, a k x k x k conv (LMM's Choice)"
               + (" (= Table 9 'LMM', printed there as 23.72M)" if k == 3 else "")}
      for k, params, top1, top5 in ((3, 23.617, 79.2, 98.2), (5, 23.618, 75.7, 96.8), (7, 23.622, 79.1, 97.5))],
    {"table": "Table 9", "row": "-", "flags": f"--baseline {D48}", "params_m": 23.61, "gflops": 33.05,
     "top1": 72.7, "top5": 97.1, "note": "TSN R50"},
    *[{"table": "Table 9", "row": name, "flags": f"--no-mtcm --gscm-paths {name.lower()} {D48}", "params_m": params,
       "gflops": gflops, "top1": top1, "top5": top5, "note": "GSCM with one path; the other groups pass unchanged",
       "base": "-", "increment_note": why}
      for name, params, gflops, top1, top5, why in (
          ("PMM", 23.91, 33.33, 78.9, 98.0, PMM_GMM_READINGS), ("LMM", 23.72, 33.06, 79.2, 98.2, LMM_READINGS),
          ("GMM", 23.91, 33.06, 78.8, 98.0, PMM_GMM_READINGS))],
    {"table": "Table 9", "row": "All paths", "flags": f"--no-mtcm {D48}", "params_m": 24.31, "gflops": 33.34,
     "top1": 80.1, "top5": 98.2, "note": "= Table 10 'GSCM'", "base": "-",
     "increment_note": "the sum of its paths, see the PMM, LMM and GMM rows; the widths that give +0.70M (PMM "
                       "and GMM +0.355M each) cost +0.47 G (paper +0.29 G) and make CAN +1.99M (Table 10: +1.7M)"},
    {"table": "Table 10", "row": "-", "flags": f"--baseline {D48}", "params_m": 23.6, "gflops": 33.1, "top1": 72.7,
     "top5": 97.1, "note": "TSN R50"},
    {"table": "Table 10", "row": "GSCM", "flags": f"--no-mtcm {D48}", "params_m": 24.3, "gflops": 33.3,
     "top1": 80.1, "top5": 98.2, "note": "", "base": "-",
     "increment_note": "GFLOPs: Table 10's one decimal gives 0.2 G (33.3 - 33.1), Table 9 prints the same model as "
                       "33.34 - 33.05 = 0.29 G (ours +0.26 G, within 0.05 G of it); params: = Table 9 'All "
                       "paths', see its PMM and GMM rows"},
    {"table": "Table 10", "row": "MTCM", "flags": f"--no-gscm {D48}", "params_m": 24.9, "gflops": 34.8,
     "top1": 81.0, "top5": 98.2, "note": "", "base": "-"},
    {"table": "Table 10", "row": "Paralleled", "flags": f"--order parallel {D48}", "params_m": 25.3, "gflops": 35.1,
     "top1": 81.8, "top5": 97.4, "note": "both recalibrations of the one input summed (CANUnit's Choice)", "base": "-"},
    {"table": "Table 10", "row": "MTCM + GSCM", "flags": f"--order mtcm-gscm {D48}", "params_m": 25.3,
     "gflops": 35.1, "top1": 82.1, "top5": 98.1, "note": "", "base": "-"},
    {"table": "Table 10", "row": "GSCM + MTCM", "flags": D48, "params_m": 25.3, "gflops": 35.1, "top1": 82.7,
     "top5": 98.3, "note": HEADLINE.format(T=8) + ", Diving48 val", "base": "-"},
    *[{"table": "Table 11", "row": f"({pos})", "flags": f"--position {pos} {D48}", "top1": top1, "top5": top5,
       "note": note}
      for pos, top1, top5, note in (
          ("a", 78.7, 97.4, POSITION_COST.format(what="GSCM and MTCM work", where="input")),
          ("b", 80.5, 97.6, "both after the first 1x1 (the 3x3's width, like (c))"),
          ("c", 82.7, 98.3, "the default (= Table 10 'GSCM + MTCM')"),
          ("d", 81.1, 97.2, POSITION_COST.format(what="GSCM and MTCM work", where="output")),
          ("e", 80.8, 98.1, POSITION_COST.format(what="GSCM works", where="input") + "; MTCM after the first 1x1"),
          ("f", 81.4, 98.2, POSITION_COST.format(what="GSCM works", where="input") + "; MTCM after the 3x3"),
          ("g", 80.0, 97.8, POSITION_COST.format(what="GSCM works", where="input") + "; MTCM on its output, as wide"))],
    {"table": "Table 12", "row": "MobileNet V2, TSM", "flags": f"--arch mobilenet_v2 --baseline tsm {D48}",
     "params_m": 2.3, "gflops": 2.6, "top1": 74.6, "top5": 97.1, "count": "thop", "note": THOP.format(macs="2.40")},
    {"table": "Table 12", "row": "MobileNet V2, CAN (Ours)", "flags": f"--arch mobilenet_v2 {D48}", "params_m": 2.5,
     "gflops": 2.8, "top1": 77.7, "top5": 97.4, "count": "thop", "base": "MobileNet V2, TSM",
     "note": "placement not given: position (a) in the 16 inverted residuals with a first 1x1 (gets_can's Choice); "
             + THOP.format(macs="2.62")},
    {"table": "Table 12", "row": "ShuffleNet V2, TSM", "flags": f"--arch shufflenet_v2 --baseline tsm {D48}",
     "params_m": 5.4, "gflops": 4.8, "top1": 76.9, "top5": 96.9, "count": "thop",
     "note": "ShuffleNetV2 x2.0 (build_backbone's Choice); " + THOP.format(macs="4.65")},
    {"table": "Table 12", "row": "ShuffleNet V2, CAN (Ours)", "flags": f"--arch shufflenet_v2 {D48}",
     "params_m": 5.8, "gflops": 5.6, "top1": 77.9, "top5": 97.1, "count": "thop", "base": "ShuffleNet V2, TSM",
     "note": "placement not given: position (a) in the three downsampling units (gets_can's Choice); "
             + THOP.format(macs="5.54"),
     "increment_note": "the paper's one-decimal totals leave its increment between 0.7 and 0.9 G (5.55-5.65 minus "
                       "4.75-4.85); ours, 5.66 G in all, is 1.1 % over its 5.6 G; the placement is fitted (gets_can: "
                       "the stride-1 units of stages 2-3 give +0.61M / +1.09 G, those of stage 3 +0.55M / +0.76 G, "
                       "every stride-1 unit +1.56M / +1.42 G)"},
    {"table": "Table 12", "row": "ResNet-50, TSM", "flags": f"--baseline tsm {D48}", "params_m": 23.6,
     "gflops": 33.1, "top1": 77.1, "top5": 97.4, "count": "thop", "note": THOP.format(macs="32.70")},
    {"table": "Table 12", "row": "ResNet-50, CAN (Ours)", "flags": D48, "params_m": 25.3, "gflops": 35.1,
     "top1": 82.7, "top5": 98.3, "count": "thop", "base": "ResNet-50, TSM", "note": THOP.format(macs="34.64")},
]


# ---- what `--predict ... --visualize DIR` draws (common/visualize.py: "Class.attr" specs) -------------------------
VIS_CAM = {"mobilenet_v2": "backbone.features", "shufflenet_v2": "backbone.conv5"}  # the last stage; ResNets: layer4
VIS_MAPS = {  # the attention of the last block; each gate is the sigmoid of its last conv's output
    "MTCM attention M^s (Eq. 4)": dict(at="MTCM.expand", get=lambda m, x, out: out.sigmoid(), kind="heat",
                                      note="sigma(Conv(M^m)), mean over channels"),
    "GSCM: PMM attention G_2^PMM (Eq. 8)": dict(at="PMM.expand", get=lambda m, x, out: out.sigmoid(), kind="heat",
                                               note="per pixel, mean over the C/4 channels"),
    "GSCM: LMM attention G_3^LMM (Eq. 9)": dict(at="LMM.conv", get=lambda m, x, out: out.sigmoid(), kind="heat",
                                               layout="BCT", note="one map per frame"),
    "GSCM: GMM attention G_4^GMM (Eq. 10)": dict(at="GMM.expand", get=lambda m, x, out: out.sigmoid(),
                                                kind="temporal", note="per channel and frame"),
}


def visualization(args, model):
    return {"cam": VIS_CAM.get(args.arch, "backbone.layer4"),
            "maps": VIS_MAPS}


if __name__ == "__main__":
    main()
