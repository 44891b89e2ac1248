"""Checkpoints that describe their model, and weights written by other code.

A checkpoint written by a script holds, beside the weights, what built its model (`describe`): the run's
arguments, the class names and the dataset's dataset.json. `adopt` takes them back for `--evaluate`, `--predict`,
`--resume` and `--ensemble`, so these need no model flag, no train.txt and no download; a model flag typed on the
command line that contradicts the checkpoint stops with one line naming both values.

`load_foreign` loads weights written by other code into a model: our own checkpoints, torchvision/timm ResNets,
the TSN/TSM/TDN/EAN releases (`{'state_dict': ...}`, keys under `module.base_model.`, classifier `new_fc`, TSM's
shift wrapper `.net`) and mmaction2 (`backbone.layer1.0.conv1.conv`, `.bn`, `cls_head.fc_cls`). Names are brought
to torchvision's ResNet names on both sides, tensors are matched by name and shape, the count is printed, and less
than 90 % of the target's ResNet tensors loaded is an error (`--allow-partial` goes on).
"""
import argparse
import re
import sys

import torch
import torchvision

from . import run

# flags that say what this command does: never taken from a checkpoint. On --resume every other flag of the run
# comes back from it unless given on the command line (--epochs 100 extends a run, --workers 4 suits a new machine)
COMMAND_KEYS = {"resume", "evaluate", "checkpoint", "predict", "top_k", "ensemble", "output", "complexity",
                "benchmark", "save_scores", "visualize", "demo", "allow_partial", "window", "stride", "fps", "export",
                "count"}

_loaded = {}


def load(path):
    """run.load_checkpoint, read once per process (get_args and main both need it)."""
    if path not in _loaded:
        _loaded.clear()
        _loaded[path] = run.load_checkpoint(path)
    return _loaded[path]


def describe(args, script, classes, dataset_info):
    """What a checkpoint needs to rebuild and use its model without the training command line: the script, the
    run's arguments, the class names and dataset.json (the frame template for --predict)."""
    return {"script": script, "args": dict(vars(args)), "classes": list(classes), "dataset": dataset_info}


def meta(path):
    """What a checkpoint knows of its data: class names (None for files written before they were kept, or by
    other code), the classifier's size and dataset.json."""
    ckpt = load(path)
    info = ckpt.get("meta") or {}
    return {"classes": info.get("classes"), "num_classes": _num_classes(ckpt), "dataset": info.get("dataset"),
            "path": path}


def class_names(info):
    """The checkpoint's class names, or their indices (with a warning) where it kept none."""
    if info["classes"] is not None:
        return info["classes"]
    if info["num_classes"] is None:
        sys.exit(f"error: {info['path']} holds neither class names nor one classifier (fc / new_fc)")
    run.print0(f"warning: {info['path']} holds no class names (written before checkpoints kept them, or by other "
               f"code): classes are shown by index")
    return [str(k) for k in range(info["num_classes"])]


def explicit_flags(parser, argv):
    """The dests of the options typed in `argv` (allow_abbrev=False: only whole option names)."""
    actions = parser._option_string_actions
    argv = sys.argv[1:] if argv is None else argv
    return {actions[t.split("=", 1)[0]].dest for t in argv if t.split("=", 1)[0] in actions}


def saved_args(ckpt):
    """The run arguments a checkpoint holds (ours since issue 16 in "meta", older ones in "args"), or None."""
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    if meta:
        return meta["args"]
    return ckpt.get("args") if isinstance(ckpt, dict) and isinstance(ckpt.get("args"), dict) else None


def adopt(parser, argv, args, script, model_keys, foreign_args=None):
    """Take the model (and on --resume the run) arguments from the checkpoint of --resume, --checkpoint or the
    first --ensemble member. A model flag given on the command line must agree with it. `foreign_args(ckpt)`:
    a script's reading of a checkpoint written by other code (EAN's release), or None.
    Returns the checkpoint's path, or None when there is nothing to adopt."""
    path = args.resume or args.checkpoint or (args.ensemble[0] if getattr(args, "ensemble", None) else None)
    if not path:
        return None
    ckpt = load(path)
    saved = saved_args(ckpt)
    if saved is None and foreign_args is not None:
        saved = foreign_args(ckpt)
    if saved is None:
        parser.error(f"{path} holds no run arguments (not written by {script}.py): pass it to --finetune or "
                     f"--pretrained instead")
    written_by = (ckpt.get("meta") or {}).get("script", script)
    if written_by != script:
        parser.error(f"{path} was written by {written_by}.py, not {script}.py")
    given = explicit_flags(parser, argv)
    for key in model_keys:
        if key not in saved:
            continue
        if key in given and getattr(args, key) != saved[key]:
            parser.error(f"--{key.replace('_', '-')} {_show(getattr(args, key))} contradicts the checkpoint's "
                         f"{_show(saved[key])} ({path})")
        setattr(args, key, saved[key])
    if args.resume:  # the run goes on with its own data, recipe and schedule; flags given here win
        for key, value in saved.items():
            if key not in given and key not in COMMAND_KEYS and key not in model_keys and hasattr(args, key):
                setattr(args, key, value)
    elif args.data is None and not args.predict and saved.get("data"):
        args.data = saved["data"]  # --evaluate: the checkpoint's dataset unless --data names another
    args.pretrained = "none"       # the weights come from the checkpoint: nothing to download
    return path


