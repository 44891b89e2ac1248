"""PAPER CARD PLACEHOLDER (the EAN helper replaces this docstring).

Template: TSN baseline with the full command-line contract of ../shared/CONVENTIONS.md.
"""
# ==================================================================================================== imports
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from common import complexity, run
from common.data import AnnotationError, EpochSampler, VideoDataset, load_split
from common.demo import demo_dataset
from common.metrics import Predictions
from common.sampling import segment_indices
from common.transforms import EvalTransform, TrainTransform, normalize, parse_label_map

SCRIPT = "ean"

# ================================================================================================== arguments
# The CPU-sized profile used when no --data is given (CONVENTIONS.md "The demo dataset"); flags given on the
# command line win over it.
DEMO_PROFILE = dict(arch="resnet18", pretrained="none", input_size=64, epochs=12, batch_size=16, lr=0.02,
                    lr_steps=[8, 11], weight_decay=5e-4, dropout=0.0, workers=2,
                    flip_labels="0:1,1:0,2:3,3:2")  # a flipped "moving right" clip is "moving left"


def get_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None, help="dataset root (CONVENTIONS.md layout); omitted: the demo dataset")
    p.add_argument("--frame-template", default="img_{:05d}.jpg", help="file names inside frame folders (1-based)")
    # optimisation (paper Sec. 4 "Implementation Detail")
    p.add_argument("--epochs", type=int, default=50, help="Sec. 4")
    p.add_argument("--batch-size", type=int, default=64, help="clips per step over all GPUs (Sec. 4)")
    p.add_argument("--lr", type=float, default=0.01, help="for --batch-size 64; scale linearly (Sec. 4)")
    p.add_argument("--lr-steps", type=int, nargs="+", default=[30, 40, 45], help="epochs where lr x0.1")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="Sec. 4 (1e-4 for Kinetics)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (Sec. 4)")
    p.add_argument("--dropout", type=float, default=0.5, help="before the classifier (Sec. 4)")
    p.add_argument("--clip-grad", type=float, default=20.0, help="gradient-norm clipping (Sec. 4)")
    # model
    p.add_argument("--num-segments", type=int, default=8, help="T, segments per clip (Table 1)")
    p.add_argument("--arch", default="resnet50", choices=["resnet18", "resnet34", "resnet50"])
    p.add_argument("--pretrained", default="imagenet", help="none | imagenet (IMAGENET1K_V1) | PATH")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=174, help="when no dataset is given (SSv1/v2: 174)")
    p.add_argument("--baseline", nargs="?", const="tsn", default=None, choices=["tsn"],
                   help="all paper modules off: the TSN baseline")
    p.add_argument("--flip-labels", default="ssv2",
                   help="labels swapped by a horizontal flip: 'ssv2' (86<->87, 93<->94, 166<->167), 'A:B,...' or ''")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flip in training")
    # run
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="run directory (default runs/<script>-<time>)")
    p.add_argument("--resume", default=None, help="continue a run from its last.pt")
    p.add_argument("--evaluate", action="store_true", help="evaluation only (with --checkpoint)")
    p.add_argument("--checkpoint", default=None, help="weights to evaluate")
    p.add_argument("--test-clips", type=int, default=1, help="clips per video at test time")
    p.add_argument("--test-crops", type=int, default=1, choices=[1, 3, 10], help="crops per clip at test time")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimisation steps (smoke runs)")
    p.add_argument("--max-bad-fraction", type=float, default=0.05, help="stop past this fraction of bad samples")
    p.add_argument("--complexity", action="store_true", help="print params and GFLOPs of one clip and exit")
    p.add_argument("--benchmark", action="store_true", help="print latency/throughput (and the baseline's), exit")
    # paper switches (the EAN helper adds them here)
    args = p.parse_args(argv)
    args.demo = args.data is None and not (args.complexity or args.benchmark)
    if args.complexity or args.benchmark:
        args.pretrained = "none"  # weights change neither FLOPs nor speed
    if args.demo:
        for key, value in DEMO_PROFILE.items():
            if getattr(args, key) == p.get_default(key):
                setattr(args, key, value)
    if args.evaluate and not (args.checkpoint or args.resume):
        p.error("--evaluate needs --checkpoint PATH")
    return args


# ============================================================================================== paper modules
# (the EAN helper writes EAB, SOI-Tr, LMC here)


# ============================================================================================ backbone surgery
def build_resnet(arch, pretrained):
    """torchvision ResNet without its classifier; `imagenet` = IMAGENET1K_V1 (the weights the papers used)."""
    weights = None
    if pretrained == "imagenet":
        weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    try:
        net = torchvision.models.get_model(arch, weights=weights)
    except OSError as e:  # no network and no cached file
        sys.exit(f"error: cannot load {weights} ({e}); put the file in $TORCH_HOME/hub/checkpoints, "
                 f"pass --pretrained PATH, or --pretrained none")
    if pretrained not in ("none", "imagenet"):
        state = torch.load(pretrained, map_location="cpu")
        state = state.get("model", state.get("state_dict", state))
        missing, unexpected = net.load_state_dict(state, strict=False)
        run.print0(f"loaded {pretrained}: {len(missing)} missing, {len(unexpected)} unexpected keys")
    net.fc = nn.Identity()
    return net


