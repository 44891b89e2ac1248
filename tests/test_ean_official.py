"""ean.py --variant official: the released checkpoints' keys and shapes load into it (strictly), the layout changes
equal the release's formulation, the release's EAB order equals its clip formulation, the release's init; TSN/TSM
files of the same key layout are not taken for the release and load by name and shape (as in the other scripts).

data/ean_official_state_dict_8f.txt: every key, shape and dtype of the released 8-frame checkpoint (932 entries,
../shared/notes). The 16-frame release (953 entries) is derived from it by the differences of EAN_16f.py
(`release_entries`). The forward of the converted model was compared with the official code outside the project:
max |logit difference| 9.4e-11 (8F) and 4.1e-11 (16F) in float64, 2.6e-2 in float32 on logits of std 16.7 (random
weights amplify round-off), with a throw-away script importing the official EAN_8f.py/EAN_16f.py/TSN.py (README)."""
import os
import re

import pytest
import torch
import torch.nn.functional as F
import torchvision

import ean
from common import checkpoint, training
from reference import conv3d, values_and_grads

HERE = os.path.dirname(os.path.abspath(__file__))


def release_entries(T):
    """[(key, shape, dtype)] of the released EAN_{T}f checkpoint, in the file's order."""
    rows = [line.rstrip("\n").split("\t") for line in open(os.path.join(HERE, "data", "ean_official_state_dict_8f.txt"))
            if not line.startswith("#")]
    entries = [(k, tuple(int(n) for n in re.findall(r"\d+", s)), d) for k, s, d in rows]
    if T == 8:
        return entries
    # EAN_16f.py against EAN_8f.py: no stm_proj2; stm_proj1 = conv, BN, ReLU, 1x1x1 conv; proj_back = 1x1x1 conv
    # 256 -> 256, BN, ReLU, conv 256 -> 1024; the stack_diff_motion branch; the positional embedding of 16 x 7 x 7
    bn = lambda name, c: [(f"{name}.{p}", (c,), "float32") for p in ["weight", "bias", "running_mean", "running_var"]] \
        + [(f"{name}.num_batches_tracked", (), "int64")]
    m = "module.base_model."
    out = []
    for k, s, d in entries:
        if k.startswith(m + "stm_proj2."):
            continue
        if k == m + "sparse_transformer.pos_embedding":
            s = (512, 16 * 49)
        if k == m + "proj_back.0.weight":
            out += [(k, (256, 256, 1, 1, 1), d)] + bn(m + "proj_back.1", 256) + [(m + "proj_back.3.weight", s, d)]
            continue
        out.append((k, s, d))
        if k == m + "stm_proj1.0.weight":
            out += bn(m + "stm_proj1.1", 256) + [(m + "stm_proj1.3.weight", (256, 256, 1, 1, 1), d)]
        if k == m + "stm_st_model2.1.num_batches_tracked":
            out += [(m + "stack_diff_motion.0.weight", (24, 12, 3, 3), "float32")] + bn(m + "stack_diff_motion.2", 24) \
                + [(m + "stack_diff_motion.3.weight", (64, 6, 3, 3), "float32")] + bn(m + "stack_diff_motion.5", 64) \
                + [(m + "stack_diff_motion.6.weight", (64, 64, 1, 1), "float32"),
                   (m + "stack_diff_motion.6.bias", (64,), "float32"),
                   (m + "stack_diff_motion.7.weight", (64, 4, 3, 3), "float32")]
    return out


