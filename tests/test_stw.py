"""stw.py: module shapes, naive references (STFM Eq. 1-2, TWM Eq. 3-6, TSM shift), surgery, gradients,
complexity of the main configuration, fine-tuning, and one command-line run (train, resume, evaluate, ensemble)."""
import json
import os

import pytest
import torch
import torch.nn.functional as F

import stw
from common import checkpoint, complexity, modes
from reference import values_and_grads

B, T = 2, 4


def tiny_args(*extra):
    return stw.get_args(["--arch", "resnet18", "--pretrained", "none", "--complexity", "--num-segments", str(T),
                         *extra])


# ---------------------------------------------------------------------------------------------- modules
def naive_stfm(module, x):
    """Eq. (1)-(2) frame by frame: every frame through the grouped conv, then each output channel takes the
    frame of its slot (t-1 for l, t for m, t+1 for r), zeros outside the clip."""
    frames = x.view(B, T, *x.shape[1:])
    encoded = [module.encode(frames[:, t]) for t in range(T)]
    out = torch.zeros_like(frames)
    C = x.shape[1]
    for t in range(T):
        for c in range(C):
            slot = c % module.b
            src = t - 1 if slot < module.n_l else (t + 1 if slot >= module.n_l + module.n_m else t)
            if 0 <= src < T:
                out[:, t, c] = encoded[src][:, c]
    return out.flatten(0, 1)


@pytest.mark.parametrize("ratio", ["4:2:4", "8:4/3:8", "16:8/7:16"])
def test_stfm_matches_naive_per_frame(ratio):
    torch.manual_seed(0)
    m = stw.STFM(32, T, ratio)
    torch.nn.init.normal_(m.encode.weight)
    x = torch.randn(B * T, 32, 5, 6)
    y = m(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, naive_stfm(m, x), rtol=1e-5, atol=1e-5)
    fractions = stw.parse_ratio(ratio)
    assert (m.n_l, m.n_m, m.n_r) == tuple(int(f * m.b) for f in fractions)  # C/alpha, C/beta, C/gamma
    assert m.encode.weight.numel() == 32 * m.b                               # grouped 1x1: C*b weights


def test_stfm_starts_as_interleaved_shift():
    x = torch.randn(B * T, 16, 3, 3)
    y = stw.STFM(16, T)(x).view(B, T, 16, 3, 3)
    xv = x.view(B, T, 16, 3, 3)
    for t in range(T):
        for c in range(16):
            src = {0: t - 1, 3: t + 1}.get(c % 4, t)
            expected = xv[:, src, c] if 0 <= src < T else torch.zeros_like(xv[:, 0, c])
            torch.testing.assert_close(y[:, t, c], expected)


def test_stfm_average_row():
    x = torch.randn(B * T, 8, 2, 2)
    xv = x.view(B, T, 8, 2, 2)
    y = stw.STFM(8, T, "avg")(x).view(B, T, 8, 2, 2)
    torch.testing.assert_close(y[:, 1], (xv[:, 0] + xv[:, 1] + xv[:, 2]) / 3)
    torch.testing.assert_close(y[:, 0], (xv[:, 0] + xv[:, 1]) / 3)  # zero frame outside the clip


def test_parse_ratio_rejects_bad_ratios():
    assert stw.parse_ratio("4:2:4") == (0.25, 0.5, 0.25)
    with pytest.raises(ValueError):
        stw.parse_ratio("4:4:4")


def naive_twm(module, x):
    """Eq. (3)-(6) frame by frame: U_t = sum_k sum_c lambda[c,k] x_{t+k-1}[c] (zero outside the clip)."""
    w = module.conv.weight[0, :, :, 0, 0]                        # (C, 3)
    frames = x.view(B, T, *x.shape[1:])
    out = []
    for t in range(T):
        u = torch.zeros_like(frames[:, t, :1])                   # (B, 1, H, W)
        for k in range(3):
            src = t + k - 1
            if 0 <= src < T:
                u = u + (frames[:, src] * w[:, k].view(1, -1, 1, 1)).sum(1, keepdim=True)
        s = torch.sigmoid(u)
        v = frames[:, t] * s
        out.append(frames[:, t] - v)
    return torch.stack(out, 1).flatten(0, 1)


