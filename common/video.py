"""Reading exact frames from video files (PyAV) and JPEG frame folders, as uint8 tensors (T, C, H, W).

Video files. Frame i is the i-th frame that a plain sequential decode of the file puts out (`container.decode`,
the decoder's output order), whatever the container's timestamps say. One demux pass (no decoding, a few ms)
numbers the packets in file (decode) order and finds out which packet holds which output frame
(`VideoIndex`); the header is never trusted (WebM reports 0 frames, AVI headers can be off). Every packet is
fed to the decoder with pts = its number, so each decoded frame names its packet. How the output order is known:
- "packet" mode, from the timestamps when they can give it (present, unique, and reordered exactly when the
  stream has B-frames: pts == dts on every packet of a stream with B-frames is a muxer bug that leaves decode
  order) or, for MPEG-4 Part 2, from the picture types in the bitstream, whatever the container says (B-VOPs are
  shown at once, I/P/S-VOPs when the next one arrives; a VOP with vop_coded = 0 shows nothing). DivX/XviD
  "packed bitstream" AVIs (a P- and a B-VOP in one packet, then a placeholder N-VOP) are unpacked on the way as
  FFmpeg's decoder reads them (`_unpack`), so each packet holds one VOP as the standard wants;
- "count" mode, when they cannot (pts == dts with B-frames, missing or duplicate pts, frames shown before the
  first keyframe): frames are counted as they leave the decoder, from a keyframe whose position is the number of
  frames before it; nothing is skipped;
- "sequential" mode, counted from the first packet: where a count-mode check fails (below).
Packet mode runs fastest: the packets of the demux pass stay in memory (with a cached index the file is demuxed
again), and nothing seeks by timestamp, so no container's seek quirks matter:
- decoding starts at the keyframe before a wanted frame and jumps to a later keyframe only when the next wanted
  frame lies past a keyframe it has not reached; packets between are not decoded at all;
- a packet whose frame is not wanted is decoded with `skip_frame = "NONREF"`: the decoder drops it when the
  standard forbids other frames to refer to it (H.264 non-reference pictures, MPEG-1/2/4 B-frames), so only
  reference frames and wanted frames are decoded, and the frames are exactly those of a full decode;
- after the packet of a run's last wanted frame the decoder is drained instead of fed further packets;
- only kept frames are converted to RGB, with one single-threaded converter per video.
Every run checks what the decoder put out against the index: frames out of display order switch the index to
count mode, a count that does not add up (a frame dropped or shown before its keyframe) to sequential mode, and
the read is done again. The last packets of the file (truncated or corrupt in many files) are decoded in full
whenever a wanted frame is shown after the last packet's frame; one that yields no frame is left out of the count,
as a full decode leaves it out, and the read is done again.
Measured with `python -m common.bench_decode` (docs/performance.md).

Every failure (missing, zero-length, truncated or corrupt file, a packet in the middle of the file that yields
no frame) raises `BadVideo` with the path, so the dataset can substitute another sample and count it
(CONVENTIONS.md, "Bad input").
"""
import bisect
import itertools
import os
import re
import warnings

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
VOP = b"\x00\x00\x01\xb6"     # MPEG-4 Part 2 start codes: video object plane, video object layer
VOL = re.compile(rb"\x00\x00\x01[\x20-\x2f]")
PACKED = re.compile(rb"DivX\d+(?:Build|b)\d+p")  # the user data that makes FFmpeg's decoder read packed B-frames
MAX_REORDER = 32              # H.264 and HEVC hold back at most 16 frames: more means timestamps that jump


class BadVideo(Exception):
    """A sample that cannot be read; the message names the path and the reason."""


class _Relearn(Exception):
    """A run found the index wrong; `index` is the corrected one and the read is done again with it."""

    def __init__(self, index):
        self.index = index


class _NoFrame(Exception):
    """A packet in the middle of the file yielded no frame (args: its frame index)."""