def random_release(T, seed=0):
    """A state_dict in the release's layout (module.-prefixed keys, the release's shapes) with random values."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) if d == "float32" else torch.randint(0, 100, s, generator=g)
            for k, s, d in release_entries(T)}


def official_model(T=8, *extra):
    return ean.build_model(ean.get_args(["--complexity", "--variant", "official", "--num-segments", str(T)]
                                        + list(extra)), 174)


def test_release_key_lists():
    e8, e16 = release_entries(8), release_entries(16)
    assert len(e8) == 932 and len({k for k, _, _ in e8}) == 932
    assert len(e16) == 953 and len({k for k, _, _ in e16}) == 953
    assert all(k.startswith(("module.base_model.", "module.new_fc.")) for k, _, _ in e8 + e16)


@pytest.mark.parametrize("T,unused", [(8, 31), (16, 25)])
def test_release_converts_to_exactly_the_official_variant(T, unused):
    """Every tensor of the release is used or dropped by name; the converted keys and shapes are exactly the
    model's; the model loads them with zero missing and zero unexpected tensors."""
    release = random_release(T)
    assert ean.is_official_checkpoint({"epoch": 70, "arch": "resnet50", "state_dict": release, "best_prec1": 53.4})
    margs = ean.official_model_args(release)
    assert (margs["variant"], margs["num_segments"], margs["num_classes"], margs["arch"]) == ("official", T, 174,
                                                                                            "resnet50")
    ours, dropped = ean.convert_official(release)
    assert len(dropped) == unused and all(re.search(r"base_model\.(bn2|relation\d\.bn2|stm_proj2)\.", k)
                                          for k in dropped)
    assert len(ours) + len(dropped) == len(release)
    model = official_model(T)
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(ours, strict=True)
    assert not missing and not unexpected
    # renamed tensors are the release's values; the layouts are checked in test_patch_layouts_*
    torch.testing.assert_close(model.backbone.layer2[1].conv2[2].weight,
                               release["module.base_model.layer2.1.conv2.weight"])
    torch.testing.assert_close(model.inserts["5"][0].pos.flatten(2)[0],
                               release["module.base_model.sparse_transformer.pos_embedding"])
    torch.testing.assert_close(model.fc.bias, release["module.new_fc.bias"])


def test_convert_names_the_key_it_cannot_use():
    release = random_release(8)
    ours, _ = ean.convert_official({k[len("module."):]: v for k, v in release.items()})  # no prefix: the same
    assert len(ours) == 901
    broken = dict(release)
    del broken["module.base_model.relation3.s_part2_conv.weight"]
    with pytest.raises(ValueError, match=r"lacks 1 tensor.*inserts\.3\.0\.spatial\.1\.weight"):
        ean.convert_official(broken)
    broken = {**release, "module.base_model.relation3.s_part4_conv.weight": torch.zeros(3)}
    with pytest.raises(ValueError, match=r"module\.base_model\.relation3\.s_part4_conv\.weight"):
        ean.convert_official(broken)
    broken = {**release, "module.base_model.extra.weight": torch.zeros(3)}
    with pytest.raises(ValueError, match=r"module\.base_model\.extra\.weight: not a tensor of the released"):
        ean.convert_official(broken)
    broken = {**release, "module.base_model.relation2.p_prod2.0.weight": torch.zeros(4096, 17)}
    with pytest.raises(ValueError, match=r"relation2\.p_prod2\.0\.weight: shape \(4096, 17\), the release's is "
                                         r"\(4096, 16\)"):
        ean.convert_official(broken)
    broken = {**release, "module.base_model.stm_proj1.0.weight": torch.zeros(256, 3, 16, 16)}
    with pytest.raises(ValueError, match=r"stm_proj1\.0\.weight: shape \(256, 3, 16, 16\), the release's is "
                                         r"\(256, 768, 1, 1, 1\)"):
        ean.convert_official(broken)
    broken = {**release, "module.base_model.sparse_transformer.pos_embedding": torch.zeros(512, 784)}
    with pytest.raises(ValueError, match="pos_embedding: 784 columns"):
        ean.official_model_args(broken)
    broken = {**{k[len("module."):]: v for k, v in list(release.items())[:5]}, **dict(list(release.items())[5:])}
    with pytest.raises(ValueError, match="start with 'module.'"):
        ean.convert_official(broken)
    assert not ean.is_official_checkpoint({"model": {}, "args": {}})
    assert not ean.is_official_checkpoint(official_model(8).state_dict())