def test_twm_matches_naive_per_frame():
    torch.manual_seed(0)
    m = stw.TWM(12, T)
    torch.nn.init.normal_(m.conv.weight, std=0.3)
    x = torch.randn(B * T, 12, 4, 5)
    y = m(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, naive_twm(m, x), rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in m.parameters()) == 3 * 12     # 3x1x1 conv, one output channel, no bias


def test_twm_zero_init_halves_input():
    x = torch.randn(B * T, 8, 3, 3)
    torch.testing.assert_close(stw.TWM(8, T)(x), x / 2)


def test_temporal_shift_matches_naive():
    x = torch.randn(B * T, 16, 2, 2)
    y = stw.TemporalShift(T)(x).view(B, T, 16, 2, 2)
    xv = x.view(B, T, 16, 2, 2)
    for t in range(T):
        torch.testing.assert_close(y[:, t, :2], xv[:, t + 1, :2] if t + 1 < T else torch.zeros_like(xv[:, t, :2]))
        torch.testing.assert_close(y[:, t, 2:4], xv[:, t - 1, 2:4] if t > 0 else torch.zeros_like(xv[:, t, 2:4]))
        torch.testing.assert_close(y[:, t, 4:], xv[:, t, 4:])


def test_stw_block_combinations():
    torch.manual_seed(0)
    x = torch.randn(B * T, 16, 3, 3)
    blocks = {c: stw.STWBlock(16, T, combine=c) for c in ("parallel", "stfm-twm", "twm-stfm")}
    for c, blk in blocks.items():
        torch.nn.init.normal_(blk.twm.conv.weight, std=0.2)
        assert blk(x).shape == x.shape
    p, v1, v2 = blocks["parallel"], blocks["stfm-twm"], blocks["twm-stfm"]
    torch.testing.assert_close(p(x), p.stfm(x) + p.twm(x))
    torch.testing.assert_close(v1(x), v1.twm(v1.stfm(x)))
    torch.testing.assert_close(v2(x), v2.stfm(v2.twm(x)))
    assert stw.STWBlock(16, T, use_twm=False).twm is None and stw.STWBlock(16, T, use_stfm=False).stfm is None


# ---------------------------------------------------------------------------------------------- surgery
@pytest.mark.parametrize("stages,blocks", [((2, 3, 4, 5), 16), ((2,), 3), ((3,), 4), ((4,), 6), ((5,), 3),
                                           ((3, 4, 5), 13), ((4, 5), 9)])
def test_insert_stw_block_counts_table7(stages, blocks):
    import torchvision
    net = torchvision.models.resnet50()
    assert stw.insert_stw(net, 8, stages) == blocks
    found = [m for m in net.modules() if isinstance(m, stw.STWBlock)]
    assert len(found) == blocks
    assert all(isinstance(b.conv1[0], stw.STWBlock) for s in stages for b in getattr(net, stw.STAGES[s]))


