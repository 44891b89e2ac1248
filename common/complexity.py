"""Parameters, GFLOPs (multiply-accumulates, the papers' convention) and latency/throughput.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode` (which counts 2 per multiply-add, so we halve it).
Operations it cannot see (element-wise products summed over a window) are reported by the module itself with
`count_macs(n)` inside its forward; operations inside `with uncounted():` are left out (an implementation that
computes more than the operation it stands for reports the operation's MACs). Both are free outside a count.
`gmacs(..., count="thop")` counts as thop (`thop.profile`, which some papers' FLOPs follow) does: the same MACs plus
what thop gives norm and pooling layers (`THOP_OPS`); `with counting("thop"):` makes that the default of the calls
inside (common/paper_tables.py rows with "count": "thop").

Timing (`compare`, behind every script's `--benchmark`): the model and its baseline are timed INTERLEAVED, one
repeat of each in turn (the order flips every round), so a change of machine load hits both; each time is the
median over rounds and each ratio the median of the per-round ratios model / baseline. CUDA events on GPU,
`time.perf_counter` on CPU, where the ratios of process CPU time are given as well (`*_ratio_cpu`). Options:
`amp` (bf16 autocast), `channels_last` (4-D weights channels_last, 5-D ones channels_last_3d, clips stored
(B, T, H, W, C)), `compile` (torch.compile; compiled before the timed rounds, a failure is reported in the result
and the model runs eagerly). `python -m common.perf_table` runs all five scripts and prints the table of
docs/performance.md.
"""
import contextlib
import itertools
import os
import platform
import statistics
import time

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

_extra = []  # active counts, [extra MACs, FlopCounterMode] (a stack, so nested counts work)


def count_macs(n):
    """Called by a module's forward to add `n` multiply-accumulates the flop counter cannot see."""
    if _extra:
        _extra[-1][0] += int(n)


@contextlib.contextmanager
def uncounted():
    """Operations inside are left out of the count: for an implementation that computes more than the operation it
    stands for (e.g. a correlation window gathered from a full matmul); the module reports the operation's own
    MACs with `count_macs`."""
    if not _extra:
        yield
        return
    entry = _extra[-1]
    before = entry[1].get_total_flops()
    try:
        yield
    finally:
        entry[0] -= (entry[1].get_total_flops() - before) // 2


def params_m(model):
    return sum(p.numel() for p in model.parameters()) / 1e6