class VideoIndex:
    """Which packet (decode order) holds each output frame, keyframe positions and the mode (module docstring)."""

    def __init__(self, decode_rank, key_packets, num_packets, mode="packet", unpack=False):
        """decode_rank: the packet of output frame i (packets that yield no frame are absent); key_packets:
        keyframe packets; num_packets: packets demuxed; unpack: MPEG-4 Part 2, whose packets go through `_unpack`."""
        self.decode_rank = np.asarray(decode_rank, dtype=np.int32)  # 4 bytes a frame: cached per video and worker
        self.key_packets, self.num_packets, self.mode, self.unpack = list(key_packets), num_packets, mode, unpack
        display = self.display()
        keys = {int(display[k]) for k in self.key_packets if display[k] >= 0}
        self.keyframes = [0] if mode == "sequential" else sorted({0} | keys)  # frame indices; 0 always included
        lag = self.decode_rank - np.arange(len(self))
        # the end of the file: from the last packet that yields a frame back as far as frames are reordered; a
        # packet there that yields no frame is left out of the count
        self.tail = int(self.decode_rank.max() - lag.max() + lag.min()) if len(lag) else 0
        self.checked = mode != "count"  # count mode: the first keyframe's group not yet decoded in full

    def __len__(self):
        return len(self.decode_rank)

    def display(self):
        """Output position of each packet's frame (-1: the packet yields none)."""
        display = np.full(self.num_packets, -1, dtype=np.int64)
        display[self.decode_rank] = np.arange(len(self))
        return display

    def keyframe_before(self, index):
        return self.keyframes[bisect.bisect_right(self.keyframes, index) - 1]

    def start_packet(self, index):
        """The packet a decode run for frame `index` starts at: its keyframe's, or the file's first."""
        key = self.keyframe_before(index)
        return int(self.decode_rank[key]) if key else 0

    def learn(self, dead=(), mode=None):
        """The index without packets found to yield no frame, or in a slower mode (count and sequential number
        the frames in decode order)."""
        rank = self.decode_rank[~np.isin(self.decode_rank, list(dead))]
        mode = mode or self.mode
        return VideoIndex(rank if mode == "packet" else np.sort(rank), self.key_packets, self.num_packets, mode,
                          self.unpack)

    @classmethod
    def scan(cls, container, stream):
        return _scan(container, stream, keep_bytes=0)[0]


# ---------------------------------------------------------------------------------------------- demux pass
def _demux(container, stream, mpeg4):
    """The stream's packets in file order; for MPEG-4 Part 2, DivX/XviD packed B-frames unpacked."""
    packets = (packet for packet in container.demux(stream) if packet.size)  # size 0: the final flush packet
    return _unpack(packets, stream.codec_context.extradata or b"") if mpeg4 else packets


def _unpack(packets, extradata):
    """Packets as they are until user data says "packed" (`PACKED`, in the extradata or a packet: FFmpeg's decoder
    then reads packed B-frames), then one VOP a packet, as that decoder reads them: a packet's second VOP is kept
    and decoded in the next packet's slot instead of that packet, which is kept in turn when it holds an I- or
    B-VOP of more than 7 bytes (an N-VOP placeholder is dropped; a video object sequence header drops what is
    kept). FFmpeg's mpeg4_unpack_bframes filter differs: it drops a kept B-VOP of up to 19 bytes as an N-VOP."""
    kept, packed = None, bool(PACKED.search(extradata))
    for packet in packets:
        data = bytes(packet)
        packed = packed or bool(PACKED.search(data))
        if not packed:
            yield packet
            continue
        if kept is not None and data.find(b"\x00\x00\x01\xb0") == data.find(b"\x00\x00\x01") >= 0:
            kept = None
        if kept is None:
            second = data.find(VOP, data.find(VOP) + 4) if VOP in data else -1
            vop, kept = (data[:second], data[second:]) if second > 0 else (data, None)
        else:
            at = data.find(VOP)
            vop, kept = kept, data if len(data) > 7 and at >= 0 and data[at + 4] & 0x40 == 0 else None
        out = av.Packet(len(vop))  # allocated by FFmpeg with the zero padding decoders read past the end (a
        out.update(vop)            # packet made from bytes wraps them without: decoding reads stray memory)
        out.pts, out.dts, out.is_keyframe = packet.pts, packet.dts, packet.is_keyframe
        yield out


