"""robustfast: fused Triton and C++/CUDA kernels for trustworthy-ML research."""
from robustfast._backend import BackendUnavailable, use_backend

__version__ = "0.1.0"
__all__ = ["BackendUnavailable", "__version__", "use_backend"]
