"""NVML probe (nvidia-ml-py, imported as pynvml): the only place that talks to the driver."""

from __future__ import annotations


def gpu_count() -> int:
    """Number of GPUs NVML sees; 0 when the library or driver is absent."""
    try:
        import pynvml
    except ImportError:
        return 0
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return 0
    try:
        return pynvml.nvmlDeviceGetCount()
    finally:
        pynvml.nvmlShutdown()
