"""Builds robustfast._C from csrc/: CPU kernels always, CUDA kernels when torch has CUDA and a toolkit exists.

Install with `pip install --no-build-isolation -e .` so the extension is compiled against the torch you run.
"""
import glob
import os

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))


def with_cuda() -> bool:
    if os.environ.get("ROBUSTFAST_NO_CUDA") == "1":
        return False
    return torch.version.cuda is not None and CUDA_HOME is not None


def extension():
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    cxx = ["-O3", "-std=c++17"]
    if not with_cuda():
        return CppExtension("robustfast._C", sources, extra_compile_args={"cxx": cxx})
    sources += sorted(glob.glob("csrc/cuda/*.cu") + glob.glob("csrc/cuda/*.cpp"))
    nvcc = ["-O3", "-std=c++17", "--use_fast_math", "-lineinfo"]
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if not archs:
        nvcc += ["-gencode=arch=compute_80,code=sm_80", "-gencode=arch=compute_90,code=sm_90"]
    return CUDAExtension(
        "robustfast._C",
        sources,
        define_macros=[("WITH_CUDA", None)],
        extra_compile_args={"cxx": cxx + ["-DWITH_CUDA"], "nvcc": nvcc},
    )


def write_build_info():
    with open(os.path.join(HERE, "robustfast", "_build_info.py"), "w") as f:
        f.write(f"TORCH_VERSION = {torch.__version__!r}\nWITH_CUDA = {with_cuda()!r}\n")


write_build_info()

setup(
    packages=find_packages(include=["robustfast", "robustfast.*"]) + ["robustfast.kernels"],
    package_dir={"robustfast": "robustfast", "robustfast.kernels": "kernels"},
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
