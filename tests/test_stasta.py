"""stasta.py: correlation vs a naive loop, soft-argmax, module shapes, zero-init parity, gradients, multi-label
scoring with mAP, command-line runs (single- and multi-label) and the Table 1 complexity."""
import copy
import json
import os

import pytest
import torch
import torch.nn as nn

import stasta
from common.predict import metrics_of
from common.metrics import mean_average_precision
from common.run import BadSamples
from reference import values_and_grads

B, T, C, H, W = 2, 4, 32, 8, 8


def small_args(*extra):
    return stasta.get_args(["--arch", "resnet18", "--pretrained", "none", "--input-size", "64",
                            "--num-segments", str(T), "--complexity", *extra])


# ---- correlation and displacement -------------------------------------------------------------------------
def naive_correlation(f1, f2, patch=15):
    r = patch // 2
    N, _, h, w = f1.shape
    padded = torch.nn.functional.pad(f2, (r, r, r, r))
    out = torch.zeros(N, patch * patch, h, w)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            shifted = padded[:, :, r + dy: r + dy + h, r + dx: r + dx + w]  # f2[y+dy, x+dx], zero outside
            out[:, (dy + r) * patch + (dx + r)] = (f1 * shifted).sum(1)
    return out


def test_correlation_matches_naive_loop():
    torch.manual_seed(0)
    f1, f2 = torch.randn(3, 5, 9, 11), torch.randn(3, 5, 9, 11)
    torch.testing.assert_close(stasta.correlation(f1, f2), naive_correlation(f1, f2), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stasta.correlation(f1, f2, 7), naive_correlation(f1, f2, 7), atol=1e-5, rtol=1e-5)
    chunked = stasta.correlation(f1, f2, max_elements=5 * 225 * 99)  # one pair per chunk
    torch.testing.assert_close(chunked, naive_correlation(f1, f2), atol=1e-5, rtol=1e-5)


def test_correlation_macs_are_counted():
    f = torch.randn(2, 4, 6, 6)
    macs = stasta.complexity.gmacs(nn.Identity(), f)  # nothing seen: the count is added by the op itself
    assert macs == 0

    class Corr(nn.Module):
        def forward(self, x):
            return stasta.correlation(x, x)

    assert stasta.complexity.gmacs(Corr(), f) * 1e9 == pytest.approx(2 * 4 * 225 * 36)

    class Chunked(nn.Module):
        def forward(self, x):
            return stasta.correlation(x, x, max_elements=1)

    assert stasta.complexity.gmacs(Chunked(), f) * 1e9 == pytest.approx(2 * 4 * 225 * 36)  # counted once


def test_soft_argmax_recovers_a_shift():
    torch.manual_seed(0)
    f1 = torch.randn(1, 16, 20, 20)
    f2 = torch.roll(f1, shifts=(2, -1), dims=(2, 3))   # f2[y+2, x-1] = f1[y, x]: dy = +2, dx = -1
    disp, conf = stasta.soft_argmax(stasta.match(f1, f2))
    inner = (0, slice(5, 15), slice(5, 15))  # away from the wrapped border
    torch.testing.assert_close(disp[:, 0][inner], torch.full((10, 10), -1 / 7), atol=1e-3, rtol=0)  # u = dx / 7
    torch.testing.assert_close(disp[:, 1][inner], torch.full((10, 10), 2 / 7), atol=1e-3, rtol=0)   # v = dy / 7
    assert conf.shape == (1, 1, 20, 20) and conf[:, 0][inner].min() > 0.99  # normalised features: self-match = 1


