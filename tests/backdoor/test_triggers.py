"""The trigger zoo: each trigger's invariants, uint8 semantics, seeds, and batched == per-image."""
import math

import pytest
import torch

from robustfast.backdoor import apply_stacked, make_trigger, patterns, trigger_names
from robustfast.backdoor.triggers import BadNets, Hybrid, Nashville, OnePixel, WaNet


def images(n=6, c=3, size=32, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def as_uint8(x):
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def test_onepixel_and_badnets_write_exactly_the_specified_values():
    x = images()
    one = OnePixel().apply(x)
    assert torch.equal(one[:, :, 16, 16], torch.ones(6, 3))
    changed = (one != x).any(dim=1)
    assert changed.sum(dim=(1, 2)).max() == 1
    grid = BadNets().apply(x)
    expected = torch.tensor([[0, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.float32)
    assert torch.equal(grid[:, :, 29:, 29:], expected.expand(6, 3, 3, 3))
    assert torch.equal(grid[:, :, :29], x[:, :, :29]) and torch.equal(grid[:, :, :, :29], x[:, :, :, :29])
    u = BadNets().apply(as_uint8(x))
    assert torch.equal(u[:, 29:, 29:, 0], (expected * 255).to(torch.uint8).expand(6, 3, 3))


def test_legacy_cl_is_the_grid_trigger():
    x = images()
    assert torch.equal(make_trigger("cl_legacy").apply(x), make_trigger("grid").apply(x))


def test_fourcorner_is_the_published_layout():
    """The multi-trigger code's _fourCornerTrigger, pixel by pixel at 32×32 (img[row][col] = v, transcribed):
    the grid faces outwards in each corner, flush at the bottom/right edges and from row/column 1 at the top/left."""
    ones = {  # (row, col) set to 255 in every channel
        (31, 31), (31, 29), (30, 30), (29, 31),       # bottom-right: rows 29-31 = 0 0 1 / 0 1 0 / 1 0 1
        (1, 1), (1, 3), (2, 2), (3, 1),               # top-left:     rows 1-3  = 1 0 1 / 0 1 0 / 1 0 0
        (31, 1), (31, 3), (30, 2), (29, 1),           # bottom-left:  rows 29-31 = 1 0 0 / 0 1 0 / 1 0 1
        (1, 31), (1, 29), (2, 30), (3, 31),           # top-right:    rows 1-3  = 1 0 1 / 0 1 0 / 0 0 1
    }
    blocks = [(r, c) for rs in (range(1, 4), range(29, 32)) for cs in (range(1, 4), range(29, 32))
              for r in rs for c in cs]
    x = images(n=2, size=32, seed=11)
    for out in (make_trigger("fourcorner").apply(x), make_trigger("fourcorner").apply(as_uint8(x))):
        out = out if out.dtype != torch.uint8 else out.permute(0, 3, 1, 2).float() / 255
        for r, c in blocks:
            assert torch.equal(out[:, :, r, c], torch.full((2, 3), float((r, c) in ones))), (r, c)
        untouched = torch.ones(32, 32, dtype=torch.bool)
        untouched[[r for r, _ in blocks], [c for _, c in blocks]] = False
        assert torch.allclose(out[:, :, untouched], x[:, :, untouched], atol=0.5 / 255 + 1e-6)  # uint8: rounding
    assert untouched[0].all() and untouched[:, 0].all()  # row 0 and column 0 are never written
    # the bottom-right block is the BadNets grid
    assert torch.equal(make_trigger("fourcorner").apply(x)[:, :, 29:, 29:], BadNets().apply(x)[:, :, 29:, 29:])
    with pytest.raises(ValueError, match="too small"):
        make_trigger("fourcorner").apply(images(n=1, size=3))


@pytest.mark.parametrize("name", ["blend", "sig"])
def test_blends_are_alpha_mixes(name):
    x = images()
    trig = make_trigger(name, seed=3)
    out = trig.apply(x)
    pattern = (out - 0.8 * x) / 0.2  # recover the pattern: the same for every image
    assert torch.allclose(pattern, pattern[:1].expand_as(pattern), atol=1e-5)
    assert pattern.min() >= -1e-5 and pattern.max() <= 1 + 1e-5
    if name == "sig":
        stripes = patterns.sinusoid_stripes(32, 32)
        assert torch.allclose(pattern[0, 1], stripes.float(), atol=1e-5)


def test_blend_noise_is_fresh_per_image_and_reproducible_by_generator():
    x = images()
    trig = make_trigger("blend_noise")
    a = trig.apply(x, torch.Generator().manual_seed(5))
    b = trig.apply(x, torch.Generator().manual_seed(5))
    c = trig.apply(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    noise = (a - 0.8 * x) / 0.2
    assert not torch.allclose(noise[0], noise[1], atol=1e-3)
    assert torch.allclose(noise[:, 0], noise[:, 2], atol=1e-5), "the reference's noise is one grey plane"


def test_trojan_saturates_by_default_and_wraps_in_legacy_mode():
    x = torch.full((2, 3, 32, 32), 0.9)
    sat = make_trigger("trojan").apply(x)
    assert sat.max() == 1.0 and (sat != x).sum() == 2 * 26  # 26 non-zeros per image
    u = as_uint8(x)
    wrapped = make_trigger("trojan", wrap=True).apply(u).int()
    patch = (make_trigger("trojan").apply(torch.zeros(1, 3, 32, 32))[0] * 255).round().int().permute(1, 2, 0)
    assert torch.equal(wrapped[0], (u[0].int() + patch) % 256)
    assert (wrapped < u.int()).any(), "sums above 255 wrap to dark values"
    with pytest.raises(ValueError, match="uint8"):
        make_trigger("trojan", wrap=True).apply(x)


def test_smooth_spans_the_full_range_per_image():
    x = images()
    out = make_trigger("smooth").apply(x)
    flat = out.flatten(1)
    assert torch.allclose(flat.min(1).values, torch.zeros(6)) and torch.allclose(flat.max(1).values, torch.ones(6))
    u = make_trigger("smooth").apply(as_uint8(x)).flatten(1)
    assert (u.min(1).values == 0).all() and (u.max(1).values == 255).all()
    q = patterns.smooth_field(3, 32, 32, seed=0)
    assert q.min() == 0 and abs(q.max() - 0.2) < 1e-12


def pil_style_nashville(rgb: tuple[int, int, int]) -> list[int]:
    """One 8-bit pixel through the six Nashville stages with PIL's arithmetic, written out by hand: solid-colour
    composites with an 8-bit alpha and truncating x·y/255 products; colour matrices rounded as v + 0.5 truncated
    and clipped; point curves rounded half to even and clipped."""
    def clip(v):
        return max(0, min(255, v))

    def overlay(v, colour, alpha, pick):
        return [clip(alpha * pick(a, c) // 255 + (255 - alpha) * a // 255) for a, c in zip(v, colour, strict=True)]

    def matrix(v, m):
        return [clip(math.floor(sum(m[i][j] * v[j] for j in range(3)) + 0.5)) for i in range(3)]

    v = overlay(list(rgb), (247, 176, 153), 143, min)         # darken, opacity 0.56 -> alpha 143
    v = overlay(v, (0, 70, 150), 102, max)                    # lighten, opacity 0.4 -> alpha 102
    v = matrix(v, patterns.sepia_matrix(0.2).tolist())
    v = [clip(round(a * 1.2 - 153.0 + 127.5)) for a in v]     # contrast 1.2
    v = [clip(round(a * 1.05)) for a in v]                    # brightness 1.05
    return matrix(v, patterns.saturation_matrix(1.2).tolist())


def test_nashville_applies_the_stages_in_order_with_8_bit_steps():
    g = torch.Generator().manual_seed(21)
    pixels = torch.randint(0, 256, (1, 16, 16, 3), generator=g, dtype=torch.uint8)
    pixels[0, 0, :3] = torch.tensor([[0, 0, 0], [255, 255, 255], [128, 128, 128]], dtype=torch.uint8)
    out = Nashville().apply(pixels)
    for rgb, got in zip(pixels.view(-1, 3).tolist(), out.view(-1, 3).tolist(), strict=True):
        assert got == pil_style_nashville(tuple(rgb)), rgb
    with pytest.raises(ValueError, match="3"):
        Nashville().apply(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_nashville_matches_pilgram(backend):
    """The multi-trigger code's Nashville is pilgram.nashville: within one level on uint8 images (measured:
    identical on all 2^24 colours; before the two-pass layout 88 % of values differed, by up to 6)."""
    pilgram = pytest.importorskip("pilgram", reason="pilgram is in the dev extra")
    np = pytest.importorskip("numpy")
    from PIL import Image

    import robustfast
    from robustfast import _backend

    if backend not in _backend.available(torch.device("cpu")):
        pytest.skip(f"backend {backend} is not built here")
    g = torch.Generator().manual_seed(5)
    batch = torch.randint(0, 256, (8, 32, 32, 3), generator=g, dtype=torch.uint8)
    levels = torch.arange(0, 256, 5, dtype=torch.uint8)  # a lattice of colours, dark and bright corners included
    lattice = torch.stack(torch.meshgrid(levels, levels, levels, indexing="ij"), dim=-1).reshape(1, 52 * 52, 52, 3)
    for images in (batch, lattice):
        theirs = torch.from_numpy(np.stack([np.asarray(pilgram.nashville(Image.fromarray(a.numpy())))
                                            for a in images]))
        with robustfast.use_backend(backend):
            ours = Nashville().apply(images)
        assert (ours.int() - theirs.int()).abs().max().item() <= 1


def test_wanet_mean_displacement_and_fixed_versus_fresh():
    fresh = WaNet(fresh=True)
    grid = fresh.sampling_grid(64, 32, 32, torch.Generator().manual_seed(0))
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 32, dtype=torch.float64),
                            torch.linspace(-1, 1, 32, dtype=torch.float64), indexing="ij")
    shift = grid - torch.stack([xs, ys], dim=-1)
    interior = shift[:, 2:-2, 2:-2]  # away from the clamp at the border
    assert interior.abs().mean().item() == pytest.approx(0.5 / 32, rel=0.05)
    x = images()
    fixed = WaNet()
    a, b = fixed.apply(x[:1]), fixed.apply(x[1:2])
    assert torch.equal(fixed.apply(x)[:2], torch.cat([a, b])), "one fixed field for every image"
    out = fresh.apply(x, torch.Generator().manual_seed(1))
    assert 0 < (out - x).abs().mean() < 0.2
    u = fixed.apply(as_uint8(x))
    assert u.dtype == torch.uint8 and u.shape == (6, 32, 32, 3)


def test_iad_is_input_aware_and_fit_changes_it():
    x = images(n=32, size=16)
    trig = make_trigger("iad", density=0.1)
    out = trig.apply(x)
    masks = trig.mask(x)
    assert masks.mean().item() == pytest.approx(0.1, abs=0.05)
    assert not torch.allclose(masks[0], masks[1]), "masks depend on the input"
    before = {k: v.clone() for k, v in trig.state_tensors().items()}
    losses = trig.fit(x, epochs=3, batch_size=8)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], "training lowers the diversity loss"
    assert any(not torch.equal(before[k], v) for k, v in trig.state_tensors().items())
    again = make_trigger("iad", density=0.1)
    assert torch.equal(again.apply(x), out), "the untrained networks come from the seed"


@pytest.mark.parametrize("name", [n for n in trigger_names() if n != "hybrid"])
def test_every_trigger_float_and_uint8(name):
    x = images(n=4, size=16, seed=1)
    trig = make_trigger(name, seed=2)
    out = trig.apply(x)
    assert out.shape == x.shape and out.dtype == x.dtype and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)
    assert torch.equal(out, make_trigger(name, seed=2).apply(x)), "the same seed gives the same trigger"
    u = as_uint8(x)
    legacy = make_trigger(name, seed=2, truncate=True).apply(u)
    rounded = trig.apply(u)
    assert legacy.dtype == torch.uint8 and legacy.shape == u.shape
    assert ((rounded.int() - legacy.int()) >= 0).all(), "truncation never rounds up"


@pytest.mark.parametrize("name", ["onepixel", "badnets", "fourcorner", "blend", "sig", "trojan", "smooth",
                                  "nashville", "wanet"])
def test_batched_equals_image_by_image(name):
    """The fused op on a mixed batch is bit-identical to applying each trigger to one image at a time."""
    x = images(n=5, seed=4)
    trigs = [make_trigger(name), make_trigger("badnets"), make_trigger("sig")]
    ids = torch.tensor([0, -1, 1, 2, 0])
    batched = apply_stacked(x, ids, trigs)
    for i, k in enumerate(ids.tolist()):
        single = x[i:i + 1] if k < 0 else trigs[k].apply(x[i:i + 1])
        assert torch.equal(batched[i:i + 1], single), f"image {i}"


def test_hybrid_applies_components_in_turn():
    x = images(n=3)
    hybrid = Hybrid(["badnets", "sig"])
    expected = make_trigger("sig").apply(make_trigger("badnets").apply(x))
    assert torch.equal(hybrid.apply(x), expected)
    assert make_trigger(hybrid.config()).config() == hybrid.config()
    with pytest.raises(ValueError, match="components"):
        Hybrid(["badnets"])


def test_unknown_names_and_bad_arguments():
    with pytest.raises(ValueError, match="unknown trigger name 'badnet'"):
        make_trigger("badnet")
    with pytest.raises(ValueError, match="alpha"):
        make_trigger("blend", alpha=1.5)
    with pytest.raises(ValueError, match="seed"):
        make_trigger("sig", seed=-1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        make_trigger("badnets").apply(images() * 2)
    with pytest.raises(ValueError, match="too small"):
        make_trigger("badnets").apply(torch.rand(1, 3, 2, 2))
