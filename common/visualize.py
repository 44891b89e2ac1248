"""`--predict ... --visualize DIR`: one PNG per video with what the model looked at (issue 19).

A sheet holds the sampled frames in a row with the top-k classes (those --predict printed), Grad-CAM of the last stage
on every frame, and the paper's own maps. Grad-CAM and the maps come from ONE forward (and backward) pass of the
trained model on the video's first view, with forward hooks (no second model): each script names its maps as data,
`VIS_MAPS = {title: spec}`, next to its modules. A spec:

    at      "Class.attr": every module of that class (the paper's module name), then the attribute path below it;
            an nn.Module is hooked with a forward hook, a method (e.g. STW's `TWM.keep`) through a temporary wrapper
            on that one instance that records what the forward computed with it (removed afterwards)
    get     (module, inputs, output) -> the map tensor; default: the output
    kind    heat     (B*T,C,h,w) | (B,C,T,h,w) | (B,T,C,h,w) per `layout` "BT" | "BCT" | "BTC": the channel mean
                     per frame, over the frames
            objects  (B,N,T,h,w): one row per object n, with the box of its region (cells >= half its maximum)
            matrix   (B,R,C): one image per matched module (EAN's M, ST-MANet's A_t)
            spatial  (B,h,w): one map per matched module over the middle frame (ST-MANet's A_s)
            temporal (B,C,T): channel x frame weights in a strip under the frames (CAN's GMM, STASTA's TA)
            flow     (B,T,2+,h,w) per `layout`: displacement (u, v) in feature cells x `scale`, as colour (hue =
                     direction, brightness = length) and arrows
    pick    "last" (default: the deepest match), "all", or an index into the matches
    signed  matrix: colours around 0, blue-white-red (default True); False: min-max in the jet colours
    scale   flow: the tensor's unit in feature cells (default 1)
    note    one line under the title (what the values mean)

Drawing uses torchvision (`make_grid`, `draw_bounding_boxes`, `draw_keypoints`) and tensor ops; the colour maps
are piecewise-linear tables written here. Text: torchvision has no text drawing, so labels are rasterised with
Pillow's built-in default font (`ImageFont.load_default`), and the PNG is written by Pillow (torchvision 0.29
deprecates `write_png`): Pillow is a dependency of torchvision itself (`pillow` in its install requirements), so this
adds nothing to requirements.txt; no font file is read from disk.
"""
import json
import math
import os
import re
import sys

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torchvision.transforms.functional import pil_to_tensor
from torchvision.utils import draw_bounding_boxes, draw_keypoints, make_grid

LABEL_W = 200        # the left column with each row's title
PAD = 2              # between frames (make_grid's padding)
MIN_SIDE = 112       # frames are enlarged by an integer factor to at least this many pixels
MAX_FRAMES = 16      # frames shown per sheet (evenly spaced when the clip has more)
FONT_SIZE = 12
LINE_H = 15
WHITE = (255, 255, 255)
OBJECT_COLOURS = [(255, 64, 64), (64, 220, 64), (64, 128, 255), (255, 200, 0), (255, 64, 255), (0, 220, 220),
                  (255, 140, 0), (160, 100, 255)]
KINDS = ("heat", "objects", "matrix", "spatial", "temporal", "flow")

# colour tables: (position in [0, 1], (r, g, b)), linearly interpolated
JET = [(0.0, (0, 0, 128)), (0.125, (0, 0, 255)), (0.375, (0, 255, 255)), (0.625, (255, 255, 0)),
       (0.875, (255, 0, 0)), (1.0, (128, 0, 0))]
DIVERGING = [(0.0, (40, 70, 200)), (0.5, (255, 255, 255)), (1.0, (200, 30, 30))]


# ---- colour and text ---------------------------------------------------------------------------------------------
def colormap(x, table=JET):
    """x (..., H, W) in [0, 1] -> uint8 (..., 3, H, W) by linear interpolation of `table`."""
    pos = torch.tensor([p for p, _ in table])
    rgb = torch.tensor([c for _, c in table], dtype=torch.float32)           # (S, 3)
    x = x.float().clamp(0, 1)
    i = (torch.bucketize(x, pos, right=True) - 1).clamp(0, len(table) - 2)   # segment index per pixel
    f = ((x - pos[i]) / (pos[i + 1] - pos[i])).unsqueeze(-1)                  # (..., H, W, 1)
    out = rgb[i] * (1 - f) + rgb[i + 1] * f                                    # (..., H, W, 3)
    return out.round().to(torch.uint8).movedim(-1, -3)                        # -> (..., 3, H, W)


