"""What a training run needs that no paper describes, written once for the five scripts.

Each script keeps its training loop in view (the forward, the paper's loss, backward, the optimiser step, the
epoch loop, the lr schedule) and hands the rest to a `Training`:

    with Training(args, SCRIPT, model, optimizer, classes, opts, device, world) as train:
        for epoch in train.epochs(train_loader):                  # resumes where last.pt stopped
            ...set the lr...
            for clips, targets in train.batches(train_loader):    # the steps left in this epoch, on the device
                for micro_clips, micro_targets, context in train.micro_batches(clips, targets):
                    with context:                                 # --amp autocast, DDP no_sync but on the last
                        loss, logged = ...
                    (loss / args.accumulate).backward()
                    train.record(loss, logged)
                train.check_loss()                                # a non-finite loss stops before the step
                optimizer.step()
            train.end_epoch(lr, metrics)
    return train.finish(protocol)

It wraps the model for torchrun (DistributedDataParallel) and `--compile`, continues a `--resume`d run exactly
(model, optimiser, the partial epoch's sums, bad samples and every rank's RNG state), writes the run folder
(args.json, log.jsonl, last.pt at epoch ends and every --save-every steps, best.pt), counts unreadable samples
(`--max-bad-fraction`), prints progress lines (`--log-every`) and stops cleanly on SIGTERM/SIGINT (last.pt
written, exit 128 + signal) or on a non-finite loss (the step not applied, the last checkpoint untouched).
"""
import contextlib
import json
import math
import os
import signal
import sys
import time

import torch

from . import checkpoint, complexity, run
from .data import AnnotationError, EpochSampler, collate_eval, data_options, load_split, read_dataset_info
from .demo import demo_dataset


def start(args, demo_profile):
    """(rank, world size, device) under torchrun or alone; seeds every rank; names the demo profile in use."""
    rank, world, device = run.init_distributed(args.device)
    run.seed_everything(args.seed + rank)
    if args.demo:
        run.print0(f"demo profile (no --data): {json.dumps({k: getattr(args, k) for k in demo_profile})}")
    return rank, world, device


