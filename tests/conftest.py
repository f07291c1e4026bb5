"""Shared fixtures for the kernel tests.

The ``device`` fixture is one :class:`rlcl.device.Device` for the whole session. It follows
``RLCL_DEVICE`` (``Device()`` reads it), so the same tests run on the Oclgrind simulator:

    RLCL_DEVICE=oclgrind OCLGRIND_CHECK_API=1 OCLGRIND_UNINITIALIZED=1 \
        OCLGRIND_DATA_RACES=1 python -m pytest tests/test_*kernels.py tests/test_linear.py \
        tests/test_loss.py

On Oclgrind, two things change:
* tests marked ``big`` (a size of 129 or more) are skipped, because the simulator
  interprets every work-item; every kernel keeps at least one smaller size;
* every test fails if Oclgrind printed a kernel diagnostic (invalid access, data race,
  uninitialised value, barrier divergence) or an API error while it ran.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from rlcl.device import Device, choose_device
from rlcl.errors import DeviceError


def _chosen_platform() -> str:
    try:
        return choose_device().platform.name.strip()
    except DeviceError:
        return "none"


ON_OCLGRIND = "oclgrind" in _chosen_platform().lower()


def pytest_configure(config):
    config.addinivalue_line("markers", "big: a size >= 129, skipped on the Oclgrind simulator")


def pytest_report_header(config):
    return f"rlcl test device platform: {_chosen_platform()}"


def pytest_collection_modifyitems(config, items):
    if not ON_OCLGRIND:
        return
    skip = pytest.mark.skip(reason="size >= 129 is too slow on the Oclgrind simulator")
    for item in items:
        if "big" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device() -> Device:
    return Device()


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test id, so every parametrisation gets its own data."""
    return np.random.default_rng(list(request.node.nodeid.encode()))


# Oclgrind diagnostics name the kernel on a "\tKernel: name" line. pyopencl asks Oclgrind
# for a few device properties it does not know (CL_INVALID_VALUE from clGetDeviceInfo while
# building); those are pyopencl's queries, not rlcl's, and are ignored.
_KERNEL_DIAGNOSTIC = re.compile(r"^\tKernel: ", re.M)
_API_ERROR = re.compile(r"OpenCL runtime error detected\n\tFunction: (\w+)")


@pytest.fixture(autouse=True)
def _oclgrind_diagnostics(request, device):
    """On Oclgrind, turn anything the simulator reports during a test into a failure."""
    if "oclgrind" not in device.device.platform.name.lower():
        yield
        return
    capfd = request.getfixturevalue("capfd")
    yield
    device.queue.finish()
    err = capfd.readouterr().err
    api = [f for f in _API_ERROR.findall(err) if f != "clGetDeviceInfo"]
    if _KERNEL_DIAGNOSTIC.search(err) or api:
        pytest.fail("Oclgrind reported:\n" + err, pytrace=False)