def hsv_to_rgb(h, s, v):
    """h, s, v (H, W) in [0, 1] -> uint8 (3, H, W)."""
    i = torch.floor(h * 6) % 6
    f = h * 6 - torch.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = torch.stack([torch.stack(c) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])
    rgb = table.gather(0, i.long()[None, None].expand(1, 3, *h.shape))[0]   # (6,3,H,W) -> (3, H, W)
    return (rgb * 255).round().clamp(0, 255).to(torch.uint8)


_fonts = {}


def font(size=FONT_SIZE):
    if size not in _fonts:
        try:
            _fonts[size] = ImageFont.load_default(size=size)   # Pillow >= 10.1: the embedded scalable font
        except TypeError:
            _fonts[size] = ImageFont.load_default()            # older Pillow: its embedded bitmap font
    return _fonts[size]


def wrap(text, width, size=FONT_SIZE):
    """Lines of `text` that fit `width` pixels (words split at spaces; a word too long is cut)."""
    measure = ImageDraw.Draw(Image.new("L", (1, 1))).textlength
    lines = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}" if line else word
            if measure(trial, font=font(size)) <= width or not line:
                line = trial
            else:
                lines.append(line)
                line = word
            while measure(line, font=font(size)) > width and len(line) > 1:   # a word wider than the column
                cut = max(1, int(len(line) * width / measure(line, font=font(size))))
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return lines


def text_image(lines, width, height=None, size=FONT_SIZE, fg=(0, 0, 0), bg=WHITE):
    """uint8 (3, height, width): the lines in the default font, `LINE_H` apart."""
    height = height or LINE_H * len(lines) + 4
    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    for k, line in enumerate(lines):
        draw.text((4, 2 + k * LINE_H), line, fill=255, font=font(size))
    ink = pil_to_tensor(img).float() / 255                                    # (1, H, W)
    bg, fg = torch.tensor(bg).view(3, 1, 1), torch.tensor(fg).view(3, 1, 1)
    return (bg * (1 - ink) + fg * ink).round().to(torch.uint8)


def blend(frame, colour, alpha):
    """uint8 frame and colour (3, H, W), alpha a number or (H, W) in [0, 1] -> uint8 (3, H, W)."""
    return (frame.float() * (1 - alpha) + colour.float() * alpha).round().to(torch.uint8)


def upsample(x, size, mode="bilinear"):
    """(..., h, w) -> (..., size, size)."""
    lead = x.shape[:-2]
    kw = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(x.reshape(-1, 1, *x.shape[-2:]).float(), size=(size, size), mode=mode, **kw).view(
        *lead, size, size)


def scaled(x, signed=False):
    """(x in [0, 1] for a colour map, 'range' text): min-max over the whole tensor, or symmetric around 0."""
    lo, hi = float(x.min()), float(x.max())
    if signed:
        m = max(abs(lo), abs(hi)) or 1.0
        return (x / m + 1) / 2, f"values {lo:.3g} .. {hi:.3g}, colour -{m:.3g} .. +{m:.3g}"
    span = hi - lo
    return ((x - lo) / span if span > 0 else torch.zeros_like(x)), f"values {lo:.3g} .. {hi:.3g}"


# ---- hooks and Grad-CAM --------------------------------------------------------------------------------------------
def resolve(model, at):
    """[(name, owner, attribute, target)] for spec "Class.attr.path": every module whose class is named `Class`
    (model.named_modules() order, i.e. from the input to the output), then the attribute path; `target` is an
    nn.Module, a bound method, or None where that instance lacks it (a module switched off)."""
    cls, *path = at.split(".")
    out = []
    for name, module in model.named_modules():
        if type(module).__name__ != cls:
            continue
        owner, target = module, module
        for attr in path:
            owner, target = target, getattr(target, attr, None)
            if target is None:
                break
        out.append((".".join([name, *path]), owner, path[-1] if path else None, target))
    return out


def pick(matches, how):
    if how == "all":
        return matches
    if how == "last":
        return matches[-1:]
    return matches[how:how + 1] if -len(matches) <= how < len(matches) else []


