"""ean.py: module shapes, vectorised == naive references, parity at init, backward, surgery, CLI run, complexity."""
import json
import os

import pytest
import torch
import torch.nn.functional as F

import ean
from common import modes, paper_tables
from reference import conv3d, values_and_grads

SMALL = ["--arch", "resnet18", "--pretrained", "none", "--input-size", "64", "--num-classes", "4", "--data", "unused"]


def small_args(*extra):
    return ean.get_args(SMALL + list(extra))


def randomise_zero_inits(model):
    """Give the zero-initialised last layers (EAB expand, SOI-Tr proj, LMC decoder) random weights."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, ean.EAB):
            torch.nn.init.normal_(m.expand.weight, 0, 0.1)
        elif isinstance(m, ean.SOITr):
            torch.nn.init.normal_(m.proj.weight, 0, 0.1)
        elif isinstance(m, ean.LMC):
            torch.nn.init.normal_(m.decode.weight, 0, 0.01)


# ------------------------------------------------------------------------------------------------ shapes
def test_module_shapes():
    B, T = 2, 4
    x = torch.randn(B * T, 32, 8, 8)
    assert ean.ME(32, T)(x).shape == x.shape
    assert ean.TemporalConv(32, T)(x).shape == x.shape
    assert ean.ESPNet(16)(torch.randn(B, 16, T, 8, 8)).shape == (B, 16, 16)
    for fusion in ["dynamic", "static", "shuffle", "identity"]:
        assert ean.EAB(64, T, fusion=fusion)(torch.randn(B * T, 64, 8, 8)).shape == (B * T, 64, 8, 8)
    assert ean.SaliencyNet(64, 4)(torch.randn(B, 64, T, 5, 5)).shape == (B, 4, T, 5, 5)
    for regions in ["saliency", "fixed", "all"]:
        soi = ean.SOITr(256, (T, 5, 5), 4, regions)
        assert soi(torch.randn(B * T, 256, 5, 5)).shape == (B * T, 256, 5, 5)
    m = ean.LMC()(torch.randn(B, T, 5, 3, 64, 96))
    assert m.shape == (B * T, 64, 16, 24)  # (B*T, 64, H/4, W/4): the stem output size


def test_stage_shapes_match_backbone():
    for arch, size in [("resnet18", 64), ("resnet50", 96)]:
        args = ean.get_args(["--arch", arch, "--pretrained", "none", "--input-size", str(size), "--num-classes", "4",
                             "--data", "x", "--no-lmc", "--num-segments", "2"])
        model = ean.build_model(args, 4).eval()
        seen = []
        for stage, mods in model.inserts.items():
            mods.register_forward_hook(lambda mod, inp, out: seen.append((out.shape[1], out.shape[-1])))
        with torch.no_grad():
            model(torch.randn(1, 2, 3, size, size))
        expected = [(c, s[-1]) for c, s in ean.stage_shapes(arch, size, 2)]
        assert seen == expected


# ------------------------------------------------------------------------------------------- references
def test_temporal_conv_is_a_shift_at_init():
    T, C = 5, 16
    x = torch.randn(2 * T, C, 3, 3)
    y = ean.TemporalConv(C, T)(x).view(2, T, C, 3, 3)
    x = x.view(2, T, C, 3, 3)
    fold = C // 8
    ref = x.clone()
    ref[:, :, :fold] = torch.cat([x[:, 1:, :fold], torch.zeros_like(x[:, :1, :fold])], 1)  # from t+1
    ref[:, :, fold:2 * fold] = torch.cat([torch.zeros_like(x[:, :1, fold:2 * fold]), x[:, :-1, fold:2 * fold]], 1)
    torch.testing.assert_close(y, ref)


def test_me_matches_naive_loop():
    torch.manual_seed(0)
    T, C = 4, 32
    me = ean.ME(C, T).eval()
    x = torch.randn(2 * T, C, 6, 6)
    out = me(x).view(2, T, C, 6, 6)
    xs = x.view(2, T, C, 6, 6)
    for b in range(2):
        for t in range(T):
            r_t = me.reduce(xs[b, t:t + 1])
            d = me.transform(me.reduce(xs[b, t + 1:t + 2])) - r_t if t < T - 1 else torch.zeros_like(r_t)
            a = torch.sigmoid(me.expand(d.mean((2, 3), keepdim=True))) - 0.5
            torch.testing.assert_close(out[b, t], (xs[b, t:t + 1] * (1 + a))[0], atol=1e-5, rtol=1e-5)


def test_dynamic_fusion_matches_per_video_loop():
    torch.manual_seed(0)
    eab = ean.EAB(64, 4).eval()
    z, s = torch.randn(3, 16, 4, 6, 6), torch.randn(3, 16, 4, 6, 6)
    fused = eab.fuse(s, z)
    M = eab.esp(z)
    for b in range(3):
        ref = torch.einsum("oi,ithw->othw", M[b], s[b])
        torch.testing.assert_close(fused[b], ref, atol=1e-5, rtol=1e-5)


def test_shuffle_is_a_permutation_interleaving_groups():
    eab = ean.EAB(64, 2, fusion="shuffle")  # Cr = 16, groups 5/5/6
    perm = eab.perm.tolist()
    assert sorted(perm) == list(range(16))
    assert perm[:3] == [0, 5, 10]


def test_soi_pooling_matches_naive_sum():
    torch.manual_seed(0)
    T, H = 2, 3
    soi = ean.SOITr(256, (T, H, H), 4, "saliency").eval()
    captured = {}
    soi.blocks.register_forward_hook(lambda m, i, o: captured.setdefault("tokens", i[0]))
    x = torch.randn(2 * T, 256, H, H)
    soi(x)
    f = soi.squeeze(x.view(2, T, 256, H, H).transpose(1, 2)) + soi.pos
    o = soi.saliency(soi.squeeze(x.view(2, T, 256, H, H).transpose(1, 2)))
    torch.testing.assert_close(o.sum((3, 4)), torch.ones(2, 4, T))  # spatial softmax
    for b in range(2):
        for n in range(4):
            for t in range(T):
                ref = (f[b, :, t] * o[b, n, t]).sum((1, 2))   # Eq. (5)
                torch.testing.assert_close(captured["tokens"][b, n * T + t], ref, atol=1e-4, rtol=1e-4)


def test_fixed_regions_are_normalised_quadrants():
    q = ean.SOITr.quadrants((2, 7, 7))
    torch.testing.assert_close(q.sum((2, 3)), torch.ones(4, 2))
    assert (q[0, 0, :4, :4] > 0).all() and q[0, 0, 4:].sum() == 0


# ------------------------------------------------------------------------------------------------ parity
def test_eab_and_soi_start_as_identity():
    torch.manual_seed(0)
    model = ean.build_model(small_args("--no-lmc", "--eab-stages", "1", "2", "3", "4", "5",
                                       "--soi-stages", "3", "4", "5"), 4).eval()
    x = torch.randn(2, 8, 3, 64, 64)
    with torch.no_grad():
        y = model(x)
        for key in model.inserts:                      # the plain backbone (ME + temporal conv): no inserts
            model.inserts[key] = torch.nn.Sequential()
        y_plain = model(x)
    torch.testing.assert_close(y, y_plain)


@pytest.mark.parametrize("cls,args", [(ean.EAB, (64, 4)), (ean.SOITr, (64, (4, 5, 5)))])
def test_module_identity_at_init_in_train_mode(cls, args):
    torch.manual_seed(0)
    x = torch.randn(8, 64, 5, 5)
    torch.testing.assert_close(cls(*args).train()(x), x)


def test_lmc_starts_as_ean_rgb_on_the_rgb_frames():
    torch.manual_seed(0)
    with_lmc = ean.build_model(small_args(), 4).eval()
    rgb = ean.build_model(small_args("--no-lmc"), 4).eval()
    missing, unexpected = rgb.load_state_dict(with_lmc.state_dict(), strict=False)
    assert not missing and all(k.startswith("lmc.") for k in unexpected)
    x = torch.randn(2, 40, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(with_lmc(x), rgb(x.view(2, 8, 5, 3, 64, 64)[:, :, 2]))


# ------------------------------------------------------------------------------------------------ backward
def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    model = ean.build_model(small_args(), 4).train()
    randomise_zero_inits(model)
    x = torch.randn(2, 40, 3, 64, 64)
    F.cross_entropy(model(x), torch.tensor([0, 3])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_surgery_inserts_me_and_temporal_conv_everywhere():
    model = ean.build_model(small_args("--no-lmc"), 4)
    blocks = [b for name in ean.STAGES for b in getattr(model.backbone, name)]
    assert len(blocks) == 8
    for b in blocks:
        assert isinstance(b.conv2[0], ean.ME) and isinstance(b.conv2[1], ean.TemporalConv)
    kinds = {k: [type(m).__name__ for m in v] for k, v in model.inserts.items()}
    assert kinds == {"1": ["EAB"], "2": ["EAB"], "3": ["EAB"], "4": ["EAB"], "5": ["SOITr"]}
    assert ean.frames_per_clip(small_args()) == 40 and ean.frames_per_clip(small_args("--no-lmc")) == 8
    assert ean.frames_per_clip(small_args("--baseline")) == 8


# ----------------------------------------------------------------------------------------- command line
def test_command_line_train_resume_evaluate(tiny_data, tmp_path, capsys):
    out = str(tmp_path / "run")
    common = ["--data", tiny_data, "--arch", "resnet18", "--input-size", "64", "--pretrained", "none",
              "--batch-size", "4", "--workers", "0", "--num-segments", "2"]
    final = ean.main(common + ["--epochs", "2", "--output", out])
    for f in ["args.json", "log.jsonl", "last.pt", "best.pt"]:
        assert os.path.isfile(os.path.join(out, f)), f
    log = [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))]
    assert len(log) == 2 and all(r["train_loss"] == r["train_loss"] for r in log)
    assert final["epochs"] == 2 and 0 <= final["val_top1"] <= 100 and final["bad_samples"] == 0
    assert final["protocol"] == "2x5 frames x 1 clips x 1 crops (short side 73, 1 crop of 64)"
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["val_top1"] == final["val_top1"]
    final = ean.main(common + ["--epochs", "3", "--resume", os.path.join(out, "last.pt")])
    assert final["epochs"] == 3
    assert len(open(os.path.join(out, "log.jsonl")).read().splitlines()) == 3
    metrics = ean.main(common + ["--evaluate", "--checkpoint", os.path.join(out, "best.pt"), "--test-clips", "2"])
    assert 0 <= metrics["val_top1"] <= 100


# ----------------------------------------------------------------------------------------- complexity
def test_complexity_matches_paper(capsys):
    """EAN_RGB and EAN_RGB+LMC 8F within 3 % of the paper. Speed (fp32, 2-core CPU, 8 x 224^2): 1.12 x TSN's FLOPs,
    1.35-1.45 x its latency: the EABs' narrow grouped convs run at 1/3 of the backbone's MACs/s (6 % of the FLOPs, 15 %
    of the time); ME and the temporal conv are memory-bound (0.6 % of the FLOPs, 8 % of the time)."""
    ean.main(["--complexity", "--no-lmc"])                       # EAN_RGB 8F: 36.0M / 36.1G (Table 5)
    rgb = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(rgb["params_m"] / 36.0 - 1) < 0.03 and abs(rgb["gflops"] / 36.1 - 1) < 0.03, rgb
    assert rgb["frames_per_clip"] == 8
    ean.main(["--complexity"])                                   # EAN_RGB+LMC 8F: 37G (Table 1)
    lmc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(lmc["gflops"] / 37 - 1) < 0.03 and lmc["frames_per_clip"] == 40, lmc


# ------------------------------------------------------------- performance rewrites == the formulation they replace


def test_frame_and_temporal_conv3d_and_max_pool_equal_their_3d_ops():
    """The rewrites equal the 3D ops, values and gradients. Why they exist (CPU, 8 x 64 x 56 x 56): Conv3d's
    slow_conv3d / oneDNN 3D paths cost 2-7x a Conv2d on (B, C, T, H*W) (depthwise 3x1x1: 5.3 vs 1.3 ms); the separable
    channels-last FramePool3d takes 8 ms where max_pool3d takes 68 and an NCHW max_pool2d 31. A separable max is
    exact; the average (zero-padded, sum / 27) equals avg_pool3d up to rounding (test_average_pool_branch_...)."""
    torch.manual_seed(0)
    B, T = 2, 5
    to_3d = lambda f: f.unflatten(0, (B, T)).transpose(1, 2)
    x = torch.randn(B * T, 6, 7, 8)
    for conv in (ean.FrameConv3d(6, 4, 1, groups=2, bias=True),
                 ean.FrameConv3d(6, 6, (1, 3, 3), padding=(0, 2, 2), dilation=(1, 2, 2))):
        new = values_and_grads(lambda f: to_3d(conv(f)), conv, x)
        for a, b in zip(new, values_and_grads(lambda f: conv3d(conv, to_3d(f)), conv, x)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for conv in (ean.TemporalConv3d(6, 6, (3, 1, 1), padding=(1, 0, 0), groups=6),
                 ean.TemporalConv3d(6, 4, (3, 1, 1), padding=(2, 0, 0), dilation=(2, 1, 1), bias=True)):
        for a, b in zip(values_and_grads(conv, conv, to_3d(x)), values_and_grads(lambda t: conv3d(conv, t), conv, to_3d(x))):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    pool = ean.FramePool3d(T, "max")
    new = values_and_grads(lambda f: to_3d(pool(f)), pool, x)
    ref = values_and_grads(lambda f: F.max_pool3d(to_3d(f), 3, 1, 1), pool, x)
    assert torch.equal(new[0], ref[0])                                 # a max is exact; gradients: summation order
    torch.testing.assert_close(new[1], ref[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fusion", ["dynamic", "static", "shuffle", "identity"])
def test_eab_on_frames_equals_eab_on_clips(fusion):
    """EAB computed on frames (B*T, C, H, W) equals Eq. (2) computed on the clip tensor (B, C, T, H, W) with Conv3d,
    MaxPool3d and bmm, the formulation it replaces: values and gradients, in training and evaluation mode."""
    def eab_reference(m, x):
        B = x.shape[0] // m.num_segments
        x3 = x.unflatten(0, (B, m.num_segments)).transpose(1, 2)                   # (B, C, T, H, W)
        z = conv3d(m.compress, x3)
        s = torch.cat([conv3d(c, part) for c, part in zip(m.spatial, z.split(m.splits, 1))], 1)
        s = F.relu(m.bn(s))
        if fusion == "shuffle":
            s = s.index_select(1, m.perm)
        elif fusion != "identity":
            M = m.esp(z) if fusion == "dynamic" else m.matrix.expand(B, -1, -1)
            s = torch.bmm(M, s.flatten(2)).view_as(s)
        y = torch.cat([conv3d(c, part) for c, part in zip(m.temporal, s.split(m.splits, 1))], 1)
        y = conv3d(m.expand, y + conv3d(m.pool[1], F.max_pool3d(z, 3, 1, 1)))
        return x + y.transpose(1, 2).flatten(0, 1)

    torch.manual_seed(0)
    T = 4
    m = ean.EAB(64, T, fusion=fusion)
    torch.nn.init.normal_(m.expand.weight, 0, 0.1)
    if fusion == "static":
        torch.nn.init.normal_(m.matrix, 0, 0.3)
    x = torch.randn(2 * T, 64, 6, 5)
    for train in (True, False):
        m.train(train)
        for a, b in zip(values_and_grads(m, m, x), values_and_grads(lambda t: eab_reference(m, t), m, x)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------- paper switches (Tables 8, 10), bad combos
def test_eab_ablations_build_the_table_rows():
    torch.manual_seed(0)
    T, x = 4, torch.randn(8, 64, 6, 6)
    kernels = lambda m: [(tuple(c.kernel_size), tuple(c.dilation)) for c in m.spatial]
    assert kernels(ean.EAB(64, T, kernels="s-block")) == [((1, 3, 3), (1, 1, 1))] * 3
    assert kernels(ean.EAB(64, T, kernels="l-block")) == [((1, 3, 3), (1, 2, 2))] * 3
    m = ean.EAB(64, T, dilation=False)
    assert kernels(m)[2] == ((1, 5, 5), (1, 1, 1)) and tuple(m.temporal[2].kernel_size) == (5, 1, 1)
    m = ean.EAB(64, T, conv="1+1+1d")
    assert [tuple(c.kernel_size) for c in m.spatial[1]] == [(1, 3, 1), (1, 1, 3)]
    assert tuple(m.spatial[0].kernel_size) == (1, 1, 1) and tuple(m.spatial[2][1].dilation) == (1, 1, 2)
    none = ean.EAB(64, T, pool="none").pool           # Without Max Pool: the pool off, the branch's 1x1x1 conv kept
    assert isinstance(none[0], torch.nn.Identity) and tuple(none[1].kernel_size) == (1, 1, 1)
    assert ean.EAB(64, T, pool="avg").pool[0].mode == "avg"
    for kw in [dict(kernels="s-block"), dict(kernels="l-block", dilation=False), dict(pool="none"), dict(pool="avg"),
               dict(inter_relu=False), dict(dilation=False), dict(conv="1+1+1d")]:
        m = ean.EAB(64, T, **kw)
        torch.nn.init.normal_(m.expand.weight, 0, 0.1)
        assert m(x).shape == x.shape, kw
    # without the inter ReLU: the same weights give another output
    a, b = ean.EAB(64, T), ean.EAB(64, T, inter_relu=False)
    torch.nn.init.normal_(a.expand.weight, 0, 0.1)
    b.load_state_dict(a.state_dict())
    assert not torch.allclose(a(x), b(x))


def test_average_pool_branch_equals_avg_pool3d():
    B, T = 2, 5
    x = torch.randn(B * T, 6, 7, 8)
    y = ean.FramePool3d(T, "avg")(x).unflatten(0, (B, T)).transpose(1, 2)
    torch.testing.assert_close(y, F.avg_pool3d(x.unflatten(0, (B, T)).transpose(1, 2), 3, 1, 1))


@pytest.mark.parametrize("flags", [
    ["--baseline", "--no-lmc"], ["--baseline", "--variant", "official"], ["--no-eab", "--eab-fusion", "static"],
    ["--no-eab", "--eab-stages", "1"], ["--eab-stages", "--eab-pool", "avg"], ["--no-soi", "--soi-regions", "all"],
    ["--no-soi", "--soi-stages", "4"], ["--soi-stages", "--num-objects", "3"],
    ["--soi-regions", "fixed", "--num-objects", "3"],
    ["--no-lmc", "--snippet", "3"], ["--no-lmc", "--rgb-frame", "first"], ["--snippet", "4"], ["--snippet", "1"],
    ["--eab-kernels", "s-block", "--no-dilation"], ["--variant", "official", "--eab-pool", "avg"],
    ["--variant", "official", "--snippet", "3"]])
def test_ignored_flag_combinations_stop_with_one_line(flags, capsys):
    with pytest.raises(SystemExit):
        ean.get_args(["--complexity"] + flags)
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and flags[-1 if flags[-1].startswith("--") else -2] in errors[0], errors


def test_valid_flag_combinations_parse():
    for flags in [["--snippet", "3"], ["--snippet", "9"], ["--eab-stages"], ["--soi-stages"], ["--no-eab"],
                  ["--eab-kernels", "l-block", "--no-dilation"], ["--variant", "official", "--no-lmc"],
                  ["--variant", "official", "--eab-fusion", "static"], ["--baseline"]]:
        ean.get_args(["--complexity"] + flags)


def test_paper_tables_rows_parse_and_carry_their_figures():
    keys = {"table", "row", "flags", "params_m", "gflops", "top1", "top5", "note", "base", "increment_note",
            "ensemble", "views"}
    tables = {r["table"] for r in ean.PAPER_TABLES}
    assert {f"Table {n}" for n in (1, 2, 4, 5, 6, 7, 8, 9, 10)} <= tables and "Official release" in tables
    paper_tables.check_rows(ean)                                        # every base names one row
    for row in ean.PAPER_TABLES:
        assert set(row) <= keys and {"table", "row", "flags", "note"} <= set(row), row
        assert all(isinstance(row[k], (int, float)) for k in ("params_m", "gflops", "top1", "top5") if k in row)
        for flags in [row["flags"], *row.get("ensemble", [])]:
            ean.get_args(flags.split() + ["--complexity"])
    bases = {(r["table"], r["row"]): r.get("base") for r in ean.PAPER_TABLES}
    assert bases[("Table 10", "Without dilation")] == "Ours" and bases[("Table 10", "Ours")] is None
    assert bases[("Table 5", "ResNet+EABs")] == "ResNet baseline" and bases[("Table 8", "+EAB")] == "Only SOI-Tr"
    ensembles = {(r["table"], r["row"]): (r["flags"], r["ensemble"], r.get("views", 1))
                 for r in ean.PAPER_TABLES if "ensemble" in r}                  # 16F + 8F (Tables 1-2)
    assert ensembles == {("Table 1", "EANEn(RGB)"): ("--no-lmc --num-segments 16", ["--no-lmc"], 1),
                         ("Table 1", "EANEn(RGB+LMC)"): ("--num-segments 16", [""], 1),
                         ("Table 2", "EANEn(RGB+LMC)"): ("--num-segments 16 --num-classes 400", ["--num-classes 400"],
                                                         30)}


def test_table_10_increments_are_what_the_notes_say():
    """Table 10 over 'Ours' (common/paper_tables.py): Without Max Pool costs what Ours costs, exactly (the branch's
    1x1x1 conv kept, as the paper's 36.0M / 36.1G for both say; the whole branch off: -0.09M / -0.31 G); Without
    dilation (the dilated group's 5x5 / 5) adds +0.18M / +0.66 G, the paper +1.2M / +1.4 G (its increment_note: the
    readings tried). The ensembles are their members' sums: EANEn(RGB) 16F + 8F RGB, Table 2's x 30 views."""
    rows = {(r["table"], r["row"]): r for r in ean.PAPER_TABLES}
    inc = lambda name: paper_tables.increment(ean, ean.PAPER_TABLES, rows[("Table 10", name)])
    assert [ours for _, ours, _ in inc("Without Max Pool").values()] == [0, 0]
    d = inc("Without dilation")
    assert (round(d["params_m"][1], 2), round(d["gflops"][1], 2)) == (0.18, 0.66) and "readings" in \
        rows[("Table 10", "Without dilation")]["increment_note"]
    parts = [paper_tables.measure(ean, rows[("Table 1", name)])["gflops"] for name in ("EAN16F(RGB)", "EAN8F(RGB)")]
    assert paper_tables.measure(ean, rows[("Table 1", "EANEn(RGB)")])["gflops"] == pytest.approx(sum(parts))
    k400 = [paper_tables.measure(ean, rows[("Table 2", n)])["gflops"] for n in ("EAN16F(RGB+LMC)", "EAN8F(RGB+LMC)")]
    assert paper_tables.measure(ean, rows[("Table 2", "EANEn(RGB+LMC)")])["gflops"] == pytest.approx(sum(k400))
    s_block = next(r for r in ean.PAPER_TABLES if r["row"] == "+S-Block")
    model = ean.build_model(small_args(*s_block["flags"].split()), 4)
    eab = model.inserts["2"][0]
    assert eab.fusion == "identity" and [tuple(c.kernel_size) for c in eab.spatial] == [(1, 3, 3)] * 3


def test_complexity_row_is_what_complexity_prints(capsys):
    args = small_args("--no-lmc", "--complexity")
    row = modes.complexity_row(ean, args)
    ean.main(SMALL + ["--no-lmc", "--complexity"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {k: round(v, 2) for k, v in row.items()} == {k: printed[k] for k in ("params_m", "gflops")}
    assert row["params_m"] > 0


# ---------------------------------------------------------------------------------- testing at another frame size
def test_positional_embedding_resize():
    pos = torch.randn(1, 8, 2, 7, 7)
    assert ean.resize_pos(pos, (2, 7, 7)) is pos
    torch.testing.assert_close(F.interpolate(pos, size=(2, 7, 7), mode="trilinear", align_corners=False), pos,
                               rtol=0, atol=0)                          # the rule itself is the identity at one size
    assert ean.resize_pos(pos, (2, 8, 8)).shape == (1, 8, 2, 8, 8)


@pytest.mark.parametrize("regions", ["saliency", "fixed"])
def test_model_built_at_224_runs_at_256(regions):
    """Full-resolution testing (3 crops of 256 from a 224 model, Table 2): the SOI-Tr embedding and the fixed
    regions follow X5's size (8x8 instead of 7x7), LMC cuts 8x8 patches of 32; finite outputs."""
    torch.manual_seed(0)
    args = ean.get_args(["--arch", "resnet18", "--pretrained", "none", "--num-classes", "4", "--data", "x",
                         "--num-segments", "2", "--soi-regions", regions])
    model = ean.build_model(args, 4).eval()
    randomise_zero_inits(model)
    assert model.inserts["5"][0].pos.shape[-1] == 7
    with torch.no_grad():
        y = model(torch.randn(1, 10, 3, 256, 256))
    assert y.shape == (1, 4) and torch.isfinite(y).all()


def test_lmc_pads_sizes_that_are_not_multiples_of_its_patch():
    torch.manual_seed(0)
    for variant in ["paper", "official-8f"]:
        m = ean.LMC(variant=variant)(torch.randn(1, 2, 5, 3, 240, 320))   # e.g. --test-resize 240x320, no crop
        assert m.shape == (2, 64, 60, 80), variant                        # the stem's ceil(H/4) x ceil(W/4)
