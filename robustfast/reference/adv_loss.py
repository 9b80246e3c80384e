"""Plain-PyTorch definition of the per-row losses of adversarial training (robust_wrn spec §2 and "TRADES KL").

Inputs are clean logits a and adversarial logits b (B, K) and labels y (B,); p = softmax(a), q = softmax(b).

    kl:      KL(p ‖ q) = Σ_k p_k (log p_k − log q_k)                       (the TRADES attack's ascent)
    trades:  CE(a, y) + β·KL(p ‖ q)
    mart:    CE(b, y) − log(1.0001 − q_ŷ + 1e−12) + β·KL_ε(p ‖ q)·(1.0000001 − p_y),
             ŷ the highest class of q other than y, KL_ε = Σ_k p_k (log p_k − log(q_k + 1e−12))

The mean over the batch of each row's value is the published batch loss. `adv_loss_grad` is the closed-form
gradient in both arguments (derived in the spec, checked against autograd in the tests):

    ∂KL/∂b = q − p,     ∂KL/∂a = p ⊙ (log p − log q − KL)
    ∂KL_ε/∂b_j = q_j Σ_k p_k r_k − p_j r_j,  r = q/(q + 1e−12);   ∂KL_ε/∂a = p ⊙ (log p − log(q + 1e−12) − KL_ε)

Arithmetic in float32 (float64 for float64 logits), as the kernels do.
"""
import torch

from robustfast._util.checks import opmath_dtype

KINDS = ("kl", "trades", "mart")
MART_LOG_EPS = 1e-12       # inside log(q + ·) of MART's KL and log(1.0001 − q_ŷ + ·)
MART_MARGIN = 1.0001       # log(MART_MARGIN − q_ŷ + MART_LOG_EPS)
MART_WEIGHT = 1.0000001    # KL weight (MART_WEIGHT − p_y)


def _rows(a, b, labels):
    dtype = opmath_dtype(a.dtype)
    a, b = a.to(dtype), b.to(dtype)
    la, lb = torch.log_softmax(a, 1), torch.log_softmax(b, 1)
    y = labels.long()[:, None]
    return la, lb, la.exp(), lb.exp(), y


def _other_best(q, y):
    """ŷ: the highest class of q other than y."""
    return q.scatter(1, y, float("-inf")).argmax(1, keepdim=True)


def adv_loss(a, b, labels, kind: str, beta: float) -> torch.Tensor:
    la, lb, p, q, y = _rows(a, b, labels)
    if kind == "kl":
        return (p * (la - lb)).sum(1)
    if kind == "trades":
        return -la.gather(1, y).squeeze(1) + beta * (p * (la - lb)).sum(1)
    if kind == "mart":
        kl = (p * (la - torch.log(q + MART_LOG_EPS))).sum(1)
        q_hat = q.gather(1, _other_best(q, y)).squeeze(1)
        return (-lb.gather(1, y).squeeze(1) - torch.log(MART_MARGIN - q_hat + MART_LOG_EPS)
                + beta * kl * (MART_WEIGHT - p.gather(1, y).squeeze(1)))
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def adv_loss_grad(grad_loss, a, b, labels, kind: str, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_loss[:, None]·∂loss/∂a, grad_loss[:, None]·∂loss/∂b), in the logits' dtypes."""
    la, lb, p, q, y = _rows(a, b, labels)
    g = grad_loss.to(p.dtype)[:, None]
    onehot = torch.zeros_like(p).scatter_(1, y, 1.0)
    if kind in ("kl", "trades"):
        kl = (p * (la - lb)).sum(1, keepdim=True)
        da, db = p * (la - lb - kl), q - p
        if kind == "trades":
            da, db = (p - onehot) + beta * da, beta * db
    elif kind == "mart":
        log_q_eps = torch.log(q + MART_LOG_EPS)
        kl = (p * (la - log_q_eps)).sum(1, keepdim=True)
        w = MART_WEIGHT - p.gather(1, y)
        r = q / (q + MART_LOG_EPS)
        hat = _other_best(q, y)
        q_hat = q.gather(1, hat)
        hat_onehot = torch.zeros_like(q).scatter_(1, hat, 1.0)
        db = (q - onehot) + q_hat / (MART_MARGIN - q_hat + MART_LOG_EPS) * (hat_onehot - q) \
            + beta * w * (q * (p * r).sum(1, keepdim=True) - p * r)
        p_y = p.gather(1, y)
        da = beta * (w * p * (la - log_q_eps - kl) - kl * p_y * (onehot - p))
    else:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return (g * da).to(a.dtype), (g * db).to(b.dtype)
