"""EAN: Event Adaptive Network for Enhanced Action Recognition.

Yuan Tian, Yichao Yan, Guangtao Zhai, Guodong Guo, Zhiyong Gao. IJCV 2022 (arXiv 2107.10771).
Paper: https://arxiv.org/abs/2107.10771   Official code: https://github.com/tianyuan168326/EAN-Pytorch

Idea: a 2D ResNet-50 (TEA's motion excitation and a shift-initialised temporal conv before every 3x3 conv) gets
  * EABs, Event Adaptive Blocks (Sec. 3.1, Eq. 1-3, Fig. 3), after stages 1-4: a video-adaptive spatio-temporal kernel
    from grouped spatial convs (1x1, 3x3, dilated 3x3), a per-video channel fusion matrix M predicted by a small 3D
    net (ESP-Net), grouped temporal convs (1, 3, dilated 3) and a max-pool branch;
  * SOI-Tr, Sparse Object Interaction Transformer (Sec. 3.2, Eq. 4-6, Fig. 4), after stage 5: N=4 saliency-weighted
    object features per frame, related by a 2-block BatchNorm Transformer;
  * LMC, Latent Motion Code (Sec. 3.3, Eq. 7-12, Fig. 5): the RGB differences of 5-frame snippets encoded into a
    7x7x128 latent map, reasoned on with grouped 3D convs and decoded onto the stem features.
This file implements Eq. 1-13, Figs. 3-5, the switches of Tables 5-10, the TSN baseline, the 16F+8F ensembles and
(appendix) the official release's structure (`--variant official`) and checkpoints.

Run:  python ean.py --data DIR [--no-lmc]     (EAN_RGB+LMC, 8x5 frames, the paper's best 8F model; EAN_RGB, 8 frames)
      python ean.py --data DIR --test-clips 10 --test-crops 3 --test-size 256   (Kinetics, Table 2); --baseline: TSN
      python ean.py --evaluate --checkpoint Somethingv1.RGB_LMC_8f.pth.tar --data DIR    (the released weights)
      python ean.py --complexity [--no-lmc]        python ean.py    (the demo dataset, a CPU profile)

Expected results: every row of the paper's tables is a command (PAPER_TABLES, appendix; `python -m common.paper_tables
ean` builds and prints them all, with notes). Table 1 (SSv1, 1 clip x 1 centre crop of 224, the defaults; params with
174 classes; FLOPs = multiply-accumulates incl. matmuls), as `... ean --brief --table "Table 1"` prints it (tested):

ean.py, Table 1:

| row | flags (python ean.py --complexity FLAGS) | params (M): paper / ours | GFLOPs: paper / ours | paper accuracy (%) |
|---|---|---|---|---|
| EAN8F(RGB) | `--no-lmc` | 35.98 | 36 / 35.76 (-0.7 %) | top-1 51.9, top-5 79.5 |
| EAN16F(RGB) | `--no-lmc --num-segments 16` | 36.18 | 72 / 71.53 (-0.7 %) | top-1 53.4, top-5 81.4 |
| EANEn(RGB) | `--no-lmc --num-segments 16` + `--no-lmc` | 72.16 | 108 / 107.29 (-0.7 %) | top-1 55.8, top-5 83.1 |
| EAN8F(RGB+LMC) | (none) | 36.56 | 37 / 36.67 (-0.9 %) | top-1 53.4, top-5 81.1 |
| EAN16F(RGB+LMC) | `--num-segments 16` | 36.76 | 74 / 73.35 (-0.9 %) | top-1 54.7, top-5 82.3 |
| EANEn(RGB+LMC) | `--num-segments 16` + (none) | 73.32 | 111 / 110.02 (-0.9 %) | top-1 57.2, top-5 83.9 |

Accuracy not measured at full scale (no GPU, no datasets here). Demo (`python ean.py` vs `--baseline`, no --data, 2-core
CPU, resnet18 64 px, 12 epochs; order-only classes, chance 25 %): EAN 100.0 %, TSN 24.0 % val top-1 (docs/demo.md).
"""
# ==================================================================================================== imports
import math
import re
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import checkpoint, cli, modes, run, training
from common.data import VideoDataset
from common.layers import TemporalConv3d
from common.predict import metrics_of, video_scores
from common.sampling import segment_indices
from common.transforms import EvalTransform, TrainTransform, normalize

SCRIPT = "ean"

# ================================================================================================== arguments
# Without --data: the CPU-sized demo profile (CONVENTIONS.md; typed flags win): smaller backbone, frames, schedule.
DEMO_PROFILE = dict(arch="resnet18", pretrained="none", input_size=64, epochs=12, batch_size=16, lr=0.02,
                    lr_steps=[8, 11], weight_decay=5e-4, dropout=0.0, workers=2)
EAB_FLAGS = ["eab_kernels", "eab_pool", "no_inter_relu", "no_dilation", "eab_conv"]  # the EAB ablations (Tables 8, 10)