# ---------------------------------------------------------------------- the release's layouts, formulated as it does
def test_patch_layouts_equal_the_release_formulation():
    """Our LMC encoder/decoder with converted weights equal the release's 1x1x1 convs on its rearranged patches
    (einops 'b c (h p1) (w p2) -> b (p1 p2 c) h w' and back), and the motion map's channels are c*4 + t."""
    torch.manual_seed(0)
    lmc = ean.LMC(snippet=5, variant="official-8f").eval()
    w_in, w_out = torch.randn(256, 768, 1, 1, 1) / 768 ** 0.5, torch.randn(1024, 256, 1, 1, 1) / 16
    lmc.encode.weight.data.copy_(ean.OFFICIAL_LAYOUTS["patch_in"][1](w_in, lmc.encode.weight.shape))
    lmc.decode.weight.data.copy_(ean.OFFICIAL_LAYOUTS["patch_out"][1](w_out, lmc.decode.weight.shape))
    d = torch.randn(3, 3, 112, 112)                                    # 3 differences at half resolution
    patches = d.view(3, 3, 7, 16, 7, 16).permute(0, 3, 5, 1, 2, 4).reshape(3, 768, 7, 7)   # (p1 p2 c) h w
    torch.testing.assert_close(lmc.encode(d), F.conv2d(patches, w_in.flatten(2)[..., None]), rtol=1e-4, atol=1e-4)
    v = torch.randn(3, 256, 7, 7)
    out = F.conv2d(v, w_out.flatten(2)[..., None]).view(3, 8, 8, 16, 7, 7)                 # (p1 p2 c) h w
    torch.testing.assert_close(lmc.decode(v), out.permute(0, 3, 4, 1, 5, 2).reshape(3, 16, 56, 56),
                               rtol=1e-4, atol=1e-4)
    # the whole module: nearest 2x downsampling, residual units, channel c*4 + t, as the release writes it
    x = torch.randn(2, 1, 5, 3, 224, 224)
    with torch.no_grad():
        m = lmc(x)
        dd = x[0, :, :, :, ::2, ::2]                                    # (1, 5, 3, 112, 112), F.upsample(0.5) nearest
        dd = (dd[:, 1:] - dd[:, :-1]).flatten(0, 1)                     # (4, 3, 112, 112)
        official = F.interpolate(x[0, 0].transpose(0, 1)[None], scale_factor=(1, 0.5, 0.5))[0]  # (3, 5, 112, 112)
        torch.testing.assert_close(dd, official.transpose(0, 1).diff(dim=0))
        v = lmc.encode(dd).transpose(0, 1)[None]                        # (1, 256, 4, 7, 7)
        for unit in lmc.motion:                                         # two residual units
            r = v
            for layer in unit:
                r = layer(r)
            v = v + r
        ref = lmc.decode(v[0].transpose(0, 1))                          # (4, 16, 56, 56): t, c
        torch.testing.assert_close(m[0], ref.transpose(0, 1).reshape(64, 56, 56), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("train", [True, False])
def test_release_eab_on_frames_equals_its_clip_formulation(train):
    """EAB of the release (EAB_rfs555.py): on the clip (B, C, T, H, W) with Conv3d: temporal (identity, 3, 3 dilated
    2) -> BN+ReLU -> M -> spatial (identity, 3x3, 3x3 dilated 2) + 1x1x1(max3x3x3(z)) -> expand, residual."""
    def reference(m, x):
        B = x.shape[0] // m.num_segments
        x3 = x.unflatten(0, (B, m.num_segments)).transpose(1, 2)
        z = conv3d(m.compress, x3)
        a, b, c = z.split(m.splits, 1)
        t = F.relu(m.bn(torch.cat([a, conv3d(m.temporal[1], b), conv3d(m.temporal[2], c)], 1)))
        M = m.esp(z)
        t = torch.bmm(M, t.flatten(2)).view_as(t)                       # M[b, out, in]
        a, b, c = t.split(m.splits, 1)
        y = torch.cat([a, conv3d(m.spatial[1], b), conv3d(m.spatial[2], c)], 1)
        y = conv3d(m.expand, y + conv3d(m.pool[1], F.max_pool3d(z, 3, 1, 1)))
        return x + y.transpose(1, 2).flatten(0, 1)

    torch.manual_seed(0)
    T = 4
    m = ean.EAB(64, T, variant="official").train(train)
    assert isinstance(m.spatial[0], torch.nn.Identity) and isinstance(m.temporal[0], torch.nn.Identity)
    assert len(m.esp.context) == 18 and all(c.bias is not None for c in m.esp.context if isinstance(c, torch.nn.Conv3d))
    torch.nn.init.normal_(m.expand.weight, 0, 0.1)
    x = torch.randn(2 * T, 64, 6, 5)
    for a, b in zip(values_and_grads(m, m, x), values_and_grads(lambda t: reference(m, t), m, x)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------- init, backward, other sizes
def test_official_init():
    torch.manual_seed(0)
    model = official_model(8)
    soi = model.inserts["5"][0]
    assert soi.proj_bn.weight.abs().sum() == 0 and soi.proj_bn.bias.abs().sum() == 0     # Tr_BN: gamma = beta = 0
    assert soi.proj.weight.abs().sum() > 0                                              # expand_l: default init
    eab = model.inserts["4"][0]
    bound = 0.01 / 64 ** 0.5                                          # 0.01 x U(+-1/sqrt(fan_in)), fan_in = 256/4
    assert 0 < eab.expand.weight.abs().max() <= bound
    assert eab.compress.weight.std().item() == pytest.approx((2 / 256) ** 0.5, rel=0.05)  # kaiming fan_out = Cr
    assert model.lmc.encode.weight.std().item() == pytest.approx((2 / 256) ** 0.5, rel=0.05)  # the release's 1x1x1
    assert 0 < model.lmc.decode.weight.abs().max() <= 0.01 / 16
    # the shift init and ImageNet/torchvision layers are left as they are
    torch.testing.assert_close(model.backbone.layer1[0].conv2[1].conv.weight[16:, 0, :, 0, 0],
                               torch.tensor([0., 1, 0]).expand(48, 3))
    with torch.no_grad():                                              # SOI-Tr starts as GAP(X5) exactly
        x = torch.randn(16, 2048, 7, 7)
        torch.testing.assert_close(soi.eval()(x), x)


@pytest.mark.parametrize("T,size", [(2, 64), (16, 64)])                # EAN_8f's LMC, EAN_16f's LMC
def test_official_backward_reaches_every_parameter(T, size):
    torch.manual_seed(0)
    args = ean.get_args(["--arch", "resnet18", "--pretrained", "none", "--input-size", str(size), "--num-classes", "4",
                         "--data", "x", "--variant", "official", "--num-segments", str(T)])
    model = ean.build_model(args, 4).train()
    assert (model.lmc.stacked is not None) == (T == 16)
    with torch.no_grad():
        model.inserts["5"][0].proj_bn.weight.fill_(1)                  # Tr_BN at zero passes no gradient
    x = torch.randn(2, 5 * T, 3, size, size)
    F.cross_entropy(model(x), torch.tensor([0, 3])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_official_model_at_224_runs_at_256():
    """A released model (built at 224) tested on 256 x 256 crops: the positional embedding is interpolated, the LMC
    cuts 8 x 8 patches; finite logits."""
    torch.manual_seed(0)
    model = ean.build_model(ean.get_args(["--arch", "resnet18", "--pretrained", "none", "--num-classes", "4",
                                          "--data", "x", "--variant", "official", "--num-segments", "2"]), 4).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 10, 3, 256, 256))
    assert y.shape == (1, 4) and torch.isfinite(y).all()


def test_pretrained_release_file_starts_fine_tuning(tmp_path, capsys):
    """--pretrained RELEASE.pth.tar (the file as released) with --variant official: every tensor but the classifier
    comes from the release; with the paper variant it stops with one line."""
    release = random_release(8)
    path = str(tmp_path / "Somethingv1.RGB_LMC_8f.pth.tar")
    torch.save({"epoch": 70, "arch": "resnet50", "state_dict": release, "best_prec1": torch.tensor(53.4)}, path)
    flags = ["--data", "x", "--pretrained", path, "--num-classes", "4"]
    model = ean.build_model(ean.get_args(flags + ["--variant", "official"]), 4)
    assert "the classifier starts anew" in capsys.readouterr().out
    torch.testing.assert_close(model.inserts["4"][0].esp.fc.weight,
                               release["module.base_model.relation4.p_prod2.0.weight"])
    assert model.fc.weight.shape == (4, 2048)
    with pytest.raises(SystemExit, match="they load into --variant official"):
        ean.build_model(ean.get_args(flags), 4)


def sane_release(num_classes, seed=0):
    """random_release with values a forward survives: weights scaled by 1/sqrt(fan-in), identity BatchNorms."""
    state = {}
    for k, v in random_release(8, seed).items():
        if k.endswith("running_var"):
            v = torch.ones_like(v)
        elif k.endswith("running_mean") or (k.endswith("bias") and v.ndim == 1):
            v = torch.zeros_like(v)
        elif v.is_floating_point() and v.ndim == 1:
            v = torch.ones_like(v)
        elif v.is_floating_point():
            v = v * (1.0 / max(v[0].numel(), 1)) ** 0.5
        state[k] = v
    state["module.new_fc.weight"] = torch.randn(num_classes, 2048) * 0.01   # the demo's 4 classes
    state["module.new_fc.bias"] = torch.zeros(num_classes)
    return state


def test_release_file_evaluates_and_predicts_through_the_checkpoint_flag(tiny_data, tmp_path, capsys):
    """`python ean.py --evaluate --checkpoint EAN_8f.pth.tar --data DIR` is the whole command: the model flags and
    the release's test protocol (240x320 resize, centre crop 224) come from the file, which converts strictly."""
    import json
    path = str(tmp_path / "Somethingv1.RGB_LMC_8f.pth.tar")
    torch.save({"epoch": 70, "arch": "resnet50", "state_dict": sane_release(4), "best_prec1": 53.4}, path)
    metrics = ean.main(["--evaluate", "--checkpoint", path, "--data", tiny_data, "--workers", "0",
                        "--batch-size", "2", "--output", str(tmp_path / "eval")])
    out = capsys.readouterr().out
    assert "901 tensors converted" in out and "stm_proj2" in out          # 932 = 901 used + 31 dropped by name
    assert metrics["samples"] == 4 and metrics["protocol"].startswith("8x5 frames x 1 clips x 1 crops (resize 240x320")
    video = os.path.join(tiny_data, open(os.path.join(tiny_data, "val.txt")).readline().split()[0])
    ean.main(["--predict", video, "--checkpoint", path, "--workers", "0", "--top-k", "2"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["path"] == video and [t["class"] for t in line["top"]] == [str(t["label"]) for t in line["top"]]
    assert all(0 <= t["prob"] <= 1 for t in line["top"])


# --------------------------------------------------------- TSN/TSM-layout files are not the release (they load by name)
@pytest.fixture(scope="module")
def resnet50_files(tmp_path_factory):
    """A TSM-layout (each block's conv1 in TSM's shift wrapper `.net`) and a TSN-layout ResNet-50 checkpoint, as every
    TSN/TSM/TDN release is written: {'epoch', 'arch', 'state_dict', 'best_prec1'}, keys module.base_model.* and
    module.new_fc.* (1000 classes). resnet50()'s names and shapes (random init); all but two tensors are stored as
    expanded constants, so the files stay small."""
    torch.manual_seed(0)
    kept = ("layer2.1.conv2.weight", "bn1.running_var")
    state = {k: v.clone() if k in kept or v.ndim == 0 else torch.full((), 0.5, dtype=v.dtype).expand(v.shape)
             for k, v in torchvision.models.resnet50().state_dict().items()}
    paths = {}
    for layout in ("tsm", "tsn"):
        sd = {}
        for k, v in state.items():
            if layout == "tsm" and re.match(r"layer\d\.\d+\.conv1\.", k):
                k = k.replace(".conv1.", ".conv1.net.")
            sd["module.new_fc." + k[3:] if k.startswith("fc.") else "module.base_model." + k] = v
        paths[layout] = str(tmp_path_factory.mktemp(layout) / f"{layout}_r50.pth.tar")
        torch.save({"epoch": 25, "arch": "resnet50", "state_dict": sd, "best_prec1": 45.1}, paths[layout])
    return paths, state


class Stop(Exception):
    pass


def model_main_builds(flags, tiny_data, monkeypatch):
    """The model ean.main() builds and initialises from `flags`, stopped where training would start."""
    seen = {}

    def stop(args, script, model, *rest):
        seen["model"] = model
        raise Stop
    monkeypatch.setattr(training, "Training", stop)
    with pytest.raises(Stop):
        ean.main(["--data", tiny_data, "--workers", "0", "--input-size", "64", "--num-segments", "2",
                  "--batch-size", "2"] + flags)
    return seen["model"]


@pytest.mark.parametrize("layout", ["tsm", "tsn"])
def test_tsn_and_tsm_files_load_by_name_into_the_paper_variant(layout, resnet50_files, tiny_data, monkeypatch, capsys):
    """`--pretrained FILE` (and `--finetune FILE`) of a TSN/TSM ResNet-50 into the paper variant: all 318 ResNet tensors
    by name and shape, the EAN modules as initialised, new_fc (1000 classes) left unused."""
    paths, state = resnet50_files
    path = paths[layout]
    assert not ean.is_official_checkpoint(torch.load(path, weights_only=False), path)
    model = model_main_builds(["--pretrained", path], tiny_data, monkeypatch)
    out = capsys.readouterr().out
    assert not model.released and model.inserts["1"][0].__class__ is ean.EAB
    assert f"--pretrained {path}: loaded 318 of " in out and "(318 of 318 ResNet tensors)" in out, out
    assert "unused from the file: 2 (module.new_fc.weight, module.new_fc.bias)" in out
    torch.testing.assert_close(model.backbone.layer2[1].conv2[2].weight, state["layer2.1.conv2.weight"])
    torch.testing.assert_close(model.backbone.bn1.running_var, state["bn1.running_var"])
    model = model_main_builds(["--pretrained", "none", "--finetune", path], tiny_data, monkeypatch)
    out = capsys.readouterr().out
    assert f"--finetune {path}: loaded 318 of " in out and "(318 of 318 ResNet tensors)" in out, out
    assert "unused from the file: 2 (module.new_fc.weight, module.new_fc.bias)" in out
    torch.testing.assert_close(model.backbone.layer2[1].conv2[2].weight, state["layer2.1.conv2.weight"])
    with pytest.raises(SystemExit):                                   # not a checkpoint to evaluate with
        ean.get_args(["--evaluate", "--checkpoint", path, "--data", tiny_data])
    assert "holds no run arguments (not written by ean.py)" in capsys.readouterr().err


def test_release_is_recognised_by_its_own_tensors_and_a_partial_file_stops(tmp_path):
    """The release holds every RELEASE_ONLY tensor (with or without 'module.'); a file with some of them is neither
    the release nor a TSN/TSM file: it stops, naming what was found and what is missing."""
    release = random_release(16)
    assert ean.is_official_checkpoint({"epoch": 70, "state_dict": release})
    assert ean.is_official_checkpoint({k[len("module."):]: v for k, v in release.items()})
    partial = {k: v for k, v in release.items() if "stm_" not in k}         # a release without its LMC
    path = str(tmp_path / "partial.pth.tar")
    torch.save({"epoch": 70, "arch": "resnet50", "state_dict": partial, "best_prec1": 50.0}, path)
    for flags in (["--pretrained", path], ["--finetune", path], ["--evaluate", "--checkpoint", path]):
        with pytest.raises(SystemExit) as stopped:
            ean.build_model(ean.get_args(["--data", "x", "--num-classes", "4"] + flags), 4)
        error = str(stopped.value)
        assert "holds 4 of the 6 tensors only the EAN release has" in error, error
        assert "found base_model.relation1.compress_c1.weight" in error
        assert "missing base_model.stm_proj1.0.weight, base_model.stm_st_model1.0.weight" in error


def test_tsn_baseline_loads_the_releases_resnet_by_name(tmp_path, capsys):
    """--baseline --pretrained RELEASE: the TSN's ResNet-50 takes the release's ResNet tensors by name and shape (the
    EAN modules' tensors are unused), as the other scripts load it."""
    release = random_release(8)
    path = str(tmp_path / "Somethingv1.RGB_LMC_8f.pth.tar")
    torch.save({"epoch": 70, "arch": "resnet50", "state_dict": release, "best_prec1": 53.4}, path)
    args = ean.get_args(["--data", "x", "--num-classes", "4", "--baseline", "--pretrained", path])
    model = ean.build_model(args, 4)
    assert not model.released
    checkpoint.load_initial(model, model.backbone, args)
    assert "(318 of 318 ResNet tensors)" in capsys.readouterr().out
    torch.testing.assert_close(model.backbone.layer2[1].conv2.weight,
                               release["module.base_model.layer2.1.conv2.weight"])
