"""EAN: Event Adaptive Network for Enhanced Action Recognition.

Yuan Tian, Yichao Yan, Guangtao Zhai, Guodong Guo, Zhiyong Gao. IJCV 2022 (arXiv 2107.10771).
Paper: https://arxiv.org/abs/2107.10771   Official code: https://github.com/tianyuan168326/EAN-Pytorch

Idea. A 2D ResNet-50 (every bottleneck with a shift-initialised temporal conv and TEA's motion excitation before
its 3x3 conv) gets three additions: Event Adaptive Blocks (EAB, Sec. 3.1, Eq. 1-3, Fig. 3) after stages 1-4 build a
video-adaptive spatio-temporal kernel from grouped spatial convs (1x1, 3x3, dilated 3x3), a per-video channel
fusion matrix M predicted by a small 3D net (ESP-Net) and grouped temporal convs (1, 3, dilated 3), plus a max-pool
branch; a Sparse Object Interaction Transformer (SOI-Tr, Sec. 3.2, Eq. 4-6, Fig. 4) after stage 5 pools N=4
saliency-weighted object features per frame and relates them with a 2-block BatchNorm Transformer; the Latent
Motion Code (LMC, Sec. 3.3, Eq. 7-12, Fig. 5) encodes the RGB differences of 5-frame snippets into a 7x7x128
latent map, reasons on it with grouped 3D convs and decodes it onto the stem features.

Run:   python ean.py --data DIR                 (EAN_RGB+LMC, 8x5 frames, the paper's best 8-frame model)
       python ean.py --data DIR --no-lmc        (EAN_RGB, 8 frames)          python ean.py --baseline  (TSN)
       python ean.py --complexity [--no-lmc]    python ean.py                (demo dataset, CPU profile)
Every row of the paper's tables is a command: PAPER_TABLES (after the paper modules; `python -m
common.paper_tables ean` prints them, measured). Protocols: Something-Something (Table 1), 1 clip x 1 centre crop
of 224 (`--test-clips 1 --test-crops 1`, the defaults); Kinetics (Table 2), 10 clips x 3 crops of 256 (`--test-clips
10 --test-crops 3 --test-size 256`; a model trained at 224 interpolates its positional embedding, `resize_pos`).

Expected results (Something-Something V1, 1 clip x 1 centre crop; params with the 174-way classifier; FLOPs =
multiply-accumulates incl. matmuls; accuracy not run here). `python -m common.paper_tables ean --brief --table
"Table 1" "Table 5" "Official release"` printed (torch 2.14.1; every other table: without --table):

ean.py, Table 1:

| row | flags (python ean.py --complexity FLAGS) | params (M): paper / ours | GFLOPs: paper / ours | paper accuracy (%) |
|---|---|---|---|---|
| EAN8F(RGB) | `--no-lmc` | 35.98 | 36 / 35.76 (-0.7 %) | top-1 51.9, top-5 79.5 |
| EAN16F(RGB) | `--no-lmc --num-segments 16` | 36.18 | 72 / 71.53 (-0.7 %) | top-1 53.4, top-5 81.4 |
| EAN8F(RGB+LMC) | (none) | 36.56 | 37 / 36.67 (-0.9 %) | top-1 53.4, top-5 81.1 |
| EAN16F(RGB+LMC) | `--num-segments 16` | 36.76 | 74 / 73.35 (-0.9 %) | top-1 54.7, top-5 82.3 |

ean.py, Table 5:

| row | flags (python ean.py --complexity FLAGS) | params (M): paper / ours | GFLOPs: paper / ours | paper accuracy (%) |
|---|---|---|---|---|
| ResNet baseline | `--no-eab --no-soi --no-lmc` | 24.0 / 24.04 (+0.2 %) | 33.1 / 32.91 (-0.6 %) | top-1 48.6, top-5 77.5 |
| ResNet+EABs | `--no-soi --no-lmc` | 29.5 / 29.85 (+1.2 %) | 35.3 / 35.17 (-0.4 %) | top-1 50.8, top-5 78.4 |
| ResNet+SOI-Tr | `--no-eab --no-lmc` | 30.3 / 30.17 (-0.4 %) | 33.8 / 33.50 (-0.9 %) | top-1 49.3, top-5 77.9 |
| ResNet+EABs+SOI-Tr | `--no-lmc` | 36.0 / 35.98 (-0.1 %) | 36.1 / 35.76 (-0.9 %) | top-1 51.9, top-5 79.5 |

ean.py, Official release:

| row | flags (python ean.py --complexity FLAGS) | params (M): paper / ours | GFLOPs: paper / ours | paper accuracy (%) |
|---|---|---|---|---|
| EAN 8F RGB+LMC | `--variant official` | 36.99 | 37 / 37.15 (+0.4 %) | top-1 53.4, top-5 81.1 |
| EAN 16F RGB+LMC | `--variant official --num-segments 16` | 37.33 | 74 / 75.31 (+1.8 %) | top-1 54.7, top-5 82.3 |
| EAN 8F structure without LMC | `--variant official --no-lmc` | 36.24 | 35.98 | - |

Demo dataset (4 classes that differ only in temporal order; TSN is at chance, 25 %): `python ean.py` and
`python ean.py --baseline` (resnet18, 64 px, 12 epochs, 2-core CPU): EAN 100.0 %, TSN 24.0 % val top-1 (README).

Implementation details (the paper by default; `# Choice:` marks where the paper is silent):
- Backbone: ME (TEA, code form `x + x*(sigmoid(.)-0.5)`, r=16) then a depthwise temporal conv (kernel 3, shift
  initialised: 1/8 channels from t+1, 1/8 from t-1, rest identity, learnable) before conv2 of all 16 bottlenecks
  (= official). For ResNet-18/34 (quick runs) the same pair goes before the BasicBlock's second 3x3 conv.
- EAB (after stages 1-4, as the release): order of Eq. (2), spatial convs -> BN+ReLU -> M -> temporal convs; the
  kernel-1 members F_s^(1), F_t^(1) are 1x1x1 convs; the expand conv is zero-initialised, so EAB starts as an exact
  identity. Compress/expand are grouped (g=4) 1x1x1 convs (official; paper silent, Table 6 decides).
- ESP-Net: 1x1x1 reduce 16x (of the compressed C/4 channels), two 5x5x5 stride-2 3D convs without biases, widths
  p -> 2p -> 4p (official), BN+ReLU, average pool, linear -> M, whose bias starts at the identity matrix so dynamic
  fusion starts as the Incep-Block of Table 9.
- SOI-Tr: squeeze 4x (2048 -> 512); Saliency-Net on the squeezed features: 1x1x1 (8x: 512 -> 64), 3x1x1, 1x5x5,
  1x1x1 -> N=4, BN+ReLU after the first three, no biases but the last, spatial softmax; 0.05 GFLOPs where Table 7
  puts it at +0.3 G over fixed regions (the release's net costs 0.31 G). Tokens = N per frame (N*T). Transformer:
  2 pre-norm blocks, BatchNorm1d instead of LayerNorm, 8 heads of 64, FFN = three 512-wide linears with BN+ReLU
  (official; paper silent). The mean token goes through a zero-initialised linear 512 -> 2048 and is added to the
  video feature: we add the vector to every position of the stage output, so after stage 5 GAP(x + v) = GAP(x) + v
  exactly as in the paper, and SOI-Tr can also sit after stages 3/4 (Table 6 rows 1-2).
- LMC: full-resolution differences, 32x32 patches -> 128-d; Hm = conv3d(k3,g16)-BN-ReLU-conv3d(k3,g16)-BN;
  decoder 128 -> 16x8x8 per position, zero-initialised; motion map channels difference-major as Eq. (11); added to
  the stem output after max-pooling (56x56x64; the official place too). The RGB stream uses the centre frame of
  each 5-frame snippet (`--rgb-frame centre`, official); Eq. (12) says the first frame (`--rgb-frame first`).
- New convs (ME, EAB, SOI-Tr, LMC): PyTorch's default init (the paper: "randomly initialized").
- Head: GAP over T,H,W (+ SOI-Tr vector), dropout 0.5, linear (N(0, 0.001) init), video-level logits.
- Other sizes at test time: the positional embedding is interpolated (`resize_pos`), the LMC pads frames that are
  not a multiple of its 32-px patch (`LMC.forward`).
- Recipe (Sec. 4): SGD 0.9, lr 0.01 for batch 64, 70 epochs, lr x0.1 at 40/50/60 (paper "0.01 for 40 epochs,
  then /10 every 10 epochs, about 70 in total"), wd 5e-4 (1e-4 Kinetics), dropout 0.5, grad-norm clip 20. No
  weight decay on 1-D parameters (official: BN and biases, biases at 2x lr). The release's `--lr_steps 41 51 61`
  count epochs from 0 as --lr-steps does (lr x0.1 once epoch >= 41: 41 epochs at 0.01, one more than the paper's
  40): `--lr-steps 41 51 61` is the release's schedule.
- Flip: random horizontal flip with the SSv1/v2 direction-class label swap (official), the pairs taken from
  dataset.json (found by class name by common.prepare); the paper says instead that direction classes are not
  flipped at all (`--flip-labels ''` plus filtering would be needed for that).
- Input normalisation: ImageNet mean/std (official test script; its final train script uses none).

The official release (tianyuan168326/EAN-Pytorch, notes/ean-official-reference.md) differs from the paper in the
model in these places, and `--variant official` switches exactly these (every other flag keeps its meaning; the
Table 8/10 EAB ablations stop with a message):
  1. EAB order: temporal convs -> BN+ReLU -> M -> spatial convs, and the kernel-1 members are identities.
  2. EAB expand conv: 0.01 x PyTorch's default init (near, not exactly, the identity at init).
  3. ESP-Net: six 3x3x3 convs with biases ([p, p, 2p stride 2], [2p, 2p, 4p stride 2], padding 2 at stride 2),
     each + BN + ReLU; M's linear at PyTorch's default init (no identity).
  4. Saliency-Net: 1x1x1 512 -> 128, 3x3x3, 1x3x3, 1x3x3 -> N, all with biases, ReLU then BN after the first three.
  5. SOI-Tr output: default-init linear, then a BatchNorm1d with gamma = beta = 0 (the release's Tr_BN; training
     needs batches of 2 or more).
  6. LMC: 2x nearest downsampling, 16x16 patches (32x32 at full resolution) -> 256-d, no bias in encoder and
     decoder; Hm = two residual units (grouped 3x3x3, BN, ReLU, dense 1x1x1, BN; grouped 3x3x3, BN); channels
     c*4 + t; decoder 0.01 x default init. With --num-segments 16, EAN_16f.py's LMC: deeper encoder and decoder,
     a 2D branch on the stacked differences, stem feature mixed 0.6 / 0.2 LMC / 0.2 branch.
  7. Init: the new convs kaiming_normal_(fan_out), their biases and the linears PyTorch's default (init_official).
The released checkpoints (Somethingv1.RGB_LMC_8f/16f.pth.tar) load into it: `official_model_args(state_dict)` gives
the flags, `convert_official(state_dict)` the tensors, strictly (EAN_8f: 932 tensors -> 901, and the 31 the
release defines but never uses, its stem's bn2, the EABs' bn2 and stm_proj2, dropped by name; EAN_16f: 953 -> 928 +
25). On the same random weights (BN statistics of one batch) and input, our forward equals the official code's:
max |logit difference| 9.4e-11 (8F) and 4.1e-11 (16F) in float64, 2.6e-2 in float32 on logits of std 16.7 (random
weights amplify round-off), measured with a throw-away script that imports the official EAN_8f.py/EAN_16f.py/TSN.py.
"""
# ==================================================================================================== imports
import argparse
import contextlib
import json
import math
import os
import re
import signal
import sys
import time

