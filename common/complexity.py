"""Parameters, GFLOPs (multiply-accumulates, the papers' convention) and latency/throughput.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode` (which counts 2 per multiply-add, so we halve it).
Operations it cannot see (element-wise products summed over a window, e.g. a correlation built from `unfold`)
are reported by the module itself with `count_macs(n)` inside its forward; the call is free outside a count.
"""
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

_extra = []  # active counters (a stack, so nested counts work)


def count_macs(n):
    """Called by a module's forward to add `n` multiply-accumulates the flop counter cannot see."""
    if _extra:
        _extra[-1][0] += int(n)


def params_m(model):
    return sum(p.numel() for p in model.parameters()) / 1e6


@torch.no_grad()
def gmacs(model, *inputs):
    """Multiply-accumulates (G) of one forward pass in eval mode."""
    was_training = model.training
    model.eval()
    _extra.append([0])
    try:
        with FlopCounterMode(display=False) as counter:
            model(*inputs)
        extra = _extra[-1][0]
    finally:
        _extra.pop()
        model.train(was_training)
    return (counter.get_total_flops() / 2 + extra) / 1e9


def _timer(device):
    if device.type == "cuda":
        def measure(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            return start.elapsed_time(end) / 1e3
    else:
        def measure(fn):
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t
    return measure


def time_model(model, make_input, device, batch, dtype=None, backward=False, warmup=3, repeats=10):
    """Median seconds of one step (forward, or forward+backward) at `batch`, after warm-up."""
    model.train(backward)
    x = make_input(batch).to(device)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    def step():
        with torch.set_grad_enabled(backward), autocast:
            out = model(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
        if backward:
            out.float().sum().backward()
            model.zero_grad(set_to_none=True)

    measure = _timer(device)
    for _ in range(warmup):
        measure(step)
    return statistics.median(measure(step) for _ in range(repeats))


def benchmark(model, make_input, device, batch, dtype=None, repeats=10, warmup=3):
    """latency (batch 1, forward, ms), throughput (clips/s at `batch`, forward), and training throughput."""
    lat = time_model(model, make_input, device, 1, dtype, False, warmup, repeats)
    fwd = time_model(model, make_input, device, batch, dtype, False, warmup, repeats)
    train = time_model(model, make_input, device, batch, dtype, True, max(1, warmup // 2), max(3, repeats // 2))
    return {"latency_ms": round(lat * 1e3, 2), "throughput": round(batch / fwd, 2),
            "train_throughput": round(batch / train, 2)}