def test_model_variants_and_tsn_parity():
    torch.manual_seed(0)
    x = torch.randn(B, T, 3, 32, 32)
    tsn = stw.build_model(tiny_args("--baseline"), 5).eval()
    assert not any(isinstance(m, (stw.STWBlock, stw.TemporalShift)) for m in tsn.modules())
    tsm = stw.build_model(tiny_args("--baseline", "tsm"), 5).eval()
    assert sum(isinstance(m, stw.TemporalShift) for m in tsm.modules()) == 8
    for variant in ([], ["--no-stfm"], ["--no-twm"], ["--combine", "stfm-twm"], ["--stfm-ratio", "avg"]):
        model = stw.build_model(tiny_args(*variant), 5).eval()
        assert model(x).shape == (B, 5)
    # STW with its blocks bypassed (Sequential -> conv1 only) is the TSN network: same keys, same output
    model = stw.build_model(tiny_args(), 5).eval()
    for stage in stw.STAGES.values():
        for block in getattr(model.backbone, stage):
            block.conv1 = block.conv1[1]
    model.load_state_dict(tsn.state_dict())
    torch.testing.assert_close(model(x), tsn(x))


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    model = stw.build_model(tiny_args("--dropout", "0"), 5).train()
    loss = F.cross_entropy(model(torch.randn(B, T, 3, 32, 32)), torch.tensor([1, 3]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    twm = [m for m in model.modules() if isinstance(m, stw.TWM)]
    assert all(m.conv.weight.grad.abs().sum() > 0 for m in twm)  # zero-init lambda still learns


def test_finetune_defaults_and_loading(tmp_path):
    args = stw.get_args(["--finetune", "x.pt", "--data", "d"])
    assert args.lr == 0.001 and args.lr_steps == [15, 30, 45]
    source = stw.build_model(tiny_args(), 7)
    path = tmp_path / "k400.pt"
    torch.save({"model": source.state_dict()}, path)
    target = stw.build_model(tiny_args(), 4)
    checkpoint.load_foreign(target, str(path), "--finetune")
    src, dst = source.state_dict(), target.state_dict()
    assert all(torch.equal(src[k], dst[k]) for k in dst if not k.startswith("fc."))
    assert dst["fc.weight"].shape == (4, 512)


def test_rejects_both_modules_off():
    with pytest.raises(SystemExit):
        stw.get_args(["--no-stfm", "--no-twm"])


# ---------------------------------------------------------------------------------------------- complexity
def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_complexity_main_configuration(capsys):
    """8 frames x 224^2, 174 classes: the paper's 33.5 GFLOPs within 3 %, params <= TSN + 2 % (Sec. IV-C)."""
    stw.main(["--complexity"])
    ours = last_json(capsys)
    tsn_params = complexity.params_m(stw.build_model(stw.get_args(["--complexity", "--baseline"]), 174))
    assert abs(ours["gflops"] - 33.5) / 33.5 < 0.03, ours
    assert ours["params_m"] <= 1.02 * tsn_params, (ours, tsn_params)
    assert ours["gflops"] < 1.02 * 32.70  # "less than 2 %" over TSN-R50 (32.70 G, notes Sec. 7)


# ---------------------------------------------------------------------------------------------- command line
def test_command_line_train_resume_evaluate_ensemble(tiny_data, tmp_path, capsys):
    out = str(tmp_path / "run")
    base = ["--data", tiny_data, "--arch", "resnet18", "--input-size", "64", "--pretrained", "none",
            "--batch-size", "4", "--workers", "0", "--num-segments", "3"]
    final = stw.main(base + ["--epochs", "2", "--output", out])
    assert final["epochs"] == 2 and 0 <= final["val_top1"] <= 100
    for name in ("args.json", "log.jsonl", "last.pt", "best.pt"):
        assert os.path.isfile(os.path.join(out, name)), name
    with open(os.path.join(out, "log.jsonl")) as f:
        assert len(f.read().splitlines()) == 2
    final = stw.main(base + ["--epochs", "3", "--resume", os.path.join(out, "last.pt")])
    assert final["epochs"] == 3
    with open(os.path.join(out, "log.jsonl")) as f:
        assert [json.loads(line)["epoch"] for line in f] == [0, 1, 2]
    best = os.path.join(out, "best.pt")
    single = stw.main(base + ["--evaluate", "--checkpoint", best])
    assert 0 <= single["val_top1"] <= 100
    # a second model with another T (the paper ensembles 16f and 8f), then the score average
    out2 = str(tmp_path / "run2")
    stw.main(base[:-1] + ["2", "--epochs", "1", "--max-steps", "1", "--output", out2])
    capsys.readouterr()
    ens = stw.main(base + ["--evaluate", "--ensemble", best, os.path.join(out2, "last.pt")])
    assert [m["frames"] for m in ens["members"]] == [3, 2]
    assert ens["protocol"].startswith("3+2 frames")
    assert last_json(capsys)["val_top1"] == ens["val_top1"]
    same = stw.main(base + ["--evaluate", "--ensemble", best, best])  # averaging a model with itself
    assert same["val_top1"] == pytest.approx(single["val_top1"]) and same["val_top5"] == pytest.approx(single["val_top5"])


# ------------------------------------------------------------- performance rewrites == the formulation they replace


def shift_reference(x, d):
    """from_frame as first written: a zeros tensor concatenated in time."""
    zeros = torch.zeros_like(x[:, : abs(d)])
    return torch.cat([x[:, d:], zeros], 1) if d > 0 else torch.cat([zeros, x[:, :d]], 1)


def test_stw_block_equals_its_conv3d_and_grouped_conv_formulation():
    """TWM's 3x1x1 Conv3D as a 1x1 Conv2d C -> 3 plus shifted sums, Z = X (1 - S) in one pass, STFM's grouped conv as a
    batched matmul and the block sum as one addcmul: the same values and gradients as Eq. (3)-(6) written with
    nn.Conv3d on the transposed X, V = X S, Z = X - V, and the grouped Conv2d + concatenation they replace."""
    def twm_reference(m, x):
        BT, C, H, W = x.shape
        u = F.conv3d(x.view(BT // T, T, C, H, W).transpose(1, 2), m.conv.weight, padding=(1, 0, 0))  # (B,1,T,H,W)
        s = torch.sigmoid(u).transpose(1, 2).reshape(BT, 1, H, W)
        return x - x * s

    def stfm_reference(m, x):
        BT, C, H, W = x.shape
        e = m.encode(x).view(BT // T, T, C // m.b, m.b, H, W)
        return torch.cat([shift_reference(e[:, :, :, :m.n_l], -1), e[:, :, :, m.n_l: m.n_l + m.n_m],
                          shift_reference(e[:, :, :, m.n_l + m.n_m:], 1)], dim=3).view(BT, C, H, W)

    torch.manual_seed(0)
    x = torch.randn(B * T, 16, 4, 5)
    for d in (-2, -1, 1, 3):
        assert torch.equal(stw.from_frame(x.view(B, T, 16, 4, 5), d), shift_reference(x.view(B, T, 16, 4, 5), d))
    for ratio in ("4:2:4", "8:4/3:8"):
        blk = stw.STWBlock(16, T, ratio)
        torch.nn.init.normal_(blk.twm.conv.weight, std=0.3)
        torch.nn.init.normal_(blk.stfm.encode.weight)
        pairs = [(blk.twm, lambda t: twm_reference(blk.twm, t)), (blk.stfm, lambda t: stfm_reference(blk.stfm, t)),
                 (blk, lambda t: stfm_reference(blk.stfm, t) + twm_reference(blk.twm, t))]
        for new, old in pairs:
            for a, b in zip(values_and_grads(new, new, x), values_and_grads(old, new, x)):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------- flags a model would ignore
@pytest.mark.parametrize("argv,flag", [
    (["--no-stfm", "--combine", "stfm-twm"], "--combine"), (["--no-twm", "--combine", "parallel"], "--combine"),
    (["--no-stfm", "--stfm-ratio", "8:4/3:8"], "--stfm-ratio"),
    (["--baseline", "tsm", "--stages", "4", "5"], "--stages"),
    (["--baseline", "--no-twm"], "--no-twm"), (["--baseline", "--stfm-ratio", "avg"], "--stfm-ratio"),
])
def test_a_flag_the_model_would_ignore_stops_before_any_work(argv, flag, tmp_path, capsys):
    """argparse's exit (code 2) from get_args: without the check, main would go on to the (missing) data."""
    with pytest.raises(SystemExit) as e:
        stw.main(["--data", str(tmp_path / "missing"), *argv])
    assert e.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: " + flag in last, last


def test_table5_rows_are_stfm_alone_and_the_ratio_sets_the_cost():
    """Table 5 = STFM without TWM; the ratio changes STFM's group size b (4, 8, 16) and with it params and MACs."""
    rows = [r for r in stw.PAPER_TABLES if r["table"] == "Table 5"]
    assert rows and all("--no-twm" in r["flags"].split() for r in rows)
    cost = {ratio: modes.complexity_row(stw, stw.get_args(["--complexity", "--no-twm", "--stfm-ratio", ratio]))
            for ratio in ("avg", "4:2:4", "8:4/3:8", "16:8/7:16")}
    tsn = modes.complexity_row(stw, stw.get_args(["--complexity", "--baseline"]))
    assert cost["avg"] == tsn                                     # averaging: no parameters, no MACs
    extra = [cost[r]["gflops"] - tsn["gflops"] for r in ("4:2:4", "8:4/3:8", "16:8/7:16")]
    assert extra[1] == pytest.approx(2 * extra[0], rel=1e-6) and extra[2] == pytest.approx(4 * extra[0], rel=1e-6)
