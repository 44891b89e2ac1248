"""Reading exact frames from video files (PyAV) and JPEG frame folders, as uint8 tensors (T, C, H, W).

Video files: one demux pass (no decoding, a few ms) lists every packet's pts, which gives the true frame count
(the header is not trusted: WebM reports 0, AVI headers can be off) and the keyframe positions. Frames are then
decoded forward, seeking only when the next wanted frame lies past a keyframe the decoder has not reached
(seeking before every segment would rewind to the same keyframe again and again on short clips), stopping after
the last wanted frame, and only kept frames are converted to RGB. Measured trade-offs: notes/ecosystem-reference.md
Sec. 3 and README "Performance".

Every failure (missing, zero-length, truncated or corrupt file, fewer frames than promised) raises `BadVideo`
with the path, so the dataset can substitute another sample and count it (CONVENTIONS.md, "Bad input").
"""
import bisect
import os

import av
import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg, read_file


class BadVideo(Exception):
    """A sample that cannot be read; the message names the path and the reason."""


class VideoIndex:
    """Display-order frame timestamps and keyframe positions of a video stream, from one demux pass."""

    def __init__(self, pts, keyframes):
        self.pts = pts                      # sorted presentation timestamps, one per frame
        self.keyframes = keyframes          # sorted frame indices of keyframes (0 is always included)
        self.position = {p: i for i, p in enumerate(pts)}

    def __len__(self):
        return len(self.pts)

    def keyframe_before(self, index):
        return self.keyframes[bisect.bisect_right(self.keyframes, index) - 1]

    @classmethod
    def scan(cls, container, stream):
        pts, key_pts = [], []
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:  # flush packets; pts-less streams: see read_video
                if packet.size and packet.pts is None:
                    return None
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                key_pts.append(packet.pts)
        pts.sort()
        position = {p: i for i, p in enumerate(pts)}
        keyframes = sorted({0} | {position[p] for p in key_pts})
        return cls(pts, keyframes)


def _open(path):
    if not os.path.isfile(path):
        raise BadVideo(f"{path}: file not found")
    if os.path.getsize(path) == 0:
        raise BadVideo(f"{path}: zero-length file")
    try:
        container = av.open(path)
    except av.FFmpegError as e:
        raise BadVideo(f"{path}: cannot open ({e})") from None
    if not container.streams.video:
        container.close()
        raise BadVideo(f"{path}: no video stream")
    return container


def video_num_frames(path):
    """True number of frames (demuxed packets), not the header's claim."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        index = VideoIndex.scan(container, stream)
        return len(index) if index is not None else sum(1 for _ in container.decode(stream))
    except av.FFmpegError as e:
        raise BadVideo(f"{path}: corrupt stream ({e})") from None
    finally:
        container.close()


def read_video(path, indices, index=None):
    """Frames `indices` (0-based, any order, repeats allowed; beyond the end -> clamped to the last frame)
    of a video file as a uint8 tensor (len(indices), 3, H, W). `indices` may be a function of the true frame
    count. `index` may be a cached `VideoIndex`. Returns (frames, index) so callers can cache the index."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        if index is None:
            index = VideoIndex.scan(container, stream)
        if index is None:  # no timestamps to seek by: decode forward and count
            if callable(indices):
                n = sum(1 for _ in container.decode(stream))
                if n == 0:
                    raise BadVideo(f"{path}: no frames")
                indices = indices(n)
            return _read_sequential(container, stream, indices, path), None
        n = len(index)
        if n == 0:
            raise BadVideo(f"{path}: no frames")
        if callable(indices):
            indices = indices(n)
        indices = np.minimum(np.asarray(indices, dtype=np.int64), n - 1)
        wanted = sorted(set(indices.tolist()))
        wanted_set, kept = set(wanted), {}
        decoded_upto, frames_iter = -1, None   # index of the last frame the decoder produced
        for target in wanted:
            if target in kept:
                continue
            key = index.keyframe_before(target)
            if frames_iter is None or key > decoded_upto + 1:  # the keyframe lies ahead: seek to it
                container.seek(index.pts[key], stream=stream, backward=True, any_frame=False)
                frames_iter = container.decode(stream)
            for frame in frames_iter:
                i = index.position.get(frame.pts)
                if i is None:
                    continue
                decoded_upto = i
                if i in wanted_set and i not in kept:
                    kept[i] = frame.to_ndarray(format="rgb24")
                if i >= target:
                    break
            if target not in kept:
                raise BadVideo(f"{path}: frame {target} of {n} did not decode (truncated or corrupt)")
        return torch.from_numpy(np.stack([kept[i] for i in indices.tolist()])).permute(0, 3, 1, 2), index
    except av.FFmpegError as e:
        raise BadVideo(f"{path}: corrupt stream ({e})") from None
    finally:
        container.close()


def _read_sequential(container, stream, indices, path):
    container.seek(0)
    wanted, kept, count = set(int(i) for i in indices), {}, 0
    last = max(wanted)
    for i, frame in enumerate(container.decode(stream)):
        count = i + 1
        if i in wanted:
            kept[i] = frame.to_ndarray(format="rgb24")
        if i >= last:
            break
    if count == 0:
        raise BadVideo(f"{path}: no frames")
    out = [kept.get(min(int(i), count - 1)) for i in indices]
    if any(f is None for f in out):  # clamp indices past the end to the last decoded frame
        raise BadVideo(f"{path}: fewer frames than requested")
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def read_frame_folder(folder, indices, template="img_{:05d}.jpg", start_index=1):
    """Frames `indices` (0-based) of a JPEG folder (TSN convention: 1-based file names) as uint8 (T, 3, H, W)."""
    cache, out = {}, []
    for i in indices:
        i = int(i)
        if i not in cache:
            path = os.path.join(folder, template.format(i + start_index))
            try:
                cache[i] = decode_jpeg(read_file(path), mode=ImageReadMode.RGB)
            except (RuntimeError, OSError, ValueError) as e:
                raise BadVideo(f"{path}: unreadable frame ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        out.append(cache[i])
    return torch.stack(out)
