"""What every `optiplan` command shares: the error boundary (one line and an exit code, never a traceback without
--debug), and writing output to a file or stdout. Its own module so that command modules import it without
importing the command group."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from ... import profiles
from ..errors import ImpossibleError, OptiplanError, error_line
from ..schema.releases import pinned_engine, plan_engine, split_engine

DEFAULT_MODEL = "llama-3.1-8b"  # the commands' embedded default: a catalog model on the catalog's default device
DEFAULT_HARDWARE = profiles.DEFAULT_HARDWARE


def friendly(fn):
    """The CLI's one error boundary: every exception becomes one line on stderr and an exit code
    (`error_line`); `--debug` shows the traceback instead, but for an answer that nothing fits or meets the workload
    (exit 3), which is not a fault. Ctrl-C exits 130 without one."""

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
            if debug and not isinstance(exc, ImpossibleError):  # an answer (exit 3, the report shown), not a fault
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


def plan_overrides(fn):
    """The workload overrides `advise` and `configs` both take, declared once: the quality budget, the concurrency,
    the context and the techniques left out (an AdviseRequest's fields of those names, `quality` as written)."""
    for option in reversed((
            click.option("--max-quality-loss", "quality", default=None,
                         help="Perplexity increase allowed, e.g. 1% or 'lossless' [default: the workload's]."),
            click.option("--concurrency", type=click.IntRange(min=1), default=None,
                         help="Override the workload's concurrent sequences."),
            click.option("--context", "max_context", type=click.IntRange(min=1), default=None,
                         help="Override the longest sequence to serve."),
            click.option("--without", multiple=True, metavar="TECHNIQUE",
                         help="Leave this technique out of the plan (repeatable; `optiplan techniques` lists them), "
                              "e.g. --without lora --without qlora for a full fine-tune; not one the engine runs by "
                              "default (vLLM's paged cache), which its baseline and configs keep."))):
        fn = option(fn)
    return fn


class EngineName(click.ParamType):
    """An engine's name (`names`), or a name pinned to a release as pip writes it (`sglang==0.5.6`)."""

    name = "engine"

    def __init__(self, names: list[str]):
        self.names = names

    def get_metavar(self, param, ctx=None) -> str:
        return "[" + "|".join(self.names) + "][==RELEASE]"

    def convert(self, value, param, ctx):
        name, _ = split_engine(value)
        if name not in self.names:
            self.fail(f"'{name}' is not one of {', '.join(map(repr, self.names))}", param, ctx)
        try:
            return pinned_engine(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class PlanEngineName(click.Choice):
    """An engine a plan is made for (`advise --engine`): one of `names`; a pin gets the schema's reason
    (`schema.releases.plan_engine`), not click's list of names."""

    def convert(self, value, param, ctx):
        try:
            plan_engine(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return super().convert(value, param, ctx)
