"""matplotlib, an optional dependency (the `plot` extra), imported only where a figure is drawn."""
from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend; a clear ImportError when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("drawing figures needs matplotlib: pip install 'robustfast[plot]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
