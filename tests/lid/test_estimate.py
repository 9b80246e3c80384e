"""robustfast.lid: the estimators against scikit-dimension and closed forms, the log-scale helpers, LDReg."""
import math

import pytest
import torch

from robustfast.lid import LDReg, fisher_rao_distance, gmean, lid, log_mean, log_var
from robustfast.reference import knn_lid as reference


def plane_in(n: int, d: int, dim: int, seed: int) -> torch.Tensor:
    """n points uniform in a dim-dimensional cube, rotated into d dimensions (intrinsic dimension dim)."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(d, dim, generator=g, dtype=torch.float64))[0]
    return (torch.rand(n, dim, generator=g, dtype=torch.float64) @ basis.t()).float()


def test_mle_matches_scikit_dimension():
    skdim = pytest.importorskip("skdim", reason="scikit-dimension is installed by `make test` (the dev extra)")
    x = plane_in(600, 20, 5, seed=0)
    k = 20
    theirs = torch.from_numpy(skdim.id.MLE().fit(x.double().numpy(), n_neighbors=k).dimension_pw_)
    # scikit-dimension's pointwise MLE (Levina–Bickel, no noise model) is −(k−1)/Σ_{j<k} ln(r_j/r_k), i.e. the
    # levina-bickel form's S with k − 1 terms
    ours = lid(x.double(), k=k, form="levina-bickel")
    assert ((ours - theirs).abs() / theirs).max().item() < 1e-6


def test_mle_is_the_formula_and_recovers_the_intrinsic_dimension():
    x = plane_in(2000, 16, 4, seed=1)
    k = 20
    est = lid(x, k=k)
    dist = torch.cdist(x.double(), x.double()).fill_diagonal_(math.inf).topk(k, largest=False).values
    formula = -1.0 / torch.log(dist / dist[:, -1:]).mean(dim=1)
    assert torch.allclose(est.double(), formula, rtol=1e-4)
    assert 3.0 < gmean(est).item() < 5.0  # the MLE of a 4-d cube, biased low near its faces


def test_mom_and_several_k():
    x = plane_in(300, 10, 3, seed=2)
    both = lid(x, k=[8, 16], estimator="mom")
    assert both.shape == (300, 2)
    assert torch.allclose(both[:, 1], lid(x, k=16, estimator="mom"))


def test_ldreg_form_caps_k_at_batch_minus_two():
    x = plane_in(12, 6, 3, seed=3)
    assert torch.allclose(lid(x, k=64, form="ldreg"), lid(x, k=10, form="ldreg"))


def test_log_scale_helpers():
    lids = torch.tensor([2.0, 8.0, 4.0])
    assert gmean(lids).item() == pytest.approx(4.0)
    assert log_mean(lids).item() == pytest.approx(math.log(4.0))
    assert log_var(lids).item() == pytest.approx(((math.log(2) - math.log(4)) ** 2 * 2) / 3)
    assert fisher_rao_distance(torch.tensor(5.0), torch.tensor(20.0)).item() == pytest.approx(math.log(4.0))
    with pytest.raises(ValueError, match="lids"):
        gmean(torch.tensor([]))


@pytest.mark.parametrize("form", ["l1", "l2"])
def test_ldreg_value_is_the_paper_formula(form):
    feats = plane_in(40, 12, 6, seed=4).requires_grad_(True)
    reg = LDReg(beta=0.5, k=8, form=form)(feats)
    _, _, _, mom = reference.knn_lid(feats.detach().double(), feats.detach().double(), [8], "literature", 0)
    log_lid = mom[:, 0].log()
    want = {"l1": -log_lid.mean(), "l2": -log_lid.square().mean().sqrt()}[form]
    assert reg.item() == pytest.approx(0.5 * want.item(), rel=1e-4)


def ldreg_code_mom(data: torch.Tensor, reference: torch.Tensor, k: int) -> torch.Tensor:
    """The LDReg code's lid_mom_est, written out: cdist against the reference (the point itself included), sorted;
    m = mean of columns 1..k−1 (k − 1 nearest non-self distances), LID = m / (a_k − m), k capped at B − 2."""
    k = min(k, data.shape[0] - 2)
    a = torch.sort(torch.cdist(data, reference), dim=1).values
    m = a[:, 1:k].mean(dim=1)
    return m / (a[:, k] - m)


@pytest.mark.parametrize("k", [8, 16, 64])
def test_ldreg_code_form_is_the_reference_code_value_and_gradient(k):
    """form="ldreg-code": −β·mean |ln LID| with the code's estimator (not the literature MoM, which differs by
    ~7 % per point at k = 16), and the same gradient as autograd through the code's formula (float64)."""
    feats = plane_in(48, 12, 6, seed=8).double().requires_grad_(True)
    reg = LDReg(beta=0.5, k=k, form="ldreg-code")(feats)
    reg.backward()
    ours = feats.grad.clone()
    feats.grad = None
    want = 0.5 * -ldreg_code_mom(feats, feats.detach(), k).log().abs().mean()
    want.backward()
    assert reg.item() == pytest.approx(want.item(), rel=1e-10)
    assert torch.allclose(ours, feats.grad, rtol=1e-8, atol=1e-12)
    if k == 16:
        literature = reference.knn_lid(feats.detach(), feats.detach(), [k], "literature", 0)[3][:, 0]
        code = ldreg_code_mom(feats.detach(), feats.detach(), k)
        assert ((literature - code).abs() / code).mean() > 0.03  # the forms really differ here


def test_ldreg_gradient_steps_raise_the_lid_of_a_flat_cloud():
    feats = (plane_in(128, 16, 2, seed=5) + 0.01 * torch.randn(128, 16, generator=torch.Generator().manual_seed(0)))
    feats.requires_grad_(True)
    reg = LDReg(beta=1.0, k=16)
    before = gmean(lid(feats.detach(), k=16)).item()
    opt = torch.optim.SGD([feats], lr=0.01)
    for _ in range(30):
        opt.zero_grad()
        reg(feats).backward()
        opt.step()
    after = gmean(lid(feats.detach(), k=16)).item()
    assert after > 1.2 * before


def test_ldreg_reference_is_detached():
    feats = plane_in(30, 5, 3, seed=6).requires_grad_(True)
    other = plane_in(30, 5, 3, seed=7).requires_grad_(True)
    union = torch.cat([feats, other])
    LDReg(beta=1.0, k=5)(feats, union, offset=0).backward()
    assert feats.grad is not None and other.grad is None


def test_ldreg_rejects_bad_arguments():
    with pytest.raises(ValueError, match="form"):
        LDReg(form="l3")
    with pytest.raises(ValueError, match="k must"):
        LDReg(k=1)
    with pytest.raises(ValueError, match="beta"):
        LDReg(beta=-1.0)