# ---- module shapes ----------------------------------------------------------------------------------------
def test_module_shapes():
    torch.manual_seed(0)
    x = torch.randn(B * T, C, H, W)
    fast, slow = stasta.FastSlowTempo(C, T)(x)
    assert fast.shape == (B, T, C, H, W) and slow.shape == (B, T // 2, C, H, W)
    assert stasta.STAFSFF(C)(fast, slow).shape == (B, T, C, H, W)
    dmap = stasta.DisplacementMap(C)(fast)
    assert dmap.shape == (B, T, 3, H, W) and dmap[:, :, :2].abs().max() <= 1
    assert stasta.TA(C)(dmap).shape == (B, T, C, H, W)
    assert stasta.DMTA(C)(fast).shape == (B, T, C, H, W)
    for kw in (dict(), dict(afs=False), dict(dmta=False), dict(order="dmta-afs")):
        assert stasta.STASTA(C, T, **kw)(x).shape == x.shape
    assert stasta.MTDM(C, T)(x).shape == (B * T, 6, H, W)
    assert stasta.TCM(C, T)(x).shape == x.shape
    assert stasta.STASTA(C, 5)(torch.randn(5, C, H, W)).shape == (5, C, H, W)  # odd T: ceil(T/2) slow steps


def test_order_switch_changes_the_graph():
    m = stasta.STASTA(C, T, order="dmta-afs")
    assert m.order == ["dmta", "afs"]
    assert stasta.STASTA(C, T).order == ["afs", "dmta"]
    assert stasta.STASTA(C, T, afs=False).tempo.slow is None


def test_temporal_shift_matches_loop():
    x = torch.randn(B * T, 16, 3, 3)
    out = stasta.TemporalShift(T, net=nn.Identity())(x).view(B, T, 16, 3, 3)
    ref = torch.zeros(B, T, 16, 3, 3)
    v = x.view(B, T, 16, 3, 3)
    for t in range(T):
        ref[:, t, 4:] = v[:, t, 4:]
        if t + 1 < T:
            ref[:, t, :2] = v[:, t + 1, :2]
        if t > 0:
            ref[:, t, 2:4] = v[:, t - 1, 2:4]
    torch.testing.assert_close(out, ref)


# ---- parity and gradients ---------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [[], ["--baseline", "tcm"]])
def test_zero_init_insert_is_identity(extra):
    """At step 0 the module adds exactly zero: the model equals the same TSM backbone without it."""
    torch.manual_seed(0)
    model = stasta.build_model(small_args(*extra), 4).eval()
    plain = copy.deepcopy(model)
    name = "tcm" if extra else "stasta"
    setattr(plain.backbone.layer2, name, nn.Identity())
    x = torch.randn(1, T, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x))


@pytest.mark.parametrize("extra", [[], ["--baseline", "tcm"]])  # the ablations are subsets of the full graph
def test_backward_reaches_every_parameter(extra):
    torch.manual_seed(0)
    # 8 frames: with 4 the half-rate slow stream has one pair only, its two steps are equal and FS-FF's relevance
    # (a softmax over identical values) has no gradient
    model = stasta.build_model(small_args("--dropout", "0", "--num-segments", "8", *extra), 4)
    for m in model.modules():  # undo the zero-inits so that gradients flow through the inserts
        if isinstance(m, (stasta.STASTA,)):
            nn.init.ones_(m.out_bn.weight)
        if isinstance(m, stasta.TAM):
            nn.init.ones_(m.convs[-1][-1][1].weight)
    nn.init.normal_(model.fc.weight, 0, 0.1)
    logits = model(torch.randn(2, 8, 3, 48, 48))
    assert logits.shape == (2, 4)
    logits.logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_tsn_baseline_has_no_module():
    model = stasta.build_model(small_args("--baseline"), 4)
    assert not any(isinstance(m, (stasta.TemporalShift, stasta.STASTA, stasta.TCM)) for m in model.modules())
    assert small_args("--no-afs", "--no-dmta").baseline == "tcm"  # Table 3 row 1


# ---- multi-label scoring ----------------------------------------------------------------------------------
class FirstPixels(nn.Module):
    """Returns the first K values of the (normalised) clip as logits, so the test controls the scores."""

    def forward(self, x):
        return x[:, 0, 0, 0, :3] * 10