class Model(nn.Module):
    """TSN: a 2D backbone on every frame, a classifier, logits averaged over the T segments."""

    def __init__(self, args, num_classes):
        super().__init__()
        self.num_segments = args.num_segments
        self.backbone = build_resnet(args.arch, args.pretrained)
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


# ======================================================================================================= data
def frames_per_clip(args):
    return args.num_segments


def build_loaders(args, rank, world):
    if args.data is None:
        args.data = demo_dataset()
    train_records, classes = load_split(args.data, "train")
    val_records, _ = load_split(args.data, "val")
    flip_labels = parse_label_map(args.flip_labels)
    train_set = VideoDataset(
        train_records, lambda n, k, rng: segment_indices(n, args.num_segments, train=True, rng=rng),
        TrainTransform(args.input_size, flip=not args.no_flip, flip_labels=flip_labels),
        frame_template=args.frame_template)
    val_set = VideoDataset(
        val_records, lambda n, k, rng: segment_indices(n, args.num_segments, train=False, clip=k, num_clips=args.test_clips),
        EvalTransform(args.input_size, crops=args.test_crops, frames_per_clip=frames_per_clip(args)),
        num_clips=args.test_clips, frame_template=args.frame_template)
    per_rank = max(1, args.batch_size // world)
    kw = dict(num_workers=args.workers, pin_memory=torch.cuda.is_available(), persistent_workers=args.workers > 0)
    train_sampler = EpochSampler(len(train_set), shuffle=True, seed=args.seed, rank=rank, world=world)
    train_loader = torch.utils.data.DataLoader(train_set, per_rank, sampler=train_sampler, drop_last=True, **kw)
    val_loader = torch.utils.data.DataLoader(val_set, max(1, per_rank // (args.test_clips * args.test_crops)),
                                             sampler=EpochSampler(len(val_set), shuffle=False, rank=rank, world=world), **kw)
    if len(train_loader) == 0:
        raise AnnotationError(f"{args.data}/train.txt: fewer samples ({len(train_set)}) than --batch-size {per_rank}")
    return train_loader, val_loader, classes


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
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp and device.type == "cuda")


def train_one_epoch(model, loader, optimizer, args, device, epoch, state, bad):
    model.train()
    data_time, step_time, losses, seen, start = [], [], [], 0, time.perf_counter()
    for clips, targets, bad_paths in run.progress(loader, desc=f"epoch {epoch}", leave=False):
        t_data = time.perf_counter() - start
        bad.add(bad_paths)
        clips = normalize(clips.to(device, non_blocking=True))                # uint8 -> float (B,T,C,H,W)
        targets = targets.to(device, non_blocking=True)
        with autocast(args, device):
            logits = model(clips)
        loss = F.cross_entropy(logits.float(), targets)
        if not torch.isfinite(loss):
            run.cleanup_distributed()
            sys.exit(f"error: non-finite loss ({loss.item()}) at epoch {epoch}, step {state['step']}; "
                     f"the last good checkpoint is left untouched")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip_grad:
            nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        optimizer.step()
        state["step"] += 1
        losses.append(loss.item())
        seen += len(targets)
        data_time.append(t_data)
        step_time.append(time.perf_counter() - start)
        start = time.perf_counter()
        if args.max_steps and state["step"] >= args.max_steps:
            break
    loss_sum, count = run.all_reduce_sum([sum(losses) * 1.0, len(losses)], device)
    return {"train_loss": loss_sum / max(count, 1), "data_time": float(np.mean(data_time or [0])),
            "time": float(np.mean(step_time or [0])), "samples": seen}


@torch.no_grad()
def evaluate(model, loader, args, device, bad):
    """Softmax probabilities averaged over the views (clips x crops) of each video."""
    model.eval()
    preds = Predictions()
    for clips, targets, bad_paths in run.progress(loader, desc="eval", leave=False):
        bad.add(bad_paths)
        B, V = clips.shape[:2]
        clips = normalize(clips.to(device, non_blocking=True)).flatten(0, 1)  # (B,V,T,C,H,W) -> (B*V,T,C,H,W)
        with autocast(args, device):
            logits = model(clips)
        probs = logits.float().softmax(-1).view(B, V, -1).mean(1)            # (B*V,K) -> (B,V,K) -> (B,K)
        preds.update(probs, targets)
    return preds.compute()


# ======================================================================================================= main
def protocol(args):
    return f"{args.num_segments} frames x {args.test_clips} clips x {args.test_crops} crops"


def build_model(args, num_classes):
    return Model(args, num_classes)


def clip_shape(args):
    return (frames_per_clip(args), 3, args.input_size, args.input_size)


def report_complexity(args):
    model = build_model(args, args.num_classes)
    x = torch.zeros(1, *clip_shape(args))
    out = {"script": SCRIPT, "params_m": round(complexity.params_m(model), 2),
           "gflops": round(complexity.gmacs(model, x), 2), "num_segments": args.num_segments,
           "input_size": args.input_size, "num_classes": args.num_classes, "frames_per_clip": frames_per_clip(args)}
    print(json.dumps(out))


def report_benchmark(args, device):
    torch.backends.cudnn.benchmark = True
    dtype = torch.bfloat16 if args.amp and device.type == "cuda" else None
    make = lambda b: torch.randn(b, *clip_shape(args))
    result = {"script": SCRIPT, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "dtype": "bf16" if dtype else "fp32", "batch": args.batch_size}
    for prefix, base in (("", args.baseline), ("baseline_", "tsn")):
        cfg = argparse.Namespace(**{**vars(args), "baseline": base})
        model = build_model(cfg, args.num_classes).to(device)
        result[prefix + "gflops"] = round(complexity.gmacs(model, make(1).to(device)), 2)
        for k, v in complexity.benchmark(model, make, device, args.batch_size, dtype).items():
            result[prefix + k] = v
    print(json.dumps(result))


def main(argv=None):
    args = get_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.complexity:
        return report_complexity(args)
    rank, world, device = run.init_distributed(args.device)
    if args.benchmark:
        return report_benchmark(args, device)
    run.seed_everything(args.seed + rank)
    if args.demo:
        run.print0(f"demo profile (no --data): {json.dumps({k: getattr(args, k) for k in DEMO_PROFILE})}")
    try:
        train_loader, val_loader, classes = build_loaders(args, rank, world)
    except AnnotationError as e:
        sys.exit(f"error: {e}")
    model = build_model(args, len(classes)).to(device)
    if args.evaluate:
        model.load_state_dict(run.load_checkpoint(args.checkpoint or args.resume)["model"])
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.SGD(param_groups(model, args.weight_decay), lr=args.lr, momentum=args.momentum)
    bad = run.BadSamples(args.max_bad_fraction)
    t0 = time.time()
    if args.evaluate:
        metrics = evaluate(ddp, val_loader, args, device, bad)
        run.print0(f"protocol: {protocol(args)}")
        run.print0(json.dumps({**metrics, "protocol": protocol(args), "bad_samples": len(bad.check(metrics["samples"], True)),
                               "seconds": round(time.time() - t0, 1)}))
        return metrics

    output = args.output or os.path.join("runs", f"{SCRIPT}-{time.strftime('%Y%m%d-%H%M%S')}")
    state = {"epoch": 0, "step": 0, "best": -math.inf}
    if args.resume:
        ckpt = run.load_checkpoint(args.resume)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        output = args.output or os.path.dirname(os.path.abspath(args.resume))
        run.set_rng_state(ckpt["rng"])
    if run.is_main():
        os.makedirs(output, exist_ok=True)
        with open(os.path.join(output, "args.json"), "w") as f:
            json.dump(vars(args), f, indent=1)
    log = run.JsonlLog(os.path.join(output, "log.jsonl"))
    metrics, total_bad = {}, 0
    while state["epoch"] < args.epochs and not (args.max_steps and state["step"] >= args.max_steps):
        epoch = state["epoch"]
        lr = learning_rate(args, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        train_loader.sampler.set_epoch(epoch)
        bad.new_epoch()
        train_stats = train_one_epoch(ddp, train_loader, optimizer, args, device, epoch, state, bad)
        metrics = evaluate(ddp, val_loader, args, device, bad)
        bad_paths = bad.check(train_stats["samples"] + metrics["samples"], final=True)
        total_bad += len(bad_paths)
        key = "val_map" if "val_map" in metrics else "val_top1"
        state["epoch"] += 1
        is_best = metrics[key] > state["best"]
        state["best"] = max(state["best"], metrics[key])
        record = {"epoch": epoch, "lr": lr, **train_stats, **metrics, "bad_samples": len(bad_paths),
                  "bad_paths": bad_paths, "step": state["step"]}
        log.write(record)
        run.print0(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items() if k != "bad_paths"}))
        if run.is_main():
            ckpt = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state,
                    "args": vars(args), "rng": run.rng_state()}
            run.save_checkpoint(ckpt, os.path.join(output, "last.pt"))
            if is_best:
                run.save_checkpoint(ckpt, os.path.join(output, "best.pt"))
    final = {k: metrics.get(k) for k in ("val_top1", "val_top5", "val_map") if k in metrics}
    final.update({"epochs": state["epoch"], "seconds": round(time.time() - t0, 1), "bad_samples": total_bad,
                  "protocol": protocol(args), "output": output})
    run.print0(json.dumps(final))
    run.cleanup_distributed()
    return final


if __name__ == "__main__":
    main()
