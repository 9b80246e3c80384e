"""The `robustfast` command: info, demo, bench, and each method package's sub-app (attack, noisy, poison,
unlearnable, lid, ldreg, llm)."""
from __future__ import annotations

import os
import sys

import typer

from robustfast.attacks.cli import app as attacks_app
from robustfast.attacks.dta_cli import app as dta_app
from robustfast.backdoor.cli import app as backdoor_app
from robustfast.backdoor.expose_cli import app as expose_app
from robustfast.bench.cli import app as bench_app
from robustfast.lid.cli import app as lid_app
from robustfast.llm.cli import app as llm_app
from robustfast.losses.cli import app as losses_app
from robustfast.nas.cli import app as nas_app
from robustfast.text.cli import app as text_app
from robustfast.unlearnable.cli import app as unlearnable_app

# What the library raises for bad user input (an argument, an option, a config or data file). The `robustfast`
# command prints these as one line, `error: <message>`, on stderr and exits 2 (click's code for usage errors).
# Everything else is a bug and keeps its traceback; so do these with ROBUSTFAST_TRACEBACK=1.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError)


class _App(typer.Typer):
    """The root app: running it (the console script, `python -m robustfast.cli`) turns a user error into one line
    on stderr and exit status 2. Sub-apps need nothing of their own. `typer.testing.CliRunner` invokes the click
    command beneath, so tests there still see the exception itself."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except USER_ERRORS as err:
            if os.environ.get("ROBUSTFAST_TRACEBACK", "") not in ("", "0"):
                raise
            message = " ".join(str(err).split()) or type(err).__name__
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)


app = _App(add_completion=False, no_args_is_help=True, help="robustfast: fused kernels for trustworthy ML.")


@app.command()
def info():
    """Versions, devices and the backends built here."""
    from robustfast.info import report

    rows = report()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{width}}  {value}")


@app.command()
def demo(
    epochs: int = typer.Option(8, help="training epochs on digits"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    out: str = typer.Option("runs/demo", help="folder for the checkpoint and the trained model"),
):
    """Train a classifier on the built-in digits, attack it with PGD-10, report accuracy and throughput."""
    from robustfast.demo import run

    run(epochs=epochs, device=device, out=out)


# Commands of these sub-apps sit at the top level (`robustfast poison ...`); bench, llm, text, nas and dta are groups.
for sub_app in (attacks_app, lid_app, backdoor_app, expose_app, losses_app, unlearnable_app):
    app.add_typer(sub_app)
app.add_typer(bench_app, name="bench")
app.add_typer(llm_app, name="llm")
app.add_typer(text_app, name="text")
app.add_typer(nas_app, name="nas")
app.add_typer(dta_app, name="dta")


if __name__ == "__main__":
    app()
