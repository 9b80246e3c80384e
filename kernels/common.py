"""Triton helpers shared by the kernels (the host-side compute precision is robustfast._util.checks.opmath_dtype)."""
import triton
import triton.language as tl


@triton.jit
def clamp(v, lo, hi):
    """min(max(v, lo), hi), in torch.clamp's order."""
    return tl.minimum(tl.maximum(v, lo), hi)
