"""Reading exact frames from video files (PyAV) and JPEG frame folders, as uint8 tensors (T, C, H, W).

Video files: one demux pass (no decoding, a few ms) lists every packet's pts in file (decode) order, which gives
the true frame count (the header is not trusted: WebM reports 0, AVI headers can be off), the keyframe positions
and which packet holds which display frame (B-frames: packets come in decode order, frames in display order).
The packets of that pass stay in memory (with a cached index the file is demuxed again) and are fed one by one
to a single-threaded decoder (`plan_runs`). Nothing seeks by timestamp, so no container's seek quirks matter
(AVI seeks by packet count and could land past the first keyframe of a stream with B-frames):
- decoding starts at the keyframe before a wanted frame and jumps to a later keyframe only when the next wanted
  frame lies past a keyframe it has not reached; packets between are not decoded at all;
- a packet whose frame is not wanted is decoded with `skip_frame = "NONREF"`: the decoder drops it when the
  standard forbids other frames to refer to it (H.264 non-reference pictures, MPEG-1/2/4 B-frames), so only
  reference frames and wanted frames are decoded, and the frames are exactly those of a full decode;
- after the packet of a run's last wanted frame the decoder is drained instead of fed further packets;
- only kept frames are converted to RGB, with one single-threaded converter per video.
Measured with `python -m common.bench_decode` (README "Performance").

Every failure (missing, zero-length, truncated or corrupt file, fewer frames than promised) raises `BadVideo`
with the path, so the dataset can substitute another sample and count it (CONVENTIONS.md, "Bad input").
"""
import bisect
import os

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from torchvision.io import ImageReadMode, decode_jpeg, read_file

# Decoders whose "NONREF" skip drops only frames that the standard forbids other frames to reference: H.264
# pictures with nal_ref_idc = 0 and MPEG-1/2/4 Part 2 B-frames. Others (HEVC's sub-layer non-reference pictures
# may be referenced from higher temporal layers; VP8/VP9 decide by refresh flags) decode every frame as before.
EXACT_NONREF_SKIP = {"h264", "mpeg4", "mpeg1video", "mpeg2video"}
KEEP_PACKET_BYTES = 64 << 20  # keep the scanned packets of streams up to this size; larger ones are re-read


class BadVideo(Exception):
    """A sample that cannot be read; the message names the path and the reason."""


class VideoIndex:
    """Display-order frame timestamps, keyframe positions and the packets' decode order, from one demux pass."""

    def __init__(self, decode_pts, key_packets=()):
        """decode_pts: the packets' pts in file (decode) order; key_packets: positions of keyframe packets in it."""
        rank = np.argsort(np.asarray(decode_pts, dtype=np.int64), kind="stable")
        self.decode_rank = rank.astype(np.int32)  # decode position of display frame i (4 bytes a frame: cached)
        self.pts = [decode_pts[k] for k in rank.tolist()]  # sorted presentation timestamps, one per frame
        self.position = {p: i for i, p in enumerate(self.pts)}
        display = np.empty(len(rank), dtype=np.int64)
        display[rank] = np.arange(len(rank))               # display index of the k-th packet
        self.keyframes = sorted({0} | {int(display[k]) for k in key_packets})  # frame indices; 0 always included

    def __len__(self):
        return len(self.pts)

    def keyframe_before(self, index):
        return self.keyframes[bisect.bisect_right(self.keyframes, index) - 1]

    @classmethod
    def scan(cls, container, stream):
        return _scan(container, stream, keep_bytes=0)[0]


def _scan(container, stream, keep_bytes):
    """(VideoIndex or None when a packet has no pts, the packets in decode order or None when over keep_bytes)."""
    decode_pts, key_packets, size = [], [], 0
    packets = [] if keep_bytes else None
    for packet in container.demux(stream):
        if packet.size == 0:  # the demuxer's final flush packet
            continue
        if packet.pts is None:  # pts-less streams: see read_video
            return None, None
        if packet.is_keyframe:
            key_packets.append(len(decode_pts))
        decode_pts.append(packet.pts)
        if packets is not None:
            size += packet.size
            packets.append(packet)
            if size > keep_bytes:
                packets = None
    return VideoIndex(decode_pts, key_packets), packets


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
    stream = container.streams.video[0]
    stream.codec_context.thread_count = 1  # one thread per DataLoader worker (README "Performance")
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


