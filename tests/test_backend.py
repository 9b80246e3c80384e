import sys
import types

import pytest
import torch

import robustfast
from robustfast import _backend
from robustfast.ops import pgd_step


@pytest.fixture
def fresh_extension_cache():
    _backend._extension.cache_clear()
    yield
    _backend._extension.cache_clear()


def test_extension_built_against_another_torch_is_refused(monkeypatch, fresh_extension_cache):
    monkeypatch.setitem(sys.modules, "robustfast._build_info",
                        types.SimpleNamespace(TORCH_VERSION="1.0.0", WITH_CUDA=False))
    assert _backend.extension() is None
    assert "built against torch 1.0.0" in _backend.extension_error()
    assert "--no-build-isolation" in _backend.extension_error()
    x = torch.rand(3, 4)
    with robustfast.use_backend("cpp"), pytest.raises(robustfast.BackendUnavailable, match=r"1\.0\.0"):
        pgd_step(x, torch.randn(3, 4), x, alpha=0.1, eps=0.1)
    # auto falls back to the reference, which still computes the step
    assert _backend.choose("pgd_step", x.device) == "reference"
    assert pgd_step(x, torch.randn(3, 4), x, alpha=0.1, eps=0.1).shape == x.shape


def test_use_backend_nests_and_restores():
    assert _backend.requested() == "auto"
    with robustfast.use_backend("reference"):
        with robustfast.use_backend("cpp"):
            assert _backend.requested() == "cpp"
        assert _backend.requested() == "reference"
    assert _backend.requested() == "auto"


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="use_backend"), robustfast.use_backend("tpu"):
        pass


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    reason = _backend.why_not("triton", torch.device("cpu"))
    assert reason is not None and "TRITON_INTERPRET" in reason


def test_extension_is_built_here():
    """The test setup builds robustfast._C; a silent build failure must not pass for a working install."""
    assert _backend.extension() is not None, _backend.extension_error()
    assert "cpp" in _backend.available(torch.device("cpu"))
