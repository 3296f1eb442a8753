"""What every `optiplan` command shares: one-line errors with an exit code, and writing output to a file or
stdout. Its own module so that command modules (`cli_gate`, `cli_optimize`) import it without importing
the command group."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from ..errors import OptiplanError

# What measure, calibrate, apply, verify and bench import lazily: the `torch` extra, absent from the core install.
RUNTIME_PACKAGES = {"torch", "transformers", "torchao", "optimum", "hqq", "safetensors", "accelerate"}


def friendly(fn):
    """Turn OptiplanError (and pydantic validation errors) into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, debug: bool = False, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OptiplanError as exc:
            if debug:
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except ModuleNotFoundError as exc:  # a measuring command on the core install (no torch)
            root = (exc.name or "").split(".")[0]
            if debug or root not in RUNTIME_PACKAGES:
                raise
            click.echo(f"error: this command runs models and needs {root}: install torch==2.13.0 (the CPU or "
                       f"CUDA build you want), then pip install 'optiplan[torch]'", err=True)
            sys.exit(2)
        except Exception as exc:  # pydantic ValidationError and the like, from bad option values
            from pydantic import ValidationError

            if debug or not isinstance(exc, ValidationError):
                raise
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            click.echo(f"error: {where}: {first['msg']}", err=True)
            sys.exit(2)

    return click.option("--debug", is_flag=True, help="Show the full traceback on errors.")(wrapper)


def emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text)
    else:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise OptiplanError(f"cannot write {output}: {exc.strerror or exc}") from exc
        click.echo(f"wrote {output}", err=True)
