"""TSM's temporal shift (Lin, Gan, Han: "TSM: Temporal Shift Module for Efficient Video Understanding", ICCV 2019).

Not a module of the five papers, but the baseline of STW's Table 6 and CAN's Table 12 and the backbone STASTA
builds on, so it is written once here (notes/tsm-family-reference.md Sec. 1.5): of the C channels of each frame,
[0, C/8) take frame t+1, [C/8, C/4) take frame t-1, the rest stay; zeros where the neighbour falls outside the
clip. No parameters, no FLOPs. Written with pad + cat, never in-place slice assignment, so it traces (ONNX) as it
runs.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def temporal_shift(x, num_segments, fold_div=8):
    """x (B*T, C, H, W) -> the shifted (B*T, C, H, W), in x's memory format (--channels-last stays so)."""
    BT, C, H, W = x.shape
    T, fold = num_segments, C // fold_div
    v = x.view(BT // T, T, C, H, W)                                   # (B*T,C,H,W) -> (B,T,C,H,W)
    pad = [0, 0] * 3                                                  # no padding of C, H, W
    out = torch.cat([F.pad(v[:, 1:, :fold], pad + [0, 1]),           # t <- t+1 (from the future), zero last
                     F.pad(v[:, :-1, fold:2 * fold], pad + [1, 0]),  # t <- t-1 (from the past), zero first
                     v[:, :, 2 * fold:]], 2)                          # -> (B,T,C,H,W)
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return out.view(BT, C, H, W).contiguous(memory_format=torch.channels_last if channels_last
                                            else torch.contiguous_format)


class TemporalShift(nn.Module):
    """The shift as a module on (B*T, C, H, W). `net`: a layer to run after the shift, kept as `self.net` (TSM's
    own wrapper, whose state-dict names `conv1.net.weight` its releases use); without it, put the module in front
    of a layer with nn.Sequential."""

    def __init__(self, num_segments, fold_div=8, net=None):
        super().__init__()
        self.num_segments, self.fold_div = num_segments, fold_div
        if net is not None:
            self.net = net

    def forward(self, x):
        x = temporal_shift(x, self.num_segments, self.fold_div)
        return self.net(x) if hasattr(self, "net") else x
