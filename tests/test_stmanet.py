"""Tests for stmanet.py: module shapes, the diversity constraints against hand-computed values, vectorised ==
naive loops, zero-initialised model == plain 3D ResNet, gradients everywhere, complexity, and one command-line
run (train, whole-video evaluation, checkpoints, resume, --evaluate) on the tiny dataset."""
import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import stmanet as S
from reference import conv3d, values_and_grads


def make(arch="resnet18", **kw):
    return S.STMANet(arch, 4, **kw)


# ---------------------------------------------------------------------------------------------- module shapes
def test_backbone_stage_shapes_resnet50():
    """Sec. 3.1: 32x112x112 -> each stage halves T, H, W and doubles C; stage 2 attends over 28x28."""
    with torch.device("meta"):
        net = S.ResNet3d("resnet50")
        z = net.stem(torch.empty(1, 3, 32, 112, 112))
        shapes = []
        for name in S.LAYERS:
            z = getattr(net, name)(z)
            shapes.append(tuple(z.shape[1:]))
    assert shapes == [(256, 16, 28, 28), (512, 8, 14, 14), (1024, 4, 7, 7), (2048, 2, 4, 4)]


def test_tda_shapes():
    tda = S.TDA(16, 16)                                   # stage i: C=16, next stage C=32 -> branch 16
    z, branch = torch.randn(2, 16, 8, 6, 6), torch.randn(2, 8, 8, 6, 6)
    z_t, nxt, attn = tda(z, branch)
    assert z_t.shape == z.shape and nxt.shape == (2, 16, 4, 3, 3) and attn.shape == (2, 8, 8)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 8))
    last = S.TDA(16, 16, last=True)                       # stage 5: no pooling, C channels
    assert last(z, branch)[1].shape == z.shape


def test_sda_shapes():
    z = torch.randn(2, 8, 4, 5, 6)
    z_s, attn = S.SDA(8)(z)
    assert z_s.shape == z.shape and attn.shape == (2, 30, 30)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 30))


# ------------------------------------------------------------------------------ vectorised == naive, Eq. 1-5
def test_tda_matches_naive_loop():
    torch.manual_seed(0)
    tda = S.TDA(8, 8).eval()
    torch.nn.init.constant_(tda.gamma, 0.7)
    z, branch = torch.randn(1, 8, 5, 3, 3), torch.randn(1, 4, 5, 3, 3)
    z_t, _, attn = tda(z, branch)
    zc = torch.cat([z, branch], 1)[0]                     # (3C/2,T,H,W)
    q, k = tda.phi(zc[None])[0], tda.omega(zc[None])[0]
    T, d = zc.shape[1], zc[:, 0].numel()
    logits = torch.tensor([[(q[:, t] * k[:, s]).sum().item() for s in range(T)] for t in range(T)]) / math.sqrt(d)
    a = logits.softmax(-1)
    assert torch.allclose(attn[0], a, atol=1e-5)
    for t in range(T):                                    # Eq. (3), one time step at a time
        expect = z[0, :, t] + 0.7 * sum(a[t, s] * z[0, :, s] for s in range(T))
        assert torch.allclose(z_t[0, :, t], expect, atol=1e-5)


def test_sda_matches_naive_loop():
    torch.manual_seed(0)
    sda = S.SDA(3)
    torch.nn.init.constant_(sda.gamma, 1.0)
    z = torch.randn(1, 3, 2, 2, 3)
    z_s, attn = sda(z)
    C, T, H, W = z.shape[1:]
    q, k = sda.alpha(z)[0], sda.beta(z)[0]
    pos = [(h, w) for h in range(H) for w in range(W)]
    logits = torch.tensor([[(q[:, :, p[0], p[1]] * k[:, :, r[0], r[1]]).sum().item() for r in pos] for p in pos])
    a = (logits / math.sqrt(C * T)).softmax(-1)           # Eq. (4)
    assert torch.allclose(attn[0], a, atol=1e-5)
    for i, (h, w) in enumerate(pos):                      # Eq. (5)
        expect = sum(a[i, j] * z[0, :, :, r[0], r[1]] for j, r in enumerate(pos))
        assert torch.allclose(z_s[0, :, :, h, w], expect, atol=1e-5)