# thop's rules (thop 0.1.1, `thop.profile`'s register_hooks) for the module types whose count is not a conv's or
# linear's MACs, per call of a leaf module as (input x, output y) -> operations. thop counts nn.Conv*/nn.Linear as
# MACs without bias, as the flop counter does; nn.ReLU, nn.ReLU6, max pools, nn.Dropout and padding as 0; a module
# type it has no rule for (nn.Sigmoid, a custom module's own functional code) and every functional op (F.conv2d,
# torch.sigmoid, +, *, mean) as 0. Assumption: a functional conv or matmul is a rewrite of an nn.Conv/nn.Linear the
# paper's code would have as a module (MTCM's fused branches, TemporalConv3d), so its MACs stay in, as they are here.
_UPSAMPLE = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 259}  # per output element; thop: other modes 0
THOP_OPS = (
    # y = (x - mean) / sqrt(var + eps) [* weight + bias]: 2 per element, 4 with the affine weight and bias
    ((nn.modules.batchnorm._NormBase, nn.LayerNorm),
     lambda m, x, y: 2 * x.numel() * (2 if getattr(m, "affine", getattr(m, "elementwise_affine", False)) else 1)),
    ((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), lambda m, x, y: y.numel()),
    ((nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d),   # (window adds + 1 division) per output
     lambda m, x, y: (int(torch.tensor([i // o for i, o in zip(x.shape[2:], y.shape[2:])]).prod()) + 1) * y.numel()),
    ((nn.LeakyReLU, nn.PReLU), lambda m, x, y: x.numel()),
    ((nn.Softmax,), lambda m, x, y: x.numel() // x.shape[m.dim] * (3 * x.shape[m.dim] - 1)),  # exp, add, div
    ((nn.Upsample,), lambda m, x, y: _UPSAMPLE.get(m.mode, 0) * y.numel()),
)
_count = ["macs"]  # the count gmacs uses when none is given (a stack: `counting` nests)


def _checked(count):
    if count not in ("macs", "thop"):
        raise ValueError(f"count must be 'macs' or 'thop', not {count!r}")
    return count


@contextlib.contextmanager
def counting(count):
    """gmacs calls inside count as `count` ("macs" or "thop") unless they say otherwise."""
    _count.append(_checked(count))
    try:
        yield
    finally:
        _count.pop()


def _thop_hook(module, inputs, output):
    for types, ops in THOP_OPS:
        if isinstance(module, types):
            count_macs(ops(module, inputs[0], output))
            return


@torch.no_grad()
def gmacs(model, *inputs, count=None):
    """Multiply-accumulates (G) of one forward pass in eval mode. `count`: "macs" (the default outside `counting`),
    or "thop": the MACs plus thop's operations for the norm and pooling layers (`THOP_OPS`; BatchNorm 4 per output
    element)."""
    count = _checked(count or _count[-1])
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    _extra.append([0, counter])
    hooks = [m.register_forward_hook(_thop_hook) for m in model.modules()
             if count == "thop" and not any(True for _ in m.children())]                      # leaf modules, as thop
    try:
        with counter:
            model(*inputs)
        extra = _extra[-1][0]
    finally:
        for hook in hooks:
            hook.remove()
        _extra.pop()
        model.train(was_training)
    return (counter.get_total_flops() / 2 + extra) / 1e9


def _timer(device):
    """measure(fn) -> (wall seconds, process CPU seconds) of one call; CUDA events on GPU."""
    if device.type == "cuda":
        def measure(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            cpu = time.process_time()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            return start.elapsed_time(end) / 1e3, time.process_time() - cpu
    else:
        def measure(fn):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            return time.perf_counter() - wall, time.process_time() - cpu
    return measure


def to_channels_last(model):
    """4-D parameters/buffers to channels_last, 5-D ones to channels_last_3d (Module.to takes only one format)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.dim() in (4, 5):
            t.data = t.data.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)
    return model


def clip_channels_last(x):
    """A clip (B, T, C, H, W) stored as (B, T, H, W, C): flattened to (B*T, C, H, W) it is channels_last, permuted
    to (B, C, T, H, W) it is channels_last_3d (the 2D and the 3D scripts see the same memory)."""
    return x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)  # (B,T,C,H,W) -> (B,T,H,W,C) -> view back


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu: {cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def make_step(model, x, train, dtype=None):
    """One forward (eval mode, no grad) or forward+backward (train mode; the gradients are dropped, no optimizer)."""
    autocast = torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None)

    def step():
        model.train(train)
        with torch.set_grad_enabled(train), autocast:
            out = model(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
        if train:
            out.float().sum().backward()
            for p in model.parameters():
                p.grad = None
    return step


def interleaved(steps, device, repeats=7, warmup=1):
    """Time the callables `steps` ({name: fn}) in alternation: `warmup` untimed rounds, then `repeats` rounds that
    time each fn once, the order reversed every other round, so a change of machine load hits all of them.
    Returns ({name: [wall seconds per round]}, {name: [process CPU seconds per round]})."""
    measure = _timer(device)
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    wall, cpu = {name: [] for name in steps}, {name: [] for name in steps}
    for r in range(repeats):
        for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
            w, c = measure(steps[name])
            wall[name].append(w)
            cpu[name].append(c)
    return wall, cpu


def median_ratio(a, b):
    """Median over rounds of a[i] / b[i] (paired, so a load change during the run cancels)."""
    return statistics.median(x / y for x, y in zip(a, b))


def compare(model, make_input, baseline, make_baseline_input, device, batch, amp=False, channels_last=False,
            compile=False, repeats=None, warmup=None):
    """`--benchmark`: GFLOPs, latency (batch 1) and throughput (clips/s at `batch`) of `model` and `baseline`,
    forward only and forward+backward (`train_`), timed interleaved; `make_input(b)` gives a batch of b clips.

    Returns one flat dict: the CONVENTIONS.md fields (`latency_ms`, `throughput`, `baseline_...`), their `train_`
    twins, `flops_ratio`, `latency_ratio` and `train_latency_ratio` (model / baseline, median of the per-round
    ratios), on CPU the same ratios of process CPU time (`..._cpu`: insensitive to other processes taking the
    cores, though they count OpenMP spin-waits), the options, and `compile_error` where compilation failed.
    Repeats: 7 rounds after 1 warm-up on CPU, 20 after 5 on GPU."""
    gpu = device.type == "cuda"
    repeats, warmup = repeats or (20 if gpu else 7), warmup or (5 if gpu else 1)
    if gpu:
        torch.backends.cudnn.benchmark = True
    # Choice: --amp is bf16 autocast on CPU too: oneDNN runs it on AVX512-BF16/AMX CPUs (TSN-R50 8x224^2: 1.6x
    # faster than fp32 on a 2-core AMD EPYC, measured); `dtype` says what ran.
    dtype = torch.bfloat16 if amp else None
    out = {"device": device_name(device), "dtype": "bf16" if amp else "fp32", "batch": batch,
           "channels_last": channels_last, "compile": compile, "repeats": repeats, "torch": torch.__version__}
    kinds = {"latency_ms": (1, False), "train_latency_ms": (1, True),       # name: (batch, forward+backward)
             "throughput": (batch, False), "train_throughput": (batch, True)}
    steps = {}
    for prefix, net, make in (("", model, make_input), ("baseline_", baseline, make_baseline_input)):
        net = net.to(device)
        out[prefix + "gflops"] = gmacs(net, make(1).to(device))
        inputs = {b: make(b).to(device) for b in (1, batch)}
        if channels_last:
            to_channels_last(net)
            inputs = {b: clip_channels_last(x) for b, x in inputs.items()}
        run = torch.compile(net) if compile else net
        for kind, (b, train) in kinds.items():
            steps[prefix + kind] = make_step(run, inputs[b], train, dtype)
        if compile:  # compile here (one call per shape and mode), before the timed rounds
            try:
                for kind in kinds:
                    steps[prefix + kind]()
            except Exception as e:  # noqa: BLE001 - any compiler failure is reported, the model runs eagerly
                out[prefix + "compile_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
                for kind, (b, train) in kinds.items():
                    steps[prefix + kind] = make_step(net, inputs[b], train, dtype)
    out["flops_ratio"] = round(out["gflops"] / out["baseline_gflops"], 3) if out["baseline_gflops"] else None
    out["gflops"], out["baseline_gflops"] = round(out["gflops"], 2), round(out["baseline_gflops"], 2)
    for kind, (b, _) in kinds.items():
        wall, cpu = interleaved({p: steps[p + kind] for p in ("", "baseline_")}, device, repeats, warmup)
        for prefix, t in wall.items():
            out[prefix + kind] = round(statistics.median(t) * 1e3, 2) if b == 1 else round(b / statistics.median(t), 2)
        if b == 1:  # latency_ratio, train_latency_ratio (+ _cpu)
            out[kind.replace("_ms", "_ratio")] = round(median_ratio(wall[""], wall["baseline_"]), 3)
            if not gpu:
                out[kind.replace("_ms", "_ratio_cpu")] = round(median_ratio(cpu[""], cpu["baseline_"]), 3)
    return out
