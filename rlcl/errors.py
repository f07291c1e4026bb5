"""rlcl's one small exception family.

The CLI turns an :class:`RlclError` into a single line on stderr and exit code 2; anything
else is a bug and keeps its traceback.
"""


class RlclError(Exception):
    """Bad input the user can fix: the message says what to do."""

    exit_code = 2


class ConfigError(RlclError):
    """An unknown key, a value of the wrong type or out of range."""


class DeviceError(RlclError):
    """No usable OpenCL device, or a bad device spec."""


class CheckpointError(RlclError):
    """A missing, corrupt, truncated or mismatched checkpoint."""
