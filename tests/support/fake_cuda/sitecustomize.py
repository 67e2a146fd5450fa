"""A CPU-only machine that looks like one with CUDA GPUs, for stand-ins of official code that hard-codes "cuda".

Tests put this folder on a worker's PYTHONPATH. ``torch.cuda`` then reports FSMI_FAKE_CUDA_DEVICES devices
(default 1; CUDA_VISIBLE_DEVICES, when set, shows only the GPUs it lists, as CUDA does) with device 0
current, and a tensor, module or generator sent to "cuda" or "cuda:N" stays on the CPU, so the computation is
the CPU's. Which GPU a tensor would be on is left to the stand-ins: they resolve the device strings they are
given as torch does (a bare "cuda" is the current device) and raise torch's error when two differ. An
index past the visible devices raises as CUDA does.
"""

import os

import torch

_visible = os.environ.get("CUDA_VISIBLE_DEVICES")
_COUNT = (len([entry for entry in _visible.split(",") if entry.strip()]) if _visible is not None
          else int(os.environ.get("FSMI_FAKE_CUDA_DEVICES", "1")))
_current = [0]


def _is_cuda(device) -> bool:
    if isinstance(device, (str, torch.device)):
        device = torch.device(device)
        if device.type == "cuda":
            index = _current[0] if device.index is None else device.index
            if index >= _COUNT:
                raise RuntimeError("CUDA error: invalid device ordinal")
            return True
    return False


def _on_cpu(args, kwargs):
    args = tuple("cpu" if _is_cuda(value) else value for value in args)
    if "device" in kwargs and _is_cuda(kwargs["device"]):
        kwargs = {**kwargs, "device": "cpu"}
    return args, kwargs


def _wrap(function):
    def on_cpu(*args, **kwargs):
        args, kwargs = _on_cpu(args, kwargs)
        return function(*args, **kwargs)
    return on_cpu


def _set_device(device):
    index = device if isinstance(device, int) else torch.device(device).index or 0
    if index >= _COUNT:
        raise RuntimeError("CUDA error: invalid device ordinal")
    _current[0] = index


torch.cuda.is_available = lambda: _COUNT > 0
torch.cuda.device_count = lambda: _COUNT
torch.cuda.current_device = lambda: _current[0]
torch.cuda.set_device = _set_device
torch.Tensor.to = _wrap(torch.Tensor.to)
torch.nn.Module.to = _wrap(torch.nn.Module.to)
for _name in ("as_tensor", "tensor", "ones", "zeros", "randn", "empty", "Generator"):
    setattr(torch, _name, _wrap(getattr(torch, _name)))
