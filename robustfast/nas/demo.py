"""The NAS section of `robustfast demo`: a small CMAB-NAS search on digits (about a minute on two cores), the
searched genotype as JSON and a PNG drawing of its cells."""
from __future__ import annotations

import time
from pathlib import Path

from robustfast.data import digits
from robustfast.nas.digits import search_digits
from robustfast.nas.draw import draw_genotype
from robustfast.nas.space import save_genotype


def section(device: str = "auto", out: str | Path = "runs/demo", *, epochs: int = 8, quick: bool = False,
            seed: int = 0) -> dict:
    """Search 8×8 digits with a 3-cell, C = 4 supernet (2 warm-up + 2 search epochs; quick: 1 + 1, fewer
    playouts); the searched child's weight-sharing accuracy on the validation half and on the test split.
    Checkpointed under <out>/nas_checkpoint, so a rerun resumes. Runs on the CPU (the tree search is CPU work and
    the supernet is tiny); `device` and `epochs` do not change this section."""
    print("\narchitecture search: CMAB-NAS on digits (weight-sharing supernet, C++ NMCS core)")
    start = time.perf_counter()
    sizes = {"warmup_epochs": 1, "epochs": 1, "B": 4, "L_best": 8} if quick else \
        {"warmup_epochs": 2, "epochs": 2, "B": 16, "L_best": 40}
    nas, result = search_digits(seed, size=8, C=4, layers=3, L_sim=2, children_per_batch=8, progress=False,
                                checkpoint=Path(out) / "nas_checkpoint", **sizes)
    seconds = time.perf_counter() - start
    test_x, test_y = digits("test", size=8).tensors
    test_acc = nas.accuracy(result.genotype, test_x, test_y)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = save_genotype(out / "nas_genotype.json", result.genotype, nas.space, val_acc=result.reward)
    try:
        png = str(draw_genotype(result.genotype, nas.space, out / "nas_cells.png"))
    except ImportError:
        png = None
    print(f"searched in {seconds:.0f} s ({nas.evaluations} child evaluations): weight-sharing accuracy "
          f"{result.reward:.3f} on the validation half, {test_acc:.3f} on the test split")
    print(f"genotype written to {json_path}" + (f", cells drawn in {png}" if png else ""))
    return {"val_acc": result.reward, "test_acc": test_acc, "seconds": seconds, "evaluations": nas.evaluations,
            "genotype": str(json_path), "png": png}
