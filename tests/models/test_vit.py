"""robustfast.models.vit: the truncated forward equals Hugging Face's hidden states, MAE runs unmasked, and
wrap rejects what it cannot take."""
import pytest
import torch
from torch import nn

from robustfast.models.vit import Classifier, build_mae, build_vit, wrap


def images(n=3, seed=0):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_truncated_forward_equals_the_full_models_hidden_states():
    vit = build_vit(seed=1).eval()
    enc = wrap(vit)
    x = images()
    with torch.no_grad():
        full = vit(pixel_values=(x - 0.5) / 0.5, output_hidden_states=True)
        for upto in (1, 3, enc.num_layers):
            hs = enc.tokens(x, upto)
            assert len(hs) == upto
            for layer, h in enumerate(hs, 1):
                torch.testing.assert_close(h, full.hidden_states[layer], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(enc(x), full.last_hidden_state[:, 0], rtol=1e-5, atol=1e-5)


def test_mae_encoder_runs_unmasked_and_matches_its_hidden_states_in_order():
    mae = build_mae(seed=2, mask_ratio=0.0).eval()
    enc = wrap(mae)
    x = images(2, 1)
    n = mae.vit.embeddings.patch_embeddings.num_patches
    with torch.no_grad():
        full = mae.vit(pixel_values=(x - 0.5) / 0.5, noise=torch.arange(n, dtype=torch.float32).expand(2, n),
                       output_hidden_states=True)
        hs = enc.tokens(x, enc.num_layers)
    assert hs[0].shape == (2, n + 1, 64)
    for layer, h in enumerate(hs, 1):
        torch.testing.assert_close(h, full.hidden_states[layer], rtol=1e-5, atol=1e-5)


def test_wrap_takes_an_encoder_as_is_and_rejects_other_models():
    enc = wrap(build_vit())
    assert wrap(enc) is enc and enc.num_layers == 6
    assert Classifier(enc, 5)(images()).shape == (3, 5)
    with pytest.raises(ValueError, match="model must be"):
        wrap(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="upto"):
        enc.tokens(images(), 7)


def test_state_dict_has_no_aliases_and_a_copy_embeds_with_its_own_weights():
    import copy

    enc = wrap(build_mae(seed=3).vit)
    sd = enc.state_dict()
    assert len({t.data_ptr() for t in sd.values()}) == len(sd)  # safetensors refuses shared tensors
    twin = copy.deepcopy(enc)
    with torch.no_grad():
        twin.model.embeddings.patch_embeddings.projection.weight.add_(1.0)
    x = images(2, 4)
    assert not torch.allclose(twin.embed(x), enc.embed(x))
