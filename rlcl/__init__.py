"""rlcl: PPO and A2C on OpenCL networks."""

import os

# numpy's OpenBLAS threads spin between calls; rlcl's host numpy is tiny, and on a 2-core
# machine the spinning took cycles from the OpenCL device's threads (issue 12). Set before
# numpy's first import; a user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.3.0"
