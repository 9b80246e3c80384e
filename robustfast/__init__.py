"""robustfast: fused Triton and C++/CUDA kernels for trustworthy-ML research."""
from robustfast._backend import BackendUnavailable, use_backend
from robustfast._version import __version__

__all__ = ["BackendUnavailable", "__version__", "use_backend"]