# ---------------------------------------------------------------------------------- diversity losses, Eq. 6-7
def test_diversity_loss_hand_computed():
    """Three stages, temporal maps aligned to 2x2 (Eq. 6), ordered pairs (Eq. 7).
    a = I_4 pooled to 2x2 -> [[.5,0],[0,.5]];  b = [[1,0],[1,0]];  c = uniform .5.
    cos(a,b) = .5/(.7071*1.4142) = .5;  cos(a,c) = .5/.7071 = .7071;  cos(b,c) = 1/1.4142 = .7071.
    L = 2 (.5 + .7071 + .7071) = 3.8284 for sample 0; sample 1 has three equal maps: L = 6. Mean: 4.9142."""
    a = torch.stack([torch.eye(4), torch.eye(4)])
    b = torch.stack([torch.tensor([[1., 0.], [1., 0.]]), torch.eye(2)])
    c = torch.stack([torch.full((2, 2), .5), torch.eye(2)])
    maps = [S.align_temporal(m, 2) for m in (a, b, c)]
    assert torch.allclose(maps[0][0], torch.tensor([.5, 0., 0., .5]))
    per_sample = torch.tensor([2 * (.5 + 2 ** -.5 + 2 ** -.5), 6.0])
    assert abs(S.diversity_loss([m[:1] for m in maps]).item() - 3.8284) < 1e-4
    assert torch.allclose(S.diversity_loss(maps), per_sample.mean(), atol=1e-5)
    # vectorised == loop over the pairs theta
    loop = sum(F.cosine_similarity(maps[i], maps[j], dim=1) for i in range(3) for j in range(3) if i != j).mean()
    assert torch.allclose(S.diversity_loss(maps), loop, atol=1e-6)


def test_align_spatial_is_block_average():
    """(H,W) = (4,4) -> (2,2): every aligned entry is the mean over a 2x2 query block and a 2x2 key block."""
    attn = torch.rand(2, 16, 16)
    out = S.align_spatial(attn, (4, 4), (2, 2)).view(2, 2, 2, 2, 2)  # (B, hq, wq, hk, wk)
    grid = attn.view(2, 4, 4, 4, 4).numpy()
    for b in range(2):
        for hq in range(2):
            for wq in range(2):
                for hk in range(2):
                    for wk in range(2):
                        block = grid[b, 2 * hq:2 * hq + 2, 2 * wq:2 * wq + 2, 2 * hk:2 * hk + 2, 2 * wk:2 * wk + 2]
                        assert abs(out[b, hq, wq, hk, wk].item() - block.mean()) < 1e-6


def test_spatial_constraint_hand_computed():
    """Two stages: 2x2 grid with one-hot attention to position 0, 1x1 grid map [[1]]. Aligned to 1x1 both are
    positive scalars: cos = 1, both orders -> L_s = 2."""
    a = torch.zeros(1, 4, 4)
    a[..., 0] = 1
    maps = [S.align_spatial(a, (2, 2), (1, 1)), S.align_spatial(torch.ones(1, 1, 1), (1, 1), (1, 1))]
    assert torch.allclose(maps[0], torch.tensor([[.25]]))
    assert abs(S.diversity_loss(maps).item() - 2.0) < 1e-6