class Hooks:
    """Records the maps of `specs` ({title: spec}) during the forward passes run inside the `with` block:
    self.maps[title] = [(module name, tensor or None)], tensors detached on the CPU. Hooks are removed on exit."""

    def __init__(self, model, specs):
        self.model, self.specs, self.maps, self.missing = model, specs, {}, {}
        self._undo = []

    def __enter__(self):
        for title, spec in self.specs.items():
            unknown = set(spec) - {"at", "get", "kind", "layout", "pick", "note", "scale", "signed"}
            if unknown or spec.get("kind") not in KINDS or "at" not in spec:
                raise ValueError(f"VIS_MAPS[{title!r}]: needs 'at' and a kind in {KINDS}; unknown keys {unknown}")
            matches = pick(resolve(self.model, spec["at"]), spec.get("pick", "last"))
            self.maps[title] = []
            if not matches:
                self.missing[title] = f"no {spec['at'].split('.')[0]} in this model"
            for name, owner, attr, target in matches:
                slot = len(self.maps[title])
                self.maps[title].append((name, None))
                if target is None:
                    continue
                record = self._recorder(title, slot, name, spec.get("get"))
                if isinstance(target, torch.nn.Module):
                    self._undo.append(target.register_forward_hook(record).remove)
                elif callable(target):
                    self._wrap(owner, attr, target, record)
                else:
                    raise ValueError(f"VIS_MAPS[{title!r}]: {name} is neither a module nor a method")
        return self

    def _recorder(self, title, slot, name, get):
        def record(module, inputs, output):
            with torch.no_grad():
                value = get(module, inputs, output) if get is not None else output
            self.maps[title][slot] = (name, None if value is None else value.detach().float().cpu())
        return record

    def _wrap(self, owner, attr, method, record):
        had_own = attr in vars(owner)

        def wrapper(*args, **kwargs):
            out = method(*args, **kwargs)
            record(owner, args, out)
            return out

        object.__setattr__(owner, attr, wrapper)   # this instance only; the class keeps its method
        if had_own:
            self._undo.append(lambda: object.__setattr__(owner, attr, method))
        else:
            self._undo.append(lambda: object.__delattr__(owner, attr))

    def __exit__(self, *exc):
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


def module_at(model, path):
    """The submodule at dotted `path` ("backbone.layer4")."""
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise ValueError(f"Grad-CAM layer {path!r} is not a submodule of {type(model).__name__}") from None


def frames_first(x, batch, layout):
    """A feature tensor of a batch of `batch` clips in `layout` -> (B, T', C, h, w).
    "BT": (B*T', C, h, w) (2D backbones); "BCT": (B, C, T', h, w) (3D nets, EAN's 3D inserts);
    "BTC": (B, T', C, h, w)."""
    if layout == "BT":
        return x.unflatten(0, (batch, -1))                                    # (B*T',C,h,w) -> (B,T',C,h,w)
    if layout == "BCT":
        return x.transpose(1, 2)                                              # (B,C,T',h,w) -> (B,T',C,h,w)
    if layout == "BTC":
        return x
    raise ValueError(f"layout {layout!r}: 'BT', 'BCT' or 'BTC'")


def grad_cam(forward, model, layer, clips, targets=None, layout="BT"):
    """Grad-CAM (Selvaraju et al., ICCV 2017) of the output A of `layer` (a dotted submodule path) for one class
    per clip: weights alpha = d y_class / d A averaged over each frame's h x w (per frame and channel, as mmaction2's
    video Grad-CAM), map = ReLU(sum_c alpha_c A_c). `forward(clips) -> logits (B, K)` runs the model; `targets`:
    (B,) classes, or a list of such tensors for several maps from one forward (default: the top-1 class).
    Returns (logits (B, K) detached, [maps (B, T', h, w) on the CPU, one per target tensor])."""
    store = {}

    def keep(module, inputs, output):
        store["A"] = output[0] if isinstance(output, (tuple, list)) else output

    handle = module_at(model, layer).register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = forward(clips)
    finally:
        handle.remove()
    if "A" not in store:
        raise RuntimeError(f"Grad-CAM: the forward pass never ran {layer}")
    A = store["A"]
    if not A.requires_grad:
        raise RuntimeError(f"Grad-CAM: the output of {layer} does not require grad (frozen weights?)")
    B = logits.shape[0]
    single = targets is None or torch.is_tensor(targets)
    targets = [logits.argmax(1) if targets is None else targets] if single else list(targets)
    maps = []
    for k, target in enumerate(targets):
        score = logits.gather(1, target.view(B, 1).to(logits.device)).sum()  # clips are independent in eval mode
        (grad,) = torch.autograd.grad(score, A, retain_graph=k < len(targets) - 1, allow_unused=True)
        if grad is None:
            raise RuntimeError(f"Grad-CAM: the class score does not depend on the output of {layer}")
        a, g = frames_first(A.detach().float(), B, layout), frames_first(grad.float(), B, layout)  # (B,T',C,h,w)
        alpha = g.mean((3, 4), keepdim=True)                                  # (B, T', C, 1, 1)
        maps.append(F.relu((alpha * a).sum(2)).cpu())                         # (B, T', h, w)
    return logits.detach(), maps