def decoded_frame_count(path):
    """Frames a plain sequential decode of the file yields (slow: decodes everything); the reference that the
    demux pass's count is checked against (`python -m common.check`, tests)."""
    container = _open(path)
    try:
        return sum(1 for _ in container.decode(container.streams.video[0]))
    except av.FFmpegError as e:
        raise BadVideo(f"{path}: corrupt stream ({e})") from None
    finally:
        container.close()


def plan_runs(index, wanted):
    """Group sorted display indices `wanted` into decode runs [(first packet, last packet, frames)], packet
    positions in decode order: a run starts at the keyframe before its first frame; the next wanted frame joins
    the run unless its keyframe lies past the run's last packet (then jumping there skips the packets between)."""
    runs = []
    for i in wanted:
        key = index.keyframe_before(i)
        start = int(index.decode_rank[key]) if key else 0  # 0: the file's first packet
        end = int(index.decode_rank[i])
        if runs and start <= runs[-1][1] + 1:
            runs[-1][1] = max(runs[-1][1], end)
            runs[-1][2].append(i)
        else:
            runs.append([start, end, [i]])
    return runs


def read_video(path, indices, index=None):
    """Frames `indices` (0-based, any order, repeats allowed; beyond the end -> clamped to the last frame)
    of a video file as a uint8 tensor (len(indices), 3, H, W). `indices` may be a function of the true frame
    count. `index` may be a cached `VideoIndex`. Returns (frames, index) so callers can cache the index."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        packets = None
        if index is None:
            index, packets = _scan(container, stream, KEEP_PACKET_BYTES)
            if index is not None and packets is None:  # too large to keep: read the file again
                container.close()
                container = _open(path)
                stream = container.streams.video[0]
        if index is None:  # no timestamps to identify frames by: decode forward and count
            if callable(indices):
                container.seek(0)
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
        if packets is None:  # cached index: demux from the start of the file, decode only from the runs' keyframes
            packets = (p for p in container.demux(stream) if p.size)
        source, position = iter(packets), -1  # position: decode order of the last packet taken from `source`
        codec = stream.codec_context
        skip = "NONREF" if codec.name in EXACT_NONREF_SKIP else "DEFAULT"
        kept, rgb = {}, VideoReformatter()
        for first, _, frames in plan_runs(index, sorted(set(indices.tolist()))):
            run_pts = {index.pts[i] for i in frames}
            todo = set(run_pts)
            for packet in source:
                position += 1
                if position < first:  # between runs: not even decoded
                    continue
                wanted = packet.pts in todo
                codec.skip_frame = "DEFAULT" if wanted else skip
                _keep(codec.decode(packet), index, run_pts, kept, rgb)
                todo.discard(packet.pts)
                if not todo:
                    break
            codec.skip_frame = "DEFAULT"
            _keep(codec.decode(None), index, run_pts, kept, rgb)  # drain the frames held back for reordering
            codec.flush_buffers()                                 # ready for the next run's keyframe
            missing = [i for i in frames if i not in kept]
            if missing:
                raise BadVideo(f"{path}: frame {missing[0]} of {n} did not decode (truncated or corrupt)")
        return torch.from_numpy(np.stack([kept[i] for i in indices.tolist()])).permute(0, 3, 1, 2), index
    except av.FFmpegError as e:
        raise BadVideo(f"{path}: corrupt stream ({e})") from None
    finally:
        container.close()


def _keep(decoded, index, run_pts, kept, rgb):
    for frame in decoded:
        if frame.pts in run_pts:
            i = index.position[frame.pts]
            if i not in kept:
                kept[i] = to_rgb(frame, rgb)


def to_rgb(frame, reformatter):
    """frame.to_ndarray(format="rgb24") with one converter per video and one thread: the same pixels, but
    to_ndarray builds a new swscale context with a thread per CPU for every frame (4x slower at 340x256)."""
    return reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()


def _read_sequential(container, stream, indices, path):
    container.seek(0)
    wanted, kept, count, rgb = set(int(i) for i in indices), {}, 0, VideoReformatter()
    last = max(wanted)
    for i, frame in enumerate(container.decode(stream)):
        count = i + 1
        if i in wanted:
            kept[i] = to_rgb(frame, rgb)
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
