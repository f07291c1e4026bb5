"""How rlcl.device builds the kernels: quietly, with the host's constants, and with a one-line
error when a build fails (issue 10)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
import warnings
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pyopencl as cl
import pytest

import rlcl
from rlcl import kernel_constants
from rlcl.device import KERNEL_FILES, Device
from rlcl.device_choice import BUILD_OPTIONS, CORRECT_DIVIDE, preferred_tile_cols
from rlcl.errors import DeviceError

KERNEL_DIR = resources.files("rlcl") / "kernels"


def test_a_cold_build_prints_nothing(tmp_path):
    """A user's first run: no PoCL kernel cache, no pyopencl cache. PoCL's clang writes its
    warning count straight to file descriptor 2, so this needs a fresh process."""
    # this checkout first, then whatever else the suite runs with (a GPU machine without a
    # package index has pyopencl on PYTHONPATH: benchmarks/gpu.sh)
    path = os.pathsep.join(filter(None, [str(Path(rlcl.__file__).parents[1]),
                                         os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "POCL_CACHE_DIR": str(tmp_path), "PYOPENCL_NO_CACHE": "1",
           "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-c", "from rlcl.device import Device; Device()"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")


def test_compiler_output_never_reaches_the_terminal(device, capfd):
    """A kernel whose build makes the compiler print (a #warning): printed when built directly,
    not when Device builds it. Unique kernel names defeat both caches."""
    source = "#warning rlcl probe\n__kernel void probe_{}(__global float *x) {{ x[0] = 1.0f; }}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cl.Program(device.context, source.format(uuid.uuid4().hex)).build()
    if "warning" not in capfd.readouterr().err:
        pytest.skip("this device's compiler prints nothing for #warning")
    program = device._build("probe", source.format(uuid.uuid4().hex), [*BUILD_OPTIONS])
    kernels = program.all_kernels()
    assert len(kernels) == 1
    assert capfd.readouterr() == ("", "")


def test_a_failed_build_is_one_line_naming_the_compiler_error(device):
    source = "__kernel void broken(__global float *x) { x[0] = not_declared; }"
    with pytest.raises(DeviceError, match="not_declared") as failure:
        device._build("broken", source, [*BUILD_OPTIONS])
    assert "\n" not in str(failure.value) and "kernels/broken.cl" in str(failure.value)


def test_kernels_refuse_to_build_without_the_host_constants(device):
    options = [*BUILD_OPTIONS, "-I", str(KERNEL_DIR)]
    for name in KERNEL_FILES:
        with pytest.raises(DeviceError, match="build through rlcl.device.Device"):
            device._build(name, (KERNEL_DIR / f"{name}.cl").read_text(), options)


def test_every_host_constant_is_checked_by_the_kernels():
    """Each -D name is tested with #ifndef NAME or defined(NAME) somewhere in the kernels,
    so neither side can drop or rename one silently."""
    text = "\n".join(p.read_text() for p in KERNEL_DIR.iterdir() if p.name.endswith((".cl", ".h")))
    for name in kernel_constants.defines():
        assert re.search(rf"(#ifndef {name}\b|defined\({name}\))", text), name
    assert "#if TILE_COLS == 16" in text and "#error \"TILE_COLS must be" in text


def test_tables_have_the_columns_their_kernels_count():
    consts = kernel_constants.defines()
    assert consts["AC_COLS"] == len(kernel_constants.AC_COLUMNS)
    assert kernel_constants.AC_COLUMNS[: consts["LAYER_COLS"]] == kernel_constants.LAYER_COLUMNS
    assert sorted(v for k, v in consts.items() if k.startswith("COL_")) == list(
        range(consts["AC_COLS"]))


@pytest.mark.parametrize("width, cols", [(1, 4), (4, 4), (8, 8), (16, 16), (32, 16)])
def test_tile_width_follows_the_preferred_vector_width(width, cols):
    assert preferred_tile_cols(SimpleNamespace(preferred_vector_width_float=width)) == cols


def test_a_tile_width_that_no_kernel_has_is_refused():
    with pytest.raises(ValueError, match="tile_cols"):
        Device(tile_cols=5)


def test_divides_are_correctly_rounded_wherever_the_device_can(device):
    """Issue 12: NVIDIA's OpenCL divides to 2.5 ulp unless asked (benchmarks/gpu.md); rlcl asks
    wherever the device reports it can, and the fingerprint says so."""
    dev = device.device
    can = bool(dev.single_fp_config & cl.device_fp_config.CORRECTLY_ROUNDED_DIVIDE_SQRT)
    assert (CORRECT_DIVIDE in device.build_options) == can
    assert device.build_options[:len(BUILD_OPTIONS)] == BUILD_OPTIONS
    assert device.fingerprint["build_options"] == " ".join(device.build_options)


def test_work_groups_stay_within_every_kernels_limit(device):
    """A GPU bounds each kernel's work-group by its registers (256 on an NVIDIA H200, whose
    device limit is 1,024): group_size never exceeds the tightest kernel's limit."""
    limits = [k.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, device.device)
              for k in device.kernels.values()]
    widest = device.group_size(10 ** 6)
    assert all(widest <= limit for limit in [device.device.max_work_group_size, *limits])
    assert widest * 2 > device.max_group  # the largest power of two within the limit
