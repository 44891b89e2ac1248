"""What the exactness tests compare against: PyAV's plain full decode, PyTorch's own Conv3d, and the values and
gradients of a computation (for "performance rewrite == the formulation it replaces" tests)."""
import av
import torch
import torch.nn.functional as F


def full_decode(path, skip_errors=False):
    """Every frame of a video, decoded and converted with PyAV's defaults (RGB arrays, the decoder's output order).
    skip_errors: a packet the decoder rejects yields no frame and decoding goes on, as in ffmpeg's own decode loop
    (PyAV's container.decode raises instead)."""
    with av.open(path) as c:
        if not skip_errors:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        codec, frames = c.streams.video[0].codec_context, []
        for packet in c.demux(video=0):
            try:
                frames += codec.decode(packet if packet.size else None)
            except av.InvalidDataError:
                pass
        return [f.to_ndarray(format="rgb24") for f in frames]


def conv3d(conv, x):
    """The module's own nn.Conv3d computation (PyTorch's Conv3d, whatever subclass holds the weights)."""
    return F.conv3d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def values_and_grads(fn, module, *inputs):
    """fn(*inputs) (every output of a tuple) and the gradients of the inputs and of module's parameters, for a
    fixed random cotangent."""
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    module.zero_grad(set_to_none=True)
    outs = fn(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    g = torch.Generator().manual_seed(5)
    sum((o * torch.randn(o.shape, generator=g)).sum() for o in outs).backward()
    return [o.detach() for o in outs] + [x.grad for x in inputs] + [p.grad for p in module.parameters()
                                                                     if p.grad is not None]