def _scan(container, stream, keep_bytes):
    """(VideoIndex, the packets in decode order or None when over keep_bytes)."""
    codec = stream.codec_context
    mpeg4 = codec.name == "mpeg4"
    pts, keys, discard, vops, size, late, latest = [], [], set(), [], 0, None, float("-inf")
    packets = [] if keep_bytes else None
    for packet in _demux(container, stream, True) if mpeg4 else container.demux(stream):
        if not packet.size:  # the demuxer's final flush packet
            continue
        t = packet.pts
        if packet.is_keyframe:
            keys.append(len(pts))
        if packet.is_discard:  # before an edit list's start: decoded, never shown
            discard.add(len(pts))
        if t is not None:
            if t > latest:
                latest = t
            elif late is None:
                late = bytes(packet)  # the first packet shown before (or with) one decoded earlier
        pts.append(t)
        if mpeg4:
            vops.append(bytes(packet))
        if packets is not None:
            size += packet.size
            packets.append(packet)
            if size > keep_bytes:
                packets = None
    shown = [k for k in range(len(pts)) if k not in discard] if discard else range(len(pts))
    mode = "count"
    if mpeg4:
        bits = _increment_bits((codec.extradata or b"") + (vops[0] if vops else b""))
        types = [_vop_type(data, bits) for data in vops]
        if bits and None not in types:
            shown = [k for k in shown if types[k] != "N"]
            shown, mode = _vop_display_order(shown, types), "packet"
    elif not codec.codec.reorder:  # VP8/VP9/AV1, intra-only codecs: frames come out in decode order
        mode = "packet"
    else:
        order = _pts_order([pts[k] for k in shown] if discard else pts, codec, late)
        if order is not None:
            shown, mode = np.asarray(shown)[order], "packet"
    index = VideoIndex(shown, keys, len(pts), mode, mpeg4)
    if mode == "packet" and (not keys or keys[0] != 0 or index.display()[0] > 0 or
                             index.decode_rank.max() - index.tail > MAX_REORDER):
        index = index.learn(mode="count")  # a cut stream (no keyframe first, or frames shown before it), or jumps
    return index, packets


def _pts_order(pts, codec, late):
    """The order that sorts `pts`, if it is the decoder's output order: every pts present and unique, and
    reordered exactly when the stream has B-frames. `late`: the first packet shown before one decoded earlier
    (None: pts rise in decode order, which with B-frames means the muxer wrote dts as pts); it must hold a
    B-frame where the bitstream tells (H.264, MPEG-1/2), else pts out of order in a stream without B-frames
    would be taken for reordering (`has_b_frames` does not tell: libavformat sets it when pts differ from dts)."""
    if None in pts:
        return None
    pts = np.asarray(pts, dtype=np.int64)
    order = np.argsort(pts, kind="stable")
    if len(pts) > 1 and not (np.diff(pts[order]) > 0).all():  # duplicates
        return None
    if late is None:
        return None if codec.has_b_frames else order
    reordered = _is_b_frame(codec, late) if codec.name in ("h264", "mpeg1video", "mpeg2video") else codec.has_b_frames
    return order if reordered else None


def _is_b_frame(codec, data):
    """Whether an H.264 or MPEG-1/2 packet starts with a B-picture (slice_type 1 or 6; picture_coding_type 3)."""
    if codec.name != "h264":
        at = data.find(b"\x00\x00\x01\x00")  # picture header: temporal_reference (10 bits), picture_coding_type
        return at >= 0 and _bits(data, 8 * at + 42, 3) == "011"
    extradata = codec.extradata or b""
    if extradata[:1] == b"\x01":  # avcC (MP4, MKV): NAL units with a length prefix
        size, at, nals = (extradata[4] & 3) + 1, 0, []
        while at + size <= len(data):
            length = int.from_bytes(data[at:at + size], "big")
            nals.append(data[at + size:at + size + length])
            at += size + length
    else:  # Annex B: start codes
        nals = data.split(b"\x00\x00\x01")
    for nal in nals:
        if nal and nal[0] & 0x1F in (1, 5):  # a coded slice: first_mb_in_slice, slice_type (ue(v) each)
            bits = _bits(nal, 8, 64)
            first = bits.index("1")
            at = 2 * first + 1
            zeros = bits.index("1", at) - at
            return (int(bits[at + zeros:at + 2 * zeros + 1], 2) - 1) % 5 == 1
    return False