# ---- one sheet -----------------------------------------------------------------------------------------------------
class Sheet:
    """Rows of a sheet: each row is a label column (LABEL_W) and a content block of the sheet's content width."""

    def __init__(self, frames, side, index, n_clip):
        self.frames = frames                                                  # uint8 (n, 3, S, S), enlarged
        self.n, self.side, self.index, self.n_clip = len(frames), side, index, n_clip  # shown: clip[index]
        self.width = self.n * (side + PAD) + PAD                              # make_grid's width for n frames
        self.rows, self.panels = [], []

    def add(self, title, content, kind, note="", module=None, drawn=True, value_range=None):
        """A row: the title and note in the label column, `content` (3, h, width) beside it; the taller sets the
        height (the other is padded with white)."""
        lines = wrap(title, LABEL_W - 8) + wrap(note, LABEL_W - 8)
        height = max(content.shape[1], LINE_H * len(lines) + 4)
        content = F.pad(content, (0, 0, 0, height - content.shape[1]), value=255)
        self.rows.append(torch.cat([text_image(lines, LABEL_W, height), content], 2))
        self.panels.append({"title": title, "kind": kind, "module": module, "drawn": drawn, "range": value_range,
                            "height": height})

    def grid(self, images):
        return make_grid(images, nrow=self.n, padding=PAD, pad_value=255)

    def text_row(self, lines):
        lines = [x for line in lines for x in wrap(line, self.width - 8)]
        return text_image(lines, self.width)

    def panels_row(self, images, captions):
        """Square panels side by side (wrapped onto more lines when they do not fit), a caption above each."""
        side = images[0].shape[-1]
        per_line = max(1, (self.width - PAD) // (side + PAD))
        cap_lines = max(len(wrap(c, side - 8)) for c in captions)
        cells = [torch.cat([text_image(wrap(c, side - 8), side, cap_lines * LINE_H + 4), img], 1)
                 for img, c in zip(images, captions)]
        blank = torch.full_like(cells[0], 255)
        lines = []
        for i in range(0, len(cells), per_line):
            line = cells[i:i + per_line] + [blank] * (per_line - len(cells[i:i + per_line]))
            line = make_grid(torch.stack(line), nrow=per_line, padding=PAD, pad_value=255)
            lines.append(F.pad(line, (0, self.width - line.shape[2]), value=255))
        return torch.cat(lines, 1)

    def image(self, header):
        body = torch.cat(self.rows, 1)
        return torch.cat([header, body], 1)


def time_index(index, steps, n_clip):
    """The feature time step (of `steps`) of each shown frame (`index`: positions in the clip of `n_clip` frames)."""
    return [min(steps - 1, i * steps // n_clip) for i in index]


def heat_tiles(sheet, maps, alpha=0.5):
    """maps (T', h, w) -> uint8 (n, 3, S, S) overlays on the shown frames, one colour scale for the clip; and the
    range text."""
    x, rng = scaled(maps)
    heat = colormap(upsample(x[time_index(sheet.index, maps.shape[0], sheet.n_clip)], sheet.side))  # (n,3,S,S)
    return torch.stack([blend(f, h, alpha) for f, h in zip(sheet.frames, heat)]), rng


def region_box(o, side):
    """The box (x0, y0, x1, y1) in display pixels of the cells of o (h, w) at or above half its maximum."""
    h, w = o.shape
    ys, xs = torch.nonzero(o >= 0.5 * o.max(), as_tuple=True)
    return torch.tensor([[xs.min() * side / w, ys.min() * side / h, (xs.max() + 1) * side / w,
                          (ys.max() + 1) * side / h]]).clamp(0, side - 1)


def flow_images(sheet, flow, scale):
    """flow (T', 2, h, w) in cells/scale -> colour-coded displacement over the frames, with arrows from cell centres."""
    t = time_index(sheet.index, flow.shape[0], sheet.n_clip)
    flow = flow[t] * scale                                                    # (n, 2, h, w) in feature cells
    mag = flow.norm(dim=1)                                                    # (n, h, w)
    top = float(mag.max()) or 1.0
    hue = (torch.atan2(flow[:, 1], flow[:, 0]) / (2 * math.pi)) % 1.0
    out = []
    h, w = flow.shape[-2:]
    cell = sheet.side / w
    step = max(1, math.ceil(max(h, w) / 14))                                  # at most ~14 x 14 arrows
    ys, xs = torch.meshgrid(torch.arange(0, h, step), torch.arange(0, w, step), indexing="ij")
    for f, fl, hu, m in zip(sheet.frames, flow, hue, mag):
        colour = hsv_to_rgb(upsample(hu, sheet.side, "nearest"), torch.ones(sheet.side, sheet.side),
                            upsample(m / top, sheet.side))
        img = blend(f, colour, 0.6)
        start = torch.stack([(xs + 0.5) * cell, (ys + 0.5) * cell], -1).reshape(-1, 2)
        d = fl[:, ys, xs].permute(1, 2, 0).reshape(-1, 2) / top * cell * step   # the longest arrow = one arrow cell
        arrows = torch.stack([start, start + d], 1)                           # (k, 2 points, 2)
        out.append(draw_keypoints(img, arrows, connectivity=[(0, 1)], colors=WHITE, radius=1, width=1))
    return sheet.grid(torch.stack(out)), f"longest displacement {top:.3g} cells"


def draw_map(sheet, title, spec, entries, b, batch):
    """The row(s) of `sheet` for the recorded `entries` [(module name, tensor)] of a spec; `b`: the video's index in
    the batch of `batch` clips."""
    kind, note = spec["kind"], spec.get("note", "")
    got = [(name, x) for name, x in entries if x is not None]
    if not got:
        reason = ("; ".join(f"{name}: not computed" for name, _ in entries)
                  or f"no {spec['at'].split('.')[0]} in this model")
        sheet.add(title, sheet.text_row([f"not drawn: {reason}"]), kind, note, drawn=False)
        return
    names = ", ".join(name for name, _ in got)
    if kind in ("heat", "objects", "flow"):
        name, x = got[-1]
        x = frames_first(x, batch, spec.get("layout", "BT"))[b]                # (T', C, h, w)
        if kind == "heat":
            tiles, rng = heat_tiles(sheet, x.mean(1))
            sheet.add(title, sheet.grid(tiles), kind, f"{note} [{name}] {rng}", name, value_range=rng)
        elif kind == "flow":
            content, rng = flow_images(sheet, x[:, :2], spec.get("scale", 1.0))
            sheet.add(title, content, kind, f"{note} [{name}] {rng}", name, value_range=rng)
        else:
            for n in range(x.shape[1]):
                o = x[:, n]                                                   # (T', h, w): object n
                tiles, rng = heat_tiles(sheet, o)
                colour = OBJECT_COLOURS[n % len(OBJECT_COLOURS)]
                tiles = [draw_bounding_boxes(tile, region_box(o[t], sheet.side), colors=colour, width=2)
                         for tile, t in zip(tiles, time_index(sheet.index, o.shape[0], sheet.n_clip))]
                sheet.add(f"{title}: n = {n + 1}", sheet.grid(torch.stack(tiles)), kind,
                          f"{note} [{name}] {rng}", name, value_range=rng)
        return
    if kind == "temporal":
        name, x = got[-1]
        x = x[b]                                                              # (C, T')
        unit, rng = scaled(x)
        t = time_index(sheet.index, x.shape[1], sheet.n_clip)
        rows = max(1, min(x.shape[0], 48))
        strip = F.interpolate(unit[None, None], size=(rows, x.shape[1]), mode="area")[0, 0]  # (rows, T')
        tiles = [colormap(strip[:, k:k + 1].expand(rows, sheet.side)) for k in t]  # (3, rows, S) per frame
        means = [f"mean {float(x[:, k].mean()):.3f}" for k in t]
        block = torch.cat([sheet.grid(torch.stack(tiles)),
                           make_grid(torch.stack([text_image([m], sheet.side, LINE_H + 2) for m in means]),
                                     nrow=sheet.n, padding=PAD, pad_value=255)], 1)
        sheet.add(title, block, kind, f"{note} [{name}] {rng}; {x.shape[0]} channels (rows) x frames", name,
                  value_range=rng)
        return
    side = min(max(sheet.side, 96), 160)
    images, captions, ranges = [], [], []
    for name, x in got:
        x = x[b]
        if kind == "matrix":                                                  # (R, C)
            signed = spec.get("signed", True)                                  # around 0 (DIVERGING) or min-max (JET)
            unit, rng = scaled(x, signed)
            img = colormap(F.interpolate(unit[None, None], size=(side, side), mode="nearest")[0, 0],
                           DIVERGING if signed else JET)
            captions.append(f"{name} ({x.shape[0]}x{x.shape[1]}) {rng}")
        else:                                                                 # spatial: (h, w) over the middle frame
            unit, rng = scaled(x)
            mid = sheet.frames[sheet.n // 2]
            frame = F.interpolate(mid[None].float(), size=(side, side), mode="bilinear", align_corners=False)[0]
            img = blend(frame.round().to(torch.uint8), colormap(upsample(unit, side)), 0.5)
            captions.append(f"{name} ({x.shape[0]}x{x.shape[1]}) {rng}")
        images.append(img)
        ranges.append(rng)
    sheet.add(title, sheet.panels_row(images, captions), kind, note, names, value_range="; ".join(ranges))


def draw_sheet(clip, cam, maps, specs, b, batch, title_lines, cam_title, shown=None):
    """The sheet of one video as uint8 (3, H, W) and its panels [{title, kind, module, drawn, range, height}].
    clip: uint8 (N, 3, H, W) as the model saw it; cam (T', h, w); maps: Hooks.maps; shown: clip -> the frames to
    show (default: all), e.g. EAN's RGB frame of each 5-frame snippet."""
    frames = shown(clip) if shown is not None else clip                       # (T, 3, H, W)
    n_clip = len(frames)
    index = sorted(set(torch.linspace(0, n_clip - 1, min(n_clip, MAX_FRAMES)).round().long().tolist()))
    size = frames.shape[-1]
    factor = max(1, math.ceil(MIN_SIDE / size))
    big = F.interpolate(frames[index].float(), scale_factor=factor, mode="nearest").round().to(torch.uint8)
    sheet = Sheet(big, size * factor, index, n_clip)
    shown_note = f"{len(index)} of {n_clip}" if len(index) < n_clip else f"{n_clip}"
    sheet.add("frames", sheet.grid(sheet.frames), "frames", f"{shown_note} frames, as the model saw them "
              f"({frames.shape[-2]}x{size} px, shown x{factor})")
    tiles, rng = heat_tiles(sheet, cam)
    if float(cam.max()) == 0:
        rng += " (zero everywhere: no positive evidence)"
    sheet.add(cam_title[0], sheet.grid(tiles), "gradcam", f"{cam_title[1]} {rng}", cam_title[2], value_range=rng)
    for title, spec in specs.items():
        draw_map(sheet, title, spec, maps.get(title, []), b, batch)
    header = text_image([x for line in title_lines for x in wrap(line, LABEL_W + sheet.width - 8)],
                        LABEL_W + sheet.width)
    return sheet.image(header), [{"title": "header", "kind": "header", "module": None, "drawn": True,
                                  "range": None, "height": header.shape[1]}] + sheet.panels


# ---- --predict --visualize -----------------------------------------------------------------------------------------
def save_png(image, path):
    """uint8 (3, H, W) -> a PNG file, written by Pillow (torchvision 0.29 deprecates its write_png)."""
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)                   # (3,H,W) -> (H,W,3)


def sheet_name(index, path):
    stem = re.sub(r"[^\w.-]+", "_", os.path.splitext(os.path.basename(os.path.normpath(path)))[0]) or "video"
    return f"{index:04d}_{stem}.png"


def write_sheets(model, forward, loader, records, classes, folder, specs, cam_layer, cam_layout="BT", preds=None,
                 protocol="", top_k=5, shown=None, multi_label=False, device=None):
    """One PNG per readable video of `loader` (common.data.collate_eval batches) in `folder`: the first view of each
    video (clip 1, crop 1) through `forward(uint8 clips) -> logits` with Grad-CAM of `cam_layer` and the hooks of
    `specs`. The classes listed are those of `preds` (the printed predictions, averaged over all views) where given,
    else of this view; Grad-CAM explains the top-1 of that list. Also writes index.json: per sheet its video and
    panels ({title, kind, module, drawn, range, height}). Returns [(png path, video path, panels)]."""
    os.makedirs(folder, exist_ok=True)
    device = device or next(model.parameters()).device
    scores = {}
    if preds is not None:
        s, _, ids = preds.gather()
        scores = dict(zip(ids.tolist(), s))
    kind = "sigmoid score" if multi_label else "probability"
    model.eval()
    written = []
    for clips, views, targets, ids, bad in loader:
        if clips is None:
            continue
        first = torch.cumsum(views, 0) - views                                # the first view of each video
        x = clips[first].to(device)
        known = all(i in scores for i in ids.tolist())
        target = torch.stack([scores[i].argmax() for i in ids.tolist()]) if known else None
        with Hooks(model, specs) as hooks:                                   # one forward: maps, logits, Grad-CAM
            logits, (cam,) = grad_cam(forward, model, cam_layer, x, target, cam_layout)
        probs = [scores[i] if known else (logits[b].sigmoid() if multi_label else logits[b].softmax(-1)).cpu()
                 for b, i in enumerate(ids.tolist())]
        target = torch.stack([p.argmax() for p in probs])
        for b, i in enumerate(ids.tolist()):
            record = records[i]
            p, k = probs[b].topk(min(top_k, len(classes)))
            lines = [record.path, f"{protocol}; maps from view 1 (clip 1, crop 1)" if protocol else "maps from view 1"]
            if isinstance(record.label, int) and record.label >= 0:
                lines.append(f"label: {classes[record.label]}")
            lines += [f"{r + 1}. {classes[c]}  {kind} {float(v):.4f}" for r, (v, c) in enumerate(zip(p, k.tolist()))]
            cam_title = (f"Grad-CAM: {classes[int(target[b])]}", f"ReLU(sum_c alpha_c A_c) of {cam_layer}, for the "
                         f"top-1 class", cam_layer)
            image, panels = draw_sheet(clips[first[b]], cam[b], hooks.maps, specs, b, len(x), lines, cam_title, shown)
            path = os.path.join(folder, sheet_name(i, record.path))
            # Pillow's PNG writer (torchvision 0.29 deprecates write_png): the same pixels
            save_png(image, path)
            written.append((path, record.path, panels))
    with open(os.path.join(folder, "index.json"), "w") as f:  # what each sheet shows, for people and tests
        json.dump([{"png": os.path.basename(path), "video": video, "panels": panels}
                   for path, video, panels in written], f, indent=1)
    missing = sorted({p["title"] for _, _, panels in written for p in panels if not p["drawn"]})
    print(f"visualize: {len(written)} sheet(s) in {folder}" + (f"; not drawn: {', '.join(missing)}"
                                                                 if missing else ""), file=sys.stderr)
    return written


# ---- --predict VIDEO --window S --visualize DIR: a timeline per video --------------------------------------------
TIMELINE_W, CURVE_H, THUMB_H, MAX_THUMBS = 960, 220, 72, 12


def write_timeline(rows, path, classes, folder, top_k=5, multi_label=False):
    """One PNG per video in `folder`: the probabilities of the top classes (the `top_k` with the highest score in
    any window; one colour each, named in the legend) over the windows' centre times, the time axis in seconds,
    and a row of thumbnails (the middle sampled frame of up to 12 evenly chosen windows, with their time spans). `rows`: the
    windows in time order, {"start", "end", "probs" (K,), "thumb" uint8 (3, H, W)}. Returns the PNG's path."""
    os.makedirs(folder, exist_ok=True)
    probs = torch.stack([r["probs"] for r in rows])                              # (windows, K)
    top = probs.amax(0).topk(min(top_k, len(classes))).indices.tolist()
    t0, t1 = rows[0]["start"], max(r["end"] for r in rows)
    left, right, top_pad = 48, 16, 8
    width = TIMELINE_W
    x_of = lambda t: left + (t - t0) / max(t1 - t0, 1e-9) * (width - left - right)
    y_of = lambda p: top_pad + (1 - p) * (CURVE_H - top_pad - 20)
    canvas = Image.new("RGB", (width, CURVE_H), WHITE)
    draw = ImageDraw.Draw(canvas)
    for p in (0, 0.5, 1):                                                        # the score axis
        draw.line([(left, y_of(p)), (width - right, y_of(p))], fill=(225, 225, 225))
        draw.text((4, y_of(p) - 7), f"{p:.1f}", fill=(0, 0, 0), font=font())
    step = _nice_step((t1 - t0) / 8)
    t = math.ceil(t0 / step) * step
    while t <= t1 + 1e-9:                                                        # the time axis, seconds
        draw.line([(x_of(t), y_of(0)), (x_of(t), y_of(0) + 4)], fill=(0, 0, 0))
        draw.text((x_of(t) - 10, y_of(0) + 5), f"{t:g} s", fill=(0, 0, 0), font=font())
        t += step
    centres = [(r["start"] + r["end"]) / 2 for r in rows]
    for k, c in enumerate(top):
        colour = OBJECT_COLOURS[k % len(OBJECT_COLOURS)]
        points = [(x_of(x), y_of(float(p))) for x, p in zip(centres, probs[:, c])]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=colour)
    kind = "sigmoid score" if multi_label else "probability"
    legend = [f"{k + 1}. {classes[c]} (max {float(probs[:, c].max()):.2f})" for k, c in enumerate(top)]
    legend_img = Image.new("RGB", (width, LINE_H * len(legend) + 6), WHITE)
    ld = ImageDraw.Draw(legend_img)
    for k, line in enumerate(legend):
        ld.rectangle([left, 5 + k * LINE_H, left + 10, 15 + k * LINE_H], fill=OBJECT_COLOURS[k % len(OBJECT_COLOURS)])
        ld.text((left + 16, 3 + k * LINE_H), line, fill=(0, 0, 0), font=font())
    parts = [text_image(wrap(f"{path}: {len(rows)} windows, {kind} of the top {len(top)} classes over time "
                             f"(window centres)", width - 8), width),
             pil_to_tensor(canvas), pil_to_tensor(legend_img)]
    with_thumbs = [r for r in rows if r.get("thumb") is not None]
    if with_thumbs:  # evenly chosen windows, side by side, each with its time span under it
        n = min(MAX_THUMBS, len(with_thumbs))
        chosen = [with_thumbs[round(j * (len(with_thumbs) - 1) / max(n - 1, 1))] for j in range(n)]
        slot = (width - left - right) // n
        strip = Image.new("RGB", (width, THUMB_H + LINE_H + 6), WHITE)
        sd = ImageDraw.Draw(strip)
        for j, r in enumerate(chosen):
            h, w = r["thumb"].shape[-2:]
            size = (THUMB_H, max(1, min(slot - 4, round(w * THUMB_H / h))))
            thumb = F.interpolate(r["thumb"][None].float(), size=size, mode="bilinear", antialias=True,
                                  align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
            x = left + j * slot
            strip.paste(Image.fromarray(thumb.permute(1, 2, 0).numpy()), (x, 2))
            sd.text((x, THUMB_H + 4), f"{r['start']:.1f}-{r['end']:.1f} s", fill=(0, 0, 0), font=font())
        parts.append(pil_to_tensor(strip))
    image = torch.cat(parts, 1)
    out = os.path.join(folder, "timeline_" + sheet_name(0, path)[5:])
    save_png(image, out)
    print(f"visualize: timeline of {path} in {out}", file=sys.stderr)
    return out


def _nice_step(x):
    """1, 2 or 5 times a power of ten, at least x (axis ticks)."""
    p = 10 ** math.floor(math.log10(max(x, 1e-9)))
    return next(m * p for m in (1, 2, 5, 10) if m * p >= x)