import numpy as np
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

SCRIPT = "ean"

# ================================================================================================== arguments
# The CPU-sized profile used when no --data is given (CONVENTIONS.md "The demo dataset"); flags given on the
# command line win over it. The paper's modules are unchanged; only backbone depth, frame size and schedule shrink.
DEMO_PROFILE = dict(arch="resnet18", pretrained="none", input_size=64, epochs=12, batch_size=16, lr=0.02,
                    lr_steps=[8, 11], weight_decay=5e-4, dropout=0.0, workers=2)


def get_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None, help="dataset root (CONVENTIONS.md layout); omitted: the demo dataset")
    p.add_argument("--frame-template", default=None,
                   help="file names inside frame folders; default: dataset.json's, else img_{:05d}.jpg (1-based)")
    # optimisation (paper Sec. 4 "Implementation Detail")
    p.add_argument("--epochs", type=int, default=70, help="'about 70' epochs in total (Sec. 4)")
    p.add_argument("--batch-size", type=int, default=64, help="clips per step over all GPUs (Sec. 4)")
    p.add_argument("--lr", type=float, default=0.01, help="for --batch-size 64; scale linearly (Sec. 4)")
    p.add_argument("--lr-steps", type=int, nargs="+", default=[40, 50, 60],
                   help="epochs where lr x0.1: 0.01 for 40 epochs, then /10 every 10 epochs (Sec. 4)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="5e-4 Something/Diving48, 1e-4 Kinetics (Sec. 4)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (Sec. 4; TDN's settings)")
    p.add_argument("--dropout", type=float, default=0.5, help="before the classifier (Sec. 4)")
    p.add_argument("--clip-grad", type=float, default=20.0,
                   help="gradient-norm clipping (TDN's settings, Sec. 4 footnote 2)")
    p.add_argument("--finetune", default=None, metavar="PATH",
                   help="start from the weights of another run or release (TSN/TSM/EAN/mmaction2 key layouts; "
                        "matched by name and shape, the classifier kept only when K is equal)")
    # model
    p.add_argument("--num-segments", type=int, default=8, help="T, segments per clip (8F/16F, Table 1)")
    p.add_argument("--arch", default="resnet50", choices=["resnet18", "resnet34", "resnet50"],
                   help="ResNet-50 in the paper (Sec. 4)")
    p.add_argument("--pretrained", default="imagenet",
                   help="none | imagenet (IMAGENET1K_V1) | PATH (ResNet weights of torchvision/TSN/TSM/mmaction2 layout)")
    p.add_argument("--allow-partial", action="store_true",
                   help="--pretrained/--finetune PATH: go on when fewer than 90 %% of the ResNet tensors match")
    p.add_argument("--input-size", type=int, default=224, help="crop size (Sec. 4)")
    p.add_argument("--num-classes", type=int, default=174, help="when no dataset is given (SSv1/v2: 174)")
    p.add_argument("--baseline", nargs="?", const="tsn", default=None, choices=["tsn"],
                   help="all paper modules off: the TSN baseline (the paper's 'ResNet baseline' of Table 5, "
                        "with ME and temporal convs, is --no-eab --no-soi --no-lmc)")
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
                   help="--evaluate several checkpoints and average their scores (Table 1 EAN_En: 16F + 8F)")
    p.add_argument("--test-clips", type=int, default=1,
                   help="clips per video at test time (1: Table 1; 10: Table 2 Kinetics; 2: Table 4 Diving48)")
    p.add_argument("--test-crops", type=int, default=1, choices=[1, 3, 10],
                   help="crops per clip at test time (1 centre crop: Tables 1, 4; 3: Table 2)")
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
    p.add_argument("--no-eab", action="store_true", help="no Event Adaptive Blocks (Table 5 'ResNet+SOI-Tr')")
    p.add_argument("--no-soi", action="store_true", help="no SOI-Tr (Table 5 'ResNet+EABs'; Table 7 'None')")
    p.add_argument("--no-lmc", action="store_true", help="no Latent Motion Code: the EAN_RGB model (Fig. 5a, Table 5)")
    p.add_argument("--eab-stages", type=int, nargs="*", default=[1, 2, 3, 4], choices=[1, 2, 3, 4, 5],
                   help="EAB after these stages (1 = conv1 stem, 2-5 = res2-res5; Table 6 best: 1-4)")
    p.add_argument("--soi-stages", type=int, nargs="*", default=[5], choices=[3, 4, 5],
                   help="SOI-Tr after these stages (Table 6 best: 5)")
    p.add_argument("--eab-fusion", default="dynamic", choices=["dynamic", "static", "shuffle", "identity"],
                   help="kernel fusion matrix M of EAB: ESP-Net (dynamic), learnt matrix (static), channel shuffle, "
                        "identity = Incep-Block (Table 9)")
    p.add_argument("--soi-regions", default="saliency", choices=["saliency", "fixed", "all"],
                   help="object regions of SOI-Tr: Saliency-Net, 4 fixed quadrants, all positions (Table 7)")
    p.add_argument("--num-objects", type=int, default=4, help="N, object maps per frame (Sec. 3.2)")
    p.add_argument("--snippet", type=int, default=5, help="frames per segment for LMC (Sec. 3.3)")
    p.add_argument("--rgb-frame", default="centre", choices=["centre", "first"],
                   help="snippet frame fed to the RGB stream with LMC (Eq. 12 says first; official code: centre)")
    p.add_argument("--eab-kernels", default="multi-scale", choices=list(EAB_KERNELS),
                   help="kernels of the EAB's 3 groups: 1/3/5 (EAB, Incep-Block), 3x3x3 (S-Block) or 3x3x3 dilated 2 "
                        "(L-Block); Table 8's S-/L-Block rows add --eab-fusion identity")
    p.add_argument("--eab-pool", default="max", choices=["max", "avg", "none"],
                   help="pooling branch of the EAB (Table 10 'Avg Pool', 'Without Max Pool')")
    p.add_argument("--no-inter-relu", action="store_true",
                   help="no ReLU between the EAB's spatial and temporal convs (Table 10 'Without inter ReLU')")
    p.add_argument("--no-dilation", action="store_true",
                   help="the EAB's dilated 3x3 / 3 kernels as 5x5 / 5 (Table 10 'Without dilation')")
    p.add_argument("--eab-conv", default="2+1d", choices=["2+1d", "1+1+1d"],
                   help="1+1+1d: each 2D spatial conv of the EAB as two stacked 1D convs (Table 10 '(1+1+1)D')")
    p.add_argument("--variant", default="paper", choices=["paper", "official"],
                   help="official: the released structure and init (EAN_8f.py; EAN_16f.py with --num-segments 16), "
                        "which released checkpoints load into (convert_official); the docstring lists what it switches")
    args = p.parse_args(argv)
    adopted = checkpoint.adopt(p, argv, args, SCRIPT, MODEL_KEYS, release_args)  # the checkpoint's model flags
    if adopted and is_official_checkpoint(checkpoint.load(adopted)):  # the release's test protocol unless given
        given = checkpoint.explicit_flags(p, argv)
        vars(args).update({k: v for k, v in OFFICIAL_TEST_PROTOCOL.items() if k not in given})
    check_model_flags(p, args)
    args.demo = args.data is None and not (args.complexity or args.benchmark or args.predict)
    if args.complexity or args.benchmark:
        args.pretrained = "none"  # weights change neither FLOPs nor speed
    if args.demo and not adopted:
        for key, value in DEMO_PROFILE.items():
            if getattr(args, key) == p.get_default(key):
                setattr(args, key, value)
    if not args.no_lmc and not args.baseline and args.input_size % 32:
        p.error(f"LMC cuts frames into 32x32 patches: --input-size must be a multiple of 32 (got {args.input_size})")
    if args.no_eab:
        args.eab_stages = []
    if args.no_soi:
        args.soi_stages = []
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
    return args


def check_model_flags(p, args):
    """A model flag that the combination would ignore stops with one line (CONVENTIONS.md "paper switches")."""
    given = [k for k in MODEL_FLAGS if getattr(args, k) != p.get_default(k)]
    flag = lambda k: "--" + k.replace("_", "-")
    if args.baseline and given:
        p.error(f"--baseline is TSN without EAN's modules: {flag(given[0])} does not apply")
    no_eab = args.no_eab or not args.eab_stages
    for k in ["eab_stages", "eab_fusion", *EAB_FLAGS]:
        if no_eab and k in given and not (k == "eab_stages" and not args.eab_stages):
            p.error(f"{flag(k)} is ignored without EABs ({'--no-eab' if args.no_eab else '--eab-stages with none'})")
    no_soi = args.no_soi or not args.soi_stages
    for k in ["soi_stages", "soi_regions", "num_objects"]:
        if no_soi and k in given and not (k == "soi_stages" and not args.soi_stages):
            p.error(f"{flag(k)} is ignored without SOI-Tr ({'--no-soi' if args.no_soi else '--soi-stages with none'})")
    if "num_objects" in given and args.soi_regions != "saliency":
        p.error(f"--num-objects is the Saliency-Net's N; --soi-regions {args.soi_regions} ignores it")
    for k in ["snippet", "rgb_frame"]:
        if args.no_lmc and k in given:
            p.error(f"{flag(k)} is ignored without LMC (--no-lmc)")
    if not (args.no_lmc or args.baseline) and (args.snippet < 2 or 64 % (args.snippet - 1)):
        p.error(f"LMC stacks the snippet's L-1 difference maps on the stem's 64 channels: --snippet L needs L-1 to "
                f"divide 64 (2, 3, 5, 9, 17, 33, 65), got {args.snippet}")
    if "no_dilation" in given and args.eab_kernels == "s-block":
        p.error("--no-dilation is ignored by --eab-kernels s-block (no dilated kernel)")
    if args.variant == "official":
        for k in EAB_FLAGS:
            if k in given:
                p.error(f"{flag(k)} is a paper-variant ablation; --variant official builds the release's EAB")
        if not args.no_lmc and args.snippet != 5:
            p.error("--variant official: the release's LMC stacks 4 differences (--snippet 5)")


# EAN's model flags (get_args): what builds the model; check_model_flags stops combinations that ignore one
EAB_FLAGS = ["eab_kernels", "eab_pool", "no_inter_relu", "no_dilation", "eab_conv"]
MODEL_FLAGS = ["variant", "no_eab", "no_soi", "no_lmc", "eab_stages", "soi_stages", "eab_fusion", "soi_regions",
               "num_objects", "snippet", "rgb_frame", *EAB_FLAGS]
# what a checkpoint decides about its model: --evaluate, --predict, --resume and --ensemble take these from it
MODEL_KEYS = ("arch", "num_segments", "input_size", "baseline", *MODEL_FLAGS)


# ============================================================================================== paper modules
# Shapes: B videos, T segments, C channels, H, W; 2D backbone features are (B*T, C, H, W), the 3D modules (EAB,
# SOI-Tr) see (B, C, T, H, W). L = frames per snippet (5), D = L-1 RGB differences, N objects per frame.

class TemporalConv3d(nn.Conv3d):
    """nn.Conv3d whose kernel is (k, 1, 1) (k >= 1), run as the equivalent Conv2d on (B, C, T, H*W): the same
    parameters and results (tested). PyTorch's CPU Conv3d takes such kernels through slow_conv3d / oneDNN 3D
    paths that cost 2-7x the Conv2d (measured: depthwise 3x1x1 on 8x64x56x56, 5.3 vs 1.3 ms)."""

    def forward(self, x):
        B, C, T, H, W = x.shape
        y = F.conv2d(x.reshape(B, C, T, H * W), self.weight.flatten(3), self.bias, (self.stride[0], 1),
                     (self.padding[0], 0), (self.dilation[0], 1), self.groups)    # (B,C,T,HW) -> (B,C',T',HW)
        return y.view(B, y.shape[1], y.shape[2], H, W)                          # -> (B, C', T', H, W)


class FrameConv3d(nn.Conv3d):
    """nn.Conv3d whose kernel is (1, k, k) (one frame), applied to the frames (B*T, C, H, W) as the equivalent
    Conv2d: the same parameters and results, and no (B, C, T, H, W) transpose of its input or output."""

    def forward(self, x):
        return F.conv2d(x, self.weight.squeeze(2), self.bias, self.stride[1:], self.padding[1:], self.dilation[1:],
                        self.groups)


class FramePool3d(nn.Module):
    """MaxPool3d / AvgPool3d(3, stride 1, padding 1) of the frames (B*T, C, H, W) of clips of T frames: a 3x3 pool in
    every frame, then the pool over frames t-1, t, t+1 (both are separable: a max exactly; the zero-padded average
    of PyTorch's default count_include_pad, sum/27, up to rounding; tested).
    Both pools run on channels-last data, where CPU max_pool2d vectorises over the channels: 8 ms instead of
    max_pool3d's 68 ms on 8x64x56x56 (NCHW max_pool2d: 31 ms), measured."""

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


class FrameMaxPool3d(FramePool3d):
    """MaxPool3d(3, stride 1, padding 1) of the frames (B*T, C, H, W): the EAB's "Max:3" branch (Fig. 3a)."""

    def __init__(self, num_segments):
        super().__init__(num_segments, "max")


class ME(nn.Module):
    """Motion excitation of TEA (used as is by EAN, Sec. 4 "Implementation Detail"), official-code form.

    `channels`: C; `reduction`: r=16; `num_segments`: T. X_r = BN(conv1x1(X)) (C/r); D(t) = dwconv3x3(X_r(t+1)) -
    X_r(t), zero for the last frame; A = sigmoid(BN(conv1x1(GAP(D)))) - 0.5; out = X + X * A."""

    def __init__(self, channels, num_segments, reduction=16):
        super().__init__()
        c = channels // reduction
        self.num_segments = num_segments
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
        fold = channels // fold_div
        w = torch.zeros(channels, 1, 3, 1, 1)
        w[:fold, 0, 2] = 1                  # out[t] = x[t+1]
        w[fold:2 * fold, 0, 0] = 1          # out[t] = x[t-1]
        w[2 * fold:, 0, 1] = 1              # out[t] = x[t]
        self.conv.weight.data.copy_(w)

    def forward(self, x):
        x = x.unflatten(0, (-1, self.num_segments)).transpose(1, 2)     # (B*T,C,H,W) -> (B,C,T,H,W)
        return self.conv(x).transpose(1, 2).flatten(0, 1)               # (B,C,T,H,W) -> (B*T,C,H,W)


def split_sizes(channels, groups=3):
    """Channel groups of Eq. (2) (X_j = X[j*c:(j+1)*c], c = C/G). # Choice: C/4 is not divisible by 3 (16, 64, 128,
    256), so the first G-1 groups get C//G channels and the last one the rest (as the official code)."""
    return [channels // groups] * (groups - 1) + [channels - (groups - 1) * (channels // groups)]


class ESPNet(nn.Module):
    """Event Scale Perceiving Network, Eq. (3), Fig. 3(b): M = ESP-Net(X), M in R^{Cr x Cr}.

    `channels`: Cr, the EAB's compressed width; 1x1x1 conv reducing 16x (p = Cr/16), two 5x5x5 stride-2 3D convs,
    average pooling over (T,H,W), a linear layer reshaped to the Cr x Cr matrix M."""

    def __init__(self, channels, reduction=16, variant="paper"):
        super().__init__()
        # Choice: ESP-Net reads the compressed Cr channels, reduces them to p = Cr/16 and its two 5x5x5 convs widen
        # p -> 2p -> 4p (the official widths; the paper gives none). The EABs of stages 1-4 then hold 5.8M
        # parameters, 4.9M of them in the linear layers 4p -> Cr^2 (Table 5: +5.5M for EABs, Table 9: +5.1M over
        # the Incep-Block). Constant widths would make those layers 4x smaller (~1.9M in all); reducing X^l (C
        # channels) with growing widths 4x larger (>20M).
        p = max(1, channels // reduction)
        self.channels = channels
        self.reduce = nn.Sequential(TemporalConv3d(channels, p, 1, bias=False), nn.BatchNorm3d(p),
                                    nn.ReLU(inplace=True))
        if variant == "paper":
            self.context = nn.Sequential(
                nn.Conv3d(p, 2 * p, 5, stride=2, padding=2, bias=False), nn.BatchNorm3d(2 * p), nn.ReLU(inplace=True),
                nn.Conv3d(2 * p, 4 * p, 5, stride=2, padding=2, bias=False), nn.BatchNorm3d(4 * p),
                nn.ReLU(inplace=True))
        else:  # differs from the paper (--variant official): six 3x3x3 convs WITH biases, the 3rd and 6th of stride
            # 2 and padding 2, each + BN + ReLU: [p, p, 2p (s2)], [2p, 2p, 4p (s2)]
            layers = []
            for cin, cout, stride in [(p, p, 1), (p, p, 1), (p, 2 * p, 2), (2 * p, 2 * p, 1), (2 * p, 2 * p, 1),
                                      (2 * p, 4 * p, 2)]:
                layers += [nn.Conv3d(cin, cout, 3, stride, padding=stride), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]
            self.context = nn.Sequential(*layers)
        self.fc = nn.Linear(4 * p, channels * channels)
        if variant == "paper":
            # Choice: the paper puts no normalisation on M; its bias starts at the identity so that at init the
            # dynamic fusion is the Incep-Block (M = I, Table 9) plus a video-dependent perturbation (differs from the
            # official release, --variant official: PyTorch's default init, no identity).
            with torch.no_grad():
                self.fc.bias.copy_(torch.eye(channels).flatten())

    def forward(self, x):
        s = self.context(self.reduce(x)).mean((2, 3, 4))                # (B, 4p) average pooling
        return self.fc(s).view(-1, self.channels, self.channels)        # (B, Cr*Cr) -> (B, Cr, Cr) = M[b, out, in]


# (kernel, dilation) of the spatial (k x k) and temporal (k) convs of the G = 3 channel groups (Table 8).
# Choice: S-/L-Block keep the rest of the EAB (4x bottleneck, BN+ReLU, the max-pool branch; M with --eab-fusion
# identity): the paper describes only their convs, and Incep-Block, "the L-Block enhanced with multi-scale
# modeling", differs from the EAB by M only.
EAB_KERNELS = {"multi-scale": [(1, 1), (3, 1), (3, 2)],  # EAB and Incep-Block: 1, 3, 3 dilated 2 (field 5)
               "s-block": [(3, 1)] * 3,                  # S-Block: a (2+1)D 3x3x3 conv in 3 groups
               "l-block": [(3, 2)] * 3}                  # L-Block: the same, dilated 2x2x2 (field 5x5x5)


class EAB(nn.Module):
    """Event Adaptive Block, Sec. 3.1, Eq. (1)-(3), Fig. 3(a): Z = X + Y with

        Y = U_i { M (x) U_j X_j * F_s^(2j-1) }_i * F_t^(2i-1)                                   (Eq. 2)

    `channels`: C; `reduction`: the 4x bottleneck (Cr = C/4); G = 3 groups: spatial kernels 1x1, 3x3, 3x3 dilated 2
    (5x5 field), temporal kernels 1, 3, 3 dilated 2 (5); `fusion`: how M is made (Table 9). A max-pool branch
    (3x3x3 max, 1x1x1 conv) complements the convs. The last conv (expand) is zero-initialised, so EAB starts as the
    identity (Sec. 3.1 "Implementation of EAB").

    Ablations: `kernels` the groups' kernels (EAB_KERNELS, Table 8 S-/L-Block), `pool` max | avg | none (Table 10
    "Avg Pool", "Without Max Pool"), `inter_relu` the ReLU between the spatial and temporal convs (Table 10),
    `dilation` False: the dilated 3x3 / 3 become 5x5 / 5 (Table 10 "Without dilation"), `conv` "1+1+1d": every
    k x k spatial conv as a k x 1 then a 1 x k conv (Table 10 "(1+1+1)D").
    `variant` "official": the released block (EAB_rfs555.py): temporal convs -> BN+ReLU -> M -> spatial convs, the
    kernel-1 members are identities, the ESP-Net of the release, expand = 0.01 x PyTorch's default init."""

    def __init__(self, channels, num_segments, reduction=4, groups=3, fusion="dynamic", variant="paper",
                 kernels="multi-scale", pool="max", inter_relu=True, dilation=True, conv="2+1d"):
        super().__init__()
        cr = channels // reduction
        self.num_segments, self.fusion, self.splits = num_segments, fusion, split_sizes(cr, groups)
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
        # "Max:3" branch (Avg: Table 10); Choice: the average counts the zero padding (PyTorch's default)
        self.pool = nn.Sequential(FramePool3d(num_segments, pool), FrameConv3d(cr, cr, 1, bias=False)) \
            if pool != "none" else None
        self.expand = FrameConv3d(cr, channels, 1, groups=4, bias=False)
        if variant == "paper":
            nn.init.zeros_(self.expand.weight)
        else:  # differs from the paper: 0.01 x PyTorch's default init, so the block starts NEAR the identity
            self.expand.weight.data.mul_(0.01)
        if fusion == "dynamic":
            self.esp = ESPNet(cr, variant=variant)
        elif fusion == "static":  # "a learnable matrix during training, fixed during inference" (Table 9)
            self.matrix = nn.Parameter(torch.eye(cr))
        elif fusion == "shuffle":  # channel shuffle across the G groups (Table 9): interleave the groups
            starts = np.cumsum([0] + self.splits[:-1])
            order = [s + k for k in range(max(self.splits)) for s, n in zip(starts, self.splits) if k < n]
            self.register_buffer("perm", torch.tensor(order), persistent=False)

    @staticmethod
    def spatial_conv(c, k, d, conv, variant):
        if k == 1 and variant == "official":
            return nn.Identity()          # differs from the paper's F_s^(1) (a 1x1 conv): the release's identity
        pad = d * (k // 2)
        # Table 10 "(1+1+1)D"; Choice: the two 1D convs stacked with nothing between them
        if conv == "1+1+1d" and k > 1:
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
        # Choice (speed only): all of Eq. (2) but the temporal convs acts on single frames, so those parts run on
        # the frames (B*T, C, H, W) as Conv2d/max_pool2d (FrameConv3d, FramePool3d: the same weights, the same
        # results); only the Cr-wide input or output of the temporal convs is transposed, never X or the output.
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
        if self.pool is not None:
            y = self.pool(z).unflatten(0, (B, T)) + y                   # (B*T,Cr,H,W) -> (B,T,Cr,H,W)
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
        self.norm1, self.attn = TokenBN(dim), Attention(dim, heads)
        # Choice: FFN = three dim-wide linears with BN+ReLU (official; the paper does not describe the FFN).
        self.norm2 = TokenBN(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), TokenBN(dim), nn.ReLU(inplace=True),
                                 nn.Linear(dim, dim), TokenBN(dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class SaliencyNet(nn.Module):
    """Eq. (4): O = Saliency-Net(X5), O in R^{N x T x W x H}: four layers (1x1x1 reducing 8x, 3x1x1 for moving
    objects, 1x5x5 for context, 1x1x1 to N maps), then a spatial softmax per object and frame.

    Cost: 0.05 GFLOPs at 8 x 7 x 7 (d = 512), while Table 7 puts "Our Det-Net" 0.3 G above "Fixed" regions; the
    release's heavier net (`variant` "official") costs 0.31 G, which is the paper's figure.
    `variant` "official": differs from the paper: 1x1x1 reducing 4x (512 -> 128), 3x3x3, 1x3x3, 1x3x3 -> N, every
    conv with a bias, ReLU THEN BN after the first three (SOI_Tr.py score_predictor)."""

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
            c = channels // 4
            self.layers = nn.Sequential(
                nn.Conv3d(channels, c, 1), nn.ReLU(inplace=True), nn.BatchNorm3d(c),
                nn.Conv3d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm3d(c),
                nn.Conv3d(c, c, (1, 3, 3), padding=(0, 1, 1)), nn.ReLU(inplace=True), nn.BatchNorm3d(c),
                nn.Conv3d(c, num_objects, (1, 3, 3), padding=(0, 1, 1)))

    def forward(self, x):
        o = self.layers(x)                                              # (B, N, T, H, W)
        return o.flatten(3).softmax(-1).view_as(o)                      # spatial softmax over H*W


def resize_pos(pos, size):
    """The positional embedding E (1, d, T, H, W) at another (T, H, W): testing at another frame size than the one
    trained (e.g. 3 crops of 256 from a 224 model: X5 is 8x8 instead of 7x7); at the trained size E itself (the
    interpolation to the same size is the identity as well, tested)."""
    # Choice: trilinear interpolation (align_corners=False) of the learnt grid, as timm resamples ViT position
    # embeddings (there bicubic in 2D); the paper and the release test at the trained size only.
    if tuple(pos.shape[2:]) == tuple(size):
        return pos
    return F.interpolate(pos, size=tuple(size), mode="trilinear", align_corners=False)


class SOITr(nn.Module):
    """Sparse Object Interaction Transformer, Sec. 3.2, Eq. (4)-(6), Fig. 4.

    `channels`: C of the stage output X5; `reduction`: the bottleneck factor 4 (d = C/4 token width); `size`:
    (T, H, W) of X5 for the positional embedding E; `num_objects`: N; `regions`: where the N regions come from
    (Table 7). Output: X + v with v = W_o mean(F') broadcast over (T,H,W), so GAP(out) = GAP(X5) + v; W_o starts
    at zero, so SOI-Tr starts as the identity. Other input sizes: E is interpolated (`resize_pos`).
    `variant` "official": the release's Saliency-Net, and v = BN(W_o mean(F')) with the BatchNorm1d (the release's
    Tr_BN) at gamma = beta = 0 and W_o at PyTorch's default init (a batch of 1 cannot train then)."""

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
        self.proj_bn = None
        if variant == "paper":
            # Choice: a zero-initialised W_o alone (differs from the official release: default-init W_o then a
            # zero-initialised BatchNorm1d, the Tr_BN; a plain linear also trains with a batch of 1)
            nn.init.zeros_(self.proj.weight)
        else:
            self.proj_bn = nn.BatchNorm1d(channels)                     # the release's Tr_BN
            nn.init.zeros_(self.proj_bn.weight)
            nn.init.zeros_(self.proj_bn.bias)

    @staticmethod
    def quadrants(size):
        T, H, W = size
        masks = torch.zeros(4, T, H, W)
        for n, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            masks[n, :, i * H // 2:-(-(i + 1) * H // 2), j * W // 2:-(-(j + 1) * W // 2)] = 1
        return masks / masks.sum((2, 3), keepdim=True)                 # (N, T, H, W), each sums to 1 per frame

    def forward(self, x):
        T = self.size[0]
        B = x.shape[0] // T
        x3 = x.unflatten(0, (B, T)).transpose(1, 2)                     # (B*T,C,H,W) -> (B,C,T,H,W)
        f = self.squeeze(x3)                                            # (B, d, T, H, W)
        pos = resize_pos(self.pos, f.shape[2:])
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
        if self.proj_bn is not None:
            v = self.proj_bn(v)
        return x + v.repeat_interleave(T, 0)[:, :, None, None]          # (B,C) -> (B*T,C,1,1), broadcast over H,W


class ResidualUnit(nn.Sequential):
    """x + layers(x): the residual units of the official LMC's H_m."""

    def forward(self, x):
        return x + super().forward(x)


class LMC(nn.Module):
    """Latent Motion Code, Sec. 3.3, Eq. (7)-(11), Fig. 5(c).

    Input: snippets (B, T, L, 3, H, W) with L = 5. d_t[i] = S_t[i] - S_t[i-1] (Eq. 7); H_e: a linear layer shared by
    all 3x32x32 patches -> 128 (Eq. 8); H_m: two 3D convs of kernel 3 and 16 groups over (D, H/32, W/32) (Eq. 9);
    H_d: a linear layer 128 -> 16x8x8 per patch (Eq. 10); the D=4 maps stacked along channels (Eq. 11) give
    m_t (B*T, 64, H/4, W/4), the size of the stem output it is added to (Eq. 12). Other frame sizes: see forward.

    `variant` "official-8f" / "official-16f" (EAN_8f.py / EAN_16f.py), each a difference from the paper: the
    differences are taken after a 2x nearest downsampling (x[::2, ::2]) and cut into 16x16 patches (32x32 at full
    resolution) -> 256-d latent, no bias in encoder and decoder; H_m is two residual units (grouped 3x3x3 conv, BN,
    ReLU, a DENSE 1x1x1 conv, BN; grouped 3x3x3 conv, BN); the motion map's channels are c*4 + t (channel-major,
    t = difference) instead of Eq. (11)'s difference-major t*16 + c; decoder 0.01 x PyTorch's default init.
    16f adds: encoder = patch linear, BN, ReLU, 1x1 (256 -> 256); decoder = 1x1 (256 -> 256, 0.01 x default), BN,
    ReLU, patch linear (default init); a 2D branch on the 4 downsampled differences stacked as 12 channels (c*4+t)
    (conv 3x3 s2 12->24, ReLU, BN, conv 3x3 g4 24->64, ReLU, BN, conv 1x1 with bias, conv 3x3 g16), and the stem
    feature mixed as 0.6 stem + 0.2 LMC + 0.2 branch (`stem_weight` 0.6; the paper describes none of these)."""

    def __init__(self, patch=32, latent=128, groups=16, out_channels=64, snippet=5, variant="paper"):
        super().__init__()
        self.diffs = snippet - 1
        c = out_channels // self.diffs                                  # 16 channels per difference
        self.downsample, self.diff_major, self.stem_weight, self.stacked = 1, True, 1.0, None
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
            # the release's init of its 1x1x1 conv latent -> 16*8*8: PyTorch's default, U(+-1/sqrt(latent)); that of
            # a ConvTranspose2d computes another fan, so it is set here
            nn.init.uniform_(dec.weight, -latent ** -0.5, latent ** -0.5)
            if sixteen:
                self.decode = nn.Sequential(nn.Conv2d(latent, latent, 1, bias=False), nn.BatchNorm2d(latent),
                                            nn.ReLU(inplace=True), dec)
                self.decode[0].weight.data.mul_(0.01)
                self.stacked = nn.Sequential(
                    nn.Conv2d(3 * self.diffs, 24, 3, 2, 1, bias=False), nn.ReLU(inplace=True), nn.BatchNorm2d(24),
                    nn.Conv2d(24, out_channels, 3, 1, 1, groups=4, bias=False), nn.ReLU(inplace=True),
                    nn.BatchNorm2d(out_channels), nn.Conv2d(out_channels, out_channels, 1),
                    nn.Conv2d(out_channels, out_channels, 3, 1, 1, groups=16, bias=False))
                self.stem_weight = 0.6
            else:
                self.decode = dec
                dec.weight.data.mul_(0.01)
        self.patch = patch                                              # in full-resolution pixels

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


# ---- what `--predict ... --visualize DIR` draws beside Grad-CAM of VIS_CAM (common/visualize.py: "Class.attr" specs)
VIS_CAM = "backbone.layer4"  # paper stage 5, (B*T, C, h, w)
VIS_MAPS = {
    "Saliency-Net maps O (Eq. 4)": dict(
        at="SaliencyNet", kind="objects", layout="BCT",
        note="O(n,t), softmax over h x w; box: its cells >= half the maximum, where F(n,t) (Eq. 5) pools from"),
    "EAB fusion matrix M (Eq. 3, Fig. 10)": dict(
        at="ESPNet", kind="matrix", pick="all", note="M[out, in] of this video, one per EAB (stages 1-4)"),
}


# ------------------------------------------------------------------------------------------------- paper tables
# Every row of the paper's tables that this script builds: `python ean.py --complexity FLAGS` measures it, `python -m
# common.paper_tables ean` prints them all beside the paper's figures (params_m, gflops, top1, top5: given only where
# the paper gives them; Something-Something V1 unless the table says otherwise). The notes give the protocol of the
# headline rows and the reason where ours is more than 3 % off (measured 2026-12-03, torch 2.14.1, this CPU).
SSV1 = "Something-Something V1, 1 clip x 1 centre crop of 224 (`--test-clips 1 --test-crops 1`, the defaults)"
K400 = "Kinetics-400, 10 clips x 3 crops of 256x256 (`--test-clips 10 --test-crops 3 --test-size 256`); the paper's " \
       "GFLOPs are per view at 224 (x30 views)"
ENSEMBLE = "scores of the 16F and the 8F model averaged: `python ean.py --evaluate --ensemble 16f/best.pt 8f/best.pt " \
           "--data DIR`"
PAPER_TABLES = [
    {"table": "Table 1", "row": "EAN8F(RGB)", "flags": "--no-lmc", "gflops": 36, "top1": 51.9, "top5": 79.5,
     "note": SSV1 + "; V2: 63.5 / 88.2"},
    {"table": "Table 1", "row": "EAN16F(RGB)", "flags": "--no-lmc --num-segments 16", "gflops": 72, "top1": 53.4,
     "top5": 81.4, "note": "as EAN8F(RGB); V2: 64.6 / 89.1. EANEn(RGB) = this + EAN8F(RGB), " + ENSEMBLE +
                           ": 108 GFLOPs, 55.8 / 83.1 (V1), 66.6 / 89.9 (V2)"},
    {"table": "Table 1", "row": "EAN8F(RGB+LMC)", "flags": "", "gflops": 37, "top1": 53.4, "top5": 81.1,
     "note": "headline: 8x5 frames, " + SSV1 + "; V2: 65.2 / 89.4"},
    {"table": "Table 1", "row": "EAN16F(RGB+LMC)", "flags": "--num-segments 16", "gflops": 74, "top1": 54.7,
     "top5": 82.3, "note": "16x5 frames, as EAN8F(RGB+LMC); V2: 66.6 / 90.3. EANEn(RGB+LMC) = this + EAN8F(RGB+LMC), "
                           + ENSEMBLE + ": 111 GFLOPs, 57.2 / 83.9 (V1), 68.8 / 91.4 (V2)"},
    {"table": "Table 2", "row": "EAN8F(RGB+LMC)", "flags": "--num-classes 400", "gflops": 37, "top1": 77.1,
     "top5": 93.3, "note": K400},
    {"table": "Table 2", "row": "EAN16F(RGB+LMC)", "flags": "--num-segments 16 --num-classes 400", "gflops": 74,
     "top1": 78.3, "top5": 93.7, "note": K400 + ". EANEn(RGB+LMC) = this + EAN8F(RGB+LMC), " + ENSEMBLE +
                                        ": 111 x 30 GFLOPs, 79.0 / 94.1"},
    {"table": "Table 3", "row": "ResNet baseline", "flags": "--no-eab --no-soi --no-lmc", "top1": 48.6,
     "note": "8 x 1 frames, ME + temporal conv, AVG; = Table 5 'ResNet baseline'"},
    {"table": "Table 3", "row": "EAN8F(RGB)", "flags": "--no-lmc", "top1": 51.9, "note": "8 x 1 frames; = Table 1"},
    {"table": "Table 3", "row": "EAN8F(RGB+LMC)", "flags": "", "top1": 53.4, "note": "8 x 5 frames; = Table 1"},
    {"table": "Table 4", "row": "Ours (16 frames)", "flags": "--num-segments 16 --num-classes 48", "top1": 40.4,
     "note": "Diving48 V1, 1 clip x 1 centre crop of 224. The paper says '16 frames' only; # Choice: RGB+LMC, the "
             "model of Tables 1-2 (`--no-lmc` for RGB)"},
    {"table": "Table 4", "row": "Ours (16x2)", "flags": "--num-segments 16 --num-classes 48", "top1": 41.7,
     "note": "as the row above with 2 clips: `--test-clips 2`"},
    {"table": "Table 5", "row": "ResNet baseline", "flags": "--no-eab --no-soi --no-lmc", "params_m": 24.0,
     "gflops": 33.1, "top1": 48.6, "top5": 77.5, "note": "ResNet-50 + ME + temporal conv in every bottleneck"},
    {"table": "Table 5", "row": "ResNet+EABs", "flags": "--no-soi --no-lmc", "params_m": 29.5, "gflops": 35.3,
     "top1": 50.8, "top5": 78.4, "note": ""},
    {"table": "Table 5", "row": "ResNet+SOI-Tr", "flags": "--no-eab --no-lmc", "params_m": 30.3, "gflops": 33.8,
     "top1": 49.3, "top5": 77.9, "note": ""},
    {"table": "Table 5", "row": "ResNet+EABs+SOI-Tr", "flags": "--no-lmc", "params_m": 36.0, "gflops": 36.1,
     "top1": 51.9, "top5": 79.5, "note": "EAN8F(RGB)"},
    {"table": "Table 6", "row": "EAB stage 1-2, SOI-Tr stage 3-5",
     "flags": "--no-lmc --eab-stages 1 2 --soi-stages 3 4 5",
     "params_m": 35.6, "gflops": 35.8, "top1": 49.4, "top5": 78.2,
     "note": "params 6 % below: see the next row (SOI-Tr after stage 3: 1.18M here, 0.80M of it the embedding)"},
    {"table": "Table 6", "row": "EAB stage 1-3, SOI-Tr stage 4-5",
     "flags": "--no-lmc --eab-stages 1 2 3 --soi-stages 4 5",
     "params_m": 34.8, "gflops": 35.9, "top1": 50.4, "top5": 79.2,
     "note": "params 5.5 % below, FLOPs as the paper (the rows' FLOP changes agree: -0.2 G paper, -0.23 G ours). The "
             "paper's rows imply about 3.5M for SOI-Tr after stage 4 (34.8 = 36.0 - EAB4 + SOI-Tr4, EAB4 ~4.7M); ours "
             "has 1.89M (d = C/4 = 256: squeeze and projection 0.26M each, transformer 0.92M, embedding over 8x14x14 "
             "0.40M). The paper does not say how SOI-Tr is sized after stages 3/4 and the release has it after "
             "stage 5 only; no reading we tried fits both rows (d = 512 at every stage: row 2 +5 %; the embedding "
             "added before the squeeze, C x T x H x W: row 2 -2 %, row 1 +4 %)"},
    {"table": "Table 6", "row": "EAB stage 1-4, SOI-Tr stage 5", "flags": "--no-lmc", "params_m": 36.0, "gflops": 36.1,
     "top1": 51.9, "top5": 79.5, "note": "EAN8F(RGB)"},
    {"table": "Table 6", "row": "EAB stage 1-5", "flags": "--no-lmc --eab-stages 1 2 3 4 5 --soi-stages",
     "params_m": 65.8, "gflops": 36.2, "top1": 50.8, "top5": 79.1, "note": "no SOI-Tr"},
    {"table": "Table 7", "row": "None", "flags": "--no-soi --no-lmc", "gflops": 35.3, "top1": 50.8, "top5": 78.4,
     "note": ""},
    {"table": "Table 7", "row": "Fixed", "flags": "--no-lmc --soi-regions fixed", "gflops": 35.8, "top1": 50.9,
     "top5": 78.4, "note": "the 2x2 quadrants of every frame (# Choice: the paper does not say which regions)"},
    {"table": "Table 7", "row": "All", "flags": "--no-lmc --soi-regions all", "gflops": 36.4, "top1": 51.3,
     "top5": 79.1, "note": "every position of X5 a token (392 tokens)"},
    {"table": "Table 7", "row": "Our Det-Net", "flags": "--no-lmc", "gflops": 36.1, "top1": 51.9, "top5": 79.5,
     "note": "our Saliency-Net costs 0.05 G above 'Fixed' where the paper has +0.3 G: the paper's kernels (Sec. 3.2) "
             "on 64 channels; the release's net (512 -> 128, 3x3x3, two 1x3x3, `--variant official`) costs 0.31 G. "
             "The 'Faster RCNN' row (71.3 G) needs an external detector and is not built"},
    {"table": "Table 8", "row": "Only SOI-Tr", "flags": "--no-eab --no-lmc", "params_m": 30.3, "gflops": 33.8,
     "top1": 49.3, "top5": 77.9, "note": ""},
    {"table": "Table 8", "row": "+S-Block", "flags": "--no-lmc --eab-kernels s-block --eab-fusion identity",
     "params_m": 30.9, "gflops": 36.1, "top1": 49.6, "top5": 78.1,
     "note": "(2+1)D 3x3x3 in 3 groups, no M; # Choice: the EAB's bottleneck, BN+ReLU and max-pool branch kept"},
    {"table": "Table 8", "row": "+L-Block", "flags": "--no-lmc --eab-kernels l-block --eab-fusion identity",
     "params_m": 30.9, "gflops": 36.1, "top1": 50.3, "top5": 78.4, "note": "as S-Block, dilated 2x2x2"},
    {"table": "Table 8", "row": "+Incep-Block", "flags": "--no-lmc --eab-fusion identity", "params_m": 30.9,
     "gflops": 36.0, "top1": 50.8, "top5": 78.8, "note": "EAB with M = identity"},
    {"table": "Table 8", "row": "+EAB", "flags": "--no-lmc", "params_m": 36.0, "gflops": 36.1, "top1": 51.9,
     "top5": 79.5, "note": "EAN8F(RGB)"},
    {"table": "Table 9", "row": "Identity (Incep-Block)", "flags": "--no-lmc --eab-fusion identity", "params_m": 30.9,
     "gflops": 36.0, "top1": 50.8, "top5": 78.8, "note": ""},
    {"table": "Table 9", "row": "Channel Shuffle", "flags": "--no-lmc --eab-fusion shuffle", "params_m": 30.9,
     "gflops": 35.9, "top1": 51.1, "top5": 78.9, "note": "the 3 groups interleaved"},
    {"table": "Table 9", "row": "Static Matrix", "flags": "--no-lmc --eab-fusion static", "params_m": 30.9,
     "gflops": 36.0, "top1": 51.3, "top5": 79.2, "note": "a learnt Cr x Cr matrix, identity at init"},
    {"table": "Table 9", "row": "Dynamic Matrix", "flags": "--no-lmc", "params_m": 36.0, "gflops": 36.1, "top1": 51.9,
     "top5": 79.5, "note": "EAN8F(RGB)"},
    {"table": "Table 10", "row": "Without Max Pool", "flags": "--no-lmc --eab-pool none", "params_m": 36.0,
     "gflops": 36.1, "top1": 50.6, "top5": 78.4, "note": ""},
    {"table": "Table 10", "row": "Avg Pool", "flags": "--no-lmc --eab-pool avg", "params_m": 36.0, "gflops": 36.1,
     "top1": 51.4, "top5": 79.8, "note": "# Choice: zero padding counted in the average (PyTorch's default)"},
    {"table": "Table 10", "row": "Without inter ReLU", "flags": "--no-lmc --no-inter-relu", "params_m": 36.0,
     "gflops": 36.1, "top1": 50.9, "top5": 79.0, "note": "the BN between spatial and temporal convs kept"},
    {"table": "Table 10", "row": "Without dilation", "flags": "--no-lmc --no-dilation", "params_m": 37.2,
     "gflops": 37.5, "top1": 51.9, "top5": 79.8,
     "note": "the dilated 3x3 / 3 kernels as 5x5 / 5: +0.18M / +0.67 G over EAN8F(RGB) here, +1.2M / +1.4 G in the "
             "paper (within 3 % in total, not in the difference; the paper gives no other detail)"},
    {"table": "Table 10", "row": "(1+1+1)D", "flags": "--no-lmc --eab-conv 1+1+1d", "params_m": 35.7, "gflops": 35.7,
     "top1": 51.2, "top5": 79.2, "note": "each k x k spatial conv as k x 1 then 1 x k"},
    {"table": "Table 10", "row": "Ours", "flags": "--no-lmc", "params_m": 36.0, "gflops": 36.1, "top1": 51.9,
     "top5": 79.5, "note": "EAN8F(RGB)"},
    {"table": "Official release", "row": "EAN 8F RGB+LMC", "flags": "--variant official", "gflops": 37, "top1": 53.4,
     "top5": 81.1, "note": "the release's structure (Somethingv1.RGB_LMC_8f.pth.tar loads into it): release README, "
                           "Something-Something V1, 1 clip x 1 centre crop after a 240x320 resize; not run here. The "
                           "release's count is 37.12M params, 0.14M of them never used (not built here)"},
    {"table": "Official release", "row": "EAN 16F RGB+LMC", "flags": "--variant official --num-segments 16",
     "gflops": 74, "top1": 54.7, "top5": 82.3, "note": "as the 8F row; 16+8 ensemble 57.2 / 83.9 (" + ENSEMBLE + ")"},
    {"table": "Official release", "row": "EAN 8F structure without LMC", "flags": "--variant official --no-lmc",
     "note": "the release has no RGB-only model; its EAN_RGB structure (Table 5's 36.0M / 36.1G)"},
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


STAGES = ["layer1", "layer2", "layer3", "layer4"]  # paper stages 2-5; stage 1 is conv1 (+ max-pool)


def stage_shapes(arch, input_size, num_segments):
    """(channels, (T, H, W)) of the output of paper stages 1-5 (torchvision rounding: ceil at every stride 2)."""
    expansion = 4 if arch == "resnet50" else 1
    channels = [64] + [64 * 2 ** i * expansion for i in range(4)]
    sizes, s = [], -(-input_size // 4)
    for stage in range(5):
        if stage >= 2:
            s = -(-s // 2)
        sizes.append(s)
    return [(c, (num_segments, s, s)) for c, s in zip(channels, sizes)]


def ean_surgery(backbone, arch, num_segments, input_size, eab_stages=(1, 2, 3, 4), soi_stages=(5,),
                eab_fusion="dynamic", soi_regions="saliency", num_objects=4, variant="paper", eab_options=None):
    """EAN's changes to a torchvision ResNet, in place; returns the inserts after each paper stage.

    1. Every block of layer1..layer4: ME and the shift-initialised temporal conv before the 3x3 conv (conv2 of a
       Bottleneck, the second 3x3 of a BasicBlock), Sec. 4 "Implementation Detail".
    2. After paper stage s (1 = conv1 + max-pool, 2-5 = layer1-4): an EAB if s in `eab_stages`, then a SOI-Tr if
       s in `soi_stages` (Table 6). Both are residual with a zero-initialised last layer: the returned ModuleDict
       ({"1": ..., "5": ...}, empty Sequentials where nothing is inserted) leaves the backbone's output unchanged
       at init (`variant` "official": near it, see init_official). `eab_options`: EAB's ablation keywords.
    The official release has the same places: EABs after stem (+LMC), layer1, layer2, layer3; SOI-Tr after layer4."""
    for name in STAGES:
        for block in getattr(backbone, name):
            width = block.conv2.in_channels
            block.conv2 = nn.Sequential(ME(width, num_segments), TemporalConv(width, num_segments), block.conv2)
    inserts = nn.ModuleDict()
    for stage, (channels, size) in enumerate(stage_shapes(arch, input_size, num_segments), 1):
        mods = []
        if stage in eab_stages:
            mods.append(EAB(channels, num_segments, fusion=eab_fusion, variant=variant, **(eab_options or {})))
        if stage in soi_stages:
            mods.append(SOITr(channels, size, num_objects, soi_regions, variant=variant))
        inserts[str(stage)] = nn.Sequential(*mods)
    return inserts


class EAN(nn.Module):
    """EAN_RGB (Fig. 5a) or EAN_RGB+LMC (Fig. 5b): input (B, T, C, H, W) or, with LMC, (B, L*T, C, H, W) holding T
    snippets of L consecutive frames; output video-level logits (B, K).

    Speed (measured, fp32, 2-core CPU, 8 x 224^2): 1.12 x TSN's FLOPs, 1.35-1.45 x its latency. The EABs' convs are
    narrow (compress/expand C <-> C/4 in 4 groups, spatial/temporal convs on C/12-channel groups) and oneDNN runs
    them at about a third of the backbone convs' MACs/s (EABs: 6 % of the FLOPs, 15 % of the time); ME and the
    temporal conv in all 16 blocks are memory-bound (0.6 % of the FLOPs, 8 % of the time, most of it the two
    transposes (B*T,C,H,W) <-> (B,C,T,H*W) around the temporal conv)."""

    def __init__(self, args, num_classes):
        super().__init__()
        variant = getattr(args, "variant", "paper")  # (checkpoints written before --variant existed: paper)
        self.num_segments, self.snippet = args.num_segments, (args.snippet if not args.no_lmc else 1)
        self.rgb_index = (self.snippet // 2) if args.rgb_frame == "centre" else 0
        state = checkpoint.load(args.pretrained) if args.pretrained not in ("none", "imagenet") else None
        release = state if is_official_checkpoint(state) else None  # --pretrained Somethingv1.RGB_LMC_8f.pth.tar
        self.backbone = build_resnet(args.arch, "none" if release else args.pretrained)
        self.inserts = ean_surgery(self.backbone, args.arch, args.num_segments, args.input_size, args.eab_stages,
                                   args.soi_stages, args.eab_fusion, args.soi_regions, args.num_objects, variant,
                                   eab_options(args))
        lmc = "paper" if variant == "paper" else "official-16f" if args.num_segments == 16 else "official-8f"
        self.lmc = LMC(snippet=args.snippet, variant=lmc) if not args.no_lmc else None
        self.dropout, self.fc = classifier(args, num_classes)
        if variant == "official":
            init_official(self)
        if release:
            load_release(self, release.get("state_dict", release), args)

    def forward(self, x):
        B, T, L = x.shape[0], self.num_segments, self.snippet
        x = x.view(B, T, L, *x.shape[2:])                               # (B,L*T,C,H,W) -> (B,T,L,C,H,W)
        rgb = x[:, :, self.rgb_index].flatten(0, 1)                     # (B*T, C, H, W), one frame per segment
        net = self.backbone
        f = net.maxpool(net.relu(net.bn1(net.conv1(rgb))))              # Conv1 stage: (B*T, 64, H/4, W/4)
        if self.lmc is not None:                                        # Eq. (12): f_t = m_t + Conv1(S_t)
            f = f + self.lmc(x) if self.lmc.stem_weight == 1 else self.lmc.stem_weight * f + self.lmc(x)
        f = self.inserts["1"](f)
        for stage, name in enumerate(STAGES, 2):                       # Eq. (13): Stage2-5
            f = self.inserts[str(stage)](getattr(net, name)(f))
        f = f.unflatten(0, (B, T)).mean((1, 3, 4))                      # (B*T,D,h,w) -> (B,T,D,h,w) -> (B,D)
        return self.fc(self.dropout(f))                                 # (B, K)


def load_release(model, state_dict, args):
    """--pretrained RELEASE.pth.tar: the released weights as the start of training (fine-tuning; --variant official):
    every tensor of convert_official but the classifier's, which starts anew for this dataset's classes; the
    positional embedding resized to this model's X5 (`resize_pos`). A tensor that does not fit stops with its name."""
    if getattr(args, "variant", "paper") != "official":
        sys.exit(f"error: {args.pretrained} holds the released EAN weights: they load into --variant official")
    try:
        ours, dropped = convert_official(state_dict)
    except ValueError as e:
        sys.exit(f"error: {args.pretrained}: {e}")
    own = model.state_dict()
    for key in [k for k in ours if k.endswith(".pos") and k in own]:
        ours[key] = resize_pos(ours[key], own[key].shape[2:])
    ours = {k: v for k, v in ours.items() if not k.startswith("fc.")}
    wrong = [k for k in ours if k not in own or own[k].shape != ours[k].shape]
    wrong += [k for k in own if k not in ours and not k.startswith("fc.")]
    if wrong:
        sys.exit(f"error: {args.pretrained}: {wrong[0]} (and {len(wrong) - 1} more) does not fit this model; build it "
                 f"as the release (ean.official_model_args: {official_model_args(state_dict)})")
    model.load_state_dict(ours, strict=False)
    run.print0(f"loaded the released EAN weights {args.pretrained}: {len(ours)} tensors, the classifier starts anew; "
               f"{len(dropped)} tensors the release never uses left out")


def eab_options(args):
    """The EAB's ablation switches (Tables 8, 10) as EAB keywords (defaults for args written before they existed)."""
    return dict(kernels=getattr(args, "eab_kernels", "multi-scale"), pool=getattr(args, "eab_pool", "max"),
                inter_relu=not getattr(args, "no_inter_relu", False), dilation=not getattr(args, "no_dilation", False),
                conv=getattr(args, "eab_conv", "2+1d"))


def init_official(model):
    """The release's initialisation (EAN_8f.py ResNet.__init__) of everything EAN adds to the ResNet (ME, the inserts,
    the LMC; the ResNet's own layers come from ImageNet or torchvision, whose init is the same): every conv
    kaiming_normal_(fan_out, relu) with PyTorch's default bias, every BN gamma 1 / beta 0, linears PyTorch's default;
    left out, as the release leaves them: the shift-initialised temporal convs, the EAB's expand conv and the LMC
    decoder (0.01 x default, set by their modules) and the Tr_BN (zero). The LMC's patch encoder is the release's 1x1x1
    conv 768 -> 256, whose fan_out is 256, not that of our 16x16 conv.
    The paper variant keeps PyTorch's default init for all these convs (the paper: "randomly initialized"; differs
    from the official release)."""
    roots = [b.conv2[0] for name in STAGES for b in getattr(model.backbone, name)] + [model.inserts]
    roots += [model.lmc] if model.lmc is not None else []
    skip = set()
    for root in roots:
        for m in root.modules():
            if isinstance(m, TemporalConv):
                skip.add(m.conv)
            elif isinstance(m, EAB):
                skip.add(m.expand)
            elif isinstance(m, SOITr) and m.proj_bn is not None:
                skip.add(m.proj_bn)
            elif isinstance(m, LMC):
                skip.update(m.decode.modules())
    for root in roots:
        for m in root.modules():
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


# The released checkpoints (Somethingv1.RGB_LMC_8f/16f.pth.tar): {'epoch', 'arch', 'state_dict', 'best_prec1'}, the
# state_dict of the DDP-wrapped TemporalModel (keys module.base_model.*, module.new_fc.*), loaded into --variant
# official by renaming, with these layout changes (our shape -> the release's shape, the release's tensor -> ours):
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
# defined in the release but unused by its forward: the stem's bn2, each EAB's bn2, the 8f LMC's stm_proj2
OFFICIAL_UNUSED = re.compile(r"base_model\.(bn2|relation\d\.bn2|stm_proj2\.\d+)\.\w+")
# the release's test protocol (test_models.py): frames resized to 240x320 (aspect not kept), one centre crop of 224,
# ImageNet mean/std, 1 clip (the README's numbers; its 8f test script says 2)
OFFICIAL_TEST_PROTOCOL = {"test_resize": "240x320", "test_crops": 1, "test_clips": 1}


def official_rules(release):
    """(regex over a release key without 'module.', our key, layout) for EAN_8f.py / EAN_16f.py (`release`)."""
    blk, eab, soi = r"base_model\.(layer\d\.\d+)\.", r"base_model\.relation(\d)\.", r"base_model\.sparse_transformer\."
    sixteen = release == "16f"
    return [
        (r"new_fc\.(\w+)", r"fc.\1", None),
        (r"base_model\.(conv1\.weight|bn1\.\w+)", r"backbone.\1", None),
        (blk + r"conv2\.weight", r"backbone.\1.conv2.2.weight", None),
        (blk + r"t_conv\.conv\.weight", r"backbone.\1.conv2.1.conv.weight", "conv1d"),
        (blk + r"me\.conv1\.(\w+)", r"backbone.\1.conv2.0.reduce.0.\2", None),
        (blk + r"me\.bn1\.(\w+)", r"backbone.\1.conv2.0.reduce.1.\2", None),
        (blk + r"me\.conv2\.(\w+)", r"backbone.\1.conv2.0.transform.\2", None),
        (blk + r"me\.conv3\.(\w+)", r"backbone.\1.conv2.0.expand.0.\2", None),
        (blk + r"me\.bn3\.(\w+)", r"backbone.\1.conv2.0.expand.1.\2", None),
        (blk + r"((?:conv1|bn1|bn2|conv3|bn3|downsample\.\d)\.\w+)", r"backbone.\1.\2", None),
        (eab + r"compress_c1\.(\w+)", r"inserts.\1.0.compress.\2", None),
        (eab + r"expand_c1\.(\w+)", r"inserts.\1.0.expand.\2", None),
        (eab + r"t_part(\d)_conv\.(\w+)", lambda m: f"inserts.{m[1]}.0.temporal.{int(m[2]) - 1}.{m[3]}", None),
        (eab + r"s_part(\d)_conv\.(\w+)", lambda m: f"inserts.{m[1]}.0.spatial.{int(m[2]) - 1}.{m[3]}", None),
        (eab + r"non_linear\.0\.(\w+)", r"inserts.\1.0.bn.\2", None),
        (eab + r"max_project\.(\w+)", r"inserts.\1.0.pool.1.\2", None),
        (eab + r"p_prod1\.([01])\.(\w+)", r"inserts.\1.0.esp.reduce.\2.\3", None),
        (eab + r"p_prod1\.(\d+)\.(\w+)", lambda m: f"inserts.{m[1]}.0.esp.context.{int(m[2]) - 3}.{m[3]}", None),
        (eab + r"p_prod2\.0\.(\w+)", r"inserts.\1.0.esp.fc.\2", None),
        (soi + r"squeeze_l\.(\w+)", r"inserts.5.0.squeeze.\1", None),
        (soi + r"score_predictor\.(\d+\.\w+)", r"inserts.5.0.saliency.layers.\1", None),
        (soi + r"pos_embedding", r"inserts.5.0.pos", "pos"),
        (soi + r"transformer\.layers\.(\d)\.0\.fn\.norm\.(\w+)", r"inserts.5.0.blocks.\1.norm1.\2", None),
        (soi + r"transformer\.layers\.(\d)\.0\.fn\.fn\.to_qkv\.(\w+)", r"inserts.5.0.blocks.\1.attn.qkv.\2", None),
        (soi + r"transformer\.layers\.(\d)\.0\.fn\.fn\.to_out\.0\.(\w+)", r"inserts.5.0.blocks.\1.attn.out.\2", None),
        (soi + r"transformer\.layers\.(\d)\.1\.fn\.norm\.(\w+)", r"inserts.5.0.blocks.\1.norm2.\2", None),
        (soi + r"transformer\.layers\.(\d)\.1\.fn\.fn\.net\.(\d\.\w+)", r"inserts.5.0.blocks.\1.ffn.\2", None),
        (soi + r"expand_l\.(\w+)", r"inserts.5.0.proj.\1", None),
        (soi + r"Tr_BN\.(\w+)", r"inserts.5.0.proj_bn.\1", None),
        (r"base_model\.stm_proj1\.0\.weight", "lmc.encode.0.weight" if sixteen else "lmc.encode.weight", "patch_in"),
        *([(r"base_model\.stm_proj1\.1\.(\w+)", r"lmc.encode.1.\1", None),
           (r"base_model\.stm_proj1\.3\.weight", "lmc.encode.3.weight", "conv3d"),
           (r"base_model\.proj_back\.0\.weight", "lmc.decode.0.weight", "conv3d"),
           (r"base_model\.proj_back\.1\.(\w+)", r"lmc.decode.1.\1", None),
           (r"base_model\.proj_back\.3\.weight", "lmc.decode.3.weight", "patch_out"),
           (r"base_model\.stack_diff_motion\.(\d\.\w+)", r"lmc.stacked.\1", None)] if sixteen else
          [(r"base_model\.proj_back\.0\.weight", "lmc.decode.weight", "patch_out")]),
        (r"base_model\.stm_st_model(\d)\.(\d\.\w+)", lambda m: f"lmc.motion.{int(m[1]) - 1}.{m[2]}", None),
    ]


def strip_module(state_dict):
    """The release's keys without DDP's 'module.' prefix (all keys carry it, or none)."""
    prefixed = [k.startswith("module.") for k in state_dict]
    if any(prefixed) and not all(prefixed):
        raise ValueError(f"{next(k for k in state_dict if not k.startswith('module.'))}: the other keys start "
                         f"with 'module.'")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def is_official_checkpoint(obj):
    """True for a released EAN checkpoint: the file's dict {'epoch', 'arch', 'state_dict', 'best_prec1'} (or its
    state_dict alone) whose keys are module.base_model.* and module.new_fc.* (DDP-wrapped TemporalModel)."""
    sd = obj.get("state_dict") if isinstance(obj, dict) and "state_dict" in obj else obj
    return (isinstance(sd, dict) and "module.new_fc.weight" in sd and
            all(isinstance(k, str) and k.startswith(("module.base_model.", "module.new_fc.")) for k in sd))


def official_model_args(state_dict):
    """The ean.py arguments that build the released model of this state_dict (with or without 'module.'): variant
    official, T = 8 (EAN_8f.py) or 16 (EAN_16f.py: its LMC's stack_diff_motion branch; the positional embedding's
    T*7*7 columns must agree), K from new_fc, ResNet-50 at 224 px, 5-frame snippets, the release's modules and
    places. A file that is not one of the two releases raises ValueError naming the key."""
    sd = strip_module(state_dict)
    for key in ["new_fc.weight", "base_model.sparse_transformer.pos_embedding", "base_model.stm_proj1.0.weight",
                "base_model.layer3.5.conv3.weight", "base_model.sparse_transformer.score_predictor.9.weight"]:
        if key not in sd:
            raise ValueError(f"{key}: missing, so this is not a released EAN checkpoint (EAN_8f.py / EAN_16f.py)")
    if "base_model.layer3.6.conv1.weight" in sd or "base_model.layer4.0.conv3.weight" not in sd:
        raise ValueError("base_model.layer3.*: the released EAN checkpoints are ResNet-50s")
    T = 16 if "base_model.stack_diff_motion.0.weight" in sd else 8
    columns = sd["base_model.sparse_transformer.pos_embedding"].shape[-1]
    if columns != T * 7 * 7:
        raise ValueError(f"base_model.sparse_transformer.pos_embedding: {columns} columns, but the LMC is "
                         f"EAN_{T}f.py's (T * 7 * 7 = {T * 49} at 224 px)")
    return dict(variant="official", arch="resnet50", num_segments=T, num_classes=int(sd["new_fc.weight"].shape[0]),
                input_size=224, baseline=None, no_eab=False, no_soi=False, no_lmc=False, eab_stages=[1, 2, 3, 4],
                soi_stages=[5], eab_fusion="dynamic", soi_regions="saliency", snippet=5, rgb_frame="centre",
                num_objects=int(sd["base_model.sparse_transformer.score_predictor.9.weight"].shape[0]),
                eab_kernels="multi-scale", eab_pool="max", no_inter_relu=False, no_dilation=False, eab_conv="2+1d")


def convert_official(state_dict):
    """A released EAN state_dict (EAN_8f.py or EAN_16f.py, with or without 'module.') -> (the state_dict of
    build_model(official_model_args(state_dict)), the release's keys dropped). Strict: every tensor of the release
    is used (renamed by official_rules, its layout changed by OFFICIAL_LAYOUTS) but for the names of OFFICIAL_UNUSED,
    which are dropped and listed; every tensor of the model is produced; each release tensor has exactly the shape
    the release's layout of the model's tensor has. Anything else raises ValueError naming the key."""
    margs = official_model_args(state_dict)
    args = get_args(["--complexity"])
    vars(args).update(margs)
    with torch.device("meta"):                                          # shapes only: no memory, no init cost
        expected = {k: tuple(v.shape) for k, v in EAN(args, margs["num_classes"]).state_dict().items()}
    rules = official_rules("16f" if margs["num_segments"] == 16 else "8f")
    ours, dropped = {}, []
    for key, tensor in state_dict.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if OFFICIAL_UNUSED.fullmatch(name):
            dropped.append(key)
            continue
        match = next(((m, repl, layout) for pattern, repl, layout in rules
                      for m in [re.fullmatch(pattern, name)] if m), None)
        if match is None:
            raise ValueError(f"{key}: not a tensor of the released EAN_{margs['num_segments']}f model")
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


def classifier(args, num_classes):
    """Dropout and the new Linear(D, K), initialised N(0, 0.001) with zero bias (TSN's head)."""
    fc = nn.Linear(512 if args.arch in ("resnet18", "resnet34") else 2048, num_classes)
    nn.init.normal_(fc.weight, 0, 0.001)
    nn.init.zeros_(fc.bias)
    return nn.Dropout(args.dropout), fc


class TSN(nn.Module):
    """--baseline: TSN, a 2D backbone on every frame, a classifier, logits averaged over the T segments."""

    def __init__(self, args, num_classes):
        super().__init__()
        self.num_segments = args.num_segments
        self.backbone = build_resnet(args.arch, args.pretrained)
        self.dropout, self.fc = classifier(args, num_classes)

    def forward(self, x):
        B, T = x.shape[:2]
        x = x.flatten(0, 1)                                 # (B,T,C,H,W) -> (B*T,C,H,W)
        x = self.backbone(x)                                # (B*T, D)
        x = self.fc(self.dropout(x))                        # (B*T, K)
        return x.view(B, T, -1).mean(1)                     # (B*T,K) -> (B,T,K) -> (B,K) segment consensus


# ======================================================================================================= data
def frames_per_clip(args):
    """T for EAN_RGB and TSN; L*T with LMC: T snippets of L=5 consecutive frames (Sec. 3.3 "Frame Sampling")."""
    return args.num_segments * (1 if args.baseline or args.no_lmc else args.snippet)


def snippet_length(args):
    return frames_per_clip(args) // args.num_segments


def eval_dataset(args, records, opts):
    """The test protocol: --test-clips clips of T segments (5-frame snippets with LMC), each in --test-crops
    crops (Sec. 4: 1 clip x 1 centre crop); unreadable videos are left out, never replaced."""
    return VideoDataset(
        records, lambda n, k, rng: segment_indices(n, args.num_segments, snippet_length(args),
                                                   train=False, clip=k, num_clips=args.test_clips),
        EvalTransform.from_args(args, frames_per_clip(args)), num_clips=args.test_clips, skip_bad=True, **opts.frames)


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
        train_records, lambda n, k, rng: segment_indices(n, args.num_segments, snippet_length(args),
                                                         train=True, rng=rng),
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
    frames = f"{args.num_segments}x{snippet_length(args)}" if snippet_length(args) > 1 else f"{args.num_segments}"
    return (f"{frames} frames x {args.test_clips} clips x {args.test_crops} crops "
            f"({EvalTransform.from_args(args, frames_per_clip(args)).describe()})")


def build_model(args, num_classes):
    """EAN (EAN_RGB+LMC by default), or the TSN baseline with --baseline."""
    return TSN(args, num_classes) if args.baseline else EAN(args, num_classes)


def clip_shape(args):
    return (frames_per_clip(args), 3, args.input_size, args.input_size)


def complexity_row(args):
    """Parameters (M) and GFLOPs (multiply-accumulates) of one clip of the model `args` builds (PAPER_TABLES rows,
    --complexity). Built and run on the 'meta' device: shapes only, no weights, no arithmetic (the counts equal
    those of a real build, tests/test_paper_tables.py)."""
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
    checkpoint.load_weights(model, path, release_weights)
    return model.to(device)


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
    if args.visualize:  # the RGB frame of each snippet is what the backbone sees
        rgb = lambda clip: clip.unflatten(0, (args.num_segments, -1))[:, getattr(model, "rgb_index", 0)]
        visualize.write_sheets(model, lambda clips: model(normalize(clips)), loader, records, classes, args.visualize,
                               VIS_MAPS, VIS_CAM, preds=preds, protocol=protocol(args), top_k=args.top_k, shown=rgb)
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
    pretrained_file = args.pretrained not in ("none", "imagenet") and not args.resume
    if pretrained_file and not is_official_checkpoint(checkpoint.load(args.pretrained)):  # (EAN loads the release)
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
