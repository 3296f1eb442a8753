"""What every `optiplan` command shares: the error boundary (one line and an exit code, never a traceback without
--debug), and writing output to a file or stdout. Its own module so that command modules import it without
importing the command group."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from ..errors import OptiplanError

# What measure, calibrate, apply, verify and bench import lazily: the `torch` extra, absent from the core install.
RUNTIME_PACKAGES = {"torch", "transformers", "torchao", "optimum", "hqq", "safetensors", "accelerate"}


INTERNAL_ERROR_EXIT = 70  # EX_SOFTWARE: a bug of optiplan's, not the user's input


def error_line(exc: BaseException) -> tuple[str, int]:
    """The one line and exit code the CLI (and the service) show for an exception: the message of a user error
    (exit 2, or 3 when nothing meets the workload), a pydantic validation error as its first problem (exit 2),
    and anything else as an internal error to report (exit 70)."""
    from pydantic import ValidationError

    if isinstance(exc, OptiplanError):
        return str(exc), exc.exit_code
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return (f"{where}: {first['msg']}" if where else first["msg"]), 2
    root = (getattr(exc, "name", None) or "").split(".")[0]
    if isinstance(exc, ModuleNotFoundError) and root in RUNTIME_PACKAGES:
        return (f"this command runs models and needs {root}: install torch==2.13.0 (the CPU or CUDA build you "
                f"want), then pip install 'optiplan[torch]'"), 2
    message = " ".join(str(exc).split()) or "no message"
    return (f"internal error ({type(exc).__name__}: {message[:300]}); rerun with --debug and report it",
            INTERNAL_ERROR_EXIT)


def friendly(fn):
    """The CLI's one error boundary: every exception becomes one line on stderr and an exit code
    (`error_line`); `--debug` shows the traceback instead. Ctrl-C exits 130 without one."""

    @functools.wraps(fn)
    def wrapper(*args, debug: bool = False, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise  # click's own: usage errors (exit 2) and requested exits
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001  the boundary: nothing escapes as a traceback
            if debug:
                raise
            line, code = error_line(exc)
            click.echo(f"error: {line}", err=True)
            sys.exit(code)

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
