"""A PNG drawing of a genotype's cells: inputs, nodes and output as boxes, one labelled arrow per pick."""
from __future__ import annotations

from pathlib import Path

from robustfast._util.atomic import atomic_write
from robustfast._util.plot import pyplot
from robustfast.nas.space import Genotype, SearchSpace


def draw_genotype(genotype: Genotype, space: SearchSpace, path) -> Path:
    space.check(genotype)
    plt = pyplot()
    kinds = list(space.cells)
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.5), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        n = space.nodes
        pos = {0: (0.0, 0.75), 1: (0.0, 0.25)}
        for i in range(n):
            pos[i + 2] = (0.3 + 0.45 * i / max(n - 1, 1), 0.9 - 0.8 * i / max(n - 1, 1))
        pos["out"] = (1.0, 0.5)
        names = {0: "c_{k-2}", 1: "c_{k-1}", **{i + 2: str(i + 1) for i in range(n)}, "out": "c_{k}"}
        for key, (x, y) in pos.items():
            ax.text(x, y, names[key], ha="center", va="center", fontsize=10,
                    bbox={"boxstyle": "round", "fc": "#cde" if key in (0, 1, "out") else "#fec"})
        for i, pair in enumerate(genotype.cells[kind]):
            picks = pair[:1] if pair[0] == pair[1] else pair
            for k, (j, op) in enumerate(picks):
                x0, y0 = pos[j]
                x1, y1 = pos[i + 2]
                ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                            arrowprops={"arrowstyle": "->", "color": "gray", "shrinkA": 12, "shrinkB": 12})
                label = op + (" ×2" if len(picks) == 1 else "")
                ax.text((x0 + x1) / 2, (y0 + y1) / 2 + (0.03 if k == 0 else -0.03), label, fontsize=7,
                        ha="center", color="darkred")
            ax.annotate("", xy=pos["out"], xytext=pos[i + 2],
                        arrowprops={"arrowstyle": "->", "color": "lightgray", "shrinkA": 12, "shrinkB": 12})
        ax.set_xlim(-0.1, 1.1)
        ax.set_ylim(0, 1)
        ax.set_axis_off()
        ax.set_title(f"{kind} cell")
    fig.tight_layout()
    out = atomic_write(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)
    return out