def test_multi_label_scores_max_over_clips_and_map():
    args = stasta.get_args(["--data", "x", "--multi-label", "--test-clips", "2", "--test-crops", "1", "--device", "cpu"])
    K, clips = 3, torch.zeros(2, 2, 1, 3, 1, 3)                     # (B, V=clips*crops, T, C, H, W)
    clips[0, 0, 0, 0, 0] = torch.tensor([255., 0, 0])               # video 0: class 0 high in clip 0 only
    clips[0, 1, 0, 0, 0] = torch.tensor([0., 0, 255])               #          class 2 high in clip 1 only
    clips[1, 1, 0, 0, 0] = torch.tensor([0., 255, 0])               # video 1: class 1 high in clip 1
    targets = torch.tensor([[1., 0, 1], [0, 1, 0]])
    loader = [(clips.flatten(0, 1), torch.tensor([2, 2]), targets, torch.tensor([0, 1]), [])]  # collate_eval's batch
    metrics = metrics_of(*stasta.evaluate(FirstPixels(), loader, args, torch.device("cpu"), BadSamples(1.0)))
    scores = stasta.normalize(clips)[..., 0, 0, 0, :3].mul(10).sigmoid().amax(1)  # (B,V,3) -> max over clips
    assert metrics["val_map"] == pytest.approx(mean_average_precision(scores.numpy(), targets.numpy()))
    assert metrics["val_map"] == pytest.approx(100.0)  # the max over clips keeps every positive on top
    loss = stasta.loss_fn(args)(torch.zeros(2, K), targets)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(2.0)).item())  # BCE with logits


# ---- command line -----------------------------------------------------------------------------------------
def cli(data, out, *extra):
    return stasta.main(["--data", data, "--arch", "resnet18", "--input-size", "64", "--pretrained", "none",
                        "--batch-size", "4", "--workers", "0", "--num-segments", "4", "--lr", "0.01",
                        "--output", out, *extra])


def check_run(out, key, epochs):
    log = [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))]
    assert [r["epoch"] for r in log] == list(range(epochs))
    assert all(key in r and r["bad_samples"] == 0 for r in log)
    for f in ("args.json", "last.pt", "best.pt"):
        assert os.path.isfile(os.path.join(out, f))


def test_cli_single_label(tiny_data, tmp_path):
    out = str(tmp_path / "run")
    final = cli(tiny_data, out, "--epochs", "2")
    assert final["epochs"] == 2 and 0 <= final["val_top1"] <= 100 and "val_top5" in final
    check_run(out, "val_top1", 2)
    final = cli(tiny_data, out, "--epochs", "3", "--resume", os.path.join(out, "last.pt"))
    assert final["epochs"] == 3
    check_run(out, "val_top1", 3)
    metrics = cli(tiny_data, out, "--evaluate", "--checkpoint", os.path.join(out, "best.pt"), "--test-clips", "2")
    assert metrics["samples"] == 4 and 0 <= metrics["val_top1"] <= 100
    # the 16+8 ensemble (Tables 1-2), here 4+3 frames: each member with its own T, scores averaged
    best, out3 = os.path.join(out, "best.pt"), str(tmp_path / "run3")
    cli(tiny_data, out3, "--num-segments", "3", "--epochs", "1", "--max-steps", "1")
    ens = cli(tiny_data, out, "--evaluate", "--ensemble", best, os.path.join(out3, "last.pt"), "--test-clips", "2")
    assert [m["frames"] for m in ens["members"]] == [4, 3] and ens["protocol"].startswith("4+3 frames")
    same = cli(tiny_data, out, "--evaluate", "--ensemble", best, best, "--test-clips", "2")  # a model with itself
    assert same["val_top1"] == pytest.approx(metrics["val_top1"]) and same["val_top5"] == pytest.approx(metrics["val_top5"])


def test_cli_multi_label(tiny_data, tmp_path):
    data = tmp_path / "charades"
    data.mkdir()
    (data / "classes.txt").write_text("a\nb\nc\n")
    for split in ("train", "val"):
        lines = open(os.path.join(tiny_data, f"{split}.txt")).read().split("\n")
        rows = [line.rsplit(" ", 1)[0] for line in lines if line.strip()]
        labels = ["0,1", "2", "1,2", "0"]
        (data / f"{split}.txt").write_text("".join(
            f"{os.path.join(tiny_data, r)} {labels[i % 4]}\n" for i, r in enumerate(rows)))
    out = str(tmp_path / "run")
    final = cli(str(data), out, "--multi-label", "--epochs", "1", "--test-clips", "2")
    assert final["epochs"] == 1 and 0 < final["val_map"] <= 100 and "val_top1" not in final
    check_run(out, "val_map", 1)
    final = cli(str(data), out, "--multi-label", "--epochs", "2", "--resume", os.path.join(out, "last.pt"))
    assert final["epochs"] == 2
    check_run(out, "val_map", 2)
    metrics = cli(str(data), out, "--multi-label", "--evaluate", "--checkpoint", os.path.join(out, "best.pt"))
    assert 0 < metrics["val_map"] <= 100
    best = os.path.join(out, "best.pt")
    same = cli(str(data), out, "--multi-label", "--evaluate", "--ensemble", best, best)  # sigmoid scores averaged
    assert same["val_map"] == pytest.approx(metrics["val_map"])


