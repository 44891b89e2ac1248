"""Run utilities: seeding, torch.distributed for torchrun, atomic checkpoints, JSONL logs, rank-0 progress,
bad-sample accounting and the stop conditions of CONVENTIONS.md ("Bad input"), stop-on-signal."""
import json
import os
import random
import signal
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm


def seed_everything(seed, deterministic=False):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def rng_state():
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def gathered_rng_state():
    """The RNG states of every rank (a list indexed by rank), for the checkpoint rank 0 writes."""
    return all_gather_list([rng_state()])


def set_rng_state(state):
    """`state`: one rank's state, or the list of `gathered_rng_state` (each rank takes its own)."""
    if isinstance(state, list):
        state = state[get_rank() if get_rank() < len(state) else 0]
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- distributed ------------------------------------------------------------------------------------------
def init_distributed(device_arg):
    """Returns (rank, world_size, device). Under torchrun (WORLD_SIZE > 1): NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if device_arg == "auto":
        device_arg = "cuda" if torch.cuda.is_available() else "cpu"
    if world == 1:
        return 0, 1, torch.device(device_arg)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    if device_arg.startswith("cuda"):
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def get_rank():
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main():
    return get_rank() == 0


def cleanup_distributed():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values, device="cpu"):
    """Sum a list of numbers over ranks."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_gather_list(items):
    """Concatenate a python list over ranks."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(items)
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(items))
    return [x for p in parts for x in p]


# ---- checkpoints and logs ---------------------------------------------------------------------------------
def save_checkpoint(state, path):
    """Atomic: write a temporary file, fsync, rename. A crash never leaves a half-written `path`."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path):
    if not os.path.isfile(path):
        sys.exit(f"error: checkpoint {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated zip, wrong format, ...
        sys.exit(f"error: checkpoint {path} is corrupt or not a checkpoint ({type(e).__name__}: {e})")


class JsonlLog:
    """One JSON object per line (rank 0 only)."""

    def __init__(self, path):
        self.path = path

    def write(self, record):
        if self.path and is_main():
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def truncate(self, epochs):
        """On resume: keep the records of the first `epochs` epochs (what the checkpoint has seen), so that an
        epoch logged after the checkpoint was written is not logged twice."""
        if not (self.path and is_main() and os.path.isfile(self.path)):
            return
        with open(self.path) as f:
            lines = [line for line in f if line.strip()]
        kept = [line for line in lines if json.loads(line).get("epoch", 0) < epochs]
        if len(kept) != len(lines):
            tmp = f"{self.path}.tmp"
            with open(tmp, "w") as f:
                f.writelines(kept)
            os.replace(tmp, self.path)


def progress(iterable, **kwargs):
    """A tqdm bar on terminals (rank 0); nothing otherwise (StepLog prints lines that reach a log file)."""
    return tqdm(iterable, disable=not is_main() or not sys.stderr.isatty(), dynamic_ncols=True, **kwargs)


class StepLog:
    """A progress line every `every` steps, or about every `seconds` when `every` is 0, whether or not stderr
    is a terminal (under nohup, SLURM or a pipe the bar is off and a log file would otherwise show nothing
    until the epoch ends): step, loss, lr, data time per step, clips/s and the epoch's ETA."""

    def __init__(self, desc, total, every=0, seconds=30.0, first=0):
        self.desc, self.total, self.every, self.seconds = desc, total, every, seconds
        self.start = self.last = time.perf_counter()
        self.steps, self.first, self.clips, self.data_time, self.loss = 0, first, 0, 0.0, 0.0

    def step(self, loss, lr, data_time, clips):
        self.steps += 1
        self.clips, self.data_time, self.loss = self.clips + clips, self.data_time + data_time, self.loss + loss
        now = time.perf_counter()
        due = self.steps % self.every == 0 if self.every else now - self.last >= self.seconds
        if not due or not is_main():
            return
        elapsed, done = now - self.start, self.first + self.steps
        eta = elapsed / self.steps * max(self.total - done, 0)
        tqdm.write(f"{self.desc} step {done}/{self.total}  loss {self.loss / self.steps:.4f}  lr {lr:.3g}  "
                   f"data {self.data_time / self.steps:.3f}s/step  {self.clips / elapsed:.1f} clips/s  "
                   f"ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}", file=sys.stdout)
        sys.stdout.flush()
        self.last = now


def print0(*args, **kwargs):
    if is_main():
        print(*args, **kwargs, flush=True)


class StopRequest:
    """SIGTERM / SIGINT (Ctrl-C) ask the training loop to stop after the current step, write a checkpoint and
    exit; a second SIGINT interrupts at once. A context manager: the previous handlers come back on exit.
    Only the main process of each rank gets the flag (torchrun forwards SIGTERM/SIGINT to every rank; the loop
    all-reduces the flag so that all ranks stop at the same step)."""

    def __init__(self):
        self.signum = None

    def __enter__(self):
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"{signal.Signals(signum).name} received: stopping after this step", file=sys.stderr, flush=True)

    @property
    def requested(self):
        return self.signum is not None

    @property
    def name(self):
        return signal.Signals(self.signum).name if self.signum else "stop"


class BadSamples:
    """Counts the samples of an epoch that could not be read (reported by the dataset with each batch), warns
    once per path, and stops the run past `max_fraction` of the epoch's samples."""

    def __init__(self, max_fraction):
        self.max_fraction, self.paths, self.seen_total = max_fraction, [], set()

    def new_epoch(self):
        self.paths = []

    def add(self, bad_strings, what="replaced by another"):
        for s in bad_strings:
            for msg in filter(None, s.split("\n")):
                self.paths.append(msg)
                if msg not in self.seen_total:
                    self.seen_total.add(msg)
                    print0(f"warning: unreadable sample {what}: {msg}")

    def check(self, samples_seen, final=False):
        """Gathered over ranks; exits with a clear message when the fraction is exceeded."""
        paths = all_gather_list(self.paths)
        seen = all_reduce_sum([samples_seen])[0]
        if final or seen >= 1:
            fraction = len(paths) / max(seen + len(paths), 1)
            if fraction > self.max_fraction and (final or len(paths) >= 10):
                cleanup_distributed()
                sys.exit(f"error: {len(paths)} of {int(seen + len(paths))} samples unreadable "
                         f"({100 * fraction:.1f}% > --max-bad-fraction {100 * self.max_fraction:.1f}%); "
                         f"first: {paths[0]}")
        return paths
