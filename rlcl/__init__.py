"""rlcl: PPO and A2C on OpenCL networks."""

__version__ = "0.1.0"
