"""--benchmark of all five scripts (the JSON fields of CONVENTIONS.md and the fwd+bwd twins), --channels-last parity,
and the interleaved timing helpers of common/complexity.py. Tiny configurations: ResNet-18, 64 px, 4-8 frames."""
import importlib
import json
import time

import pytest
import torch
import torch.nn as nn

from common import complexity, modes

SMALL = ["--arch", "resnet18", "--input-size", "64", "--num-classes", "5", "--pretrained", "none"]
# (script, flags): frames and switches that keep batch-1 training valid (EAN's ESP-Net and the 3D ResNet's
# stage 5 need more than one value per channel at batch 1); EAN without LMC for speed
CONFIGS = [("ean", ["--num-segments", "8", "--no-lmc"]), ("can", ["--num-segments", "4"]),
           ("stw", ["--num-segments", "4"]), ("stasta", ["--num-segments", "4"]), ("stmanet", ["--num-segments", "8"])]
FIELDS = ["device", "dtype", "batch", "gflops", "latency_ms", "throughput", "baseline_gflops", "baseline_latency_ms",
          "baseline_throughput", "train_latency_ms", "train_throughput", "baseline_train_latency_ms",
          "baseline_train_throughput", "flops_ratio", "latency_ratio", "train_latency_ratio", "channels_last",
          "compile"]


@pytest.mark.parametrize("script,flags", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_benchmark_prints_the_json_fields(script, flags, capsys):
    module = importlib.import_module(script)
    module.main(["--benchmark", "--batch-size", "2", *SMALL, *flags])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["script"] == script and all(k in out for k in FIELDS), sorted(set(FIELDS) - set(out))
    assert out["batch"] == 2 and out["dtype"] == "fp32" and out["gflops"] >= out["baseline_gflops"] > 0
    assert out["flops_ratio"] == pytest.approx(out["gflops"] / out["baseline_gflops"], rel=0.01)
    for key in ("latency_ms", "train_latency_ms", "throughput", "train_throughput"):
        assert out[key] > 0 and out["baseline_" + key] > 0
    assert out["latency_ratio"] > 0 and out["latency_ratio_cpu"] > 0


@pytest.mark.parametrize("script,flags", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_channels_last_gives_the_same_logits(script, flags):
    module = importlib.import_module(script)
    args = module.get_args(["--benchmark", *SMALL, *flags])
    torch.manual_seed(0)
    model = module.build_model(args, args.num_classes).eval()
    for m in model.modules():  # the zero-initialised last layers of the inserts get weights, so every path counts
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm3d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
        elif isinstance(m, nn.Conv2d | nn.Conv3d | nn.Linear) and not m.weight.abs().sum():
            nn.init.normal_(m.weight, 0, 0.05)
    x = torch.randn(1, *modes.clip_shape(module, args))
    with torch.no_grad():
        ref = model(x)
        out = complexity.to_channels_last(model)(complexity.clip_channels_last(x))
    ref, out = (r[0] if isinstance(r, tuple) else r for r in (ref, out))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_channels_last_formats():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv3d(4, 4, 3))
    complexity.to_channels_last(model)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model[1].weight.is_contiguous(memory_format=torch.channels_last_3d)
    x = complexity.clip_channels_last(torch.randn(2, 3, 4, 5, 6))                  # (B, T, C, H, W)
    assert x.shape == (2, 3, 4, 5, 6) and x.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    assert x.permute(0, 2, 1, 3, 4).is_contiguous(memory_format=torch.channels_last_3d)


def test_interleaved_alternates_and_medians():
    calls = []
    steps = {"a": lambda: (calls.append("a"), time.sleep(0.002)), "b": lambda: (calls.append("b"), time.sleep(0.006))}
    wall, cpu = complexity.interleaved(steps, torch.device("cpu"), repeats=4, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]          # warm-up, then the order flips
    assert len(wall["a"]) == len(cpu["b"]) == 4
    assert 0.15 < complexity.median_ratio(wall["a"], wall["b"]) < 0.9
    assert complexity.median_ratio([1, 2, 30], [1, 1, 1]) == 2


def test_compare_reports_a_compile_failure_and_times_eagerly(monkeypatch):
    class Broken(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", Broken)
    net = lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    out = complexity.compare(net(), lambda b: torch.randn(b, 12), net(), lambda b: torch.randn(b, 12),
                             torch.device("cpu"), batch=2, compile=True, repeats=2)
    assert out["compile_error"].startswith("RuntimeError: no compiler here") and "baseline_compile_error" in out
    assert out["flops_ratio"] == 1 and out["latency_ms"] >= 0 and out["train_throughput"] > 0


def test_perf_table_prints_the_latency_and_amp_tables(monkeypatch, capsys):
    """`python -m common.perf_table --amp-speedup` on one tiny row: both tables, numbers from the subprocesses."""
    from common import perf_table
    monkeypatch.setattr(perf_table, "ROWS", [("stw", [*SMALL, "--num-segments", "2"], "paper")])
    perf_table.main(["--amp-speedup", "--batch-size", "2"])
    out = capsys.readouterr().out
    assert "error" not in out, out
    rows = [line for line in out.splitlines() if line.startswith("| stw ")]
    assert len(rows) == 2, out
    latency, amp = (row.strip("|").split("|") for row in rows)
    assert float(latency[5]) > 0 and latency[10].strip().startswith(("yes", "no"))   # FLOPs ratio, verdict
    fp32, bf16 = float(amp[2]), float(amp[3])
    assert fp32 > 0 and bf16 > 0 and amp[4].strip() == f"{bf16 / fp32:.2f} x"
