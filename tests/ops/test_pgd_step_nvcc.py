"""The CUDA kernels of pgd_step build on their own with nvcc (no torch headers), wherever nvcc is installed.

This catches CUDA compile errors on machines whose torch has no CUDA, where setup.py skips csrc/cuda.
"""
import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "csrc" / "cuda" / "pgd_step.cu"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
def test_pgd_step_cu_compiles_standalone(tmp_path):
    obj = tmp_path / "pgd_step.o"
    cmd = ["nvcc", "-arch=sm_90", "-O3", "-std=c++17", "-c", str(SOURCE), "-o", str(obj)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}"
    assert obj.is_file() and obj.stat().st_size > 0, f"nvcc reported success but wrote no object:\n{proc.stderr}"
