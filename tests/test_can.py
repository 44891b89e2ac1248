"""CAN (can.py): module shapes, initial gains, vectorised == naive loop, backward, complexity, command line."""
import copy
import json
import os

import pytest
import torch
import torch.nn as nn
import torchvision

import can
from reference import conv3d, values_and_grads

T = 4


def small_args(*extra):
    return can.get_args(["--data", "unused", "--arch", "resnet18", "--pretrained", "none", "--input-size", "64",
                         "--num-segments", str(T), "--dropout", "0", *extra])


def randomise_zero_inits(model):
    """Give the zero-initialised last convs small random weights so every path carries signal."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, (can.MTCM, can.PMM, can.GMM)):
            nn.init.normal_(m.expand.weight, 0, 0.1)
            nn.init.normal_(m.expand.bias, 0, 0.1)
        if isinstance(m, can.LMM):
            nn.init.normal_(m.conv.weight, 0, 0.1)


# ------------------------------------------------------------------------------------------------ module shapes
@pytest.mark.parametrize("make,channels", [
    (lambda c: can.MTCM(c, T, 2, 3), 16), (lambda c: can.MTCM(c, T, 2, 5), 16), (lambda c: can.PMM(c, T, 2), 8),
    (lambda c: can.LMM(c, T, 3), 8), (lambda c: can.LMM(c, T, 7), 8), (lambda c: can.GMM(c, T, 2), 8),
    (lambda c: can.GSCM(c, T), 16), (lambda c: can.GSCM(c, T), 18), (lambda c: can.GSCM(c, T, paths=["lmm"]), 16),
    (lambda c: can.CANUnit(can.GSCM(c, T), can.MTCM(c, T), "parallel"), 16),
])
def test_module_shapes(make, channels):
    module = make(channels)
    randomise_zero_inits(module)
    x = torch.randn(2 * T, channels, 7, 5)
    y = module(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_modules_start_as_uniform_gain():
    """sigma(0) = 1/2 at init: each recalibrated path is exactly 1.5 x, the identity group and dropped paths are x."""
    x = torch.randn(2 * T, 16, 6, 6)
    assert torch.allclose(can.MTCM(16, T)(x), 1.5 * x)
    for path in (can.PMM(4, T), can.LMM(4, T), can.GMM(4, T)):
        assert torch.allclose(path(x[:, :4]), 1.5 * x[:, :4])
    y = can.GSCM(16, T, paths=["pmm", "gmm"])(x)
    assert torch.equal(y[:, :4], x[:, :4]) and torch.equal(y[:, 8:12], x[:, 8:12])   # identity, dropped LMM
    assert torch.allclose(y[:, 4:8], 1.5 * x[:, 4:8]) and torch.allclose(y[:, 12:], 1.5 * x[:, 12:])


def test_gates_start_he_initialised_from_scratch_and_uniform_from_pretrained(tmp_path):
    """--pretrained none: every conv of the modules has torchvision's He init (fan_out) and the gates vary from step 0;
    pretrained weights: the gates' last convs stay zero (uniform gain 1.5 x)."""
    def lasts(model):
        return [m.expand if hasattr(m, "expand") else m.conv for m in model.modules()
                if isinstance(m, (can.MTCM, can.PMM, can.LMM, can.GMM))]
    torch.manual_seed(0)
    scratch = can.build_model(small_args(), 4)
    convs = [c for m in scratch.modules() if isinstance(m, (can.MTCM, can.PMM, can.GMM))
             for c in m.modules() if isinstance(c, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and c.weight.numel() > 2000]
    assert len(convs) > 20
    for c in convs:   # He, fan_out: std = sqrt(2 / (out_channels / groups * kernel elements))
        fan_out = c.weight.shape[0] * c.weight[0, 0].numel()
        assert abs(c.weight.std().item() / (2 / fan_out) ** 0.5 - 1) < 0.15, c
    assert all(c.weight.abs().sum() > 0 and (c.bias is None or not c.bias.any()) for c in lasts(scratch))
    weights = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    pretrained = can.build_model(can.get_args(["--data", "unused", "--arch", "resnet18", "--pretrained", str(weights),
                                               "--num-segments", str(T)]), 4)
    assert all(not c.weight.any() for c in lasts(pretrained))


# ------------------------------------------------------------------------------------- vectorised == naive loops
def test_mtcm_equals_naive_loop():
    torch.manual_seed(0)
    m = can.MTCM(8, T, reduction=2, branches=3)
    randomise_zero_inits(m)
    with torch.no_grad():
        m.alpha.copy_(torch.tensor([0.3, -0.2, 0.5]))
    B, x = 2, torch.randn(2 * T, 8, 3, 3)
    f = m.reduce(x).view(B, T, 4, 3, 3)
    w = m.alpha.softmax(0)
    mixed = torch.zeros_like(f)
    for b in range(B):
        for t in range(T):
            for i, conv in enumerate(m.branches, 1):          # Eq. (3), one tap at a time
                for k, dt in enumerate((-i, 0, i)):
                    if 0 <= t + dt < T:
                        mixed[b, t] += w[i - 1] * conv.weight[:, 0, k, 0, 0].view(4, 1, 1) * f[b, t + dt]
    expected = torch.sigmoid(m.expand(mixed.view(B * T, 4, 3, 3))) * x + x
    assert torch.allclose(m(x), expected, atol=1e-5)


def test_pmm_and_gmm_equal_naive_loops():
    torch.manual_seed(0)
    B, x = 2, torch.randn(2 * T, 8, 3, 3)
    pmm, gmm = can.PMM(8, T), can.GMM(8, T)
    randomise_zero_inits(pmm)
    randomise_zero_inits(gmm)
    for module, pool in ((pmm, False), (gmm, True)):
        src = x.mean((2, 3), keepdim=True) if pool else x
        r = module.reduce(src.flatten(1).unsqueeze(-1) if pool else src).view(B, T, 4, *src.shape[2:])  # Conv1d: (B*T,C,1)
        diff = torch.stack([r[:, t + 1] - r[:, t] if t + 1 < T else torch.zeros_like(r[:, t]) for t in range(T)], 1)
        s = torch.cat([r, diff], 2)                           # (B, T, 8, h, w)
        k = module.temporal.weight.view(4, 8, 3)
        out = torch.zeros(B, T, 4, *src.shape[2:])
        for t in range(T):
            for j, dt in enumerate((-1, 0, 1)):
                if 0 <= t + dt < T:
                    out[:, t] += torch.einsum("oc,bc...->bo...", k[:, :, j], s[:, t + dt])
        out = out.view(B * T, 4, *src.shape[2:])
        att = torch.sigmoid(module.expand(out.flatten(1).unsqueeze(-1)).view(B * T, 8, 1, 1) if pool
                            else module.expand(out))
        assert torch.allclose(module(x), att * x + x, atol=1e-5)


def test_temporal_shift_equals_naive():
    x = torch.randn(2 * T, 16, 2, 2)
    y = can.TemporalShift(T)(x).view(2, T, 16, 2, 2)
    v = x.view(2, T, 16, 2, 2)
    for t in range(T):
        assert torch.equal(y[:, t, :2], v[:, t + 1, :2] if t + 1 < T else torch.zeros_like(v[:, t, :2]))
        assert torch.equal(y[:, t, 2:4], v[:, t - 1, 2:4] if t > 0 else torch.zeros_like(v[:, t, 2:4]))
        assert torch.equal(y[:, t, 4:], v[:, t, 4:])


# ------------------------------------------------------------------------------------- surgery and whole model
def test_mtcm_at_position_c_keeps_the_backbone_in_training_mode():
    """At init MTCM scales by 1.5 right before a conv + BN; training-mode BN removes the gain: CAN == TSN."""
    torch.manual_seed(0)
    tsn = can.build_model(small_args("--baseline"), 4)
    model = copy.deepcopy(tsn)
    can.insert_can(model.backbone, small_args("--no-gscm"))
    assert sum(isinstance(m, can.MTCM) for m in model.modules()) == 8
    x = torch.randn(2, T, 3, 64, 64)
    assert torch.allclose(model(x), tsn(x), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("extra", [[], ["--order", "parallel"], ["--position", "e"], ["--baseline", "tsm"],
                                   ["--arch", "mobilenet_v2"], ["--arch", "shufflenet_v2"]])
def test_backward_reaches_every_parameter(extra):
    torch.manual_seed(0)
    model = can.build_model(small_args(*extra), 4)
    randomise_zero_inits(model)
    loss = model(torch.randn(1, T, 3, 32, 32)).logsumexp(-1).sum()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("extra", [(), ("--no-gscm",), ("--no-mtcm", "--gscm-paths", "pmm"),
                                   ("--no-mtcm", "--gscm-paths", "lmm"), ("--no-mtcm", "--gscm-paths", "gmm")])
def test_every_path_links_the_frames(extra):
    """The wiring behind the demo results (README): with live gates, a change of frame 0 alone reaches the features
    of later frames through each temporal path (MTCM; PMM, LMM, GMM of GSCM), and through none in TSN."""
    def reach(model):
        model.eval()
        x = torch.randn(1, T, 3, 64, 64)
        x2 = x.clone()
        x2[:, 0] += 1.0                                                 # frame 0 only
        with torch.no_grad():
            diff = (model.backbone(x2.flatten(0, 1)) - model.backbone(x.flatten(0, 1))).abs().amax(1)
        return diff[1:]                                                 # frames 1..T-1
    model = can.build_model(small_args(*extra), 4)
    randomise_zero_inits(model)
    assert (reach(model) > 1e-4).any() and reach(model)[0] > 1e-3, extra
    assert (reach(can.build_model(small_args("--baseline"), 4)) == 0).all()


def test_surgery_counts():
    def count(*extra):
        model = can.build_model(small_args(*extra), 4)
        return {k: sum(isinstance(m, c) for m in model.modules())
                for k, c in (("gscm", can.GSCM), ("mtcm", can.MTCM), ("tsm", can.TemporalShift))}
    assert count() == {"gscm": 8, "mtcm": 8, "tsm": 0}
    assert count("--no-mtcm") == {"gscm": 8, "mtcm": 0, "tsm": 0}
    assert count("--baseline", "tsm") == {"gscm": 0, "mtcm": 0, "tsm": 8}
    assert count("--arch", "mobilenet_v2") == {"gscm": 16, "mtcm": 16, "tsm": 0}     # all but the first (t = 1)
    assert count("--arch", "shufflenet_v2") == {"gscm": 3, "mtcm": 3, "tsm": 0}       # the downsampling units
    assert count("--arch", "mobilenet_v2", "--baseline", "tsm") == {"gscm": 0, "mtcm": 0, "tsm": 10}


# -------------------------------------------------------------------------------------------------- complexity
def complexity(capsys, *argv):
    can.main(["--complexity", "--num-classes", "48", *argv])
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("argv,params,gflops,tol", [
    ([], 25.3, 35.1, 0.03), (["--no-mtcm"], 24.3, 33.3, 0.03), (["--no-gscm"], 24.9, 34.8, 0.03),  # Table 10
])
def test_complexity_matches_the_paper(capsys, argv, params, gflops, tol):
    out = complexity(capsys, *argv)
    assert abs(out["params_m"] / params - 1) <= tol, out
    assert abs(out["gflops"] / gflops - 1) <= tol, out


@pytest.mark.parametrize("arch,macs,thop,params", [
    ("mobilenet_v2", 2.617, 2.831, 2.457), ("shufflenet_v2", 5.541, 5.660, 5.839), ("resnet50", 34.642, 34.999, 25.280),
])
def test_table_12_placements_cost_what_was_measured(arch, macs, thop, params):
    """gets_can's placements on the light backbones (Table 12, paper 2.5M / 2.8G and 5.8M / 5.6G counted as thop):
    the figures its docstring and PAPER_TABLES give; --complexity prints the MACs."""
    from common import complexity as counts, modes
    args = can.get_args(["--complexity", "--arch", arch, "--num-classes", "48"])
    row = modes.complexity_row(can, args)
    assert row["params_m"] == pytest.approx(params, abs=5e-4) and row["gflops"] == pytest.approx(macs, abs=5e-4)
    with counts.counting("thop"):
        assert modes.complexity_row(can, args)["gflops"] == pytest.approx(thop, abs=5e-4)


def test_increments_over_the_base_rows_are_within_10pct_or_give_the_reason():
    """Every row of Tables 2, 4 and 7-12 with paper figures has a base row (the modules' increment is compared), and
    an increment off by more than 10 % (0.05 where the paper's is <= 0.5) carries its measured reason."""
    from common import paper_tables
    rows = paper_tables.check_rows(can)
    bases = {id(paper_tables.base_row(rows, row)) for row in rows if "base" in row}
    for row in rows:
        if row["table"] in ("Table 2", "Table 4", "Table 7", "Table 8", "Table 9", "Table 10", "Table 12") and \
                "params_m" in row and id(row) not in bases and not row["row"].startswith("TSM 8f"):  # TSM = TSN + 0
            assert "base" in row, (row["table"], row["row"])
        inc = paper_tables.increment(can, rows, row)
        if not all(within for _, _, within in inc.values()):
            assert row.get("increment_note", "").strip(), (row["table"], row["row"], inc)
    by_name = {(row["table"], row["row"]): row for row in rows}
    for table, name in (("Table 12", "MobileNet V2, CAN (Ours)"), ("Table 12", "ResNet-50, CAN (Ours)"),
                        ("Table 10", "MTCM"), ("Table 10", "GSCM + MTCM")):   # these fit the paper's increments
        assert all(w for _, _, w in paper_tables.increment(can, rows, by_name[(table, name)]).values()), name
    assert all(row.get("count") == "thop" for row in rows if row["table"] == "Table 12")


# ------------------------------------------------------------------------------------------------ command line
def test_command_line_trains_resumes_and_evaluates(tiny_data, tmp_path):
    out = str(tmp_path / "run")
    common = ["--data", tiny_data, "--arch", "resnet18", "--input-size", "64", "--pretrained", "none",
              "--batch-size", "4", "--workers", "0", "--num-segments", str(T), "--lr", "0.01"]
    final = can.main(common + ["--epochs", "2", "--output", out])
    for name in ("args.json", "log.jsonl", "last.pt", "best.pt"):
        assert os.path.exists(os.path.join(out, name)), name
    assert final["epochs"] == 2 and 0 <= final["val_top1"] <= 100 and 0 <= final["val_top5"] <= 100
    with open(os.path.join(out, "log.jsonl")) as f:
        assert len(f.read().splitlines()) == 2
    final = can.main(common + ["--epochs", "3", "--resume", os.path.join(out, "last.pt")])
    assert final["epochs"] == 3
    with open(os.path.join(out, "log.jsonl")) as f:
        assert [json.loads(line)["epoch"] for line in f] == [0, 1, 2]
    metrics = can.main(common + ["--evaluate", "--checkpoint", os.path.join(out, "best.pt")])
    assert 0 <= metrics["val_top1"] <= 100


# ------------------------------------------------------------- performance rewrites == the formulation they replace
@pytest.mark.parametrize("cin,cout,k,dilation,groups,bias", [(8, 8, 3, 1, 8, False), (8, 4, 3, 1, 1, False),
                                                             (6, 6, 3, 2, 3, True), (8, 8, 1, 1, 4, True)])
def test_temporal_conv3d_equals_conv3d(cin, cout, k, dilation, groups, bias):
    torch.manual_seed(0)
    conv = can.TemporalConv3d(cin, cout, (k, 1, 1), padding=(dilation * (k // 2), 0, 0), dilation=(dilation, 1, 1),
                              groups=groups, bias=bias)
    x = torch.randn(2, cin, 5, 3, 4)
    for a, b in zip(values_and_grads(conv, conv, x), values_and_grads(lambda t: conv3d(conv, t), conv, x)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_mtcm_and_pmm_equal_their_conv3d_formulation():
    """MTCM's N branches as one (2N+1)-tap kernel and PMM's 3x1x1 conv as a Conv2d: the same values and gradients as
    the N Conv3d branches summed (Eq. 3) and the Conv3d on the transposed concatenation they replace."""
    def mtcm_reference(m, g):
        BT, C, H, W = g.shape
        m_f = m.reduce(g).view(BT // m.T, m.T, -1, H, W).transpose(1, 2)
        m_m = sum(w * conv3d(conv, m_f) for w, conv in zip(m.alpha.softmax(0), m.branches))
        return torch.sigmoid(m.expand(m_m.transpose(1, 2).reshape(BT, -1, H, W))) * g + g

    def pmm_reference(m, f):
        BT, _, H, W = f.shape
        g_r = m.reduce(f).view(BT // m.T, m.T, -1, H, W)
        g_s = conv3d(m.temporal, torch.cat([g_r, can.temporal_difference(g_r)], dim=2).transpose(1, 2))
        return torch.sigmoid(m.expand(g_s.transpose(1, 2).reshape(BT, -1, H, W))) * f + f

    torch.manual_seed(0)
    x = torch.randn(2 * T, 16, 5, 6)
    for branches in (1, 3, 5):
        m = can.MTCM(16, T, 2, branches)
        randomise_zero_inits(m)
        nn.init.normal_(m.alpha)
        for a, b in zip(values_and_grads(m, m, x), values_and_grads(lambda g: mtcm_reference(m, g), m, x)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    m = can.PMM(16, T)
    randomise_zero_inits(m)
    for a, b in zip(values_and_grads(m, m, x), values_and_grads(lambda f: pmm_reference(m, f), m, x)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------- flags a model would ignore
@pytest.mark.parametrize("argv,flag", [
    (["--no-mtcm", "--order", "parallel"], "--order"), (["--no-gscm", "--order", "gscm-mtcm"], "--order"),
    (["--position", "e", "--order", "mtcm-gscm"], "--order"), (["--position", "g", "--order", "parallel"], "--order"),
    (["--gscm-paths", "pmm", "gmm", "--lmm-kernel", "5"], "--lmm-kernel"),
    (["--no-gscm", "--lmm-kernel", "7"], "--lmm-kernel"),
    (["--no-gscm", "--gscm-paths", "lmm"], "--gscm-paths"), (["--no-mtcm", "--mtcm-branches", "2"], "--mtcm-branches"),
    (["--no-mtcm", "--gscm-paths", "lmm", "--reduction", "4"], "--reduction"),
    (["--baseline", "tsm", "--position", "a"], "--position"),
    (["--baseline", "--mtcm-branches", "3"], "--mtcm-branches"),
])
def test_a_flag_the_model_would_ignore_stops_before_any_work(argv, flag, tmp_path, capsys):
    """argparse's exit (code 2) from get_args: without the check, main would go on to the (missing) data."""
    with pytest.raises(SystemExit) as e:
        can.main(["--data", str(tmp_path / "missing"), *argv])
    assert e.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: " + flag in last, last


def test_the_combinations_the_tables_use_still_parse():
    for argv in (["--no-mtcm", "--gscm-paths", "lmm", "--lmm-kernel", "7"], ["--no-gscm", "--mtcm-branches", "5"],
                 ["--position", "e"], ["--order", "parallel", "--position", "a"], ["--baseline", "tsm"],
                 ["--arch", "mobilenet_v2", "--baseline", "tsm"]):
        can.get_args(["--complexity", *argv])
