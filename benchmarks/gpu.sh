#!/usr/bin/env bash
# Issue 12, part 3: rlcl on an NVIDIA GPU through NVIDIA's OpenCL, on a machine that reaches no
# package index (the device tool's GPU machine: Python 3.12 with numpy, scipy, protobuf, pytest
# and JAX already there). benchmarks/gpu.md holds what it printed.
#
#   # here, once: the wheels rlcl needs that the machine lacks, into .whl/ (git-ignored)
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       -d .whl pyopencl pytools platformdirs siphash24 gymnasium farama-notifications \
#       tensorboardX crc32c
#   # there, from the repository root (OUT: where the logs go):
#   OUT=/tmp/gpu [TESTS_LIMIT=300] bash benchmarks/gpu.sh [info train tests bench peer]
#
# Each stage writes OUT/<stage>.txt and has its own time limit, so one that fails or hangs
# leaves the others' logs. "peer" runs PureJaxRL on the GPU as the anchor, from .gpu/
# (git-ignored; carry it): `cp ../shared/peers/purejaxrl/{run,ppo,wrappers}.py .gpu/`, and in
# .gpu/whl-jax the wheels gymnax==0.0.9 distrax==0.1.9 tfp-nightly==0.26.0.dev20261027
# dm-tree==0.1.10 gast==0.7.0 decorator==5.3.1 (pip download as above); JAX is there.
set -u
OUT=${OUT:-/tmp/gpu}
mkdir -p "$OUT"
stages=${*:-info train tests bench peer}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

# rlcl's dependencies as wheels, rlcl itself from this checkout (no index, no build isolation)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >"$OUT/setup.txt" 2>&1
export PYTHONPATH=/tmp/site:$PWD
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >>"$OUT/setup.txt" 2>&1

# NVIDIA's OpenCL driver ships with the display driver (libnvidia-opencl.so.1) but no ICD
# file may name it: the ICD loader inside pyopencl's wheel reads /etc/OpenCL/vendors.
lib=$(ls /usr/local/nvidia/lib64/libnvidia-opencl.so.1 /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 \
      2>/dev/null | head -1)
[ -n "$lib" ] || lib=$(find / -xdev -name 'libnvidia-opencl.so*' 2>/dev/null | head -1)
echo "NVIDIA OpenCL library: ${lib:-none found}" >>"$OUT/setup.txt"
if ! grep -qs nvidia-opencl /etc/OpenCL/vendors/*.icd && [ -n "$lib" ]; then
    if mkdir -p /etc/OpenCL/vendors 2>/dev/null && echo "$lib" >/etc/OpenCL/vendors/nvidia.icd; then
        echo "wrote /etc/OpenCL/vendors/nvidia.icd" >>"$OUT/setup.txt"
    else  # not root: a vendors folder of our own (it replaces the default one)
        mkdir -p /tmp/icd && echo "$lib" >/tmp/icd/nvidia.icd && export OCL_ICD_VENDORS=/tmp/icd
        echo "OCL_ICD_VENDORS=/tmp/icd" >>"$OUT/setup.txt"
    fi
fi
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}:$(dirname "${lib:-/usr/local/nvidia/lib64/x}")
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv \
    >>"$OUT/setup.txt" 2>&1

stage() {  # stage NAME SECONDS COMMAND...: run COMMAND into OUT/NAME.txt within SECONDS
    local name=$1 limit=$2; shift 2
    case " $stages " in *" $name "*) ;; *) return ;; esac
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    echo "== $name: exit $? after $((SECONDS - t0)) s" | tee -a "$OUT/$name.txt"
}

stage info 120 python3 benchmarks/bench_gpu.py info
stage train 120 python3 -m rlcl.train ppo CartPole --no-progress --runs-dir /tmp/runs
# the fast suite, in parallel (pytest-xdist is on that machine)
stage tests "${TESTS_LIMIT:-300}" python3 -m pytest -q -n 12 -p no:cacheprovider --durations=10
stage bench 220 python3 benchmarks/bench_gpu.py bench --seeds 0 1 --sizes 64 256
if [ -d .gpu/whl-jax ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site-jax .gpu/whl-jax/*.whl >>"$OUT/setup.txt" 2>&1
    PYTHONPATH=$PYTHONPATH:/tmp/site-jax stage peer 120 bash -c \
        'python3 .gpu/run.py --config zoo --seeds 1 && python3 .gpu/run.py --config purejaxrl --seeds 32'
fi
