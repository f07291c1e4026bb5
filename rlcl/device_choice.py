"""Which OpenCL device rlcl runs on, and the build options every device gets.

Device choice (``--device SPEC`` or the ``RLCL_DEVICE`` environment variable):

* nothing: the first GPU of any platform (not the Oclgrind simulator), else one of PoCL's CPU
  devices (``basic`` or ``pthread``, by the rule below), else the first device;
* ``P:D``: device D of platform P, numbered as ``--device list`` prints them;
* any other text: the first device whose platform name or version, or device name, contains it
  (case-insensitive), e.g. ``pthread``, ``basic``, ``oclgrind``, ``nvidia``.

PoCL has two CPU devices, and rlcl asks for both (``POCL_DEVICES``, unless the user set it).
``basic`` runs each kernel on one core, in the thread that enqueued it; ``pthread`` spreads a
kernel's work-groups over all cores, while Python goes on, but hands every command to worker
threads (a launch costs about 18 us there, 8 on ``basic``). The fused PPO / A2C update
(kernels/ppo_update.cl) trains the actor and the critic in two work-groups, which ``pthread``
runs at once. So the default rule weighs the run's update (``work``: FLOP of one minibatch
update, train.update_flop): from PARALLEL_MIN_FLOP on, ``pthread``; below, ``basic``. Measured
on 2 cores (issue 12, benchmarks/bench_zoo.md): SB3 zoo's 64x64 networks on 256-row minibatches
(13 MFLOP) train about 20 % faster on ``pthread``; 64x64 on 64-128 rows (3-7 MFLOP) tie; the
shipped CartPole configs (under 3) train 1.6-2.6x faster on ``basic``. A batched population
always gets ``pthread`` (run.train_device): the host books and logs its agents while the kernels
run, which ``basic``, running each kernel in the enqueuing thread, does not allow. Both devices
give bit-identical results; ``--device`` overrides the rule.
"""

from __future__ import annotations

import os

# Before PoCL first lists its devices (the first get_platforms() call): expose both CPU devices.
os.environ.setdefault("POCL_DEVICES", "basic pthread")

import pyopencl as cl  # noqa: E402

from rlcl.errors import DeviceError  # noqa: E402

# Fixed for determinism: no fast, relaxed or mad-enabling math options; every .cl file also
# starts with `#pragma OPENCL FP_CONTRACT OFF` through common.h. The -D options that every build
# adds (kernel_constants, TILE_COLS) are not here: they do not change any result.
BUILD_OPTIONS: tuple[str, ...] = ("-cl-std=CL1.2",)
# OpenCL lets a device divide and take square roots to 2.5 and 3 ulp unless this option is
# given; NVIDIA's driver does so by default (issue 12, benchmarks/gpu.md: on an H200, 29 % of
# float32 quotients differed from IEEE's), which breaks the kernels' bit-identity with their
# numpy twins (tanh8, the env dynamics). Asked for wherever the device can do it (PoCL's CPU
# devices divide correctly rounded anyway: the same bits with it or without).
CORRECT_DIVIDE = "-cl-fp32-correctly-rounded-divide-sqrt"
TILE_WIDTHS = (4, 8, 16)
PARALLEL_MIN_FLOP = 8e6  # the default rule's threshold for PoCL pthread (the module docstring)



def _devices() -> list[tuple[int, int, cl.Device]]:
    try:
        platforms = cl.get_platforms()
    except cl.Error:
        platforms = []
    found = []
    for p_idx, platform in enumerate(platforms):
        try:
            devices = platform.get_devices()
        except cl.Error:
            continue
        found.extend((p_idx, d_idx, dev) for d_idx, dev in enumerate(devices))
    return found


def _type_name(dev: cl.Device) -> str:
    if "oclgrind" in dev.platform.name.lower():
        return "simulator"
    for kind in ("GPU", "CPU", "ACCELERATOR"):
        if dev.type & getattr(cl.device_type, kind):
            return kind.lower()
    return "other"


def list_devices() -> str:
    """One line per device, numbered as ``--device P:D`` expects."""
    rows = [
        f"{p}:{d}  {dev.platform.name.strip()} | {dev.name.strip()} | {_type_name(dev)}"
        for p, d, dev in _devices()
    ]
    return "\n".join(rows) if rows else "no OpenCL devices found"


def choose_device(spec: str | None = None, work: float = 0.0) -> cl.Device:
    """Pick a device from SPEC, then ``RLCL_DEVICE``, then the default rule (WORK: FLOP per
    minibatch update, see the module docstring)."""
    spec = spec or os.environ.get("RLCL_DEVICE") or ""
    found = _devices()
    if not found:
        raise DeviceError(
            "no OpenCL device found: reinstall rlcl so that pocl-binary-distribution is "
            "present (pip install rlcl), or install your vendor's OpenCL driver"
        )
    if not spec:
        # Oclgrind is a checking simulator that also calls itself a GPU: never a default.
        for _, _, dev in found:
            if dev.type & cl.device_type.GPU and "oclgrind" not in dev.platform.name.lower():
                return dev
        pocl = [dev for _, _, dev in found
                if "portable computing language" in dev.platform.name.lower()]
        wanted = "pthread" if work >= PARALLEL_MIN_FLOP else "basic"
        for dev in pocl:
            if dev.name.startswith(wanted):
                return dev
        for dev in pocl:
            if dev.name.startswith("basic"):
                return dev
        return pocl[0] if pocl else found[0][2]
    if ":" in spec and all(part.isdigit() for part in spec.split(":", 1)):
        p, d = (int(x) for x in spec.split(":", 1))
        for p_idx, d_idx, dev in found:
            if (p_idx, d_idx) == (p, d):
                return dev
    else:
        for _, _, dev in found:
            if spec.lower() in f"{dev.platform.name} {dev.platform.version} {dev.name}".lower():
                return dev
    raise DeviceError(
        f"no OpenCL device matches {spec!r}; run `python -m rlcl.train --device list` "
        "to see the choices"
    )


def device_build_options(dev: cl.Device) -> tuple[str, ...]:
    """BUILD_OPTIONS, and CORRECT_DIVIDE where DEV supports it."""
    exact = dev.single_fp_config & cl.device_fp_config.CORRECTLY_ROUNDED_DIVIDE_SQRT
    return (*BUILD_OPTIONS, CORRECT_DIVIDE) if exact else BUILD_OPTIONS


def preferred_tile_cols(dev: cl.Device) -> int:
    """Columns of the wide tiles (linear_tiles.h TILE_COLS) for DEV: its preferred float vector
    width, 16 (AVX-512), 8 (AVX, AVX2) or 4; GPUs report 1 and get 4, their vector lanes are
    the work-items. Every width gives the same bits; only the speed differs."""
    width = dev.preferred_vector_width_float
    return max(w for w in TILE_WIDTHS if w <= max(width, 4))