# -------------------------------------------------------------------------------------------------- model
def test_zero_initialised_model_equals_plain_backbone():
    torch.manual_seed(0)
    full = make(mf=False).eval()
    plain = make(tda=False, sda=False, mf=False).eval()
    missing, unexpected = plain.load_state_dict(full.state_dict(), strict=False)
    assert not missing and all(k.startswith(("tda", "sda")) for k in unexpected)
    x = torch.randn(2, 16, 3, 32, 32)
    assert torch.allclose(full(x)[0], plain(x)[0], atol=1e-5)


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    model = make()
    for m in model.modules():                              # leave the identity start so every path carries gradient
        if isinstance(m, (S.TDA, S.SDA)):
            torch.nn.init.constant_(m.gamma, 0.5)
    torch.nn.init.ones_(model.tda[-1].epsilon[1].weight)
    model.train()
    logits, div = model(torch.randn(2, 32, 3, 48, 48))    # stage 5 keeps 2 time steps and a 2x2 grid
    assert div["ls"] > 0 and div["lt"] > 0
    loss = F.cross_entropy(logits, torch.tensor([0, 1])) + 0.01 * div["ls"] + 0.001 * div["lt"]
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_switches_and_baseline():
    args = S.get_args(["--complexity", "--arch", "resnet18", "--no-tda", "--no-mf"])
    m = S.build_model(args, 4)
    assert m.tda is None and m.sda is not None and not m.mf and m.fc.in_features == 512
    args = S.get_args(["--complexity", "--arch", "resnet18", "--baseline"])
    m = S.build_model(args, 4)
    assert m.tda is None and m.sda is None and not m.mf
    args = S.get_args(["--complexity", "--arch", "resnet18"])
    assert S.build_model(args, 4).fc.in_features == 64 + 128 + 256 + 512
    with pytest.raises(SystemExit):
        S.get_args(["--pretrained", "imagenet"])


def test_whole_video_test_windows():
    assert S.test_starts(200, 64) == [0, 64, 128, 136]     # the last window ends at the last frame
    assert S.test_starts(40, 64) == [0]                    # shorter than a window: one looping window
    assert S.test_starts(128, 64) == [0, 64]


def test_complexity_main_configuration(capsys):
    S.main(["--complexity"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["frames_per_clip"] == 32 and out["input_size"] == 112 and out["num_classes"] == 101
    assert abs(out["baseline_gflops"] - 20.14) < 0.05 and abs(out["baseline_params_m"] - 46.41) < 0.05
    assert abs(out["gflops"] - 26.26) < 0.05 and abs(out["params_m"] - 47.46) < 0.05
    assert 14 <= out["gflops_overhead_pct"] <= 34                  # Sec. 4.5: "approximately 24%" (the band)


def test_tda_epsilon_conv_is_grouped():
    """eps's 3x1x1 conv in 32 groups (fewer where C/2 < 32); groups=1 is the full conv of the earlier reading."""
    assert S.TDA(256, 256).epsilon[0].groups == 32 and S.TDA(2048, 2048, last=True).epsilon[0].groups == 32
    assert S.TDA(8, 8).epsilon[0].groups == 4 and S.TDA(256, 256, groups=1).epsilon[0].groups == 1
    model = make()
    assert all(m.epsilon[0].groups == 32 for m in model.tda)     # resnet18: C/2 = 32 at stage 2


# -------------------------------------------------------------------------------------------- command line
def test_command_line_run(tiny_data, tmp_path, capsys):
    out = str(tmp_path / "run")
    common = ["--data", tiny_data, "--arch", "resnet18", "--input-size", "64", "--pretrained", "none",
              "--num-segments", "8", "--batch-size", "4", "--workers", "0"]
    final = S.main(common + ["--epochs", "2", "--output", out])
    for name in ("args.json", "log.jsonl", "last.pt", "best.pt"):
        assert os.path.isfile(os.path.join(out, name))
    log = [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))]
    assert [r["epoch"] for r in log] == [0, 1] and all(np.isfinite(r["train_loss"]) for r in log)
    assert final["epochs"] == 2 and 0 <= final["val_top1"] <= 100 and "whole-video" in final["protocol"]
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["val_top1"] == final["val_top1"]
    final = S.main(common + ["--epochs", "3", "--resume", os.path.join(out, "last.pt")])
    assert final["epochs"] == 3 and len(open(os.path.join(out, "log.jsonl")).readlines()) == 3
    metrics = S.main(common + ["--evaluate", "--checkpoint", os.path.join(out, "best.pt")])
    assert metrics["samples"] == 4 and 0 <= metrics["val_top1"] <= 100


# ------------------------------------------------------------- performance rewrites == the formulation they replace


