"""knn_lid: every backend against the float64 reference, forward and backward, on fresh random points; the
closed-form estimator derivatives against autograd; bad inputs."""
import pytest
import torch

import robustfast
from robustfast.ops import knn_lid
from robustfast.reference import knn_lid as reference
from tests.conftest import DEVICE_BACKENDS

FORMS = reference.FORMS
# (M, N, D, ks, self): N = M and self means the points are their own reference
SHAPES = [
    (37, 37, 5, [2, 7], True),
    (130, 130, 17, [20], True),
    (23, 101, 64, [3, 16, 33], False),
    (40, 40, 9, [39], True),         # k = N − 1, every other point
    (61, 61, 33, [12, 60], True),
]


def make_points(n, d, dtype, device, seed, duplicates=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.rand(d, generator=g, dtype=torch.float64)
    x += 3.0  # off the origin, so the GEMM form's cancellation is real
    if duplicates:  # rows 1, 2, 3 repeat row 0 (a point with three exact copies), row 5 repeats row 4
        x[1:4] = x[0]
        x[5] = x[4]
    return x.to(device=device, dtype=dtype)


def tolerances(dtype):
    """(distance tol relative to the largest distance, LID tol relative): float32 near-ties may be selected in
    another order by the GEMM form; float64 must match closely."""
    return (1e-5, 2e-4) if dtype == torch.float32 else (1e-10, 1e-8)


def run(device, backend, x, ref, ks, form, self_offset=None):
    with robustfast.use_backend(backend):
        return knn_lid(x, ref, k=ks, form=form, self_offset=self_offset)


def check_against_reference(out, x, ref, ks, form, self_offset, dtype):
    q64 = x.detach().double()
    r64 = q64 if ref is None else ref.detach().double()
    off = 0 if ref is None else (-1 if self_offset is None else self_offset)
    dist, _, mle, mom = reference.knn_lid(q64, r64, ks, form, off)
    dtol, ltol = tolerances(dtype)
    scale = dist.abs().max().item()
    assert (out.distances.double() - dist).abs().max().item() <= dtol * scale
    # the indices name rows at the reported distances, never the query's own row
    recomputed = (q64[:, None, :] - r64[out.indices]).norm(dim=2)
    assert (recomputed - out.distances.double()).abs().max().item() <= dtol * scale
    if off >= 0:
        own = torch.arange(x.shape[0], device=x.device)[:, None] + off
        assert not (out.indices == own).any()
    for got, want in ((out.mle, mle), (out.mom, mom)):
        assert torch.isfinite(got).all()
        assert ((got.double() - want).abs() / want.abs()).max().item() <= ltol


def forward_cases():
    """Every backend × dtype × form; under the Triton interpreter (seconds per call) float64 runs the literature
    form only: the forms share the selection and differ only in the epilogue, which float32 covers."""
    for p in DEVICE_BACKENDS:
        device, backend = p.values
        for dtype in (torch.float32, torch.float64):
            for form in FORMS:
                if backend == "triton" and device.type == "cpu" and dtype == torch.float64 and form != "literature":
                    continue
                yield pytest.param(device, backend, dtype, form, id=f"{p.id}-{str(dtype)[6:]}-{form}")


@pytest.mark.parametrize("device,backend,dtype,form", list(forward_cases()))
@pytest.mark.parametrize("m,n,d,ks,self_ref", SHAPES)
def test_forward_matches_the_reference(device, backend, dtype, form, m, n, d, ks, self_ref):
    x = make_points(m, d, dtype, device, seed=m + d)
    ref = None if self_ref else make_points(n, d, dtype, device, seed=n + 7)
    out = run(device, backend, x, ref, ks, form)
    assert out.distances.shape == (m, max(ks)) and out.mle.shape == (m, len(ks))
    check_against_reference(out, x, ref, ks, form, None, dtype)


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("form", FORMS)
def test_duplicates_give_zero_distances_and_finite_lid(device, backend, form):
    x = make_points(50, 6, torch.float32, device, seed=3, duplicates=True)
    out = run(device, backend, x, None, [5, 9], form)
    # the GEMM form would leave a residue of ~1e−3 here; the kernels recompute the kept distances exactly
    assert (out.distances[:4, :3] == 0).all() and (out.distances[4:6, 0] == 0).all()
    assert (out.distances[6:, 0] > 0).all()
    check_against_reference(out, x, None, [5, 9], form, None, torch.float32)


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
def test_self_offset_excludes_the_queries_rows_of_a_larger_reference(device, backend):
    ref = make_points(90, 12, torch.float32, device, seed=11, duplicates=True)
    x = ref[30:55]
    # k > 4: rows 0-3 are four copies of one point, which may be some query's four nearest at one distance
    out = run(device, backend, x, ref, [6, 10], "literature", self_offset=30)
    check_against_reference(out, x, ref, [6, 10], "literature", 30, torch.float32)
    assert (out.distances[:, 0] > 0).all()


@pytest.mark.parametrize("device,backend", [p for p in DEVICE_BACKENDS if p.values[1] != "reference"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("self_ref", [True, False], ids=["self", "reference"])
def test_backward_matches_autograd_through_the_reference(device, backend, form, self_ref):
    ks = [3, 8]
    x = make_points(33, 7, torch.float64, device, seed=5).requires_grad_(True)
    ref = None if self_ref else make_points(47, 7, torch.float64, device, seed=6).requires_grad_(True)
    g = torch.Generator().manual_seed(1)
    w_dist, w_mle, w_mom = (torch.rand(shape, generator=g, dtype=torch.float64).to(device)
                            for shape in ((33, 8), (33, 2), (33, 2)))

    def loss(out):
        return (w_dist * out[0]).sum() + (w_mle * out[2]).sum() + (w_mom * out[3]).sum()

    leaves = [x] if self_ref else [x, ref]
    got = torch.autograd.grad(loss(run(device, backend, x, ref, ks, form)), leaves)
    want = torch.autograd.grad(loss(reference.knn_lid(x, x if self_ref else ref, ks, form, 0 if self_ref else -1)),
                               leaves)
    for a, b in zip(got, want, strict=True):
        assert (a - b).abs().max().item() <= 1e-9 * (1 + b.abs().max().item())


@pytest.mark.parametrize("form", FORMS)
def test_closed_form_estimator_gradient_equals_autograd(form):
    ks = [2, 5, 9]
    dist = make_points(1, 9 * 25, torch.float64, "cpu", seed=2).abs().reshape(25, 9).sort(dim=1).values
    dist[0, 0] = 0.0  # a duplicate: floored (MLE) or a zero term
    dist.requires_grad_(True)
    g = torch.Generator().manual_seed(4)
    gm, gq = torch.rand(25, 3, generator=g, dtype=torch.float64), torch.rand(25, 3, generator=g, dtype=torch.float64)
    mle, mom = reference.estimators(dist, ks, form)
    want = torch.autograd.grad((gm * mle).sum() + (gq * mom).sum(), dist)[0]
    got = reference.estimator_grad(dist.detach(), ks, form, gm, gq)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("form", FORMS)
def test_gradcheck_of_the_reference(form):
    x = make_points(14, 4, torch.float64, "cpu", seed=9).requires_grad_(True)
    ref = make_points(19, 4, torch.float64, "cpu", seed=10).requires_grad_(True)

    def f(q, r):
        _, _, mle, mom = reference.knn_lid(q, r, [3, 6], form)
        return mle, mom

    assert torch.autograd.gradcheck(f, (x, ref))


@pytest.mark.parametrize("device,backend", [p for p in DEVICE_BACKENDS if p.values[1] in ("cpp", "triton")])
def test_opcheck(device, backend):
    x = make_points(20, 6, torch.float32, device, seed=0)
    if backend == "cpp":
        torch.library.opcheck(torch.ops.robustfast._knn_lid_cpp.default, (x, x, [3, 5], "literature", 0))
        dist, idx, _, _ = torch.ops.robustfast._knn_lid_cpp(x, x, [3, 5], "literature", 0)
        grad = torch.rand(dist.shape, generator=torch.Generator().manual_seed(0)).to(device)
        for reference_grad in (True, False):
            torch.library.opcheck(torch.ops.robustfast._knn_lid_backward_cpp.default,
                                  (x, x, dist, idx, grad, reference_grad))
        return
    # the Triton interpreter reads data pointers, which the AOT-dispatch check's tensors lack
    utils = ("test_schema", "test_autograd_registration", "test_faketensor")
    if device.type == "cuda":
        utils += ("test_aot_dispatch_dynamic",)
    torch.library.opcheck(torch.ops.robustfast._knn_lid_triton.default, (x, x, [3, 5], "literature", 0),
                          test_utils=utils)


@pytest.mark.parametrize("x,ref,kwargs,match", [
    (torch.randn(10, 3), None, {"k": 10}, r"k must be <= 9"),
    (torch.randn(10, 3), torch.randn(6, 3), {"k": 7}, r"k must be <= 6"),
    (torch.randn(10, 3), None, {"k": 1}, r"k must be >= 2"),
    (torch.randn(10, 3), None, {"k": [4, 1]}, r"k must be >= 2"),
    (torch.randn(10, 3), torch.randn(12, 4), {"k": 3}, r"D = 4"),
    (torch.randn(10, 3, 2), None, {"k": 3}, r"queries must be a 2-d"),
    (torch.randint(0, 5, (10, 3)), None, {"k": 3}, r"queries must be a floating-point"),
    (torch.randn(10, 3), None, {"k": 3, "form": "paper"}, r"form must be one of"),
    (torch.randn(10, 3), torch.randn(12, 3), {"k": 3, "self_offset": 5}, r"self_offset"),
])
def test_bad_inputs_name_the_argument(x, ref, kwargs, match):
    with pytest.raises(ValueError, match=match):
        knn_lid(x, ref, **kwargs)


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")  # the interpreter computing the NaNs
def test_non_finite_data_and_undefined_lid_raise(device, backend):
    x = make_points(30, 4, torch.float32, device, seed=1)
    with robustfast.use_backend(backend):
        bad = x.clone()
        bad[7, 2] = float("nan")
        with pytest.raises(ValueError, match="queries contains NaN"):
            knn_lid(bad, k=5)
        with pytest.raises(ValueError, match="reference contains NaN"):
            knn_lid(x, bad, k=5)
        dup = x.clone()
        dup[1:6] = dup[0]  # row 0 has five exact copies: with k = 5 its k-th distance is 0
        with pytest.raises(ValueError, match="exact duplicates"):
            knn_lid(dup, k=5)
        with pytest.raises(ValueError, match="all equal"):
            knn_lid(dup, k=6)  # some other point has the six copies as its six nearest, at one distance
        assert torch.isfinite(knn_lid(dup, k=7).mle).all()


def test_half_precision_points_are_computed_in_float32():
    x = make_points(40, 8, torch.float32, "cpu", seed=12).to(torch.bfloat16)
    out = knn_lid(x, k=6)
    same = knn_lid(x.float(), k=6)
    assert out.distances.dtype == torch.float32
    assert torch.equal(out.distances, same.distances) and torch.equal(out.mle, same.mle)
