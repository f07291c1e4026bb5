"""A kernel's scalar argument types, and kernels whose arguments stay set between launches
(rlcl/device.py builds every kernel and hands out both)."""

from __future__ import annotations

import numpy as np
import pyopencl as cl

_SCALAR_TYPES = {"int": np.int32, "uint": np.uint32, "float": np.float32}


def scalar_arg_dtypes(kernel: cl.Kernel) -> list:
    """numpy dtypes of KERNEL's scalar arguments (None for buffers and local memory), read
    from the kernel's own argument info, so callers pass plain Python numbers."""
    names = [
        kernel.get_arg_info(i, cl.kernel_arg_info.TYPE_NAME).strip()
        for i in range(kernel.num_args)
    ]
    return [_SCALAR_TYPES.get(name) for name in names]


class PreparedKernel:
    """A kernel whose arguments stay set between launches, for a launch repeated many times
    with a few arguments changing (agents/ppo.py's update, two launches per minibatch).
    pyopencl's invoker sets every argument at each call, about 20 us for ppo_minibatch's 60;
    here a launch sets only those named that changed: ``launch(global_size, local_size, u=3)``.
    Scalars go through ``Kernel._set_arg_buf``, the call pyopencl's own invokers make (0.2 us;
    the public ``set_arg`` costs 10 us a call). DEVICE: the rlcl.device.Device that launches it
    (its queue, and its record of launches for --profile)."""

    def __init__(self, device, name: str, kernel: cl.Kernel, args: tuple):
        self.device, self.name, self.kernel = device, name, kernel
        self.dtypes = scalar_arg_dtypes(kernel)
        self.index = {kernel.get_arg_info(i, cl.kernel_arg_info.NAME): i
                      for i in range(kernel.num_args)}
        self.values = [None] * kernel.num_args
        for i, value in enumerate(args):
            self._set(i, value)

    def _set(self, i: int, value) -> None:
        dtype = self.dtypes[i]
        if dtype is None:
            if value is not self.values[i]:
                self.kernel.set_arg(i, value)
        elif value != self.values[i]:
            self.kernel._set_arg_buf(i, dtype(value).tobytes())
        self.values[i] = value

    def launch(self, global_size, local_size, **changed) -> cl.Event:
        for name, value in changed.items():
            self._set(self.index[name], value)
        return self.device._track(self.name, cl.enqueue_nd_range_kernel(
            self.device.queue, self.kernel, global_size, local_size))