def _show(value):
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _num_classes(ckpt):
    """Rows of the classifier (fc, new_fc, cls_head.fc_cls: `canonical` names it fc), or None."""
    state = state_dict_of(ckpt, "the checkpoint") if isinstance(ckpt, dict) else {}
    weights = [v for k, v in state.items() if canonical(k) == "fc.weight" and v.ndim == 2]
    return int(weights[0].shape[0]) if len(weights) == 1 else None


def check_classes(meta, classes, where):
    """The checkpoint's class names must be the dataset's (same names, same order), else its labels mean
    something else."""
    saved = meta.get("classes")
    if saved is None:
        if meta.get("num_classes") not in (None, len(classes)):
            sys.exit(f"error: the checkpoint's classifier has {meta['num_classes']} classes, {where} has {len(classes)}")
        return
    if list(saved) == list(classes):
        return
    if len(saved) != len(classes):
        sys.exit(f"error: the checkpoint has {len(saved)} classes, {where} has {len(classes)}")
    i = next(i for i, (a, b) in enumerate(zip(saved, classes)) if a != b)
    sys.exit(f"error: the checkpoint's class {i} is {saved[i]!r}, {where} line {i + 1} is {classes[i]!r}: "
             f"its labels would mean other classes")


# ---- weights written by other code ---------------------------------------------------------------------------
WRAPPERS = ("module", "base_model", "backbone", "model")          # DataParallel, TSN/TSM, mmaction2, ours
RESNET_TENSOR = re.compile(r"^(conv1|bn1|layer\d+\.\d+\.(conv\d+|bn\d+|downsample\.[01]))\."
                           r"(weight|bias|running_mean|running_var|num_batches_tracked)$")
RENAMES = [  # (pattern, replacement) applied in order to a name without wrappers
    (re.compile(r"(^|\.)net\."), r"\1"),                                    # TSM's TemporalShift(conv).net
    (re.compile(r"^(layer\d+\.\d+\.conv\d+)\.\d+\.(weight|bias)$"), r"\1.\2"),  # ours: Sequential(insert, conv)
    (re.compile(r"^conv1\.conv\."), "conv1."), (re.compile(r"^conv1\.bn\."), "bn1."),  # mmaction2 ConvModule
    (re.compile(r"^(layer\d+\.\d+\.)conv(\d+)\.conv\."), r"\1conv\2."),
    (re.compile(r"^(layer\d+\.\d+\.)conv(\d+)\.bn\."), r"\1bn\2."),
    (re.compile(r"^(layer\d+\.\d+\.downsample)\.conv\."), r"\1.0."),
    (re.compile(r"^(layer\d+\.\d+\.downsample)\.bn\."), r"\1.1."),
    (re.compile(r"^(new_fc|cls_head\.fc_cls|head\.fc|classifier)\."), "fc."),  # classifiers
]


def canonical(name):
    """A tensor name in torchvision's ResNet vocabulary (conv1, bn1, layerS.B.convN, downsample.0/1, fc)."""
    parts = name.split(".")
    while len(parts) > 1 and parts[0] in WRAPPERS:
        parts.pop(0)
    name = ".".join(parts)
    for pattern, replacement in RENAMES:
        name = pattern.sub(replacement, name)
    return name


