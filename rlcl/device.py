"""The only module that creates OpenCL contexts and builds programs.

A :class:`Device` owns one context and one in-order queue. It builds every
``rlcl/kernels/*.cl`` file once, with fixed options, and looks each kernel up once. Which
device, and the rule that picks one: rlcl/device_choice.py.
"""

from __future__ import annotations

import warnings
from functools import cached_property
from importlib import metadata, resources

import numpy as np
import pyopencl as cl

from rlcl import kernel_constants
from rlcl.compiler_output import captured_stderr, first_error
from rlcl.device_choice import (TILE_WIDTHS, choose_device, device_build_options,
                                preferred_tile_cols)
from rlcl.errors import DeviceError
from rlcl.kernel_args import PreparedKernel, scalar_arg_dtypes

KERNEL_FILES = ("linear", "linear_x4", "actor_critic", "policy", "gaussian", "loss", "rollout",
                "optim", "classic_envs", "device_rollout", "ppo_update")


class Device:
    """A context, an in-order queue, and every rlcl kernel built once.

    TILE_COLS forces the width of the wide tiles (4, 8 or 16; default: preferred_tile_cols),
    e.g. for the tests that prove every width bit-identical."""

    def __init__(self, spec: str | None = None, profile: bool = False,
                 tile_cols: int | None = None, work: float = 0.0):
        self.device = choose_device(spec, work)
        self.tile_cols = tile_cols or preferred_tile_cols(self.device)
        if self.tile_cols not in TILE_WIDTHS:
            raise ValueError(f"tile_cols must be one of {TILE_WIDTHS}, not {tile_cols}")
        self.context = cl.Context([self.device])
        # profile: time every launch from its OpenCL event (issue 6, --profile)
        props = cl.command_queue_properties.PROFILING_ENABLE if profile else 0
        self.queue = cl.CommandQueue(self.context, properties=props)
        self.profile = profile
        self.kernel_times: dict[str, list] = {}  # name -> [launches, seconds]
        self._pending: list[tuple[str, cl.Event]] = []
        self.kernels: dict[str, cl.Kernel] = {}
        self.arena = None  # rlcl/arena.py: where buffers come from while a population is built
        self.read_through = None  # rlcl/arena.py ReadThrough: reads served from whole buffers
        kernel_dir = resources.files("rlcl") / "kernels"
        defines = {**kernel_constants.defines(), "TILE_COLS": self.tile_cols}
        # -cl-kernel-arg-info only exposes argument types for scalar_arg_dtypes.
        self.build_options = device_build_options(self.device)
        options = [*self.build_options, "-cl-kernel-arg-info",
                   *(f"-D{name}={value}" for name, value in defines.items()),
                   "-I", str(kernel_dir)]
        self._programs: dict[str, cl.Program] = {}  # kernel name -> its program
        for name in KERNEL_FILES:
            program = self._build(name, (kernel_dir / f"{name}.cl").read_text(), options)
            for kernel in program.all_kernels():
                kernel.set_scalar_arg_dtypes(scalar_arg_dtypes(kernel))
                self.kernels[kernel.function_name] = kernel
                self._programs[kernel.function_name] = program
        # A GPU bounds each kernel's work-group by its registers, below the device's maximum
        # (NVIDIA H200: 256 for every rlcl kernel, 1,024 for the device): the tightest bound.
        self.max_group = min(
            [self.device.max_work_group_size]
            + [k.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, self.device)
               for k in self.kernels.values()])
        # a CPU runs a work-group's items as loops on one core: the work shapes below follow
        self.is_cpu = bool(self.device.type & cl.device_type.CPU)
        # a population's update as one launch an iteration, a work-group per agent
        # (ppo_update.cl ppo_update_pop): where a group runs whole on one core, a CPU
        self.update_per_agent = self.is_cpu

    def _build(self, name: str, source: str, options: list[str]) -> cl.Program:
        """Build one kernel file quietly; a failure raises DeviceError with its first error."""
        with captured_stderr() as captured, warnings.catch_warnings():
            # pyopencl's CompilerWarning repeats the build log, which says nothing to a user
            warnings.simplefilter("ignore", cl.CompilerWarning)
            try:
                return cl.Program(self.context, source).build(options=options)
            except cl.RuntimeError as exc:
                # pyopencl's message: a status line, then the build log; then what the
                # compiler printed
                captured.seek(0)
                log = str(exc).partition("\n")[2] + captured.read().decode(errors="replace")
                error = exc
        raise DeviceError(
            f"building kernels/{name}.cl failed on {self.device.name.strip()}: "
            f"{first_error(log)}; choose another device with --device"
        ) from error

    # -- buffers ----------------------------------------------------------------------------
    def empty(self, count: int, dtype=np.float32) -> cl.Buffer:
        """An uninitialised device buffer of COUNT elements (at least one); while an arena
        is open (rlcl/arena.py), a slice of one of its buffers."""
        nbytes = max(1, int(count)) * np.dtype(dtype).itemsize
        if self.arena is not None:
            return self.arena.take(nbytes)
        return cl.Buffer(self.context, cl.mem_flags.READ_WRITE, nbytes)

    def upload(self, array: np.ndarray) -> cl.Buffer:
        """A device buffer holding a copy of ARRAY."""
        array = np.ascontiguousarray(array)
        array = array if array.size else np.zeros(1, array.dtype)
        if self.arena is not None:
            buffer = self.arena.take(array.nbytes)
            cl.enqueue_copy(self.queue, buffer, array)  # blocking: ARRAY may be a temporary
            return buffer
        flags = cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR
        return cl.Buffer(self.context, flags, hostbuf=array)

    @staticmethod
    def sub_buffer(parent: cl.Buffer, offset: int, nbytes: int) -> cl.Buffer:
        """NBYTES of PARENT from byte OFFSET (a multiple of base_align) as a buffer."""
        return parent.get_sub_region(offset, nbytes)

    @property
    def base_align(self) -> int:
        """The alignment in bytes a sub-buffer's offset needs (CL_DEVICE_MEM_BASE_ADDR_ALIGN)."""
        return max(4, self.device.mem_base_addr_align // 8)

    def zeros(self, count: int, dtype=np.float32) -> cl.Buffer:
        return self.upload(np.zeros(max(1, int(count)), dtype))

    def read(self, buffer: cl.Buffer, count: int, dtype=np.float32, offset: int = 0) -> np.ndarray:
        """Blocking copy of COUNT elements starting at element OFFSET (from read_through, an
        arena.ReadThrough, where it holds the buffer)."""
        if self.read_through is not None:
            held = self.read_through.get(buffer)
            if held is not None:
                return held.view(dtype)[offset:offset + int(count)].copy()
        out = np.empty(int(count), dtype)
        cl.enqueue_copy(self.queue, out, buffer, src_offset=offset * out.itemsize)
        return out

    def read_bytes(self, buffer: cl.Buffer) -> np.ndarray:
        """Blocking copy of all of BUFFER, as bytes."""
        out = np.empty(buffer.size, np.uint8)
        cl.enqueue_copy(self.queue, out, buffer)
        return out

    def read_many(self, *requests: tuple[cl.Buffer, int]) -> list[np.ndarray]:
        """Blocking float32 copies of several (buffer, count) from element 0, with one wait:
        on a device with worker threads (PoCL pthread) each blocking read is a round trip."""
        outs, event = self.read_later(*requests)
        if event is not None:
            event.wait()  # the queue is in order: the earlier copies are done too
        return outs

    def read_later(self, *requests: tuple[cl.Buffer, int]) -> tuple[list, cl.Event | None]:
        """read_many without the wait: (the arrays, the last copy's event). The arrays hold
        the data once the event has completed; the host may work on meanwhile."""
        outs, event = [], None
        for buffer, count in requests:
            outs.append(np.empty(int(count), np.float32))
            event = cl.enqueue_copy(self.queue, outs[-1], buffer, is_blocking=False)
        return outs, event

    def write(self, buffer: cl.Buffer, array: np.ndarray, offset: int = 0) -> None:
        """Non-blocking copy of ARRAY to element OFFSET (ARRAY must outlive the copy)."""
        array = np.ascontiguousarray(array)
        cl.enqueue_copy(
            self.queue, buffer, array, dst_offset=offset * array.itemsize, is_blocking=False
        )

    def read_into(self, out: np.ndarray, buffer: cl.Buffer, offset: int = 0) -> np.ndarray:
        """Blocking copy into the host array OUT (preallocated, so hot loops allocate nothing)
        from element OFFSET of BUFFER."""
        cl.enqueue_copy(self.queue, out, buffer, src_offset=offset * out.itemsize)
        return out

    def copy(self, dst: cl.Buffer, src: cl.Buffer, count: int, dst_offset: int = 0,
             src_offset: int = 0, itemsize: int = 4) -> None:
        """Device-to-device copy of COUNT elements (in queue order, no host wait)."""
        cl.enqueue_copy(self.queue, dst, src, byte_count=count * itemsize,
                        dst_offset=dst_offset * itemsize, src_offset=src_offset * itemsize)

    def fill(self, buffer: cl.Buffer, value: float, count: int) -> None:
        """Set COUNT float32 elements of BUFFER to VALUE."""
        cl.enqueue_fill_buffer(self.queue, buffer, np.float32(value), 0, 4 * int(count))

    @staticmethod
    def local(nbytes: int) -> cl.LocalMemory:
        """A __local scratch argument of NBYTES bytes for a launch."""
        return cl.LocalMemory(int(nbytes))

    @staticmethod
    def is_buffer(value) -> bool:
        return isinstance(value, cl.Buffer)

    def group_size(self, limit: int) -> int:
        """The largest power of two <= LIMIT that this device allows as a work-group size
        (the tree reductions in the kernels need a power of two)."""
        n = max(1, min(int(limit), self.max_group))
        return 1 << (n.bit_length() - 1)

    def minibatch_group(self, rows: int) -> int:
        """The work-group size of the kernels that reduce over a minibatch of ROWS rows (the
        loss, the explained variance, the churn), and the lanes of the loss's reductions in the
        fused update, whose groups may be smaller (lane_items): at most 256, the loss's
        scratch. A GPU gets one work-item per row. A CPU runs a work-group as loops over its
        work-items between barriers, and wide groups of mostly idle items cost there: the loss
        takes eight rows per work-item (loss.h) and the networks four, so ROWS / 8 items.
        Measured on PoCL (2-core EPYC, issue 13): 64 agents' fused update at M = 64 took 0.66x
        the time with 8 items as with 64; 32 of PureJaxRL's 64x64 at M = 128, 0.92x with 16 as
        with 128."""
        return self.group_size(min(256, max(1, rows // 8) if self.is_cpu else rows))

    def lane_items(self, lanes: int) -> int:
        """Work-items per work-group of the fused update (ppo_update.cl ppo_minibatch), whose
        loss reduces over LANES virtual lanes (loss.h) whatever the group's size: LANES on a GPU,
        one on a CPU, where PoCL runs a group's items as loops between barriers (issue 13:
        64 agents' ppo_minibatch_pop at M = 64 took 0.94x the time with one item as with 8,
        32 of PureJaxRL's 64x64 at M = 128 0.97x with one as with 16, alternated)."""
        return 1 if self.is_cpu else lanes

    def rollout_items(self, num_envs: int) -> tuple[int, int]:
        """(envs per work-item, work-items) of the device rollout's work-group of NUM_ENVS envs
        (device_rollout.cl). A CPU runs a group's items one after another on one core, and one
        env's networks leave its add units waiting (two dependent chains): so up to
        ROLLOUT_ITEM_ENVS envs an item, four at a time through the networks (issue 13: the
        default x64 rollout 0.72-0.75x the time, paired). A GPU keeps one env an item."""
        per_item = min(num_envs, kernel_constants.ROLLOUT_ITEM_ENVS) if self.is_cpu else 1
        return per_item, -(-num_envs // per_item)

    def launch(self, name: str, global_size, local_size, *args) -> cl.Event:
        """Enqueue kernel NAME; scalars may be plain Python numbers."""
        return self._track(name, self.kernels[name](self.queue, global_size, local_size, *args))

    def _track(self, name: str, event: cl.Event) -> cl.Event:
        """With profiling on, keep EVENT for collect_profile (settled every 4096 launches)."""
        if self.profile:
            self._pending.append((name, event))
            if len(self._pending) >= 4096:
                self.collect_profile()
        return event

    def prepare(self, name: str, *args) -> PreparedKernel:
        """Kernel NAME as an object of its own with ARGS set once (see PreparedKernel)."""
        return PreparedKernel(self, name, cl.Kernel(self._programs[name], name), args)

    def collect_launches(self) -> list[tuple[str, float]]:
        """(kernel name, device seconds) of each launch since the last collect, in order."""
        launches = []
        for name, event in self._pending:
            event.wait()
            launches.append((name, (event.profile.end - event.profile.start) * 1e-9))
        self._pending.clear()
        return launches

    def collect_profile(self) -> dict[str, list]:
        """Add the finished launches' device times into kernel_times and return it."""
        for name, seconds in self.collect_launches():
            entry = self.kernel_times.setdefault(name, [0, 0.0])
            entry[0] += 1
            entry[1] += seconds
        return self.kernel_times

    @cached_property
    def fingerprint(self) -> dict[str, str]:
        """What bit-identical results are conditional on."""
        def version(pkg: str) -> str:
            try:
                return metadata.version(pkg)
            except metadata.PackageNotFoundError:
                return "absent"

        dev = self.device
        return {
            "platform": dev.platform.name.strip(),
            "platform_version": dev.platform.version.strip(),
            "device": dev.name.strip(),
            "driver_version": dev.driver_version.strip(),
            "opencl_version": dev.version.strip(),
            "build_options": " ".join(self.build_options),
            "pocl": version("pocl-binary-distribution"),
            "rlcl": version("rlcl"),
            "numpy": np.__version__,
            "gymnasium": version("gymnasium"),
            "pyopencl": cl.VERSION_TEXT,
        }
