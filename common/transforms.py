"""Clip transforms on uint8 tensors (N, C, H, W) with one crop and one flip per clip (all frames alike).

Train: TSN multi-scale crop (scales 1, .875, .75, .66; crop sides from the short side, |i-j| <= 1 aspect pairs,
13 fixed offsets; notes/tsm-family-reference.md Sec. 1.4) or a random square crop of 0.5-1 x the short side
(ST-MANet), resize to `size`, horizontal flip with an optional label-swap map (Something-Something direction
classes). Eval: short side to `scale_size` (or a fixed resize), then 1 centre / 3 (along the long side) / 10
(5 + flips) crops,
returned as views (V, N, C, H, W). Normalisation happens on the device (`normalize`).
"""
import torch
import torchvision.transforms.v2.functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def parse_label_map(text):
    """'86:87,87:86' -> {86: 87, 87: 86}; '' -> {}. Pairs by index are the user's to give: the scripts take the
    Something-Something direction pairs from dataset.json, where common.prepare found them by class name."""
    if not text:
        return {}
    try:
        pairs = [p.split(":") for p in text.split(",")]
        return {int(a): int(b) for a, b in pairs}
    except ValueError:
        raise ValueError(f"--flip-labels: expected 'A:B,B:A,...' (class indices), got {text!r}") from None


def parse_size(text):
    """'240x320' -> (240, 320) (height x width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"expected HxW such as 240x320, got {text!r}") from None
    return h, w


def multiscale_crop_box(height, width, size, rng, scales=(1, 0.875, 0.75, 0.66), max_distort=1):
    """TSN GroupMultiScaleCrop (fix_crop, more_fix_crop): returns (top, left, crop_h, crop_w)."""
    base = min(height, width)
    sides = [size if abs(int(base * s) - size) < 3 else int(base * s) for s in scales]
    pairs = [(h, w) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= max_distort]
    ch, cw = pairs[rng.randint(len(pairs))]
    ch, cw = min(ch, height), min(cw, width)
    hs, ws = (height - ch) // 4, (width - cw) // 4
    offsets = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2),            # corners and centre (in quarter steps)
               (2, 0), (2, 4), (0, 2), (4, 2),                    # edge centres
               (1, 1), (1, 3), (3, 1), (3, 3)]                    # quarter points
    oy, ox = offsets[rng.randint(len(offsets))]
    return oy * hs, ox * ws, ch, cw


def random_side_crop_box(height, width, rng, min_side=0.5, max_side=1.0):
    """A square of side U(min_side, max_side) x the short side at a random position (ST-MANet Sec. 4.1)."""
    side = max(1, int(min(height, width) * rng.uniform(min_side, max_side)))
    return rng.randint(height - side + 1), rng.randint(width - side + 1), side, side


class TrainTransform:
    def __init__(self, size, crop="multiscale", flip=True, flip_labels=None):
        self.size, self.crop, self.flip, self.flip_labels = size, crop, flip, flip_labels or {}

    def __call__(self, frames, label, rng):
        _, _, h, w = frames.shape
        if self.crop == "multiscale":
            box = multiscale_crop_box(h, w, self.size, rng)
        else:
            box = random_side_crop_box(h, w, rng)
        frames = TF.resized_crop(frames, *box, [self.size, self.size], antialias=True)
        if self.flip and rng.rand() < 0.5:
            frames = frames.flip(-1)
            if not isinstance(label, tuple):
                label = self.flip_labels.get(label, label)
        return frames, label


class EvalTransform:
    """Short side -> `scale_size` (or every frame -> `resize` (H, W), aspect not kept), then `crops` (1, 3 or 10)
    views of size x size. Input (K*N, C, H, W) holding K clips of N frames; output (K*crops, N, C, size, size),
    clips major."""

    def __init__(self, size, scale_size=None, crops=1, frames_per_clip=None, resize=None):
        if crops not in (1, 3, 10):
            raise ValueError(f"--test-crops must be 1, 3 or 10, got {crops}")
        self.size, self.crops, self.frames_per_clip, self.resize = size, crops, frames_per_clip, resize
        self.scale_size = scale_size or size * 256 // 224

    @classmethod
    def from_args(cls, args, frames_per_clip):
        """The test protocol of the flags: crops of --input-size from the short side at 256/224 of it (TSN);
        --test-size S: crops of S from the short side at S (full-resolution testing, TSM/TDN/EAN Table 2);
        --test-resize HxW: every frame resized to H x W first (EAN's release), crops of --test-size or
        --input-size."""
        resize = parse_size(args.test_resize) if args.test_resize else None
        size = args.test_size or args.input_size
        return cls(size, size if args.test_size else None, args.test_crops, frames_per_clip, resize)

    def describe(self):
        resized = f"resize {self.resize[0]}x{self.resize[1]}" if self.resize else f"short side {self.scale_size}"
        return f"{resized}, {self.crops} crop{'s' if self.crops > 1 else ''} of {self.size}"

    def __call__(self, frames, label, rng=None):
        if self.resize:
            frames = TF.resize(frames, list(self.resize), antialias=True)
        else:
            frames = TF.resize(frames, self.scale_size, antialias=True)
        _, _, h, w = frames.shape
        s = self.size
        if self.crops == 1:
            views = [TF.center_crop(frames, [s, s])]
        elif self.crops == 3:  # left/centre/right along the long side (TSM GroupFullResSample)
            if w >= h:
                views = [TF.crop(frames, (h - s) // 2, x, s, s) for x in (0, (w - s) // 2, w - s)]
            else:
                views = [TF.crop(frames, y, (w - s) // 2, s, s) for y in (0, (h - s) // 2, h - s)]
        else:  # 4 corners + centre, and their flips (TSM GroupOverSample)
            five = [TF.crop(frames, y, x, s, s) for y, x in ((0, 0), (0, w - s), (h - s, 0), (h - s, w - s))]
            five.append(TF.center_crop(frames, [s, s]))
            views = five + [v.flip(-1) for v in five]
        n = self.frames_per_clip or frames.shape[0]
        views = torch.stack(views)                                 # (crops, K*N, C, s, s)
        views = views.unflatten(1, (-1, n)).transpose(0, 1)        # -> (K, crops, N, C, s, s)
        return views.flatten(0, 1), label                          # -> (K*crops, N, C, s, s)


def normalize(clip, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """uint8 (..., C, H, W) on the device -> float, ImageNet-normalised."""
    mean = torch.tensor(mean, device=clip.device).view(3, 1, 1)
    std = torch.tensor(std, device=clip.device).view(3, 1, 1)
    return (clip.float() / 255 - mean) / std