def _bits(data, start, count):
    """`count` bits of `data` from bit `start` on, as a '0'/'1' string (zeros past the end)."""
    chunk = data[start // 8:(start + count + 7) // 8 + 1].ljust((count + 7) // 8 + 1, b"\0")
    return f"{int.from_bytes(chunk, 'big'):0{8 * len(chunk)}b}"[start % 8:start % 8 + count]


def _increment_bits(data):
    """Bit length of vop_time_increment, from the first video object layer header (ISO/IEC 14496-2, 6.2.3) in
    `data` (extradata, then the first packet), or None."""
    found = VOL.search(data)
    if not found:
        return None
    bits, at = _bits(data, 8 * found.end(), 160), 9  # random_accessible_vol, video_object_type_indication

    def read(n):
        nonlocal at
        at += n
        return int(bits[at - n:at], 2)
    verid = 1
    if read(1):                                      # is_object_layer_identifier: verid, priority
        verid = read(4)
        at += 3
    if read(4) == 15:                                # aspect_ratio_info: extended PAR
        at += 16
    if read(1):                                      # vol_control_parameters: chroma_format, low_delay
        at += 3
        if read(1):
            at += 79                                 # vbv_parameters
    if read(2) == 3 and verid != 1:                  # video_object_layer_shape grayscale
        at += 4
    if not read(1):                                  # marker
        return None
    resolution = read(16)
    return max(1, (resolution - 1).bit_length()) if resolution else None


def _vop_type(data, increment_bits):
    """Coding type of the packet's VOP: "I", "P", "B", "S", or "N" for vop_coded = 0 (no frame); None when the
    packet holds no VOP or its header does not parse."""
    at = data.find(VOP)
    if at < 0 or not increment_bits:
        return None
    bits = _bits(data, 8 * (at + 4), 64)
    end = bits.find("0", 2)                          # modulo_time_base: ones, then a zero
    coded = end + 3 + increment_bits                 # after a marker, vop_time_increment and a marker
    if end < 0 or coded >= len(bits) or bits[end + 1] != "1" or bits[coded - 1] != "1":
        return None
    return "IPBS"[int(bits[:2], 2)] if bits[coded] == "1" else "N"


def _vop_display_order(packets, types):
    """Output order of MPEG-4 Part 2 VOPs given in decode order: a B-VOP at once, an I/P/S-VOP when the next one
    is decoded (or at the end)."""
    order, held = [], None
    for k in packets:
        if types[k] == "B":
            order.append(k)
        else:
            if held is not None:
                order.append(held)
            held = k
    return order + ([held] if held is not None else [])


# ---------------------------------------------------------------------------------------------- reading
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
    if stream.codec_context is None:  # e.g. an MP4 cut inside its header, before the codec's description
        container.close()
        raise BadVideo(f"{path}: the video stream has no codec description (cut file?)")
    stream.codec_context.thread_count = 1  # one thread per DataLoader worker (docs/performance.md)
    return container


def video_num_frames(path):
    """Number of frames a full sequential decode yields: the demux pass's count (not the header's claim), with the
    end of the file decoded to leave out a last packet that yields no frame."""
    return len(read_video(path, lambda n: [n - 1])[1])


def decoded_frame_count(path):
    """Frames a plain sequential decode of the file yields (slow: decodes everything; a packet the decoder
    rejects yields no frame, as in ffmpeg's own decode loop); the reference that `video_num_frames` is checked
    against (`python -m common.check`, tests)."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        codec = stream.codec_context
        count = sum(len(_decode(codec, packet)) for packet in _demux(container, stream, False))
        return count + len(_decode(codec, None))
    except av.FFmpegError as e:
        raise BadVideo(f"{path}: corrupt stream ({e})") from None
    finally:
        container.close()


def _decode(codec, packet):
    """codec.decode(packet); a packet that the decoder rejects yields no frame (ffmpeg's decode loop goes on)."""
    try:
        return codec.decode(packet)
    except av.InvalidDataError:
        return []


def plan_runs(index, wanted):
    """Group sorted display indices `wanted` into decode runs [(first packet, last packet, frames)], packet
    positions in decode order: a run starts at the keyframe before its first frame; the next wanted frame joins
    the run unless its keyframe lies past the run's last packet (then jumping there skips the packets between)."""
    runs = []
    for i in wanted:
        start, end = index.start_packet(i), int(index.decode_rank[i])
        if runs and start <= runs[-1][1] + 1:
            runs[-1][1] = max(runs[-1][1], end)
            runs[-1][2].append(i)
        else:
            runs.append([start, end, [i]])
    return runs


def read_video(path, indices, index=None):
    """Frames `indices` (0-based, any order, repeats allowed; beyond the end -> clamped to the last frame)
    of a video file as a uint8 tensor (len(indices), 3, H, W): exactly the frames a plain sequential decode puts
    out at those positions. `indices` may be a function of the true frame count. `index` may be a cached
    `VideoIndex`. Returns (frames, index) so callers can cache the index (a read may correct it)."""
    container = _open(path)
    try:
        packets = None
        if index is None:
            index, packets = _scan(container, container.streams.video[0], KEEP_PACKET_BYTES)
        for _ in range(8):  # a retry follows each correction of the index: a slower mode, packets left out
            if len(index) == 0:
                raise BadVideo(f"{path}: no frames")
            if packets is None:  # cached index or a large file: demux again from the start
                container.close()
                container = _open(path)
                packets = _demux(container, container.streams.video[0], index.unpack)
            codec = container.streams.video[0].codec_context
            wanted = indices(len(index)) if callable(indices) else indices
            wanted = np.minimum(np.asarray(wanted, dtype=np.int64), len(index) - 1).tolist()
            read = _read_packet_mode if index.mode == "packet" else _read_count_mode
            try:
                kept = read(index, sorted(set(wanted)), packets, codec)
            except _Relearn as e:
                index, packets = e.index, packets if isinstance(packets, list) else None
                codec.flush_buffers()
                continue
            except _NoFrame as e:
                raise BadVideo(f"{path}: frame {e.args[0]} of {len(index)} did not decode (truncated or corrupt)")
            return torch.from_numpy(np.stack([kept[i] for i in wanted])).permute(0, 3, 1, 2), index
        raise BadVideo(f"{path}: the frame index does not settle")
    except av.FFmpegError as e:
        raise BadVideo(f"{path}: corrupt stream ({e})") from None
    finally:
        container.close()


def _left_out(index, fed, tags, from_start=False):
    """Packets fed in full (`fed`) that yielded no frame (not in `tags`): left out of the index, and the read done
    again, where a full decode loses them too: at the end of the file (after the last packet that still yields a
    frame, or reordered with it), or in a decode from the first packet, before the second keyframe (a cut stream's
    first frames). Anywhere else the file is corrupt."""
    dead = sorted(set(fed) - set(tags))
    if not dead:
        return
    alive = index.decode_rank[~np.isin(index.decode_rank, dead)]
    end = (int(alive.max()) if len(alive) else 0) - (int(index.decode_rank.max()) - index.tail)
    second_key = next((k for k in index.key_packets if k > 0), index.num_packets)
    if all(k >= end or from_start and k < second_key for k in dead):
        raise _Relearn(index.learn(dead))
    raise _NoFrame(int(index.display()[dead[0]]))


def _read_packet_mode(index, wanted, packets, codec):
    """Packet mode: runs from keyframes (`plan_runs`), unwanted non-reference frames skipped; returns {i: rgb}."""
    display = index.display().tolist()
    skip = "NONREF" if codec.name in EXACT_NONREF_SKIP else "DEFAULT"
    kept, rgb, end = {}, VideoReformatter(), display[int(index.decode_rank.max())]
    source, position = iter(packets), -1  # position: decode order of the last packet taken from `source`
    for first, last, frames in plan_runs(index, wanted):
        full = {int(index.decode_rank[i]) for i in frames}  # packets decoded in full
        if max(frames) >= end:  # a frame shown after the last frame's packet: decode the end in full, packets
            last = index.num_packets - 1  # there may yield no frame
            full |= {k for k in range(max(first, index.tail), last + 1) if display[k] >= 0}
        frames, tags = set(frames), []
        for packet in source:
            position += 1
            if position < first:  # between runs: not even decoded
                continue
            codec.skip_frame = "DEFAULT" if position in full else skip
            packet.pts = position  # the decoded frame names its packet
            _keep(_decode(codec, packet), display, frames, kept, rgb, tags)
            if position == last:
                break
        codec.skip_frame = "DEFAULT"
        _keep(_decode(codec, None), display, frames, kept, rgb, tags)  # drain the frames held back for reordering
        codec.flush_buffers()                                              # ready for the next run's keyframe
        shown = [display[t] for t in tags]
        if shown != sorted(shown) or -1 in shown:  # not the display order the index assumed
            raise _Relearn(index.learn(mode="count"))
        start = index.keyframe_before(min(frames))  # frames shown before it need packets before the run
        _left_out(index, [k for k in full if display[k] >= start], tags)
    return kept


def _keep(decoded, display, frames, kept, rgb, tags):
    for frame in decoded:
        tags.append(frame.pts)
        i = display[frame.pts]
        if i in frames and i not in kept:
            kept[i] = to_rgb(frame, rgb)


def _read_count_mode(index, wanted, packets, codec):
    """Count and sequential modes: a frame's position is its number in the decoder's output, counted from a
    keyframe at the number of frames before it; every packet decoded. Checked per run: a run from a later
    keyframe shows that keyframe first, and every packet fed yields one frame. Until a read has decoded the
    first keyframe's group in full, it does (frames lost there shift every later count)."""
    todo = set(wanted)
    if not index.checked and len(index.keyframes) > 1:
        todo.add(index.keyframes[1] - 1)  # the first keyframe's group, in full
    todo = sorted(todo)
    kept, rgb, shows = {}, VideoReformatter(), set(index.decode_rank.tolist())
    source, position = iter(packets), -1
    while todo:
        first = index.start_packet(todo[0])
        count, fed, tags = index.keyframe_before(todo[0]), [], []
        for packet in source:
            position += 1
            if position < first:
                continue
            packet.pts = position
            fed.append(position)
            count = _count(_decode(codec, packet), count, todo, kept, rgb, tags)
            if not todo or index.start_packet(todo[0]) > position + 1:
                break  # all wanted frames out, or the next one's keyframe lies ahead: jump there
        count = _count(_decode(codec, None), count, todo, kept, rgb, tags)
        codec.flush_buffers()
        if index.mode == "count" and (first and tags[:1] != [first] or len(set(tags)) < len(tags) or
                                      not shows.issuperset(tags)):  # a frame shown before its keyframe, or unknown
            raise _Relearn(index.learn(mode="sequential"))
        try:
            _left_out(index, [k for k in fed if k in shows], tags, from_start=not first)
        except _NoFrame:
            if index.mode == "sequential":
                raise
            raise _Relearn(index.learn(mode="sequential")) from None
        if todo and position >= index.num_packets - 1:
            raise _NoFrame(todo[0])
    index.checked = True
    return kept


def _count(decoded, count, todo, kept, rgb, tags):
    for frame in decoded:
        tags.append(frame.pts)
        if todo and todo[0] == count:
            kept[count] = to_rgb(frame, rgb)
            todo.pop(0)
        count += 1
    return count


def to_rgb(frame, reformatter):
    """frame.to_ndarray(format="rgb24") with one converter per video and one thread: the same pixels, but
    to_ndarray builds a new swscale context with a thread per CPU for every frame (4x slower at 340x256)."""
    return reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()


def frame_times(path):
    """(seconds of each frame of a plain sequential decode from the first frame, how they were found): the
    packets' timestamps in display order when every frame has one of its own (variable frame rates stay exact);
    else the frame index over the stream's average frame rate (said in `how`)."""
    n = video_num_frames(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        pts = sorted({p.pts for p in container.demux(stream) if p.size and p.pts is not None and not p.is_discard})
        rate, base = float(stream.average_rate or stream.guessed_rate or 0) or 30.0, float(stream.time_base or 0)
    except av.FFmpegError as e:
        raise BadVideo(f"{path}: corrupt stream ({e})") from None
    finally:
        container.close()
    if len(pts) == n and base > 0:
        return (np.asarray(pts, dtype=np.float64) - pts[0]) * base, "timestamps"
    return np.arange(n) / rate, f"frame index / {rate:g} fps (the timestamps do not name every frame)"


def stream_frames(path, wanted):
    """Frames `wanted` (0-based indices of a plain sequential decode, any order) of a long video in one decode
    from front to back, yielded as (index, uint8 (3, H, W)) in increasing index: every packet is decoded (frame i
    is the decoder's i-th output, as for read_video), only the wanted frames are converted to RGB, and nothing is
    kept here, so memory does not grow with the video. Uses the decoder's threads (one reader, not a worker)."""
    wanted = sorted({int(i) for i in wanted})
    if not wanted:
        return
    container = _open(path)
    try:
        stream = container.streams.video[0]
        codec = stream.codec_context
        codec.thread_type, codec.thread_count = "AUTO", 0
        reformatter, todo, i = VideoReformatter(), iter(wanted), 0
        target = next(todo)
        for packet in itertools.chain(_demux(container, stream, False), [None]):  # None: drain at the end
            for frame in _decode(codec, packet):
                if i == target:
                    yield i, torch.from_numpy(to_rgb(frame, reformatter)).permute(2, 0, 1)
                    target = next(todo, None)
                    if target is None:
                        return
                i += 1
        raise BadVideo(f"{path}: frame {target} of the plan is past the {i} frames the file decodes to")
    except av.FFmpegError as e:
        raise BadVideo(f"{path}: corrupt stream ({e})") from None
    finally:
        container.close()


def read_frame_folder(folder, indices, template="img_{:05d}.jpg", start_index=1):
    """Frames `indices` (0-based) of a JPEG folder (TSN convention: 1-based file names) as uint8 (T, 3, H, W)."""
    cache, out = {}, []
    # Choice: torchvision.io's JPEG decoder (libjpeg-turbo): the fastest measured (issue: 0.39 ms per 602x256 frame,
    # one thread; simplejpeg 0.50, torchcodec 0.56, OpenCV 0.59, Pillow 0.63) and no dependency beyond the pinned
    # torchvision 0.29, which deprecates its image codecs as "superseded by ... TorchCodec (from torchcodec 0.16)".
    # The replacement, due when the pin moves to a torchvision without them: `torchcodec.decoders.decode_jpeg(path,
    # mode="RGB")` (torchcodec 0.17 on torch 2.14.1: identical pixels, 0.68 vs 0.68 ms/frame here; one new
    # dependency). Until then exactly that DeprecationWarning is ignored, once per folder read: catch_warnings swaps
    # the process-wide filter list (not thread-safe; DataLoader workers are processes) and costs ~2.6 us a call.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The image decoding and encoding capabilities of TorchVision are deprecated",
                                DeprecationWarning, module="torchvision.io.image")
        for i in indices:
            i = int(i)
            if i not in cache:
                path = os.path.join(folder, template.format(i + start_index))
                try:
                    cache[i] = decode_jpeg(read_file(path), mode=ImageReadMode.RGB)
                except (RuntimeError, OSError, ValueError) as e:
                    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                    raise BadVideo(f"{path}: unreadable frame ({reason})") from None
            out.append(cache[i])
    return torch.stack(out)
