"""apply_triggers: every backend against the float64 reference on fresh random images and random trigger tables."""
import zlib

import pytest
import torch

import robustfast
from robustfast.ops import apply_triggers
from robustfast.reference import apply_triggers as reference
from robustfast.reference.apply_triggers import ADD, BLEND, COLOUR, LUT, MINMAX, TRUNCATE, WRAP
from tests.conftest import DEVICE_BACKENDS

SHAPES = [(7, 3, 11, 13), (5, 1, 8, 8), (4, 4, 5, 7), (3, 3, 32, 32), (6, 2, 17, 3)]
# One trigger per stage and the combinations the zoo uses (Smooth: ADD|MINMAX, Nashville: LUT|COLOUR), and all.
FLOAT_MODES = [BLEND, ADD, ADD | MINMAX, LUT, COLOUR, LUT | COLOUR, MINMAX, LUT | COLOUR | BLEND | ADD | MINMAX]
UINT8_MODES = [*FLOAT_MODES, ADD | WRAP, BLEND | TRUNCATE, LUT | COLOUR | TRUNCATE, ADD | MINMAX | TRUNCATE]
ATOL = {torch.float64: 1e-12, torch.float32: 2e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}


def make_table(modes, c, h, w, hi, seed, extra_patterns=0):
    """Random per-trigger tensors (float64, values in [0, hi]) exercising every stage, with exact 0/1 weights."""
    g = torch.Generator().manual_seed(seed)
    t = len(modes)
    weight = torch.rand(t, c, h, w, generator=g, dtype=torch.float64)
    weight[weight < 0.2] = 0
    weight[weight > 0.8] = 1
    nodes = 256 if hi == 255 else 33
    lut = torch.rand(t, c, nodes, generator=g, dtype=torch.float64).sort(dim=-1).values * hi
    mix = torch.eye(c, dtype=torch.float64) + 0.3 * torch.randn(t, c, c, generator=g, dtype=torch.float64)
    colour = torch.cat([mix, 0.1 * hi * torch.randn(t, c, 1, generator=g, dtype=torch.float64)], dim=2)
    additive = 0.4 * hi * torch.randn(t, c, h, w, generator=g, dtype=torch.float64)
    if hi == 255:
        additive = additive.abs().round()  # the legacy Trojan adds integers
    return {"flags": torch.tensor(modes, dtype=torch.int32), "weight": weight,
            "pattern": hi * torch.rand(t + extra_patterns, c, h, w, generator=g, dtype=torch.float64),
            "additive": additive, "lut": lut, "colour": colour}


