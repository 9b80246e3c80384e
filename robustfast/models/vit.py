"""Vision transformers without a hub: Hugging Face ViT / ViT-MAE built from configs, and `ViTEncoder`, the one
interface the feature-level attacks use (`num_layers`, the truncated forward `tokens(x, upto)`).

`wrap(model)` takes a Hugging Face `ViTModel`, `ViTForImageClassification`, `ViTMAEModel`, `ViTMAEForPreTraining`,
a timm `VisionTransformer` or a `ViTEncoder`. Images are N×C×H×W in [0, 1]; the wrapper normalises them. MAE
encoders run unmasked (their embedding is recomputed without the random masking, spec dta.md §5).
Layer l (1-based) is the residual stream after block l, before any LayerNorm: Hugging Face's hidden_states[l].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SIZES = {"image_size": 16, "patch_size": 4, "hidden_size": 64, "num_hidden_layers": 6, "num_attention_heads": 4,
         "intermediate_size": 128, "num_channels": 3}


def vit_config(kind: str = "vit", **overrides):
    """A Hugging Face `ViTConfig` (kind "vit") or `ViTMAEConfig` ("mae") of the digits model of spec dta.md §8,
    with `overrides` applied (any config field). MAE's decoder is sized to the encoder."""
    from transformers import ViTConfig, ViTMAEConfig

    fields = {**SIZES, **overrides}
    if kind == "vit":
        return ViTConfig(**fields)
    if kind == "mae":
        decoder = {"decoder_hidden_size": fields["hidden_size"], "decoder_num_hidden_layers": 2,
                   "decoder_num_attention_heads": fields["num_attention_heads"],
                   "decoder_intermediate_size": fields["intermediate_size"]}
        return ViTMAEConfig(**{**decoder, **fields})
    raise ValueError(f"kind must be 'vit' or 'mae', got {kind!r}")


def build_vit(seed: int = 0, **overrides):
    """A freshly initialised Hugging Face `ViTModel` (no pooler) of `vit_config(**overrides)`."""
    from transformers import ViTModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ViTModel(vit_config("vit", **overrides), add_pooling_layer=False)


def build_mae(seed: int = 0, **overrides):
    """A freshly initialised Hugging Face `ViTMAEForPreTraining` of `vit_config("mae", **overrides)`."""
    from transformers import ViTMAEForPreTraining

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ViTMAEForPreTraining(vit_config("mae", **overrides))


def _root(model: nn.Module) -> tuple[nn.Module, str]:
    """(the module holding embeddings, blocks and final norm, its kind "vit" | "mae" | "timm"), or a ValueError."""
    name = type(model).__name__
    if name in ("ViTForImageClassification", "ViTMAEForPreTraining"):
        model = model.vit
        name = type(model).__name__
    if name == "ViTModel":
        return model, "vit"
    if name == "ViTMAEModel":
        return model, "mae"
    if name == "VisionTransformer" and hasattr(model, "blocks") and hasattr(model, "patch_embed"):
        return model, "timm"
    raise ValueError(f"model must be a Hugging Face ViTModel, ViTForImageClassification, ViTMAEModel or "
                     f"ViTMAEForPreTraining, a timm VisionTransformer or a ViTEncoder; got {name}")


def _patchify(proj: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """(B, patches, D): the patch embedding. Non-overlapping patches (stride = kernel, no padding) go through one
    matmul on the reshaped image: on CPU the convolution's input gradient costs several times as much."""
    (ph, pw), (b, c, h, w) = proj.kernel_size, x.shape
    plain = proj.stride == (ph, pw) and proj.padding == (0, 0) and proj.dilation == (1, 1) and proj.groups == 1
    if not plain or h % ph or w % pw:
        return proj(x).flatten(2).transpose(1, 2)
    cols = x.reshape(b, c, h // ph, ph, w // pw, pw).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * ph * pw)
    return F.linear(cols, proj.weight.flatten(1), proj.bias)


class ViTEncoder(nn.Module):
    """A ViT as embed → blocks → final norm. `forward(x)` is the normed class token (B, D), the feature heads
    read; `tokens(x, upto)` the residual streams after blocks 1..upto (each B×T×D), running only those blocks."""

    def __init__(self, model: nn.Module, mean: float = 0.5, std: float = 0.5):
        super().__init__()
        self.model, self.kind = _root(model)
        self.num_layers = len(self.blocks)
        self.hidden_size = self.norm.normalized_shape[0]
        self.register_buffer("mean", torch.tensor(float(mean)), persistent=False)
        self.register_buffer("std", torch.tensor(float(std)), persistent=False)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.blocks if self.kind == "timm" else self.model.layers

    @property
    def norm(self) -> nn.Module:
        return self.model.norm if self.kind == "timm" else self.model.layernorm

    def check_layer(self, layer, name: str = "layer") -> int:
        if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= self.num_layers:
            raise ValueError(f"{name} must be an int in 1..{self.num_layers} (a block of this encoder), got "
                             f"{layer!r}")
        return layer

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """z₀ (B, T, D): the token embeddings of images in [0, 1] (MAE's without its random masking)."""
        x = (x - self.mean) / self.std
        m = self.model
        if self.kind == "timm":
            return m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(x))))
        emb = m.embeddings
        pos = emb.position_embeddings
        patches = _patchify(emb.patch_embeddings.projection, x)
        if patches.shape[1] + 1 != pos.shape[1]:
            raise ValueError(f"images must be {tuple(emb.patch_embeddings.image_size)} pixels (this encoder's size), "
                             f"got {tuple(x.shape[-2:])}")
        cls = (emb.cls_token + pos[:, :1, :]).expand(x.shape[0], -1, -1)
        z = torch.cat([cls, patches + pos[:, 1:, :]], dim=1)
        return emb.dropout(z) if self.kind == "vit" else z

    def block(self, layer: int, z: torch.Tensor) -> torch.Tensor:
        """z_l = block_l(z_{l−1}), 1-based."""
        out = self.blocks[layer - 1](z)
        return out[0] if isinstance(out, tuple) else out

    def next_norm(self, layer: int) -> nn.Module:
        """The LayerNorm that reads layer l next: block l+1's first norm, or the final norm after the last block."""
        if layer == self.num_layers:
            return self.norm
        nxt = self.blocks[layer]
        return nxt.layernorm_before if hasattr(nxt, "layernorm_before") else nxt.norm1

    def tokens(self, x: torch.Tensor, upto: int) -> list[torch.Tensor]:
        """[h_1, …, h_upto]: the residual stream after each of blocks 1..upto; later blocks do not run."""
        self.check_layer(upto, "upto")
        z, out = self.embed(x), []
        for layer in range(1, upto + 1):
            z = self.block(layer, z)
            out.append(z)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.tokens(x, self.num_layers)[-1])[:, 0]


def wrap(model: nn.Module, mean: float = 0.5, std: float = 0.5) -> ViTEncoder:
    """`model` as a ViTEncoder (itself if it is one); anything else is a ValueError naming its type."""
    if isinstance(model, ViTEncoder):
        return model
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (a ViT), got {type(model).__name__}")
    return ViTEncoder(model, mean=mean, std=std)


class Classifier(nn.Module):
    """A downstream model g = head ∘ f: a linear head on the encoder's normed class token."""

    def __init__(self, encoder: ViTEncoder, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))
