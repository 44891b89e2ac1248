"""What the exactness tests compare against: PyAV's plain full decode, PyTorch's own Conv3d, and the values and
gradients of a computation (for "performance rewrite == the formulation it replaces" tests)."""
import av
import torch
import torch.nn.functional as F


def full_decode(path):
    """Every frame of a video, decoded and converted with PyAV's defaults (RGB arrays, display order)."""
    with av.open(path) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


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