def arguments():
    """The paper's recipe (Sec. 4), its model in one group (cli.MODEL, what a checkpoint records); the rest: cli."""
    p = cli.parser(__doc__)
    g = p.add_argument_group("recipe (Sec. 4 \"Implementation Detail\")")
    g.add_argument("--epochs", type=int, default=70, help="'about 70' epochs in total (Sec. 4)")
    g.add_argument("--batch-size", type=int, default=64, help="clips per step over all GPUs (Sec. 4)")
    g.add_argument("--lr", type=float, default=0.01, help="for --batch-size 64; scale linearly (Sec. 4)")
    g.add_argument("--lr-steps", type=int, nargs="+", default=[40, 50, 60], help="lr x0.1 at these epochs (Sec. 4)")
    g.add_argument("--weight-decay", type=float, default=5e-4, help="5e-4 Something/Diving48, 1e-4 Kinetics (Sec. 4)")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (Sec. 4; TDN's settings)")
    g.add_argument("--dropout", type=float, default=0.5, help="before the classifier (Sec. 4)")
    g.add_argument("--clip-grad", type=float, default=20.0, help="gradient-norm clipping (TDN's, Sec. 4 fn. 2)")
    g.add_argument("--pretrained", default="imagenet", help="none | imagenet (IMAGENET1K_V1) | PATH (ResNet weights of "
                   "torchvision/TSN/TSM/mmaction2 layout, or the EAN release for --variant official)")
    g.add_argument("--num-classes", type=int, default=174, help="when no dataset is given (SSv1/v2: 174)")
    g.add_argument("--test-clips", type=int, default=1, help="clips per video (Table 1: 1, Table 2: 10, Table 4: 2)")
    g.add_argument("--test-crops", type=int, default=1, choices=[1, 3, 10],
                   help="crops per clip at test time (1 centre crop: Tables 1, 4; 3: Table 2)")
    m = p.add_argument_group(cli.MODEL)
    m.add_argument("--arch", default="resnet50", choices=["resnet18", "resnet34", "resnet50"], help="Sec. 4: ResNet-50")
    m.add_argument("--num-segments", type=int, default=8, help="T, segments per clip (8F/16F, Table 1)")
    m.add_argument("--input-size", type=int, default=224, help="crop size (Sec. 4)")
    m.add_argument("--baseline", nargs="?", const="tsn", default=None, choices=["tsn"], help="all paper modules off: "
                   "TSN (Table 5's 'ResNet baseline', with ME and temporal convs, is --no-eab --no-soi --no-lmc)")
    m.add_argument("--variant", default="paper", choices=["paper", "official"], help="official: the released "
                   "structure and init (EAN_8f.py; EAN_16f.py with --num-segments 16; appendix) the releases load into")
    m.add_argument("--no-eab", action="store_true", help="no Event Adaptive Blocks (Table 5 'ResNet+SOI-Tr')")
    m.add_argument("--no-soi", action="store_true", help="no SOI-Tr (Table 5 'ResNet+EABs'; Table 7 'None')")
    m.add_argument("--no-lmc", action="store_true", help="no Latent Motion Code: the EAN_RGB model (Fig. 5a, Table 5)")
    m.add_argument("--eab-stages", type=int, nargs="*", default=[1, 2, 3, 4], choices=[1, 2, 3, 4, 5],
                   help="EAB after these stages (1 = conv1 stem, 2-5 = res2-res5; Table 6 best: 1-4)")
    m.add_argument("--soi-stages", type=int, nargs="*", default=[5], choices=[3, 4, 5],
                   help="SOI-Tr after these stages (Table 6 best: 5)")
    m.add_argument("--eab-fusion", default="dynamic", choices=["dynamic", "static", "shuffle", "identity"], help="EAB's"
                   " M (Table 9): ESP-Net (dynamic), a learnt matrix (static), channel shuffle, identity = Incep-Block")
    m.add_argument("--soi-regions", default="saliency", choices=["saliency", "fixed", "all"],
                   help="object regions of SOI-Tr: Saliency-Net, 4 fixed quadrants, all positions (Table 7)")
    m.add_argument("--num-objects", type=int, default=4, help="N, object maps per frame (Sec. 3.2)")
    m.add_argument("--snippet", type=int, default=5, help="frames per segment for LMC (Sec. 3.3)")
    m.add_argument("--rgb-frame", default="centre", choices=["centre", "first"],
                   help="snippet frame fed to the RGB stream with LMC (Eq. 12 says first; official code: centre)")
    m.add_argument("--eab-kernels", default="multi-scale", choices=["multi-scale", "s-block", "l-block"], help="the 3 "
                   "groups' kernels: 1/3/5 (EAB), 3x3x3 (S-Block), 3x3x3 dilated 2 (L-Block; + --eab-fusion identity)")
    m.add_argument("--eab-pool", default="max", choices=["max", "avg", "none"], help="EAB's pool (Table 10)")
    m.add_argument("--no-inter-relu", action="store_true", help="no ReLU between the EAB's convs (Table 10)")
    m.add_argument("--no-dilation", action="store_true", help="the EAB's dilated 3x3 / 3 kernels as 5x5 / 5 (Table 10)")
    m.add_argument("--eab-conv", default="2+1d", choices=["2+1d", "1+1+1d"],
                   help="1+1+1d: each 2D spatial conv of the EAB as two stacked 1D convs (Table 10 '(1+1+1)D')")
    return cli.add_shared_flags(p)


def get_args(argv=None):
    """The flags; a model switch the combination would ignore stops here with one line, before any work."""
    p = arguments()
    args, given = cli.parse(p, argv, SCRIPT, DEMO_PROFILE, baseline_has_no="EAN modules", release_args=release_args)
    adopted = args.resume or args.checkpoint or (args.ensemble or [None])[0]
    if adopted and is_official_checkpoint(checkpoint.load(adopted), adopted):  # its test protocol unless given
        vars(args).update({k: v for k, v in OFFICIAL_TEST_PROTOCOL.items() if k not in given})
    if args.finetune:  # loads by name and shape; a file with only part of the release's own tensors stops
        is_official_checkpoint(checkpoint.load(args.finetune), args.finetune)
    changed = {k for k in cli.model_keys(p) if getattr(args, k) != p.get_default(k)}  # typed or adopted
    for keys, off, why in [(["eab_stages", "eab_fusion", *EAB_FLAGS], args.no_eab or not args.eab_stages,
                            "EABs (" + ("--no-eab" if args.no_eab else "--eab-stages with none") + ")"),
                           (["soi_stages", "soi_regions", "num_objects"], args.no_soi or not args.soi_stages,
                            "SOI-Tr (" + ("--no-soi" if args.no_soi else "--soi-stages with none") + ")"),
                           (["snippet", "rgb_frame"], args.no_lmc, "LMC (--no-lmc)")]:
        for k in keys:  # (an empty --eab-stages / --soi-stages is itself the way to say none)
            if off and k in changed and not (k.endswith("_stages") and not getattr(args, k)):
                p.error(f"{cli.option(k)} is ignored without {why}")
    if "num_objects" in changed and args.soi_regions != "saliency":
        p.error(f"--num-objects is the Saliency-Net's N; --soi-regions {args.soi_regions} ignores it")
    if not (args.no_lmc or args.baseline) and (args.snippet < 2 or 64 % (args.snippet - 1)):
        p.error(f"LMC stacks the snippet's L-1 difference maps on the stem's 64 channels: --snippet L needs L-1 to "
                f"divide 64 (2, 3, 5, 9, 17, 33, 65), got {args.snippet}")
    if "no_dilation" in changed and args.eab_kernels == "s-block":
        p.error("--no-dilation is ignored by --eab-kernels s-block (no dilated kernel)")
    if args.variant == "official" and (ablation := next((k for k in EAB_FLAGS if k in changed), None)):
        p.error(f"{cli.option(ablation)} is a paper-variant ablation; --variant official builds the release's EAB")
    if args.variant == "official" and not args.no_lmc and args.snippet != 5:
        p.error("--variant official: the release's LMC stacks 4 differences (--snippet 5)")
    if not args.no_lmc and not args.baseline and args.input_size % 32:
        p.error(f"LMC cuts frames into 32x32 patches: --input-size must be a multiple of 32 (got {args.input_size})")
    args.eab_stages, args.soi_stages = [] if args.no_eab else args.eab_stages, [] if args.no_soi else args.soi_stages
    return args


# ============================================================================================== paper modules
# Shapes: B videos, T segments, C channels, H, W; 2D backbone features are (B*T, C, H, W), the 3D modules (EAB,
# SOI-Tr) see (B, C, T, H, W). L = frames per snippet (5), D = L-1 RGB differences, N objects per frame.
class FrameConv3d(nn.Conv3d):
    """nn.Conv3d of kernel (1, k, k) (one frame), applied to the frames (B*T, C, H, W) as the equivalent Conv2d: the
    same parameters and results, and no (B, C, T, H, W) transpose of its input or output."""
    def forward(self, x):
        return F.conv2d(x, self.weight.squeeze(2), self.bias, self.stride[1:], self.padding[1:], self.dilation[1:],
                        self.groups)


class FramePool3d(nn.Module):
    """MaxPool3d / AvgPool3d(3, 1, 1) of the frames (B*T, C, H, W) of T-frame clips (EAB's "Max:3", Fig. 3a): a 3x3
    pool per frame, then over t-1, t, t+1 (separable; tested), channels-last, where CPU max_pool2d vectorises."""
    def __init__(self, num_segments, mode="max"):
        super().__init__()
        self.num_segments, self.mode = num_segments, mode

    def forward(self, x):
        BT, C, H, W = x.shape
        pool = F.max_pool2d if self.mode == "max" else F.avg_pool2d
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        y = pool(x.contiguous(memory_format=torch.channels_last), 3, 1, 1)          # (B*T,C,H,W), memory (B*T,H,W,C)
        y = y.permute(0, 2, 3, 1).reshape(-1, self.num_segments, 1, H * W * C)     # -> (B, T, 1, HWC), a view
        y = pool(y.permute(0, 3, 1, 2), (3, 1), 1, (1, 0))                          # (B,HWC,T,1): pool of 3 frames
        y = y.permute(0, 2, 3, 1).reshape(BT, H, W, C).permute(0, 3, 1, 2)         # -> (B*T, C, H, W), a view
        return y.contiguous(memory_format=layout)                                   # in the input's layout


class ME(nn.Module):
    """Motion excitation of TEA (used as is by EAN, Sec. 4 "Implementation Detail"), official-code form. `channels`:
    C; `reduction`: r=16; `num_segments`: T. X_r = BN(conv1x1(X)) (C/r); D(t) = dwconv3x3(X_r(t+1)) - X_r(t), zero
    for the last frame; A = sigmoid(BN(conv1x1(GAP(D)))) - 0.5; out = X + X * A."""
    def __init__(self, channels, num_segments, reduction=16):
        super().__init__()
        c, self.num_segments = channels // reduction, num_segments
        self.reduce = nn.Sequential(nn.Conv2d(channels, c, 1, bias=False), nn.BatchNorm2d(c))
        self.transform = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.expand = nn.Sequential(nn.Conv2d(c, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x):
        T = self.num_segments
        r = self.reduce(x)                                              # (B*T, c, H, W)
        nxt = self.transform(r).unflatten(0, (-1, T))[:, 1:]            # (B*T,c,H,W) -> (B,T,c,H,W) -> t+1 frames
        diff = nxt - r.unflatten(0, (-1, T))[:, :-1]                    # (B, T-1, c, H, W)
        diff = F.pad(diff, (0, 0, 0, 0, 0, 0, 0, 1))                    # (B, T, c, H, W), zero for the last frame
        a = diff.mean((3, 4), keepdim=True).flatten(0, 1)               # (B,T,c,1,1) -> (B*T, c, 1, 1)
        a = torch.sigmoid(self.expand(a)) - 0.5                         # (B*T, C, 1, 1)
        return torch.addcmul(x, x, a)                                   # x + x * a in one pass


class TemporalConv(nn.Module):
    """Depthwise temporal convolution of kernel 3 initialised as a temporal shift (Sec. 4 "Implementation Detail";
    TSM init as in the official code): 1/8 of the channels read t+1, 1/8 read t-1, the rest are identity."""
    def __init__(self, channels, num_segments, fold_div=8):
        super().__init__()
        self.num_segments = num_segments
        self.conv = TemporalConv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0), groups=channels, bias=False)
        fold, w = channels // fold_div, self.conv.weight.data.zero_()   # (C, 1, 3, 1, 1)
        w[:fold, 0, 2] = 1                  # out[t] = x[t+1]
        w[fold:2 * fold, 0, 0] = 1          # out[t] = x[t-1]
        w[2 * fold:, 0, 1] = 1              # out[t] = x[t]

    def forward(self, x):
        x = x.unflatten(0, (-1, self.num_segments)).transpose(1, 2)     # (B*T,C,H,W) -> (B,C,T,H,W)
        return self.conv(x).transpose(1, 2).flatten(0, 1)               # (B,C,T,H,W) -> (B*T,C,H,W)


class ESPNet(nn.Module):
    """Event Scale Perceiving Network, Eq. (3), Fig. 3(b): M = ESP-Net(X), M in R^{Cr x Cr}. `channels`: Cr, the
    EAB's compressed width; 1x1x1 conv reducing 16x (p = Cr/16), two 5x5x5 stride-2 3D convs (no biases), BN+ReLU
    after each, average pooling over (T,H,W), a linear layer reshaped to the Cr x Cr matrix M."""
    def __init__(self, channels, reduction=16, variant="paper"):
        super().__init__()
        # Choice: p = Cr/16 (the compressed channels), the 5x5x5 convs widen to 2p, 4p (official, not in the paper):
        # EABs 1-4 hold 5.8M, 4.9M in the linears 4p -> Cr^2 (Table 5: +5.5M; constant widths ~1.9M, X^l's C >20M).
        p, self.channels = max(1, channels // reduction), channels
        self.reduce = nn.Sequential(TemporalConv3d(channels, p, 1, bias=False), nn.BatchNorm3d(p),
                                    nn.ReLU(inplace=True))
        if variant == "paper":
            self.context = nn.Sequential(*[m for cin, cout in [(p, 2 * p), (2 * p, 4 * p)] for m in (
                nn.Conv3d(cin, cout, 5, stride=2, padding=2, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))])
        else:  # differs from the paper (--variant official): six 3x3x3 convs WITH biases, + BN + ReLU, padding 2 at s2
            widths = [(p, p, 1), (p, p, 1), (p, 2 * p, 2), (2 * p, 2 * p, 1), (2 * p, 2 * p, 1), (2 * p, 4 * p, 2)]
            self.context = nn.Sequential(*[m for cin, cout, s in widths for m in (
                nn.Conv3d(cin, cout, 3, s, padding=s), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))])
        self.fc = nn.Linear(4 * p, channels * channels)
        if variant == "paper":  # Choice: M unnormalised (as the paper); its bias starts at the identity: at init the
            # Incep-Block (M = I, Table 9) plus a video-dependent term (the release: PyTorch's default init)
            self.fc.bias.data.copy_(torch.eye(channels).flatten())

    def forward(self, x):
        s = self.context(self.reduce(x)).mean((2, 3, 4))                # (B, 4p) average pooling
        return self.fc(s).view(-1, self.channels, self.channels)        # (B, Cr*Cr) -> (B, Cr, Cr) = M[b, out, in]


# (kernel, dilation) of the spatial (k x k) and temporal (k) convs of the G = 3 groups (Table 8). Choice: S-/L-Block
# keep the rest of the EAB (4x bottleneck, BN+ReLU, max-pool branch; M with --eab-fusion identity): the paper describes
# only their convs, and Incep-Block, "the L-Block enhanced with multi-scale modeling", differs from the EAB by M only.
EAB_KERNELS = {"multi-scale": [(1, 1), (3, 1), (3, 2)],  # EAB and Incep-Block: 1, 3, 3 dilated 2 (field 5)
               "s-block": [(3, 1)] * 3,                  # S-Block: a (2+1)D 3x3x3 conv in 3 groups
               "l-block": [(3, 2)] * 3}                  # L-Block: the same, dilated 2x2x2 (field 5x5x5)