def make_batch(shape, modes, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    n = shape[0]
    images = torch.rand(shape, generator=g, dtype=torch.float64)
    ids = torch.randint(-1, len(modes), (n,), generator=g)
    ids[0], ids[-1] = -1, len(modes) - 1  # at least one clean image and one triggered
    if dtype == torch.uint8:
        images = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    else:
        images = images.to(dtype)
    return images, ids


def run(images, ids, table, dtype, device, pattern_index=None):
    compute = reference.compute_dtype(images.dtype)
    params = {k: (v.to(device=device, dtype=compute) if k != "flags" else v.to(device)) for k, v in table.items()}
    pidx = None if pattern_index is None else pattern_index.to(device)
    return apply_triggers(images.to(device), ids.to(device), pattern_index=pidx, **params)


def oracle(images, ids, table, pattern_index=None):
    """The reference in float64 on N×C×H×W (float images) — uint8 images stay uint8, computed in float32."""
    x = images.permute(0, 3, 1, 2) if images.dtype == torch.uint8 else images.double()
    compute = reference.compute_dtype(x.dtype)
    p = {k: (v.to(compute) if k != "flags" else v) for k, v in table.items()}
    pidx = ids.clamp(min=0) if pattern_index is None else pattern_index
    out = reference.apply_triggers(x, ids, p["flags"], p["lut"], p["colour"], p["weight"], p["pattern"], pidx,
                                   p["additive"])
    return out.permute(0, 2, 3, 1) if images.dtype == torch.uint8 else out


def skip_unsupported(device, backend, dtype):
    if backend == "triton" and device.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        pytest.skip("the Triton interpreter has no bf16/fp16 arithmetic")


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_float_matches_float64_reference(device, backend, dtype, shape):
    skip_unsupported(device, backend, dtype)
    seed = zlib.crc32(repr((shape, str(dtype))).encode())
    images, ids = make_batch(shape, FLOAT_MODES, seed, dtype)
    table = make_table(FLOAT_MODES, *shape[1:], 1.0, seed)
    expected = oracle(images, ids, table)
    with robustfast.use_backend("reference"):
        plain = run(images, ids, table, dtype, device).cpu()
    with robustfast.use_backend(backend):
        out = run(images, ids, table, dtype, device).cpu()
    assert out.dtype == dtype and out.shape == images.shape
    err = (out.double() - expected).abs().max().item()
    plain_err = (plain.double() - expected).abs().max().item()
    assert err <= 2 * plain_err + ATOL[dtype], f"{backend}: error {err:.3g} vs plain torch {plain_err:.3g}"
    clean = ids < 0
    assert torch.equal(out[clean], images[clean]), "clean images (id −1) must come back unchanged"
    assert not torch.equal(out[~clean], images[~clean])


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("shape", [(9, 3, 11, 13), (4, 1, 8, 8), (3, 3, 32, 32)], ids=str)
def test_uint8_nhwc_matches_reference(device, backend, shape):
    images, ids = make_batch(shape, UINT8_MODES, seed=sum(shape), dtype=torch.uint8)
    table = make_table(UINT8_MODES, *shape[1:], 255.0, seed=sum(shape))
    expected = oracle(images, ids, table)
    with robustfast.use_backend(backend):
        out = run(images, ids, table, torch.uint8, device).cpu()
    assert out.dtype == torch.uint8 and out.shape == images.shape and out.is_contiguous()
    diff = (out.int() - expected.int()).abs()
    # float32 rounding may tip a value across an integer (truncation) or a half (rounding) boundary
    assert diff.max() <= 1 and diff.double().mean() < 1e-3, f"{backend}: {int((diff > 0).sum())} values differ"
    assert torch.equal(out[ids < 0], images[ids < 0])


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
def test_overwrite_is_exact_and_modes_act_as_defined(device, backend):
    """Hand-checkable cases: a masked overwrite, a wrapping add, truncation, and min-max spanning the range."""
    n, c, h, w = 4, 3, 6, 5
    images = (torch.rand(n, h, w, c, generator=torch.Generator().manual_seed(0)) * 200 + 20).to(torch.uint8)
    weight = torch.zeros(4, c, h, w, dtype=torch.float32)
    weight[0, :, -3:, -3:] = 1
    pattern = torch.zeros(4, c, h, w)
    pattern[0, :, -3:, -3:] = 255
    additive = torch.zeros(4, c, h, w)
    additive[1] = 100
    additive[3] = 0.7
    weight[2] = 0.5
    pattern[2] = 101  # x/2 + 50.5: truncation and rounding differ for every x
    flags = torch.tensor([BLEND, ADD | WRAP, BLEND | TRUNCATE, ADD | MINMAX], dtype=torch.int32)
    ids = torch.arange(4)
    with robustfast.use_backend(backend):
        out = apply_triggers(images.to(device), ids.to(device), flags=flags.to(device), weight=weight.to(device),
                             pattern=pattern.to(device), additive=additive.to(device)).cpu()
    x = images.int()
    assert torch.equal(out[0, -3:, -3:], torch.full((3, 3, c), 255, dtype=torch.uint8))
    assert torch.equal(out[0, :-3], images[0, :-3]) and torch.equal(out[0, :, :-3], images[0, :, :-3])
    assert torch.equal(out[1].int(), (x[1] + 100) % 256)
    assert torch.equal(out[2].int(), (x[2] + 101) // 2)  # ⌊x/2 + 50.5⌋
    assert out[3].min() == 0 and out[3].max() == 255


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
def test_fresh_pattern_rows_and_channels_last(device, backend):
    shape = (6, 3, 9, 10)
    images, ids = make_batch(shape, [BLEND, BLEND | ADD], seed=3)
    table = make_table([BLEND, BLEND | ADD], *shape[1:], 1.0, seed=3, extra_patterns=6)
    pidx = torch.arange(2, 8)  # every image its own pattern row
    expected = oracle(images, ids, table, pidx)
    with robustfast.use_backend(backend):
        out = run(images.contiguous(memory_format=torch.channels_last), ids, table, torch.float32, device, pidx)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(out.cpu().double(), expected, atol=1e-6)


@pytest.mark.parametrize("device,backend", [p for p in DEVICE_BACKENDS if p.values[1] == "cpp"])
def test_opcheck_extension_op(device, backend):
    for dtype, hi in ((torch.float32, 1.0), (torch.uint8, 255.0)):
        images, ids = make_batch((5, 3, 7, 6), UINT8_MODES if hi == 255 else FLOAT_MODES, seed=1, dtype=dtype)
        modes = UINT8_MODES if hi == 255 else FLOAT_MODES
        t = {k: (v.float() if k != "flags" else v) for k, v in make_table(modes, 3, 7, 6, hi, seed=1).items()}
        x = images.permute(0, 3, 1, 2) if dtype == torch.uint8 else images
        torch.library.opcheck(torch.ops.robustfast._apply_triggers_cpp.default,
                              (x.to(device), ids.to(device), t["flags"].to(device), t["lut"].to(device),
                               t["colour"].to(device), t["weight"].to(device), t["pattern"].to(device),
                               ids.clamp(min=0).to(device), t["additive"].to(device)))


@pytest.mark.parametrize("device,backend", [p for p in DEVICE_BACKENDS if p.values[1] == "triton"])
def test_opcheck_triton_op(device, backend):
    images, ids = make_batch((5, 3, 7, 6), FLOAT_MODES, seed=2)
    t = {k: (v.float() if k != "flags" else v).to(device) for k, v in make_table(FLOAT_MODES, 3, 7, 6, 1.0, 2).items()}
    # Under the CPU interpreter Triton dereferences fake tensors, so only the schema is checked there.
    utils = ("test_schema",) if device.type == "cpu" else ("test_schema", "test_autograd_registration",
                                                          "test_faketensor", "test_aot_dispatch_dynamic")
    torch.library.opcheck(torch.ops.robustfast._apply_triggers_triton.default,
                          (images.to(device), ids.to(device), t["flags"], t["lut"], t["colour"], t["weight"],
                           t["pattern"], ids.clamp(min=0).to(device), t["additive"]), test_utils=utils)


@pytest.mark.parametrize("change,match", [
    ({"trigger_ids": torch.tensor([0, 2, -1, 0])}, "trigger_ids"),
    ({"trigger_ids": torch.tensor([0, -2, -1, 0])}, "trigger_ids"),
    ({"trigger_ids": torch.zeros(3, dtype=torch.long)}, "trigger_ids"),
    ({"images": torch.rand(4, 3, 5, 5) + 0.5}, r"\[0, 1\]"),
    ({"images": torch.rand(4, 5, 5)}, "rank 4"),
    ({"flags": torch.tensor([BLEND, 128], dtype=torch.int32)}, "flags"),
    ({"flags": torch.tensor([BLEND, ADD | WRAP], dtype=torch.int32)}, "WRAP"),
    ({"weight": torch.full((2, 3, 5, 5), 1.5)}, "weight"),
    ({"weight": torch.rand(2, 3, 4, 5)}, "weight"),
    ({"pattern": torch.rand(3, 3, 5, 5)}, "pattern_index"),
    ({"pattern": [[0.5]]}, "pattern"),
    ({"lut": torch.rand(2, 3, 1)}, "lut"),
])
def test_bad_arguments(change, match):
    args = {"images": torch.rand(4, 3, 5, 5), "trigger_ids": torch.tensor([0, 1, -1, 0]),
            "flags": torch.tensor([BLEND, ADD], dtype=torch.int32), "weight": torch.rand(2, 3, 5, 5),
            **change}
    images, ids = args.pop("images"), args.pop("trigger_ids")
    with pytest.raises(ValueError, match=match):
        apply_triggers(images, ids, **args)


def test_forced_backend_that_cannot_serve_raises():
    with robustfast.use_backend("cuda"), pytest.raises(robustfast.BackendUnavailable, match="cuda"):
        apply_triggers(torch.rand(2, 3, 4, 4), torch.zeros(2, dtype=torch.long),
                       flags=torch.tensor([BLEND], dtype=torch.int32))


# Index ranges, checked by every kernel (not only the public function): the kernel op itself and the registered
# public op, called directly, raise ValueError naming the argument. A kernel that indexes without checking may
# crash the process, so each backend runs in a subprocess.
BAD_INDEX_SCRIPT = r"""
import json, os, sys
os.environ.setdefault("TRITON_INTERPRET", "1")
import torch
import robustfast, robustfast.ops
from robustfast.reference.apply_triggers import ADD, BLEND, LUT

target, backend = sys.argv[1], sys.argv[2]
g = torch.Generator().manual_seed(0)
n, t, rows, c, h, w = 4, 2, 3, 3, 5, 6
images = torch.rand(n, c, h, w, generator=g)
flags = torch.tensor([BLEND | LUT, ADD], dtype=torch.int32)
lut = torch.rand(t, c, 9, generator=g).sort(-1).values
colour = torch.cat([torch.eye(c).expand(t, c, c), torch.zeros(t, c, 1)], 2).contiguous()
weight, additive = torch.rand(t, c, h, w, generator=g), 0.1 * torch.rand(t, c, h, w, generator=g)
pattern = torch.rand(rows, c, h, w, generator=g)
ids, pidx = torch.tensor([0, 1, -1, 0]), torch.tensor([0, 2, 0, 1])
cases = {"ids=T": (torch.tensor([0, t, -1, 0]), pidx), "ids=-2": (torch.tensor([0, -2, -1, 0]), pidx),
         "ids=huge": (torch.tensor([0, 1, 2**40, 0]), pidx), "ids=-huge": (torch.tensor([-(2**40), 1, 0, 0]), pidx),
         "pidx=P": (ids, torch.tensor([0, rows, 0, 1])), "pidx=-1": (ids, torch.tensor([-1, 0, 0, 1])),
         "pidx=huge": (ids, torch.tensor([0, 1, 0, 2**40]))}
op = torch.ops.robustfast._apply_triggers_cpp if target == "kernel" else torch.ops.robustfast.apply_triggers
out = {}
for name, (i, p) in cases.items():
    try:
        with robustfast.use_backend(backend):
            op(images, i, flags, lut, colour, weight, pattern, p, additive)
        out[name] = ["no error", ""]
    except Exception as e:  # noqa: BLE001  (the test reports the type)
        out[name] = [type(e).__name__, str(e)]
with robustfast.use_backend(backend):  # in range: still fine
    op(images, ids, flags, lut, colour, weight, pattern, pidx, additive)
print(json.dumps(out))
"""


def _run_bad_indices(target, backend):
    import json
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", BAD_INDEX_SCRIPT, target, backend], capture_output=True, text=True,
                          timeout=300, cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert proc.returncode == 0, f"the subprocess died (rc {proc.returncode}): {proc.stderr[-2000:]}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for case, (kind, message) in results.items():
        arg = "trigger_ids" if case.startswith("ids") else "pattern_index"
        assert kind == "ValueError" and arg in message, (case, kind, message)


@pytest.mark.parametrize("device,backend", [p for p in DEVICE_BACKENDS if p.values[1] == "cpp"])
def test_kernel_op_checks_index_ranges(device, backend):
    _run_bad_indices("kernel", backend)


@pytest.mark.parametrize("device,backend", [p for p in DEVICE_BACKENDS if p.values[0].type == "cpu"])
def test_registered_op_checks_index_ranges(device, backend):
    _run_bad_indices("public", backend)
