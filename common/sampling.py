"""Frame-index sampling, 0-based. Formulas follow the TSN/TSM code (notes/tsm-family-reference.md, Sec. 1.3).

N = frames in the video, T = segments, L = frames per segment (snippet length; 1 for TSN, 5 for EAN's LMC).

- `segment_indices`: TSN sparse sampling. train: a random offset inside each of T equal segments;
  eval: the segment centres (clip k of K shifts all centres by k/K of a segment, so K=2 gives TSM's
  `twice_sample`: centres, then segment starts). Each offset expands to L consecutive frames.
- `dense_indices`: a run of `clip_len` frames at `stride` (ST-MANet: 32 frames at stride 2 = 64 frames).
- `whole_video_starts`: consecutive non-overlapping windows that cover a whole video (ST-MANet's test).
Short videos are padded by repeating frames (never by reading past the end).
"""
import numpy as np


def segment_indices(num_frames, num_segments, snippet=1, train=True, clip=0, num_clips=1, rng=None):
    """TSN sparse sampling; returns `num_segments * snippet` 0-based frame indices in time order.

    train: `avg = (N-L+1)//T`; offsets `arange(T)*avg + randint(avg)`; if avg == 0 sorted random starts
    (N-L+1 > 0) else 0.  eval: `tick = (N-L+1)/T`, offsets `int(tick*(x + f_k))` with f_k = (0.5 + k/K) mod 1
    (TSM's test formula without the N > T+L-1 guard, so a short video repeats frames instead of all-zeros).
    Worked example (notes): N=49, T=8, eval -> [4,10,16,22,28,34,40,46]; clip 1 of 2 -> [0,6,12,...,42].
    """
    n, t, length = int(num_frames), int(num_segments), int(snippet)
    if n < 1:
        raise ValueError("video has no frames")
    span = max(n - length + 1, 1)  # number of valid snippet starts
    if train:
        rng = rng if rng is not None else np.random
        avg = span // t
        if avg > 0:
            starts = np.arange(t) * avg + rng.randint(avg, size=t)
        elif span > t:
            starts = np.sort(rng.randint(span, size=t))
        else:  # fewer starts than segments: spread them evenly, repeating frames
            starts = np.floor(np.arange(t) * span / t).astype(np.int64)
    else:
        tick = span / t
        frac = (0.5 + clip / num_clips) % 1.0
        starts = np.floor(tick * (np.arange(t) + frac)).astype(np.int64)
    idx = starts[:, None] + np.arange(length)[None, :]  # (T, L)
    return np.minimum(idx, n - 1).reshape(-1)


def dense_indices(num_frames, clip_len, stride, train=True, clip=0, num_clips=1, rng=None):
    """`clip_len` frames at `stride` from one window of `clip_len*stride` frames (I3D / ST-MANet style).

    train: a random window start in [0, N - clip_len*stride]; eval: the central window for one clip, else
    `num_clips` starts evenly spaced from the first to the last window (k-th of K). A video shorter than the window loops (index modulo N), as mmaction2's 'loop'.
    """
    n = int(num_frames)
    if n < 1:
        raise ValueError("video has no frames")
    window = clip_len * stride
    last_start = max(n - window, 0)
    if train:
        rng = rng if rng is not None else np.random
        start = rng.randint(last_start + 1)
    elif num_clips == 1:
        start = last_start // 2  # the central window
    else:
        start = int(round(last_start * clip / (num_clips - 1)))  # first ... last window
    return (start + np.arange(clip_len) * stride) % n


def whole_video_starts(num_frames, window):
    """Start frames of consecutive windows that cover the whole video (the last one may loop)."""
    return list(range(0, max(int(num_frames), 1), window)) or [0]