def state_dict_of(obj, path):
    """The tensors of a checkpoint file, whatever dict wraps them."""
    for key in ("model", "state_dict", "model_state", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not any(torch.is_tensor(v) for v in obj.values()):
        sys.exit(f"error: {path} holds no state_dict")
    return {k: v for k, v in obj.items() if torch.is_tensor(v)}


def match(own, foreign):
    """{own name: tensor} for the foreign tensors whose canonical name and shape equal an own tensor's, and
    the foreign names left unused."""
    by_name = {}
    for name in own:
        by_name.setdefault(canonical(name), []).append(name)
    loaded, unused = {}, []
    for name, tensor in foreign.items():
        targets = [t for t in by_name.get(canonical(name), []) if own[t].shape == tensor.shape and t not in loaded]
        if len(targets) == 1 or (targets and name in targets):
            loaded[name if name in targets else targets[0]] = tensor
        else:
            unused.append(name)
    return loaded, unused


def tensors(path, convert=None):
    """The tensors of checkpoint `path` (read once: `load`); `convert(ckpt)` may first turn a known foreign file
    into own names (EAN's release) or return None."""
    ckpt = load(path)
    state = convert(ckpt) if convert is not None else None
    return state if state is not None else state_dict_of(ckpt, path)


def load_foreign(model, path, what, allow_partial=False, convert=None, min_fraction=0.9):
    """Load the tensors of `path` (`tensors`) that fit `model` by name and shape (`what`: the flag, for
    messages). Prints how many loaded; exits when less than `min_fraction` of the model's ResNet tensors loaded
    unless `allow_partial`."""
    state = tensors(path, convert)
    own = model.state_dict()
    loaded, unused = match(own, state)
    backbone = [n for n in own if RESNET_TENSOR.match(canonical(n))]
    got = sum(n in loaded for n in backbone)
    fresh = [n for n in own if n not in loaded]
    run.print0(f"{what} {path}: loaded {len(loaded)} of {len(own)} tensors ({got} of {len(backbone)} ResNet "
               f"tensors); not in the file or another shape: {len(fresh)} {_few(fresh)}; unused from the file: "
               f"{len(unused)} {_few(unused)}")
    if backbone and got < min_fraction * len(backbone) and not allow_partial:
        sys.exit(f"error: {what} {path}: only {got} of {len(backbone)} ResNet tensors matched by name and shape "
                 f"(< {min_fraction:.0%}); first unmatched: {_few([n for n in backbone if n not in loaded], 3)}. "
                 f"Pass --allow-partial to go on with the rest freshly initialised")
    model.load_state_dict(loaded, strict=False)
    return loaded, unused


def _few(names, n=5):
    return "" if not names else "(" + ", ".join(names[:n]) + (", ..." if len(names) > n else "") + ")"


def load_weights(model, path, convert=None):
    """The weights of checkpoint `path` into `model`, strictly (every tensor, same shapes); a mismatch is one
    line. `convert`: as for `tensors`."""
    state = tensors(path, convert)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        sys.exit(f"error: {path} does not fit the model its flags build: {len(missing)} tensors missing "
                 f"{_few(missing, 3)}, {len(unexpected)} unexpected {_few(unexpected, 3)}, {len(shapes)} of another "
                 f"shape {_few(shapes, 3)}")
    model.load_state_dict(state)


def torchvision_model(name, pretrained):
    """torchvision's `name` with the weights the papers used for `pretrained` == "imagenet" (the weights API's
    IMAGENET1K_V1, not torchvision's newer default), else randomly initialised ("none", or a PATH that
    `load_initial` loads after the surgery). Without network and cached file: one line saying where to put it."""
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1 if pretrained == "imagenet" else None
    try:
        return torchvision.models.get_model(name, weights=weights)
    except OSError as e:  # no network and no cached file
        sys.exit(f"error: cannot load {weights} ({e}); put the file in $TORCH_HOME/hub/checkpoints, "
                 f"pass --pretrained PATH, or --pretrained none")


def load_initial(model, backbone, args):
    """The run's initial weights from files, by name and shape (`load_foreign`): --pretrained PATH into `backbone`
    (None: the script loads it itself), --finetune PATH into the whole model. Nothing on --resume: the checkpoint
    has the weights."""
    if args.resume:
        return
    if backbone is not None and args.pretrained not in ("none", "imagenet"):
        load_foreign(backbone, args.pretrained, "--pretrained", args.allow_partial)
    if args.finetune:
        load_foreign(model, args.finetune, "--finetune", args.allow_partial)


def member_args(args, path, model_keys):
    """An --ensemble member's arguments: the command line's, with the member checkpoint's model flags."""
    saved = saved_args(load(path))
    if saved is None:
        sys.exit(f"error: {path} holds no run arguments: an --ensemble member must be a checkpoint of this script")
    cfg = argparse.Namespace(**vars(args))
    for key in model_keys:
        if key in saved:
            setattr(cfg, key, saved[key])
    cfg.pretrained = "none"
    return cfg