# ---- Table 1 complexity -----------------------------------------------------------------------------------
def test_complexity_matches_table1(capsys):
    """The main configuration (8 frames, 224, 174 classes): Table 1 24.8M, 40G (16 frames, 80G: see README)."""
    stasta.main(["--complexity"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["params_m"] == pytest.approx(24.8, rel=0.03)
    assert out["gflops"] == pytest.approx(40.0, rel=0.03)


# ---- performance rewrites == the formulation they replace -------------------------------------------------


def test_matmul_correlation_equals_unfold_correlation():
    """The window gathered from one matmul of all pixel pairs: the same values and gradients as the unfold
    formulation it replaces."""
    def unfold_correlation(f1, f2, patch=15):
        N, C, H, W = f1.shape
        windows = nn.functional.unfold(f2, patch, padding=patch // 2).view(N, C, patch * patch, H * W)
        return (f1.view(N, C, 1, H * W) * windows).sum(1).view(N, patch * patch, H, W)

    torch.manual_seed(0)
    f1, f2 = torch.randn(3, 8, 9, 11), torch.randn(3, 8, 9, 11)
    for patch in (15, 5):
        new = values_and_grads(lambda a, b: stasta.correlation(a, b, patch), nn.Identity(), f1, f2)
        for a, b in zip(new, values_and_grads(lambda a, b: unfold_correlation(a, b, patch), nn.Identity(), f1, f2)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_temporal_shift_and_temporal_conv3d_equal_the_formulation_they_replace():
    torch.manual_seed(0)
    x = torch.randn(B * T, 16, 3, 3)
    shift = stasta.TemporalShift(T, net=nn.Identity())
    v = x.view(B, T, 16, 3, 3)
    ref = torch.zeros_like(v)                                               # TSM's zeros + three slice copies
    ref[:, :-1, :2], ref[:, 1:, 2:4], ref[:, :, 4:] = v[:, 1:, :2], v[:, :-1, 2:4], v[:, :, 4:]
    assert torch.equal(shift(x), ref.view_as(x))
    conv = stasta.TemporalConv3d(16, 16, (3, 1, 1), padding=(1, 0, 0), groups=16)
    x3 = v.transpose(1, 2)                                                  # (B, C, T, H, W), not contiguous
    conv3d = lambda t: nn.functional.conv3d(t, conv.weight, conv.bias, padding=(1, 0, 0), groups=16)
    for a, b in zip(values_and_grads(conv, conv, x3), values_and_grads(conv3d, conv, x3)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ---- flags a model would ignore ---------------------------------------------------------------------------
@pytest.mark.parametrize("argv,flag", [
    (["--no-afs", "--order", "dmta-afs"], "--order"), (["--no-dmta", "--order", "afs-dmta"], "--order"),
    (["--no-afs", "--no-dmta", "--order", "afs-dmta"], "--order"), (["--baseline", "tcm", "--no-afs"], "--no-afs"),
    (["--baseline", "--order", "dmta-afs"], "--order"), (["--baseline", "tsm", "--no-dmta"], "--no-dmta"),
])
def test_a_flag_the_model_would_ignore_stops_before_any_work(argv, flag, tmp_path, capsys):
    """argparse's exit (code 2) from get_args: without the check, main would go on to the (missing) data."""
    with pytest.raises(SystemExit) as e:
        stasta.main(["--data", str(tmp_path / "missing"), *argv])
    assert e.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: " + flag in last, last


def test_tsm_baseline_is_the_shift_alone():
    model = stasta.build_model(small_args("--baseline", "tsm"), 4)
    assert sum(isinstance(m, stasta.TemporalShift) for m in model.modules()) == 8          # ResNet-18: 8 blocks
    assert not any(isinstance(m, (stasta.STASTA, stasta.TCM)) for m in model.modules())