# ---- loaders ---------------------------------------------------------------------------------------------------
def train_loader(dataset, args, rank, world):
    """--batch-size clips per step over all ranks; a seeded order per epoch that a resumed run continues."""
    per_rank = max(1, args.batch_size // world)
    loader = torch.utils.data.DataLoader(
        dataset, per_rank, sampler=EpochSampler(len(dataset), shuffle=True, seed=args.seed, rank=rank, world=world),
        drop_last=True, num_workers=args.workers, pin_memory=torch.cuda.is_available(),
        persistent_workers=args.workers > 0, generator=torch.Generator())  # not the global RNG: exact resume
    if len(loader) == 0:
        raise AnnotationError(f"{args.data}/train.txt: fewer samples ({len(dataset)}) than --batch-size {per_rank}")
    return loader


def eval_loader(dataset, args, rank=0, world=1):
    """Every video once over all ranks. A batch holds --batch-size views: --batch-size / (clips x crops) videos
    (a whole-video protocol, whose number of clips depends on the video, batches --batch-size videos and the
    script's evaluate feeds their views --batch-size at a time)."""
    views = dataset.num_clips * args.test_crops if isinstance(dataset.num_clips, int) else 1
    return torch.utils.data.DataLoader(
        dataset, max(1, args.batch_size // world // views), collate_fn=collate_eval,
        sampler=EpochSampler(len(dataset), shuffle=False, rank=rank, world=world), num_workers=args.workers,
        pin_memory=torch.cuda.is_available())


def loaders(args, rank, world, train_dataset, test_dataset):
    """(train loader or None with --evaluate, val records, val loader, class names, DataOptions) of --data (the demo
    dataset without it); `train_dataset(args, records, opts)` and `test_dataset(...)` are the script's sampling and
    transforms. A malformed list, a label out of range or a missing folder stops with one line."""
    try:
        if args.data is None:
            args.data = demo_dataset()
        multi_label = getattr(args, "multi_label", False)
        val_records, classes = load_split(args.data, "val", multi_label)
        opts = data_options(args, classes, read_dataset_info(args.data), args.data)
        val_loader = eval_loader(test_dataset(args, val_records, opts), args, rank, world)
        if args.evaluate:
            return None, val_records, val_loader, classes, opts
        train_records, _ = load_split(args.data, "train", multi_label)
        return train_loader(train_dataset(args, train_records, opts), args, rank, world), val_records, val_loader, \
            classes, opts
    except AnnotationError as e:
        sys.exit(f"error: {e}")


# ---- the run ----------------------------------------------------------------------------------------------------
def new_sums():
    """Per-epoch sums of the training statistics (step counts, clips, loss, seconds), kept in the checkpoint."""
    return {"loss": 0.0, "steps": 0.0, "samples": 0.0, "data_time": 0.0, "time": 0.0}


def epoch_record(sums, device):
    """The epoch's training statistics over all ranks: means per step, and the number of training clips."""
    total = dict(zip(sums, run.all_reduce_sum(list(sums.values()), device)))
    steps = max(total.pop("steps"), 1)
    samples = int(total.pop("samples"))
    return {**{("train_" + k if k not in ("data_time", "time") else k): v / steps for k, v in total.items()},
            "train_samples": samples}


class Training:
    """One training run of `model` (built, its initial weights loaded) with `optimizer`; see the module docstring.
    `self.model` is what the loop trains and evaluates (DDP- and compile-wrapped when asked), `self.bad` the
    unreadable-sample account that evaluation adds to."""

    def __init__(self, args, script, model, optimizer, classes, opts, device, world):
        self.args, self.net, self.optimizer, self.device = args, model, optimizer, device
        if args.channels_last:
            complexity.to_channels_last(model)
        wrapped = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
        self.model = torch.compile(wrapped) if args.compile else wrapped
        self.bad = run.BadSamples(args.max_bad_fraction)
        self.t0 = time.time()
        self.output = args.output or os.path.join("runs", f"{script}-{time.strftime('%Y%m%d-%H%M%S')}")
        self.state = {"epoch": 0, "step": 0, "best": -math.inf, "epoch_step": 0, "saved_step": None,
                      "bad_samples": 0, "sums": new_sums()}
        if args.resume:
            ckpt = checkpoint.load(args.resume)
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            self.state = ckpt["state"]
            if not run.is_main():  # rank 0 carries the partial epoch's sums and bad paths of all ranks
                self.state["sums"] = dict.fromkeys(self.state["sums"], 0.0)
            self.bad.paths = list(ckpt["bad"]) if run.is_main() else []
            self.output = args.output or os.path.dirname(os.path.abspath(args.resume))
            run.set_rng_state(ckpt["rng"])
        if run.is_main():
            os.makedirs(self.output, exist_ok=True)
            with open(os.path.join(self.output, "args.json"), "w") as f:
                json.dump(vars(args), f, indent=1)
        self.log = run.JsonlLog(os.path.join(self.output, "log.jsonl"))
        self.log.truncate(self.state["epoch"])
        self.meta = checkpoint.describe(args, script, classes, opts.info)
        self.metrics, self.stop = {}, None

    def __enter__(self):
        self.stop = run.StopRequest().__enter__()  # SIGTERM/SIGINT: stop after the step, write last.pt
        return self

    def __exit__(self, *exc):
        self.stop.__exit__(*exc)

    def save(self, names):
        """Called by every rank (it gathers the sums, bad paths and RNG states of all ranks); rank 0 writes.
        best.pt holds the weights and what built them; the optimiser and run state stay in last.pt."""
        state = self.state
        sums = dict(zip(state["sums"], run.all_reduce_sum(list(state["sums"].values()), self.device)))
        state["saved_step"] = state["step"]
        ckpt = {"model": self.net.state_dict(), "meta": self.meta, "optimizer": self.optimizer.state_dict(),
                "state": {**state, "sums": sums}, "bad": run.all_gather_list(self.bad.paths),
                "rng": run.gathered_rng_state()}
        for name in names:
            if run.is_main():
                run.save_checkpoint(ckpt if name == "last.pt" else {"model": ckpt["model"], "meta": self.meta},
                                    os.path.join(self.output, name))

    def epochs(self, loader):
        """The epochs left (all of them, or the rest after --resume; none past --max-steps)."""
        state, args = self.state, self.args
        while state["epoch"] < args.epochs and not (args.max_steps and state["step"] >= args.max_steps):
            loader.sampler.set_epoch(state["epoch"], skip=state["epoch_step"] * loader.batch_size)
            if state["epoch_step"] == 0:
                self.bad.new_epoch()
            yield state["epoch"]

    def batches(self, loader):
        """The batches left in this epoch (a resumed run starts at its step), on the device: uint8 clips and
        targets. Between two batches, i.e. after the optimiser step: the step's statistics (kept in the checkpoint,
        so a resumed epoch logs as an uninterrupted one), the progress line, --max-steps, --save-every, and a
        signal's stop."""
        state, args = self.state, self.args
        steps = run.StepLog(f"epoch {state['epoch']}", state["epoch_step"] + len(loader), args.log_every,
                            first=state["epoch_step"])
        start = time.perf_counter()
        for clips, targets, bad_paths in run.progress(loader, desc=f"epoch {state['epoch']}", leave=False):
            data_time = time.perf_counter() - start
            self.bad.add(bad_paths)
            self.loss, self.logged, self.stopping = 0.0, {}, False
            yield clips.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True)
            state["step"] += 1
            state["epoch_step"] += 1
            loss, sums = self.loss.item(), state["sums"]
            for key, value in {"loss": loss, "steps": 1, "samples": len(targets), "data_time": data_time,
                               **{k: v.item() for k, v in self.logged.items()}}.items():
                sums[key] = sums.get(key, 0.0) + value
            sums["time"] += time.perf_counter() - start
            steps.step(loss, self.optimizer.param_groups[0]["lr"], data_time, len(targets))
            if self.stopping:
                self.save(["last.pt"])
                run.print0(f"stopped by {self.stop.name} at epoch {state['epoch']}, step {state['step']}; checkpoint "
                           f"written. Continue with --resume {os.path.join(self.output, 'last.pt')}")
                run.cleanup_distributed()
                sys.exit(128 + (self.stop.signum or signal.SIGTERM))
            if args.max_steps and state["step"] >= args.max_steps:
                return
            if args.save_every and state["step"] % args.save_every == 0:
                self.save(["last.pt"])
            start = time.perf_counter()

    def micro_batches(self, clips, targets):
        """--accumulate micro-batches of a batch: micro-batch m is every A-th clip, exactly the per-GPU batch of
        rank m of A ranks. Each comes with its forward's context: bf16 autocast with --amp, and DDP's no_sync on
        all but the last (one gradient all-reduce per step)."""
        A = self.args.accumulate
        for m in range(A):
            no_sync = self.model.no_sync() if m < A - 1 and hasattr(self.model, "no_sync") else contextlib.nullcontext()
            yield clips[m::A], targets[m::A], _both(no_sync, self.autocast())

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.args.amp)

    def record(self, loss, logged):
        """A micro-batch's loss and extra terms (`logged`: {name: tensor}), averaged over the micro-batches."""
        A = self.args.accumulate
        self.loss = self.loss + loss.detach() / A
        self.logged = {k: self.logged.get(k, 0.0) + v.detach() / A for k, v in logged.items()}

    def check_loss(self):
        """Before the optimiser step, one all-reduce over the ranks (none in a single process), so every rank stops
        at the same step: a non-finite loss stops the run (the step is not applied); a signal stops it after this
        step."""
        state = self.state
        nonfinite, stopping = run.all_reduce_sum([float(not torch.isfinite(self.loss)), float(self.stop.requested)],
                                                 self.device)
        if nonfinite:
            run.cleanup_distributed()
            kept = "no checkpoint was written" if state["saved_step"] is None else \
                f"the last checkpoint (step {state['saved_step']}) is left as it was"
            sys.exit(f"error: non-finite loss at epoch {state['epoch']}, step {state['step'] + 1} (not applied); "
                     f"{kept}")
        self.stopping = bool(stopping)

    def end_epoch(self, lr, metrics):
        """The epoch's log record (training statistics, `metrics` of the evaluation, unreadable samples), printed
        and written to log.jsonl; last.pt, and best.pt when the paper's metric improved."""
        state = self.state
        train_stats = epoch_record(state["sums"], self.device)
        bad_paths = self.bad.check(train_stats["train_samples"] + metrics["samples"], final=True)
        state["bad_samples"] += len(bad_paths)
        key = "val_map" if "val_map" in metrics else "val_top1"
        epoch = state["epoch"]
        state.update(epoch=epoch + 1, epoch_step=0, sums=new_sums())
        is_best = metrics[key] > state["best"]
        state["best"] = max(state["best"], metrics[key])
        record = {"epoch": epoch, "lr": lr, **train_stats, **metrics, "bad_samples": len(bad_paths),
                  "bad_paths": bad_paths, "step": state["step"]}
        self.log.write(record)
        run.print0(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                               for k, v in record.items() if k not in ("bad_paths", "skipped_paths")}))
        self.save(["last.pt", "best.pt"] if is_best else ["last.pt"])
        self.metrics = metrics

    def finish(self, protocol):
        """The run's last line: the final metrics in percent, epochs, seconds, bad and skipped samples."""
        metrics = self.metrics
        final = {k: metrics.get(k) for k in ("val_top1", "val_top5", "val_map") if k in metrics}
        final.update({"epochs": self.state["epoch"], "seconds": round(time.time() - self.t0, 1),
                      "bad_samples": self.state["bad_samples"], "skipped": metrics.get("skipped", 0),
                      "protocol": protocol, "output": self.output})
        run.print0(json.dumps(final))
        run.cleanup_distributed()
        return final


@contextlib.contextmanager
def _both(first, second):
    with first, second:
        yield