class EAB(nn.Module):
    """Event Adaptive Block, Sec. 3.1, Eq. (1)-(3), Fig. 3(a): Z = X + Y with
        Y = U_i { M (x) U_j X_j * F_s^(2j-1) }_i * F_t^(2i-1)                                   (Eq. 2);
    `channels`: C; `reduction`: the 4x bottleneck (Cr = C/4); G = 3 groups: spatial kernels 1x1, 3x3, 3x3 dilated 2
    (field 5), temporal 1, 3, 3 dilated 2, the kernel-1 members 1x1x1 convs; `fusion`: how M is made (Table 9). A
    max-pool branch (3x3x3 max, 1x1x1 conv) beside the convs; expand zero-initialised: EAB starts as the identity (Sec.
    3.1 "Implementation of EAB"). Ablations (Tables 8, 10; --eab-* flags): `kernels` (EAB_KERNELS), `pool` max | avg |
    none, `inter_relu`, `dilation` False: the dilated 3x3 / 3 become 5x5 / 5, `conv` "1+1+1d": every k x k spatial
    conv as a k x 1 then a 1 x k. `variant` "official": EAB_rfs555.py's block (temporal convs first, identity kernel-1
    members, its ESP-Net, expand at 0.01 x PyTorch's default init)."""
    def __init__(self, channels, num_segments, reduction=4, groups=3, fusion="dynamic", variant="paper",
                 kernels="multi-scale", pool="max", inter_relu=True, dilation=True, conv="2+1d"):
        super().__init__()
        cr = channels // reduction
        # Choice: Cr/3 is no integer (16, 64, 128, 256): the first G-1 groups get Cr//G channels, the last the rest
        # (as the official code); X_j = X[j*c:(j+1)*c] of Eq. (2)
        self.splits = [cr // groups] * (groups - 1) + [cr - (groups - 1) * (cr // groups)]
        self.num_segments, self.fusion = num_segments, fusion
        self.temporal_first, self.inter_relu = variant == "official", inter_relu
        sizes = [(5, 1) if (k, d) == (3, 2) and not dilation else (k, d) for k, d in EAB_KERNELS[kernels]]
        # Choice: compress/expand are grouped (g=4) 1x1x1 convs (official). Table 6's "EAB after stages 1-5" row is
        # 65.8M: grouped gives 66.5M, dense 1x1x1 convs ~68.6M (and 0.5M more for stages 1-4).
        self.compress = FrameConv3d(channels, cr, 1, groups=4, bias=False)
        self.spatial = nn.ModuleList(self.spatial_conv(c, k, d, conv, variant)
                                     for c, (k, d) in zip(self.splits, sizes))   # F_s^(1), F_s^(3), F_s^(5) dilated
        self.bn = nn.BatchNorm3d(cr)  # "The spatial convolutions are followed by BN and ReLU"
        # Choice: without the inter ReLU (Table 10) the BN stays: the paper names only the ReLU
        self.temporal = nn.ModuleList(
            nn.Identity() if k == 1 and variant == "official" else
            TemporalConv3d(c, c, (k, 1, 1), padding=(d * (k // 2), 0, 0), dilation=(d, 1, 1), bias=False)
            for c, (k, d) in zip(self.splits, sizes))                            # F_t^(1), F_t^(3), F_t^(5) dilated
        # "Max:3" branch (Avg: Table 10; Choice: zero padding counted, PyTorch's default); "none" drops the pool, not
        # its 1x1x1 conv: Table 10's "Without Max Pool" costs 36.0M / 36.1G as the EAB (no branch: -0.09M / -0.31G)
        self.pool = nn.Sequential(FramePool3d(num_segments, pool) if pool != "none" else nn.Identity(),
                                  FrameConv3d(cr, cr, 1, bias=False))
        self.expand = FrameConv3d(cr, channels, 1, groups=4, bias=False)
        # zero (paper); differs from the paper: 0.01 x PyTorch's default init, so the block starts NEAR the identity
        self.expand.weight.data.mul_(0.0 if variant == "paper" else 0.01)
        if fusion == "dynamic":
            self.esp = ESPNet(cr, variant=variant)
        elif fusion == "static":  # "a learnable matrix during training, fixed during inference" (Table 9)
            self.matrix = nn.Parameter(torch.eye(cr))
        elif fusion == "shuffle":  # channel shuffle across the G groups (Table 9): interleave the groups
            starts = [sum(self.splits[:j]) for j in range(len(self.splits))]
            order = [s + k for k in range(max(self.splits)) for s, n in zip(starts, self.splits) if k < n]
            self.register_buffer("perm", torch.tensor(order), persistent=False)

    @staticmethod
    def spatial_conv(c, k, d, conv, variant):
        if k == 1 and variant == "official":
            return nn.Identity()          # differs from the paper's F_s^(1) (a 1x1 conv): the release's identity
        pad = d * (k // 2)
        if conv == "1+1+1d" and k > 1:    # Table 10 "(1+1+1)D"; Choice: the two 1D convs with nothing between them
            return nn.Sequential(FrameConv3d(c, c, (1, k, 1), padding=(0, pad, 0), dilation=(1, d, 1), bias=False),
                                 FrameConv3d(c, c, (1, 1, k), padding=(0, 0, pad), dilation=(1, 1, d), bias=False))
        return FrameConv3d(c, c, (1, k, k), padding=(0, pad, pad), dilation=(1, d, d), bias=False)

    def fuse(self, x, context):
        """M (x) x: the channel-only matrix product of Eq. (2) for each video; x, context (B, Cr, T, H, W)."""
        if self.fusion == "identity":
            return x
        if self.fusion == "shuffle":
            return x.index_select(1, self.perm)
        B, C = x.shape[:2]
        M = self.esp(context) if self.fusion == "dynamic" else self.matrix.expand(B, C, C)  # Eq. (3): (B, Cr, Cr)
        y = torch.matmul(M[:, None], x.transpose(1, 2).flatten(3))     # (B,1,Cr,Cr) @ (B,T,Cr,H*W) -> (B,T,Cr,HW)
        return y.view(B, -1, C, *x.shape[3:]).transpose(1, 2)           # -> (B, Cr, T, H, W)

    def forward(self, x):
        B, T = x.shape[0] // self.num_segments, self.num_segments
        to_3d = lambda f: f.unflatten(0, (B, T)).transpose(1, 2)        # (B*T,c,H,W) -> (B,c,T,H,W), a view
        # Choice (speed only): all of Eq. (2) but the temporal convs acts on single frames and runs on (B*T, C, H, W)
        # (FrameConv3d, FramePool3d: same weights, same results); only the temporal convs' Cr-wide tensors transpose.
        z = self.compress(x)                                            # (B*T, Cr, H, W)
        if self.temporal_first:  # the release: temporal convs -> BN+ReLU -> M -> spatial convs
            t = torch.cat([conv(part) for conv, part in zip(self.temporal, to_3d(z).split(self.splits, 1))], 1)
            t = self.bn(t)                                              # (B, Cr, T, H, W)
            t = self.fuse(F.relu(t) if self.inter_relu else t, to_3d(z))     # M (x) ...: (B, Cr, T, H, W)
            t = t.transpose(1, 2).flatten(0, 1)                         # -> (B*T, Cr, H, W)
            y = torch.cat([conv(part) for conv, part in zip(self.spatial, t.split(self.splits, 1))], 1)
            y = y.unflatten(0, (B, T))                                  # (B*T,Cr,H,W) -> (B,T,Cr,H,W)
        else:                    # Eq. (2): spatial convs -> BN+ReLU -> M -> temporal convs
            s = torch.cat([conv(part) for conv, part in zip(self.spatial, z.split(self.splits, 1))], 1)  # U_j X_j * F_s
            s = self.bn(s.unsqueeze(2))                                 # BN3d over (B*T,Cr,1,H,W): same statistics
            s = (F.relu(s) if self.inter_relu else s).squeeze(2)
            s = self.fuse(to_3d(s), to_3d(z))                           # M (x) ...: (B, Cr, T, H, W)
            y = torch.cat([conv(part) for conv, part in zip(self.temporal, s.split(self.splits, 1))], 1)  # Eq. (2)
            y = y.transpose(1, 2)                                       # (B,Cr,T,H,W) -> (B,T,Cr,H,W)
        y = self.pool(z).unflatten(0, (B, T)) + y                       # (B*T,Cr,H,W) -> (B,T,Cr,H,W)
        return x + self.expand(y.flatten(0, 1))                         # Z = X + Y, (B*T, C, H, W)


class TokenBN(nn.BatchNorm1d):
    """BatchNorm over the feature dim of tokens (B, n, d): the Transformer's norm (Sec. 3.2, following [44])."""
    def forward(self, x):
        return super().forward(x.flatten(0, 1)).view_as(x)             # (B,n,d) -> (B*n,d) -> (B,n,d)


class Attention(nn.Module):
    """Multi-head QKV self-attention over the object tokens (Sec. 3.2 "Transformer")."""
    def __init__(self, dim, heads, dim_head=64):
        super().__init__()
        self.heads, self.scale = heads, dim_head ** -0.5
        self.qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.out = nn.Linear(heads * dim_head, dim)

    def forward(self, x):
        B, n, _ = x.shape
        q, k, v = self.qkv(x).view(B, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # (B,n,3hd) -> 3 x (B,h,n,d)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(-1)       # (B, h, n, n)
        out = (attn @ v).transpose(1, 2).flatten(2)                     # (B,h,n,d) -> (B,n,h*d)
        return self.out(out)


class TransformerBlock(nn.Module):
    """x = x + Attn(BN(x)); x = x + FFN(BN(x)) (pre-norm, BatchNorm instead of LayerNorm, no class token)."""
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.attn, self.norm2 = TokenBN(dim), Attention(dim, heads), TokenBN(dim)
        # Choice: FFN = three dim-wide linears with BN+ReLU (official; the paper does not describe the FFN).
        self.ffn = nn.Sequential(nn.Linear(dim, dim), TokenBN(dim), nn.ReLU(inplace=True),
                                 nn.Linear(dim, dim), TokenBN(dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class SaliencyNet(nn.Module):
    """Eq. (4): O = Saliency-Net(X5), O in R^{N x T x W x H}: four layers (1x1x1 reducing 8x, 3x1x1 for moving
    objects, 1x5x5 for context, 1x1x1 to N maps), then a spatial softmax per object and frame (cost: Table 7's
    note). `variant` "official", differs: SOI_Tr.py's score_predictor, all convs with a bias, ReLU THEN BN."""
    def __init__(self, channels, num_objects, reduction=8, variant="paper"):
        super().__init__()
        if variant == "paper":
            c = channels // reduction
            # Choice: BN+ReLU after each of the first three layers (the paper names only the kernels).
            self.layers = nn.Sequential(
                nn.Conv3d(channels, c, 1, bias=False), nn.BatchNorm3d(c), nn.ReLU(inplace=True),
                nn.Conv3d(c, c, (3, 1, 1), padding=(1, 0, 0), bias=False), nn.BatchNorm3d(c), nn.ReLU(inplace=True),
                nn.Conv3d(c, c, (1, 5, 5), padding=(0, 2, 2), bias=False), nn.BatchNorm3d(c), nn.ReLU(inplace=True),
                nn.Conv3d(c, num_objects, 1))
        else:
            c = channels // 4                                           # 1x1x1 512 -> 128, 3x3x3, 1x3x3, 1x3x3 -> N
            self.layers = nn.Sequential(
                nn.Conv3d(channels, c, 1), nn.ReLU(inplace=True), nn.BatchNorm3d(c),
                nn.Conv3d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm3d(c),
                nn.Conv3d(c, c, (1, 3, 3), padding=(0, 1, 1)), nn.ReLU(inplace=True), nn.BatchNorm3d(c),
                nn.Conv3d(c, num_objects, (1, 3, 3), padding=(0, 1, 1)))

    def forward(self, x):
        o = self.layers(x)                                              # (B, N, T, H, W)
        return o.flatten(3).softmax(-1).view_as(o)                      # spatial softmax over H*W


def resize_pos(pos, size):
    """The positional embedding E (1, d, T, H, W) at another (T, H, W), to test at another size (3 crops of 256 from a
    224 model: X5 8x8, not 7x7); E itself at its size (the interpolation is the identity then too, tested). Choice:
    trilinear (align_corners=False), as timm resamples ViT's (bicubic, 2D); paper and release test at one size."""
    if tuple(pos.shape[2:]) == tuple(size):
        return pos
    return F.interpolate(pos, size=tuple(size), mode="trilinear", align_corners=False)


class SOITr(nn.Module):
    """Sparse Object Interaction Transformer, Sec. 3.2, Eq. (4)-(6), Fig. 4. `channels`: C of the stage output X5;
    `reduction`: the bottleneck factor 4 (d = C/4 token width: 2048 -> 512); `size`: (T, H, W) of X5 for the
    positional embedding E; `num_objects`: N, so N*T tokens; `regions`: where the N regions come from (Table 7);
    `depth`: 2 blocks of d/64 heads of 64 (8 at d = 512; official, the paper gives no sizes). Output: X + v, v =
    W_o mean(F') at every (T,H,W), so GAP(out) = GAP(X5) + v as the paper's, and SOI-Tr can also follow stages 3/4
    (Table 6); W_o starts at zero: SOI-Tr starts as the identity. `variant` "official": the release's Saliency-Net,
    v = BN(W_o mean(F')), that BatchNorm1d (its Tr_BN) at gamma = beta = 0, W_o default-init (batch 1 cannot train)."""
    def __init__(self, channels, size, num_objects=4, regions="saliency", reduction=4, depth=2, variant="paper"):
        super().__init__()
        d = channels // reduction
        self.size, self.regions = size, regions
        self.squeeze = nn.Conv3d(channels, d, 1, bias=False)
        if regions == "saliency":
            self.saliency = SaliencyNet(d, num_objects, variant=variant)
        elif regions == "fixed":  # N fixed regions: the 2x2 quadrants (overlapping by one cell when H, W are odd)
            self.register_buffer("fixed", self.quadrants(size), persistent=False)
        # Choice: N(0,1) init of E (official; the paper says only "learnable").
        self.pos = nn.Parameter(torch.randn(1, d, *size))              # E_t for every frame t: (1, d, T, H, W)
        self.blocks = nn.Sequential(*[TransformerBlock(d, max(1, d // 64)) for _ in range(depth)])
        self.proj = nn.Linear(d, channels, bias=False)
        self.proj_bn = nn.BatchNorm1d(channels) if variant != "paper" else None  # the release's Tr_BN
        # Choice: a zero-initialised W_o alone (the release: default-init W_o, then the zero Tr_BN): batch 1 trains
        for zero in [self.proj.weight] if self.proj_bn is None else [self.proj_bn.weight, self.proj_bn.bias]:
            nn.init.zeros_(zero)

    @staticmethod
    def quadrants(size):
        T, H, W = size
        masks = torch.zeros(4, T, H, W)
        for n, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            masks[n, :, i * H // 2:-(-(i + 1) * H // 2), j * W // 2:-(-(j + 1) * W // 2)] = 1
        return masks / masks.sum((2, 3), keepdim=True)                 # (N, T, H, W), each sums to 1 per frame

    def forward(self, x):
        T, B = self.size[0], x.shape[0] // self.size[0]
        x3 = x.unflatten(0, (B, T)).transpose(1, 2)                     # (B*T,C,H,W) -> (B,C,T,H,W)
        f = self.squeeze(x3)                                            # (B, d, T, H, W)
        pos = resize_pos(self.pos, f.shape[2:])                         # other input sizes: E interpolated
        if self.regions == "all":  # every position is a token (Table 7 "All")
            tokens = (f + pos).flatten(2).transpose(1, 2)              # (B,d,T*H*W) -> (B, T*H*W, d)
        else:
            if self.regions == "saliency":
                o = self.saliency(f)                                    # Eq. (4): (B, N, T, H, W)
            else:                                                       # the quadrants of this input's size
                fixed = self.fixed if self.fixed.shape[1:] == f.shape[2:] else self.quadrants(f.shape[2:]).to(f)
                o = fixed.expand(B, -1, -1, -1, -1)
            # Eq. (5): F(n,t) = SSUM((E_t + X_t) . O(n,t))
            tokens = torch.einsum("bcthw,bnthw->bntc", f + pos, o).flatten(1, 2)  # (B,N,T,d) -> (B, N*T, d)
        tokens = self.blocks(tokens)                                    # Eq. (6): F' = Transformer(F)
        v = self.proj(tokens.mean(1))                                   # (B, C) interaction feature
        v = v if self.proj_bn is None else self.proj_bn(v)
        return x + v.repeat_interleave(T, 0)[:, :, None, None]          # (B,C) -> (B*T,C,1,1), broadcast over H,W


class ResidualUnit(nn.Sequential):
    """x + layers(x): the residual units of the official LMC's H_m."""
    def forward(self, x):
        return x + super().forward(x)


class LMC(nn.Module):
    """Latent Motion Code, Sec. 3.3, Eq. (7)-(11), Fig. 5(c). Input: snippets (B, T, L, 3, H, W), L = 5. d_t[i] =
    S_t[i] - S_t[i-1] at full resolution (Eq. 7); H_e: one linear layer on every 3x32x32 patch -> 128 (Eq. 8); H_m:
    two 3D convs of kernel 3 and 16 groups over (D, H/32, W/32) (Eq. 9); H_d: a linear layer 128 -> 16x8x8 per patch
    (Eq. 10); the D=4 maps stacked along channels, difference-major (Eq. 11): m_t (B*T, 64, H/4, W/4), the stem
    output's size (Eq. 12). Other frame sizes: see forward. `variant` "official-8f" / "official-16f" (EAN_8f.py /
    EAN_16f.py), each unlike the paper: differences after a 2x nearest downsampling (x[::2, ::2]) in 16x16 patches
    (32x32 at full resolution) -> 256-d, no bias in encoder and decoder; H_m two residual units (grouped 3x3x3 conv,
    BN, ReLU, a DENSE 1x1x1 conv, BN; grouped 3x3x3 conv, BN); channels c*4 + t (t = difference), not Eq. (11)'s
    t*16 + c; decoder 0.01 x PyTorch's default init. 16f: a deeper encoder (patch linear, BN, ReLU, 1x1 256 -> 256)
    and decoder (1x1 at 0.01 x default, BN, ReLU, patch linear at default init), a 2D branch on the 4 downsampled
    differences stacked as 12 channels (c*4+t), the stem mixed 0.6 stem + 0.2 LMC + 0.2 branch (`stem_weight`)."""
    def __init__(self, patch=32, latent=128, groups=16, out_channels=64, snippet=5, variant="paper"):
        super().__init__()
        self.diffs, c = snippet - 1, out_channels // (snippet - 1)      # D, 16 channels per difference
        self.patch, self.downsample, self.diff_major, self.stem_weight, self.stacked = patch, 1, True, 1.0, None
        if variant == "paper":
            # H_e and H_d as convolutions with kernel = stride = patch size: the same linear map on every patch.
            self.encode = nn.Conv2d(3, latent, patch, stride=patch)
            # Choice: BN+ReLU between and BN after the two grouped convs (the paper names only kernel and groups).
            self.motion = nn.Sequential(
                nn.Conv3d(latent, latent, 3, padding=1, groups=groups, bias=False), nn.BatchNorm3d(latent),
                nn.ReLU(inplace=True),
                nn.Conv3d(latent, latent, 3, padding=1, groups=groups, bias=False), nn.BatchNorm3d(latent))
            self.decode = nn.ConvTranspose2d(latent, c, patch // 4, stride=patch // 4)
            # Choice: zero-init decoder, so EAN_RGB+LMC starts as EAN_RGB (official: 0.01 x default init).
            nn.init.zeros_(self.decode.weight)
            nn.init.zeros_(self.decode.bias)
        else:
            self.downsample, self.diff_major, latent, sixteen = 2, False, 256, variant == "official-16f"
            enc = nn.Conv2d(3, latent, patch // 2, stride=patch // 2, bias=False)      # 16x16 patches, half size
            self.encode = nn.Sequential(enc, nn.BatchNorm2d(latent), nn.ReLU(inplace=True),
                                        nn.Conv2d(latent, latent, 1, bias=False)) if sixteen else enc
            self.motion = nn.Sequential(
                ResidualUnit(nn.Conv3d(latent, latent, 3, padding=1, groups=groups, bias=False), nn.BatchNorm3d(latent),
                             nn.ReLU(inplace=True), nn.Conv3d(latent, latent, 1, bias=False), nn.BatchNorm3d(latent)),
                ResidualUnit(nn.Conv3d(latent, latent, 3, padding=1, groups=groups, bias=False),
                             nn.BatchNorm3d(latent)))
            dec = nn.ConvTranspose2d(latent, c, patch // 4, stride=patch // 4, bias=False)
            # the release's 1x1x1 conv latent -> 16*8*8: PyTorch's default U(+-1/sqrt(latent)), not ConvTranspose2d's
            nn.init.uniform_(dec.weight, -latent ** -0.5, latent ** -0.5)
            self.decode = nn.Sequential(nn.Conv2d(latent, latent, 1, bias=False), nn.BatchNorm2d(latent),
                                        nn.ReLU(inplace=True), dec) if sixteen else dec
            (self.decode[0] if sixteen else dec).weight.data.mul_(0.01)  # 16f: its patch linear at default init
            if sixteen:
                self.stacked = nn.Sequential(
                    nn.Conv2d(3 * self.diffs, 24, 3, 2, 1, bias=False), nn.ReLU(inplace=True), nn.BatchNorm2d(24),
                    nn.Conv2d(24, out_channels, 3, 1, 1, groups=4, bias=False), nn.ReLU(inplace=True),
                    nn.BatchNorm2d(out_channels), nn.Conv2d(out_channels, out_channels, 1),
                    nn.Conv2d(out_channels, out_channels, 3, 1, 1, groups=16, bias=False))
                self.stem_weight = 0.6

    def forward(self, x):
        B, T, L, _, H, W = x.shape
        if self.downsample > 1:  # official: F.upsample(scale_factor=0.5), nearest: the even rows and columns
            x = x[..., ::self.downsample, ::self.downsample]            # (B, T, L, 3, H/2, W/2)
        d = (x[:, :, 1:] - x[:, :, :-1]).flatten(0, 2)                  # Eq. (7): (B,T,D,3,h,w) -> (B*T*D,3,h,w)
        # Choice: a frame size that is not a multiple of the 32-px patch (testing at another size) pads the
        # differences with zeros (no motion) at the bottom and right; the decoded map is cropped to the stem's size.
        p = self.patch // self.downsample
        pad_h, pad_w = -d.shape[-2] % p, -d.shape[-1] % p
        v = self.encode(F.pad(d, (0, pad_w, 0, pad_h)) if pad_h or pad_w else d)  # Eq. (8): (B*T*D,latent,H/32,W/32)
        v = v.unflatten(0, (B * T, self.diffs)).transpose(1, 2)         # -> (B*T, latent, D, H/32, W/32)
        c = self.motion(v)                                              # Eq. (9)
        m = self.decode(c.transpose(1, 2).flatten(0, 1))                # Eq. (10): (B*T*D, 16, H/4, W/4)
        if pad_h or pad_w:
            stem_h, stem_w = -(-H // 4), -(-W // 4)                      # the stem output's ceil(H/4) x ceil(W/4)
            m = m[..., :stem_h, :stem_w]                                # (B*T*D, 16, stem_h, stem_w)
        m = m.unflatten(0, (B * T, self.diffs))                         # (B*T*D,16,h,w) -> (B*T,D,16,h,w)
        if self.diff_major:
            return m.flatten(1, 2)                                      # Eq. (11): channel t*16 + c, (B*T,64,h,w)
        m = m.transpose(1, 2).flatten(1, 2)                             # official: channel c*4 + t, (B*T,64,h,w)
        if self.stacked is not None:                                    # official 16f: the stacked-difference branch
            s = d.unflatten(0, (B * T, self.diffs)).transpose(1, 2).flatten(1, 2)  # (B*T,D,3,h,w) -> (B*T,3D,h,w)
            m = 0.2 * m + 0.2 * self.stacked(s)                         # + 0.6 x stem in EAN.forward
        return m


# ================================================================================= backbone surgery and model
def build_resnet(arch, pretrained):
    """torchvision ResNet without its classifier; `imagenet` = IMAGENET1K_V1 (the weights the papers used). A
    --pretrained PATH loads after the surgery: by name and shape in main() (checkpoint.load_initial), or by EAN."""
    net = checkpoint.torchvision_model(arch, pretrained)
    net.fc = nn.Identity()
    return net


STAGES = ["layer1", "layer2", "layer3", "layer4"]  # paper stages 2-5; stage 1 is conv1 (+ max-pool)


def stage_shapes(arch, input_size, num_segments):
    """(channels, (T, H, W)) of the output of paper stages 1-5 (torchvision rounding: ceil at every stride 2)."""
    channels = [64] + [64 * 2 ** i * (4 if arch == "resnet50" else 1) for i in range(4)]
    s = -(-input_size // 4)                                             # the stem's output, after the max-pool
    return [(c, (num_segments, side, side)) for c, side in zip(channels, [s, s] + [-(-s // 2 ** k) for k in (1, 2, 3)])]


def ean_surgery(backbone, args, variant):
    """EAN's changes to a torchvision ResNet, in place: 1. in every block of layer1..layer4 (all 16 bottlenecks, as the
    release) ME and the shift-initialised temporal conv before the 3x3 conv (Sec. 4 "Implementation Detail"; ResNet-
    18/34, quick runs: the BasicBlock's second 3x3); 2. after paper stage s (1 = conv1 + max-pool, 2-5 = layer1-4) an
    EAB if s in --eab-stages (with Tables 8-10's switches), then a SOI-Tr if s in --soi-stages (Table 6; the release:
    EABs after 1-4, SOI-Tr after 5), residual, zero-initialised last layer, returned as a ModuleDict ({"1": ..., "5":
    ...}, empty Sequentials elsewhere) that keeps the backbone's output at init (`variant` "official": near it)."""
    for name in STAGES:
        for block in getattr(backbone, name):
            width = block.conv2.in_channels
            block.conv2 = nn.Sequential(ME(width, args.num_segments), TemporalConv(width, args.num_segments),
                                        block.conv2)
    eab = dict(fusion=args.eab_fusion, variant=variant, kernels=args.eab_kernels, pool=args.eab_pool,
               inter_relu=not args.no_inter_relu, dilation=not args.no_dilation, conv=args.eab_conv)
    inserts = nn.ModuleDict()
    for stage, (channels, size) in enumerate(stage_shapes(args.arch, args.input_size, args.num_segments), 1):
        mods = []
        if stage in args.eab_stages:
            mods.append(EAB(channels, args.num_segments, **eab))
        if stage in args.soi_stages:
            mods.append(SOITr(channels, size, args.num_objects, args.soi_regions, variant=variant))
        inserts[str(stage)] = nn.Sequential(*mods)
    return inserts


class EAN(nn.Module):
    """EAN_RGB (Fig. 5a) or EAN_RGB+LMC (Fig. 5b): input (B, T, C, H, W) or, with LMC, (B, L*T, C, H, W) holding T
    snippets of L consecutive frames; output video-level logits (B, K). Head: GAP over T, H, W (with SOI-Tr's vector
    added), dropout, a linear layer initialised N(0, 0.001), zero bias (TSN's). Every conv EAN adds (ME, EAB, SOI-Tr,
    LMC) starts at PyTorch's default init (the paper: "randomly initialized"; init_official: the release's).
    `args.baseline` ("tsn"): TSN instead, the bare ResNet on every frame, its logits averaged over T (speed: tests)."""
    def __init__(self, args, num_classes):
        super().__init__()
        variant = args.variant  # (checkpoints written before a model flag existed get its default: adopt)
        self.num_segments, self.baseline = args.num_segments, args.baseline
        self.snippet = 1 if args.baseline or args.no_lmc else args.snippet
        self.rgb_index = (self.snippet // 2) if args.rgb_frame == "centre" else 0
        state = checkpoint.load(args.pretrained) if args.pretrained not in ("none", "imagenet") else None
        self.released = is_official_checkpoint(state, args.pretrained) and not args.baseline  # EAN: load_release
        self.backbone = build_resnet(args.arch, args.pretrained)
        if not args.baseline:
            self.inserts = ean_surgery(self.backbone, args, variant)
            lmc = "paper" if variant == "paper" else "official-16f" if args.num_segments == 16 else "official-8f"
            self.lmc = LMC(snippet=args.snippet, variant=lmc) if not args.no_lmc else None
        width = 512 if args.arch in ("resnet18", "resnet34") else 2048
        self.dropout, self.fc = nn.Dropout(args.dropout), nn.Linear(width, num_classes)  # dropout 0.5 (Sec. 4)
        nn.init.normal_(self.fc.weight, 0, 0.001)
        nn.init.zeros_(self.fc.bias)
        if variant == "official" and not args.baseline:
            init_official(self)
        if self.released:  # --pretrained Somethingv1.RGB_LMC_8f.pth.tar (TSN: its ResNet by name, in main)
            load_release(self, state.get("state_dict", state), args)

    def forward(self, x):
        B, T, L = x.shape[0], self.num_segments, self.snippet
        if self.baseline:                                               # TSN
            x = self.fc(self.dropout(self.backbone(x.flatten(0, 1))))   # (B,T,C,H,W) -> (B*T,C,H,W) -> (B*T,K)
            return x.view(B, T, -1).mean(1)                             # (B*T,K) -> (B,K) segment consensus
        x = x.view(B, T, L, *x.shape[2:])                               # (B,L*T,C,H,W) -> (B,T,L,C,H,W)
        rgb = x[:, :, self.rgb_index].flatten(0, 1)                     # (B*T, C, H, W), one frame per segment
        net = self.backbone
        f = net.maxpool(net.relu(net.bn1(net.conv1(rgb))))              # Conv1 stage: (B*T, 64, H/4, W/4)
        if self.lmc is not None:  # Eq. (12): f_t = m_t + Conv1(S_t), after the max-pool (56x56x64 at 224; official too)
            f = f + self.lmc(x) if self.lmc.stem_weight == 1 else self.lmc.stem_weight * f + self.lmc(x)
        f = self.inserts["1"](f)
        for stage, name in enumerate(STAGES, 2):                       # Eq. (13): Stage2-5
            f = self.inserts[str(stage)](getattr(net, name)(f))
        f = f.unflatten(0, (B, T)).mean((1, 3, 4))                      # (B*T,D,h,w) -> (B,T,D,h,w) -> (B,D)
        return self.fc(self.dropout(f))                                 # (B, K)


build_model = EAN  # (args, num_classes): EAN_RGB+LMC by default, the TSN baseline with --baseline


# ======================================================================================================= data
def frames_per_clip(args):
    """T for EAN_RGB and TSN; L*T with LMC: T snippets of L=5 consecutive frames (Sec. 3.3 "Frame Sampling"). Clips
    are normalised with ImageNet's mean/std (`normalize`: the release's test script; its final train script: none)."""
    return args.num_segments * (1 if args.baseline or args.no_lmc else args.snippet)


def train_dataset(args, records, opts):
    """T segments, a random snippet (one frame without LMC) from each; TSN's multi-scale crop, a random horizontal
    flip swapping the labels of dataset.json's direction pairs (official: the SSv1/v2 direction-class swap; the paper
    says direction classes are not flipped at all, for which `--flip-labels ''` plus filtering would be needed)."""
    return VideoDataset(
        records, lambda n, k, rng: segment_indices(n, args.num_segments, frames_per_clip(args) // args.num_segments,
                                                   train=True, rng=rng),
        TrainTransform(args.input_size, flip=not args.no_flip, flip_labels=opts.flip_labels), **opts.frames)


def test_dataset(args, records, opts):
    """The test protocol (Sec. 4: 1 clip, 1 centre crop): --test-clips x --test-crops views; unreadable: left out, not
    replaced."""
    return VideoDataset(
        records, lambda n, k, rng: segment_indices(n, args.num_segments, frames_per_clip(args) // args.num_segments,
                                                   train=False, clip=k, num_clips=args.test_clips),
        EvalTransform.from_args(args, frames_per_clip(args)), num_clips=args.test_clips, skip_bad=True, **opts.frames)


def protocol(args):
    L = frames_per_clip(args) // args.num_segments                     # frames per snippet
    frames = f"{args.num_segments}x{L}" if L > 1 else f"{args.num_segments}"
    return (f"{frames} frames x {args.test_clips} clips x {args.test_crops} crops "
            f"({EvalTransform.from_args(args, frames_per_clip(args)).describe()})")


# ========================================================================================= train and evaluate
def param_groups(model, weight_decay):
    """No weight decay on 1-D parameters, BN and biases (TSM's policy; the release's too, with biases at 2x lr)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def set_learning_rate(optimizer, args, epoch):
    """Sec. 4: 0.01 (batch 64) for 40 epochs, then /10 every 10, about 70 in all (--lr-steps 40 50 60). The release's
    --lr_steps 41 51 61 count from 0 as --lr-steps does (41 epochs at 0.01): `--lr-steps 41 51 61` is its schedule."""
    lr = args.lr * 0.1 ** sum(epoch >= s for s in args.lr_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def train_loss(model, clips, targets, args):
    """Cross-entropy of one (micro-)batch of clips, and the extra terms to log (none here)."""
    return F.cross_entropy(model(clips).float(), targets), {}


def train_one_epoch(model, loader, optimizer, args, train):
    """One epoch of SGD (Sec. 4, momentum 0.9, gradient norm clipped at 20). `train` (common/training.py) resumes
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
            nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        optimizer.step()


def logits(model, clips):
    """uint8 clips (n, T*L, C, H, W) -> logits (n, K): what evaluation, --predict, --visualize and --export run."""
    return model(normalize(clips))


def evaluate(model, loader, args, device, bad):
    """Sec. 4's test: each video's softmax probabilities averaged over its views (clips x crops), as (Predictions,
    videos left out) of this rank (common/predict.py)."""
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
    model = build_model(args, len(classes)).to(device)  # (a --pretrained EAN release loads here: load_release)
    checkpoint.load_initial(model, None if model.released else model.backbone, args)  # by name and shape
    optimizer = torch.optim.SGD(param_groups(model, args.weight_decay), lr=args.lr, momentum=args.momentum)  # Sec. 4
    with training.Training(args, SCRIPT, model, optimizer, classes, opts, device, world) as train:
        for epoch in train.epochs(train_loader):
            lr = set_learning_rate(optimizer, args, epoch)
            train_one_epoch(train.model, train_loader, optimizer, args, train)
            train.end_epoch(lr, metrics_of(*evaluate(train.model, val_loader, args, device, train.bad)))
    return train.finish(protocol(args))


# ================================================================= appendix: paper tables, visualisation maps
# ---- the paper's tables as data (common/paper_tables.py; `python -m common.paper_tables ean` prints them) --------
# The paper's figures (None: not given; SSv1 unless said); notes: protocols, why > 3 % off (2026-12-03, torch 2.14.1).
SSV1 = "Something-Something V1, 1 clip x 1 centre crop of 224 (`--test-clips 1 --test-crops 1`, the defaults)"
K400 = "Kinetics-400, 10 clips x 3 crops of 256x256 (`--test-clips 10 --test-crops 3 --test-size 256`); the paper's " \
       "GFLOPs: 30 views at 224"
ENSEMBLE = "the 16F and 8F models' scores averaged: `--evaluate --ensemble 16f/best.pt 8f/best.pt --data DIR`"
M_PRODUCT = "the product with M (Cr^2 x T x H x W summed over the 4 EABs: 0.31 G), which the paper's FLOPs leave out " \
            "(Static = Identity = 36.0 G; the release multiplies with F.conv3d in a weightless module, unseen by " \
            "module counters such as thop)"
SALIENCY = "our Saliency-Net costs 0.05 G, Table 7's 0.3 G (Det-Net over Fixed): Sec. 3.2's kernels on d / 8 = 64 " \
           "channels; on X5's 2048 / 8 = 256 (Eq. 4's input): 0.93 G; the release's net (`--variant official`) 0.31 G"
SOI_34 = "SOI-Tr after stage 3 / 4: 1.18M (0.80M of it the embedding) / 1.89M here, 0.48 / 0.51 G; with our EABs " \
         "(after stage 3 / 4: 0.72M / 4.97M, 0.73 / 0.74 G) the paper's rows imply about 1.5M / 3.8M (the note)"
ROWS = [  # (table, row, flags, params_m, gflops, top1, top5, note[, {base, ensemble, views, increment_note}])
    ("Table 1", "EAN8F(RGB)", "--no-lmc", None, 36, 51.9, 79.5, SSV1 + "; V2: 63.5 / 88.2",
     {"base": "Table 5: ResNet baseline"}),
    ("Table 1", "EAN16F(RGB)", "--no-lmc --num-segments 16", None, 72, 53.4, 81.4, "as EAN8F(RGB); V2: 64.6 / 89.1"),
    ("Table 1", "EANEn(RGB)", "--no-lmc --num-segments 16", None, 108, 55.8, 83.1, ENSEMBLE + "; V2: 66.6 / 89.9",
     {"ensemble": ["--no-lmc"]}),
    ("Table 1", "EAN8F(RGB+LMC)", "", None, 37, 53.4, 81.1, "headline: 8x5 frames, " + SSV1 + "; V2: 65.2 / 89.4",
     {"base": "EAN8F(RGB)"}),
    ("Table 1", "EAN16F(RGB+LMC)", "--num-segments 16", None, 74, 54.7, 82.3, "16x5 frames, as EAN8F(RGB+LMC); V2: "
     "66.6 / 90.3", {"base": "EAN16F(RGB)"}),
    ("Table 1", "EANEn(RGB+LMC)", "--num-segments 16", None, 111, 57.2, 83.9, ENSEMBLE + "; V2: 68.8 / 91.4",
     {"ensemble": [""], "base": "EANEn(RGB)"}),
    ("Table 2", "EAN8F(RGB+LMC)", "--num-classes 400", None, 37 * 30, 77.1, 93.3, K400, {"views": 30}),
    ("Table 2", "EAN16F(RGB+LMC)", "--num-segments 16 --num-classes 400", None, 74 * 30, 78.3, 93.7, K400,
     {"views": 30}),
    ("Table 2", "EANEn(RGB+LMC)", "--num-segments 16 --num-classes 400", None, 111 * 30, 79.0, 94.1, K400 + "; " +
     ENSEMBLE, {"ensemble": ["--num-classes 400"], "views": 30}),
    ("Table 3", "ResNet baseline", "--no-eab --no-soi --no-lmc", None, None, 48.6, None,
     "8 x 1 frames, ME + temporal conv, AVG; = Table 5 'ResNet baseline'"),
    ("Table 3", "EAN8F(RGB)", "--no-lmc", None, None, 51.9, None, "8 x 1 frames; = Table 1"),
    ("Table 3", "EAN8F(RGB+LMC)", "", None, None, 53.4, None, "8 x 5 frames; = Table 1"),
    ("Table 4", "Ours (16 frames)", "--num-segments 16 --num-classes 48", None, None, 40.4, None, "Diving48 V1, 1 "
     "clip x 1 centre crop of 224; the paper says '16 frames': # Choice: RGB+LMC, Tables 1-2's (`--no-lmc`: RGB)"),
    ("Table 4", "Ours (16x2)", "--num-segments 16 --num-classes 48", None, None, 41.7, None,
     "as the row above with 2 clips: `--test-clips 2`"),
    ("Table 5", "ResNet baseline", "--no-eab --no-soi --no-lmc", 24.0, 33.1, 48.6, 77.5,
     "ResNet-50 + ME + temporal conv in every bottleneck"),
    ("Table 5", "ResNet+EABs", "--no-soi --no-lmc", 29.5, 35.3, 50.8, 78.4, ""),
    ("Table 5", "ResNet+SOI-Tr", "--no-eab --no-lmc", 30.3, 33.8, 49.3, 77.9, "", {"increment_note": SALIENCY}),
    ("Table 5", "ResNet+EABs+SOI-Tr", "--no-lmc", 36.0, 36.1, 51.9, 79.5, "EAN8F(RGB)"),
    ("Table 6", "EAB stage 1-2, SOI-Tr stage 3-5", "--no-lmc --eab-stages 1 2 --soi-stages 3 4 5", 35.6, 35.8, 49.4,
     78.2, "params 6 % below: see the next row", {"increment_note": SOI_34}),
    ("Table 6", "EAB stage 1-3, SOI-Tr stage 4-5", "--no-lmc --eab-stages 1 2 3 --soi-stages 4 5", 34.8, 35.9, 50.4,
     79.2, "params 5.5 % below, FLOPs as the paper. Ours: d = C/4 (256 after stage 4: squeeze and projection 0.26M "
     "each, transformer 0.92M, embedding over 8x14x14 0.40M); the paper does not size SOI-Tr after stages 3/4 (the "
     "release: after 5 only); no reading tried fits both rows (d = 512 at every stage: row 2 +5 %; the embedding added"
     " before the squeeze, C x T x H x W: row 2 -2 %, row 1 +4 %)", {"increment_note": SOI_34}),
    ("Table 6", "EAB stage 1-4, SOI-Tr stage 5", "--no-lmc", 36.0, 36.1, 51.9, 79.5, "EAN8F(RGB)"),
    ("Table 6", "EAB stage 1-5", "--no-lmc --eab-stages 1 2 3 4 5 --soi-stages", 65.8, 36.2, 50.8, 79.1, "no SOI-Tr",
     {"increment_note": "an EAB after stage 5 (0.78 G, 0.10 G of it the product with M: Table 9) for SOI-Tr (0.59 "
      "G; Table 5: 0.7 G, its Saliency-Net)"}),
    ("Table 7", "None", "--no-soi --no-lmc", None, 35.3, 50.8, 78.4, ""),
    ("Table 7", "Fixed", "--no-lmc --soi-regions fixed", None, 35.8, 50.9, 78.4,
     "the 2x2 quadrants of every frame (# Choice: the paper does not say which regions)"),
    ("Table 7", "All", "--no-lmc --soi-regions all", None, 36.4, 51.3, 79.1, "every position of X5 a token (392)",
     {"increment_note": "392 tokens through 2 blocks: linears 1.44 G, attention products 0.31 G, + the 0.41 G "
      "squeeze (Fixed's 32 tokens: +0.53 G, the paper's +0.5 G); without the products +1.85 G"}),
    ("Table 7", "Our Det-Net", "--no-lmc", None, 36.1, 51.9, 79.5, "the 'Faster RCNN' row (71.3 G) needs an external "
     "detector and is not built", {"increment_note": SALIENCY}),
    ("Table 8", "Only SOI-Tr", "--no-eab --no-lmc", 30.3, 33.8, 49.3, 77.9, ""),
    ("Table 8", "+S-Block", "--no-lmc --eab-kernels s-block --eab-fusion identity", 30.9, 36.1, 49.6, 78.1,
     "(2+1)D 3x3x3 in 3 groups, no M; # Choice: the EAB's bottleneck, BN+ReLU and max-pool branch kept"),
    ("Table 8", "+L-Block", "--no-lmc --eab-kernels l-block --eab-fusion identity", 30.9, 36.1, 50.3, 78.4,
     "as S-Block, dilated 2x2x2"),
    ("Table 8", "+Incep-Block", "--no-lmc --eab-fusion identity", 30.9, 36.0, 50.8, 78.8, "EAB with M = identity",
     {"increment_note": "its kernel-1 group (Eq. 2's 1x1, 1) costs 0.09M / 0.34 G less than S-Block's 3x3, 3 (S-Block "
      "+0.60M / +2.20 G, as the paper's); the paper's: S-Block's params, 0.1 G less; as identities (release) -18 %"}),
    ("Table 8", "+EAB", "--no-lmc", 36.0, 36.1, 51.9, 79.5, "EAN8F(RGB)"),
    ("Table 9", "Identity (Incep-Block)", "--no-lmc --eab-fusion identity", 30.9, 36.0, 50.8, 78.8, ""),
    ("Table 9", "Channel Shuffle", "--no-lmc --eab-fusion shuffle", 30.9, 35.9, 51.1, 78.9, "the 3 groups interleaved",
     {"increment_note": "a channel permutation has no multiply-accumulates"}),
    ("Table 9", "Static Matrix", "--no-lmc --eab-fusion static", 30.9, 36.0, 51.3, 79.2, "a learnt Cr x Cr matrix, "
     "identity at init", {"increment_note": "the 4 Cr x Cr matrices, 0.09M (the paper: 30.9M both), and " + M_PRODUCT}),
    ("Table 9", "Dynamic Matrix", "--no-lmc", 36.0, 36.1, 51.9, 79.5, "EAN8F(RGB)",
     {"increment_note": "ESP-Net's 0.08 G (the paper's +0.1 G) and " + M_PRODUCT}),
    ("Table 10", "Without Max Pool", "--no-lmc --eab-pool none", 36.0, 36.1, 50.6, 78.4, "the branch's 1x1x1 conv "
     "kept (as the paper's figures say)"),
    ("Table 10", "Avg Pool", "--no-lmc --eab-pool avg", 36.0, 36.1, 51.4, 79.8,
     "# Choice: zero padding counted in the average (PyTorch's default)"),
    ("Table 10", "Without inter ReLU", "--no-lmc --no-inter-relu", 36.0, 36.1, 50.9, 79.0,
     "the BN between spatial and temporal convs kept"),
    ("Table 10", "Without dilation", "--no-lmc --no-dilation", 37.2, 37.5, 51.9, 79.8, "the dilated group's 3x3 / 3 "
     "as 5x5 / 5", {"increment_note": "readings (M / G over Ours): that group's 5x5 and 5 (built) +0.18 / +0.66; its "
                    "5x5 alone +0.16 / +0.59; ESP-Net's stride-2 convs also dilated 3x3x3 in Ours (Sec. 3.1: 5x5x5): "
                    "+0.51 / +0.71; the 5x5 / 5 over all Cr channels (not grouped): +0.76 / +2.79. 1.2M per 1.4 G is "
                    "more than a conv at the EABs' resolutions holds (stage 4's 8x14x14: 0.64M per G)"}),
    ("Table 10", "(1+1+1)D", "--no-lmc --eab-conv 1+1+1d", 35.7, 35.7, 51.2, 79.2, "each k x k spatial conv as k x 1 "
     "then 1 x k", {"increment_note": "the EABs' 3x3 convs hold 0.17M in all, less than the paper's -0.3M; each "
                    "k x 1 + 1 x k saves 3 of 9 c^2: -0.06M / -0.21 G"}),
    ("Table 10", "Ours", "--no-lmc", 36.0, 36.1, 51.9, 79.5, "EAN8F(RGB)"),
    ("Official release", "EAN 8F RGB+LMC", "--variant official", None, 37, 53.4, 81.1, "the release's structure "
     "(Somethingv1.RGB_LMC_8f.pth.tar loads into it): release README, Something-Something V1, 1 clip x 1 centre crop "
     "after a 240x320 resize; not run here. The release's count is 37.12M params, 0.14M of them never used (not built "
     "here)"),
    ("Official release", "EAN 16F RGB+LMC", "--variant official --num-segments 16", None, 74, 54.7, 82.3,
     "as the 8F row; 16+8 ensemble 57.2 / 83.9 (" + ENSEMBLE + ")"),
    ("Official release", "EAN 8F structure without LMC", "--variant official --no-lmc", None, None, None, None,
     "the release has no RGB-only model; its EAN_RGB structure (Table 5's 36.0M / 36.1G)"),
]
REFERENCE = {"Table 5": "ResNet baseline", "Table 6": "EAB stage 1-4, SOI-Tr stage 5", "Table 7": "None",  # bases
             "Table 8": "Only SOI-Tr", "Table 9": "Identity (Incep-Block)", "Table 10": "Ours"}
PAPER_TABLES = [{**{k: v for k, v in zip(("table", "row", "flags", "params_m", "gflops", "top1", "top5", "note"), row)
                    if v is not None}, **({"base": REFERENCE[row[0]]} if REFERENCE.get(row[0], row[1]) != row[1]
                                          else {}), **(row[8] if len(row) > 8 else {})} for row in ROWS]


# ---- what `--predict ... --visualize DIR` draws (common/visualize.py: "Class.attr" specs) -------------------------
VIS_MAPS = {
    "Saliency-Net maps O (Eq. 4)": dict(at="SaliencyNet", kind="objects", layout="BCT", note="O(n,t), softmax over h x "
                                        "w; box: its cells >= half the maximum, where F(n,t) (Eq. 5) pools from"),
    "EAB fusion matrix M (Eq. 3, Fig. 10)": dict(at="ESPNet", kind="matrix", pick="all",
                                                 note="M[out, in] of this video, one per EAB (stages 1-4)")}


def visualization(args, model):
    """--visualize: each snippet's RGB frame ("shown"), Grad-CAM of stage 5 (backbone.layer4: (B*T,C,h,w)), VIS_MAPS."""
    rgb = lambda clip: clip.unflatten(0, (args.num_segments, -1))[:, getattr(model, "rgb_index", 0)]  # (T,C,H,W)
    return {"cam": "backbone.layer4", "maps": VIS_MAPS, "shown": rgb}


# ======================================================================== appendix: the released checkpoints
# The official release (tianyuan168326/EAN-Pytorch, notes/ean-official-reference.md) differs from the paper's model
# in seven places, which `--variant official` switches (other flags keep their meaning; the Table 8/10 EAB ablations
# stop), each described where it is built: 1. the EAB's order (temporal convs first) and identity kernel-1 members,
# 2. its expand init (EAB); 3. ESP-Net's six 3x3x3 convs, M's init (ESPNet); 4. the Saliency-Net (SaliencyNet); 5. the
# Tr_BN on SOI-Tr's output (SOITr); 6. the LMC, EAN_16f.py's with --num-segments 16 (LMC); 7. the init (init_official).
# The released checkpoints (Somethingv1.RGB_LMC_8f/16f.pth.tar: {'epoch', 'arch', 'state_dict', 'best_prec1'}, keys
# module.base_model.*, module.new_fc.*) load into it by renaming (OFFICIAL_RULES; layouts: our shape -> the release's,
# its tensor -> ours), strictly: 8f: 932 = 901 + the 31 its forward never uses (OFFICIAL_UNUSED: the stem's and EABs'
# bn2, stm_proj2), 16f: 953 = 928 + 25; then our forward is the official code's (tests/test_ean_official.py).
OFFICIAL_LAYOUTS = {
    None: (lambda s: s, lambda t, s: t),
    "conv1d": (lambda s: s[:3], lambda t, s: t.reshape(s)),           # shift conv: Conv1d (C,1,3) -> (C,1,3,1,1)
    "conv3d": (lambda s: (*s, 1), lambda t, s: t.reshape(s)),         # a 1x1x1 Conv3d as our 1x1 Conv2d
    "pos": (lambda s: (s[1], math.prod(s[2:])), lambda t, s: t.reshape(s)),  # (d, T*7*7), column t*49 + h*7 + w
    # patch encoder: 1x1x1 conv on input channel (p1*16 + p2)*3 + c -> our Conv2d(3, 256, 16, stride 16)
    "patch_in": (lambda s: (s[0], s[2] * s[3] * s[1], 1, 1, 1),
                 lambda t, s: t.reshape(s[0], s[2], s[3], s[1]).permute(0, 3, 1, 2)),
    # patch decoder: 1x1x1 conv to output channel (p1*8 + p2)*16 + c -> our ConvTranspose2d(256, 16, 8, stride 8)
    "patch_out": (lambda s: (s[2] * s[3] * s[1], s[0], 1, 1, 1),
                  lambda t, s: t.reshape(s[2], s[3], s[1], s[0]).permute(3, 2, 0, 1)),
}
OFFICIAL_UNUSED = re.compile(r"base_model\.(bn2|relation\d\.bn2|stm_proj2\.\d+)\.\w+")
# the release's test protocol (test_models.py): 240x320 resize (aspect not kept), centre crop 224, ImageNet mean/std,
# 1 clip (its README's numbers; its 8f test script says 2)
OFFICIAL_TEST_PROTOCOL = {"test_resize": "240x320", "test_crops": 1, "test_clips": 1}
# tensors only the release has (8f and 16f), of its EABs, ESP-Net, SOI-Tr, Saliency-Net, LMC: is_official_checkpoint
RELEASE_ONLY = ["base_model.relation1.compress_c1.weight", "base_model.relation1.p_prod2.0.weight",
                "base_model.sparse_transformer.pos_embedding", "base_model.sparse_transformer.score_predictor.9.weight",
                "base_model.stm_proj1.0.weight", "base_model.stm_st_model1.0.weight"]
_B, _E, _S = r"base_model\.(layer\d\.\d+)\.", r"base_model\.relation(\d)\.", r"base_model\.sparse_transformer\."
_ME = {"conv1": "reduce.0", "bn1": "reduce.1", "conv2": "transform", "conv3": "expand.0", "bn3": "expand.1"}
_EAB = {"compress_c1": "compress", "expand_c1": "expand", "non_linear.0": "bn", "max_project": "pool.1",
        "p_prod1.0": "esp.reduce.0", "p_prod1.1": "esp.reduce.1", "p_prod2.0": "esp.fc"}
_SOI = {"squeeze_l": "squeeze", "expand_l": "proj", "Tr_BN": "proj_bn", "0.fn.norm": "norm1", "1.fn.norm": "norm2",
        "0.fn.fn.to_qkv": "attn.qkv", "0.fn.fn.to_out.0": "attn.out", "1.fn.fn.net": "ffn"}  # (transformer.layers.I.)
OFFICIAL_RULES = [  # (regex over a release key without 'module.', our key, layout); "8f"/"16f": that release only
    (r"new_fc\.(\w+)", r"fc.\1", None),
    (r"base_model\.(conv1\.weight|bn1\.\w+)", r"backbone.\1", None),
    (_B + r"conv2\.weight", r"backbone.\1.conv2.2.weight", None),
    (_B + r"t_conv\.conv\.weight", r"backbone.\1.conv2.1.conv.weight", "conv1d"),
    (_B + r"me\.(conv[123]|bn[13])\.(\w+)", lambda m: f"backbone.{m[1]}.conv2.0.{_ME[m[2]]}.{m[3]}", None),
    (_B + r"((?:conv1|bn1|bn2|conv3|bn3|downsample\.\d)\.\w+)", r"backbone.\1.\2", None),
    (_E + r"(compress_c1|expand_c1|non_linear\.0|max_project|p_prod1\.[01]|p_prod2\.0)\.(\w+)",
     lambda m: f"inserts.{m[1]}.0.{_EAB[m[2]]}.{m[3]}", None),
    (_E + r"t_part(\d)_conv\.(\w+)", lambda m: f"inserts.{m[1]}.0.temporal.{int(m[2]) - 1}.{m[3]}", None),
    (_E + r"s_part(\d)_conv\.(\w+)", lambda m: f"inserts.{m[1]}.0.spatial.{int(m[2]) - 1}.{m[3]}", None),
    (_E + r"p_prod1\.(\d+)\.(\w+)", lambda m: f"inserts.{m[1]}.0.esp.context.{int(m[2]) - 3}.{m[3]}", None),
    (_S + r"(squeeze_l|expand_l|Tr_BN)\.(\w+)", lambda m: f"inserts.5.0.{_SOI[m[1]]}.{m[2]}", None),
    (_S + r"score_predictor\.(\d+\.\w+)", r"inserts.5.0.saliency.layers.\1", None),
    (_S + r"pos_embedding", r"inserts.5.0.pos", "pos"),
    (_S + r"transformer\.layers\.(\d)\.([01]\.fn\.norm|0\.fn\.fn\.to_qkv|0\.fn\.fn\.to_out\.0|1\.fn\.fn\.net)"
     r"\.(\d\.\w+|\w+)", lambda m: f"inserts.5.0.blocks.{m[1]}.{_SOI[m[2]]}.{m[3]}", None),
    (r"base_model\.stm_st_model(\d)\.(\d\.\w+)", lambda m: f"lmc.motion.{int(m[1]) - 1}.{m[2]}", None),
    ("8f", r"base_model\.stm_proj1\.0\.weight", "lmc.encode.weight", "patch_in"),
    ("8f", r"base_model\.proj_back\.0\.weight", "lmc.decode.weight", "patch_out"),
    ("16f", r"base_model\.stm_proj1\.0\.weight", "lmc.encode.0.weight", "patch_in"),
    ("16f", r"base_model\.stm_proj1\.1\.(\w+)", r"lmc.encode.1.\1", None),
    ("16f", r"base_model\.stm_proj1\.3\.weight", "lmc.encode.3.weight", "conv3d"),
    ("16f", r"base_model\.proj_back\.0\.weight", "lmc.decode.0.weight", "conv3d"),
    ("16f", r"base_model\.proj_back\.1\.(\w+)", r"lmc.decode.1.\1", None),
    ("16f", r"base_model\.proj_back\.3\.weight", "lmc.decode.3.weight", "patch_out"),
    ("16f", r"base_model\.stack_diff_motion\.(\d\.\w+)", r"lmc.stacked.\1", None),
]


def is_official_checkpoint(obj, where="the checkpoint"):
    """True for a released EAN checkpoint (the file's dict {'epoch', 'arch', 'state_dict', 'best_prec1'} or its
    state_dict): it holds every RELEASE_ONLY tensor. A TSN/TSM/TDN file (the same module.base_model.*, module.new_fc.*
    layout) holds none and loads by name and shape; one with some of them stops, naming those found and missing."""
    sd = obj.get("state_dict") if isinstance(obj, dict) and "state_dict" in obj else obj
    found = [k for k in RELEASE_ONLY if isinstance(sd, dict) and (k in sd or "module." + k in sd)]
    if 0 < len(found) < len(RELEASE_ONLY):
        sys.exit(f"error: {where} holds {len(found)} of the {len(RELEASE_ONLY)} tensors only the EAN release has: "
                 f"neither the release nor a TSN/TSM file (found {', '.join(found)}; missing "
                 f"{', '.join(k for k in RELEASE_ONLY if k not in found)})")
    return bool(found)


def official_model_args(state_dict):
    """The flags of the released model of this state_dict (with or without 'module.'): variant official, T = 8 or 16
    (EAN_16f.py's stack_diff_motion; the positional embedding's T*7*7 columns must agree), K from new_fc, ResNet-50
    at 224 px, every other model flag its default; another file raises ValueError naming the key."""
    plain = [k for k in state_dict if not k.startswith("module.")]     # DDP's 'module.': on all keys or on none
    if plain and len(plain) < len(state_dict):
        raise ValueError(f"{plain[0]}: the other keys start with 'module.'")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    for key in ["new_fc.weight", "base_model.layer3.5.conv3.weight", *RELEASE_ONLY]:
        if key not in sd:
            raise ValueError(f"{key}: missing, so this is not a released EAN checkpoint (EAN_8f.py / EAN_16f.py)")
    if "base_model.layer3.6.conv1.weight" in sd or "base_model.layer4.0.conv3.weight" not in sd:
        raise ValueError("base_model.layer3.*: the released EAN checkpoints are ResNet-50s")
    T = 16 if "base_model.stack_diff_motion.0.weight" in sd else 8
    columns = sd["base_model.sparse_transformer.pos_embedding"].shape[-1]
    if columns != T * 7 * 7:
        raise ValueError(f"base_model.sparse_transformer.pos_embedding: {columns} columns, but the LMC is "
                         f"EAN_{T}f.py's (T * 7 * 7 = {T * 49} at 224 px)")
    p = arguments()
    return {**{k: p.get_default(k) for k in cli.model_keys(p)}, "variant": "official", "arch": "resnet50",
            "num_segments": T, "num_classes": int(sd["new_fc.weight"].shape[0]), "input_size": 224,
            "num_objects": int(sd["base_model.sparse_transformer.score_predictor.9.weight"].shape[0])}


def convert_official(state_dict):
    """A released EAN state_dict (EAN_8f.py or EAN_16f.py, with or without 'module.') -> (the state_dict of
    build_model(official_model_args(state_dict)), the release's keys dropped). Strict: every release tensor is used
    (renamed by OFFICIAL_RULES, re-laid out by OFFICIAL_LAYOUTS) but OFFICIAL_UNUSED's, dropped and listed; every model
    tensor is produced, each from a tensor of exactly its release shape. Anything else: ValueError naming the key."""
    margs = official_model_args(state_dict)
    args = get_args(["--complexity"])
    vars(args).update(margs)
    with torch.device("meta"):                                          # shapes only: no memory, no init cost
        expected = {k: tuple(v.shape) for k, v in EAN(args, margs["num_classes"]).state_dict().items()}
    release = f"{margs['num_segments']}f"
    rules = [rule[-3:] for rule in OFFICIAL_RULES if len(rule) == 3 or rule[0] == release]
    ours, dropped = {}, []
    for key, tensor in state_dict.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if OFFICIAL_UNUSED.fullmatch(name):
            dropped.append(key)
            continue
        match = next(((m, repl, layout) for pattern, repl, layout in rules
                      for m in [re.fullmatch(pattern, name)] if m), None)
        if match is None:
            raise ValueError(f"{key}: not a tensor of the released EAN_{release} model")
        m, repl, layout = match
        ours_key = repl(m) if callable(repl) else m.expand(repl)
        if ours_key not in expected:
            raise ValueError(f"{key}: maps to {ours_key}, which the model does not have")
        if ours_key in ours:
            raise ValueError(f"{key}: {ours_key} is given twice")
        official_shape, to_ours = OFFICIAL_LAYOUTS[layout]
        want = expected[ours_key]
        if tuple(tensor.shape) != tuple(official_shape(want)):
            raise ValueError(f"{key}: shape {tuple(tensor.shape)}, the release's is {tuple(official_shape(want))} "
                             f"(for {ours_key} {want})")
        ours[ours_key] = to_ours(tensor, want).contiguous()
    missing = [k for k in expected if k not in ours]
    if missing:
        raise ValueError(f"the checkpoint lacks {len(missing)} tensor(s) of the released model: "
                         f"{', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    return ours, dropped


def init_official(model):
    """The release's init (EAN_8f.py ResNet.__init__) of what EAN adds to the ResNet (ME, inserts, LMC; the ResNet's
    own layers: ImageNet's or torchvision's, the same): convs kaiming_normal_(fan_out, relu) with PyTorch's default
    bias, BNs gamma 1 / beta 0, linears PyTorch's default; as the release, not the shift-initialised temporal convs,
    the EAB's expand and the LMC decoder (0.01 x default, their modules) or the Tr_BN (zero). The LMC's patch encoder
    is the release's 1x1x1 conv 768 -> 256 (fan_out 256, not our 16x16 conv's). The paper variant: PyTorch's init."""
    roots = [b.conv2[0] for name in STAGES for b in getattr(model.backbone, name)] + [model.inserts, model.lmc]
    new = [m for root in roots if root is not None for m in root.modules()]
    skip = {m.conv for m in new if isinstance(m, TemporalConv)} | {m.expand for m in new if isinstance(m, EAB)}
    skip |= {m.proj_bn for m in new if isinstance(m, SOITr)} | {d for m in new if isinstance(m, LMC)
                                                                for d in m.decode.modules()}
    for m in new:
        if m in skip:
            continue
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if model.lmc is not None:
        enc = model.lmc.encode[0] if isinstance(model.lmc.encode, nn.Sequential) else model.lmc.encode
        nn.init.normal_(enc.weight, 0, math.sqrt(2 / enc.out_channels))


def load_release(model, state_dict, args):
    """--pretrained RELEASE.pth.tar (--variant official): every tensor of convert_official but the classifier's (new
    for this dataset), the positional embedding resized to this X5 (`resize_pos`); a misfit stops with its name."""
    if args.variant != "official":
        sys.exit(f"error: {args.pretrained} holds the released EAN weights: they load into --variant official")
    try:
        ours, dropped = convert_official(state_dict)
    except ValueError as e:
        sys.exit(f"error: {args.pretrained}: {e}")
    own = model.state_dict()
    ours = {k: resize_pos(v, own[k].shape[2:]) if k.endswith(".pos") and k in own else v for k, v in ours.items()
            if not k.startswith("fc.")}
    wrong = [k for k in ours if k not in own or own[k].shape != ours[k].shape]
    wrong += [k for k in own if k not in ours and not k.startswith("fc.")]
    if wrong:
        sys.exit(f"error: {args.pretrained}: {wrong[0]} (and {len(wrong) - 1} more) does not fit this model; build it "
                 f"as the release (ean.official_model_args: {official_model_args(state_dict)})")
    model.load_state_dict(ours, strict=False)
    run.print0(f"loaded the released EAN weights {args.pretrained}: {len(ours)} tensors, the classifier starts anew; "
               f"{len(dropped)} tensors the release never uses left out")


def release_args(ckpt):
    """A released EAN checkpoint's model flags (official_model_args), or None for another file."""
    return official_model_args(ckpt.get("state_dict", ckpt)) if is_official_checkpoint(ckpt) else None


def release_weights(ckpt):
    """A released EAN checkpoint's tensors in this script's names (convert_official: strict), or None."""
    if not is_official_checkpoint(ckpt):
        return None
    try:
        ours, dropped = convert_official(ckpt.get("state_dict", ckpt))
    except ValueError as e:
        sys.exit(f"error: not the released EAN model: {e}")
    run.print0(f"released EAN weights: {len(ours)} tensors converted (every one used, shapes checked); dropped as "
               f"unused by the release's forward: {', '.join(dropped)}")
    return ours


if __name__ == "__main__":
    main()
