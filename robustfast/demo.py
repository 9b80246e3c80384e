"""`robustfast demo` / `make demo`: the main jobs on the built-in digits, one section per method package.

1. attacks: trains a WRN-10-2 (resumable: rerunning continues from the last finished epoch), reports clean
   accuracy, attacks the test set with PGD-10 (L∞, ε = 8/255), reports robust accuracy and attack throughput
   beside the plain-PyTorch reference loop;
2. noisy labels: a small CNN trained with CE and with NCE+RCE on digits whose training labels are 60% symmetric
   noise; clean test accuracy of each;
3. unlearnable examples: class-wise error-minimizing noise, then a model trained on the unlearnable digits
   beside one trained on the clean digits;
4. backdoors: BadNets, Blend, SIG and Trojan each poison 10% of the digits toward their own class; clean
   accuracy, ASR per trigger and the cross-activation matrix of a small CNN trained on them;
   cognitive distillation then detects BadNets and Blend samples in 5%-poisoned digits (AUROC per set);
5. intrinsic dimensionality: per-sample LID of the digits beside Gaussian points, a histogram PNG;
6. robust training: PGD-AT of a WRN-10-1 on digits (ε = 0.1, resumable), then clean, PGD-20, CW∞ and APGD-CE
   accuracy of the test set;
7. text backdoors: MiniLM fine-tuned on SST-2, BadNets / AddSent / SOS / EP copies, the CA/ASR table;
8. architecture search: a small CMAB-NAS search of a weight-sharing supernet on digits, the genotype as JSON;
9. downstream transfer attack: a ViT pre-trained on digits 0-4, a victim fine-tuned on 5-9, DTA from the
   pre-trained encoder beside PGD on its own head and noise.
10. expose before you defend: CUL exposes a BadNets SmallCNN; detected label, model score, Neural Cleanse,
    MMBD and the RNP τ table.
`quick=True` shrinks the sections to a check that they run (the tests use it).
"""
from __future__ import annotations

from robustfast._util.device import resolve_device
from robustfast.attacks import demo as attacks_demo
from robustfast.attacks import dta_demo
from robustfast.backdoor import cd_demo
from robustfast.backdoor import demo as backdoor_demo
from robustfast.backdoor import ebyd_demo
from robustfast.lid import demo as lid_demo
from robustfast.losses import demo as losses_demo
from robustfast.nas import demo as nas_demo
from robustfast.text import demo as text_demo
from robustfast.unlearnable import demo as unlearnable_demo

# (result key, the package's section); each is section(device, out, *, epochs, quick) -> dict of its figures.
SECTIONS = (
    ("attacks", attacks_demo.section),
    ("noisy", losses_demo.section),
    ("unlearnable", unlearnable_demo.section),
    ("backdoor", backdoor_demo.section),
    ("cd", cd_demo.section),
    ("lid", lid_demo.section),
    ("robust", attacks_demo.robust_section),
    ("text", text_demo.section),
    ("nas", nas_demo.section),
    ("dta", dta_demo.section),
    ("ebyd", ebyd_demo.section),
)


def run(epochs: int, device: str, out: str, quick: bool = False) -> dict:
    """Every section in turn; returns {key: figures}, one key per entry of SECTIONS."""
    dev = str(resolve_device(device))
    return {name: section(dev, out, epochs=epochs, quick=quick) for name, section in SECTIONS}