@pytest.mark.parametrize("last", [False, True])
def test_tda_and_sda_equal_their_conv3d_and_einsum_formulation(last):
    """TDA/SDA with (k,1,1) convs as Conv2d, matmuls instead of einsums and the channels-last max pool: the same
    values and gradients as Eq. (1)-(5) written with nn.Conv3d, einsum and MaxPool3d (the code they replace)."""
    def tda_reference(m, z, branch):
        C, H, W = z.shape[1], z.shape[3], z.shape[4]
        zc = torch.cat([z, branch], 1)
        logits = torch.einsum("bcthw,bcshw->bts", conv3d(m.phi, zc), conv3d(m.omega, zc)) / math.sqrt(zc.shape[1] * H * W)
        attn = logits.softmax(-1)
        agg = torch.einsum("bts,bcshw->bcthw", attn, zc)
        out = m.epsilon[1](conv3d(m.epsilon[0], agg))
        if not last:
            out = F.max_pool3d(F.relu(out), 3, 2, 1)
        return z + m.gamma * agg[:, :C], out, attn

    def sda_reference(m, z):
        B, C, T, H, W = z.shape
        q, k = conv3d(m.alpha, z).reshape(B, C * T, H * W), conv3d(m.beta, z).reshape(B, C * T, H * W)
        attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(C * T), -1)
        return m.gamma * (z.reshape(B, C * T, H * W) @ attn.transpose(1, 2)).view(B, C, T, H, W), attn

    torch.manual_seed(0)
    tda, sda = S.TDA(8, 8, last=last), S.SDA(8)
    for p in (tda.gamma, sda.gamma, tda.epsilon[1].weight):
        torch.nn.init.normal_(p)
    z, branch = torch.randn(2, 8, 4, 5, 6), torch.randn(2, 4, 4, 5, 6)
    for new, old, module, inputs in ((tda, lambda a, b: tda_reference(tda, a, b), tda, (z, branch)),
                                     (sda, lambda a: sda_reference(sda, a), sda, (z,))):
        for a, b in zip(values_and_grads(new, module, *inputs), values_and_grads(old, module, *inputs)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------- flags a model would ignore
@pytest.mark.parametrize("argv,flag", [
    (["--baseline", "--no-tda"], "--no-tda"), (["--baseline", "--classify-stage", "3"], "--classify-stage"),
    (["--baseline", "--lambda-s", "0.1"], "--lambda-s"), (["--no-mf", "--classify-stage", "4"], "--classify-stage"),
    (["--no-sda", "--lambda-s", "0.01"], "--lambda-s"), (["--no-tda", "--lambda-t", "0.001"], "--lambda-t"),
    (["--no-mf", "--lambda-t", "0.01"], "--lambda-t"),
])
def test_a_flag_the_model_would_ignore_stops_before_any_work(argv, flag, tmp_path, capsys):
    """argparse's exit (code 2) from get_args: without the check, main would go on to the (missing) data."""
    with pytest.raises(SystemExit) as e:
        S.main(["--data", str(tmp_path / "missing"), *argv])
    assert e.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: " + flag in last, last


@pytest.mark.parametrize("stage", [2, 5])
def test_classify_stage_uses_one_stage_and_keeps_the_constraints(stage):
    """Fig. 4 / Sec. 4.4: the classifier sees GAP(Zhat^stage) alone; L_s and L_t are still computed in training."""
    torch.manual_seed(0)
    model = S.build_model(S.get_args(["--complexity", "--arch", "resnet18", "--classify-stage", str(stage)]), 4)
    assert model.fc.in_features == model.backbone.widths[stage - 2]
    model.train()
    logits, div = model(torch.randn(2, 20, 3, 40, 40))
    assert logits.shape == (2, 4) and div["ls"] > 0 and div["lt"] > 0
    no_mf = S.build_model(S.get_args(["--complexity", "--arch", "resnet18", "--no-mf"]), 4).train()
    _, div = no_mf(torch.randn(2, 20, 3, 40, 40))
    assert div["ls"] == 0 and div["lt"] == 0                       # Table 4's rows without MF: no constraints


def constraint_gradients(T, size):
    """Sum of |d L_s / d theta| and |d L_t / d theta| over the model's parameters, at its initialisation."""
    torch.manual_seed(0)
    model = S.build_model(S.get_args(["--data", "x", "--arch", "resnet18", "--num-segments", str(T),
                                      "--input-size", str(size)]), 4).train()
    _, div = model(torch.randn(2, T, 3, size, size))
    params = list(model.parameters())
    return [sum(g.abs().sum().item() for g in torch.autograd.grad(div[k], params, retain_graph=True,
                                                                   allow_unused=True) if g is not None)
            for k in ("ls", "lt")]


def test_the_demo_profile_trains_both_constraints():
    """The demo clip keeps 2 time steps and 2x2 positions at stage 5, so L_s and L_t have a gradient from step 0;
    the earlier profile (16 frames of 32 px, stage 5 1x1x1) made both the constant 12 with zero gradient."""
    args = S.get_args([])                                           # no --data: the demo profile
    assert args.demo
    assert all(g > 0 for g in constraint_gradients(args.num_segments, args.input_size))
    assert all(g < 1e-9 for g in constraint_gradients(16, 32))


# ---------------------------------------------------------------------------------------- --visualize Grad-CAM
@pytest.mark.parametrize("size,classify,stage", [(40, None, 5), (32, None, 4), (16, None, 3), (8, None, 2),
                                                 (64, 3, 3), (32, 5, 4)])
def test_grad_cam_layer_keeps_spatial_extent(size, classify, stage):
    """The issue: at 32 px stage 5 is 1 x 1 and Grad-CAM one colour per frame. visualization() takes the last stage
    the classifier sees whose map is at least 2 x 2 at the clip's size, and the map it computes has that extent."""
    from common import visualize
    torch.manual_seed(0)
    argv = ["--complexity", "--arch", "resnet18", "--num-segments", "8", "--input-size", str(size), "--num-classes", "4"]
    args = S.get_args(argv + (["--classify-stage", str(classify)] if classify else []))
    model = S.build_model(args, 4).eval()
    view = S.visualization(args, model)
    assert view["cam"] == f"backbone.{S.LAYERS[stage - 2]}" and set(view["maps"]) == set(S.VIS_MAPS)
    clip = torch.randint(0, 256, (1, 8, 3, size, size), dtype=torch.uint8)
    _, (cam,) = visualize.grad_cam(lambda x: S.logits(model, x), model, view["cam"], clip, layout=view["layout"])
    assert min(cam.shape[-2:]) >= 2, cam.shape
    assert S.stage_grids(args)[stage - 2] == tuple(cam.shape[-2:])


def test_a_uniform_grad_cam_says_why_on_the_sheet(tmp_path):
    """At 4 px every stage is 1 x 1: Grad-CAM stays at stage 5 and the sheet gets a row that says why."""
    from common import visualize
    args = S.get_args(["--complexity", "--arch", "resnet18", "--num-segments", "8", "--input-size", "4"])
    model = S.build_model(args, 4).eval()
    view = S.visualization(args, model)
    assert view["cam"] == "backbone.layer4" and all(g == (1, 1) for g in S.stage_grids(args))
    clip = torch.randint(0, 256, (8, 3, 4, 4), dtype=torch.uint8)
    with visualize.Hooks(model, view["maps"]) as hooks:
        _, (cam,) = visualize.grad_cam(lambda x: S.logits(model, x), model, view["cam"], clip[None], layout="BCT")
    _, panels = visualize.draw_sheet(clip, cam[0], hooks.maps, view["maps"], 0, 1, ["video"], ("Grad-CAM", "", ""))
    row = panels[3]                                                  # right under the Grad-CAM row
    assert row["title"] == "Grad-CAM is uniform"
    assert row["drawn"] and row["module"] == "backbone.layer4"
    assert "1 x 1 at the clip's 4 px" in view["maps"]["Grad-CAM is uniform"]["note"]
