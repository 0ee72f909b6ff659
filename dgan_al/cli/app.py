"""The typer application, its consoles, and the wrapper that turns user errors into one line + exit 2."""

from __future__ import annotations

import functools
import inspect
from typing import Callable, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from dgan_al import __version__
from dgan_al.errors import UserError

console = Console()
err_console = Console(stderr=True)

def _no_type(ctx) -> None:
    return None


def _untyped_flags(params: list) -> list:
    """Show no value for a flag in help. typer 0.29's rich help prints every option's type, so a flag
    (``--help``, ``--version``, ``--force``) reads ``--help <bool>`` as if it took a value."""
    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
            param.display_type_rich = _no_type  # per instance: parsing and errors are unchanged
    return params


class Command(TyperCommand):
    """A command whose help shows no value for its flags."""

    def get_params(self, ctx):
        return _untyped_flags(super().get_params(ctx))


class Group(TyperGroup):
    """A command group whose help shows no value for its flags."""

    def get_params(self, ctx):
        return _untyped_flags(super().get_params(ctx))


class Typer(typer.Typer):
    """``typer.Typer`` whose groups and commands show no value for flags in help."""

    def __init__(self, **kwargs):
        super().__init__(cls=Group, **kwargs)

    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or Command, **kwargs)


app = Typer(
    name="dgan-al",
    help="Active-learning annotation for DatasetGAN: pick GAN images to annotate, train the style "
    "interpreter, and generate a labelled segmentation dataset.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

toy_app = Typer(
    help="The built-in toy-faces world: oracle annotations, real-test images, and the distillation of its generator.",
    no_args_is_help=True,
)
app.add_typer(toy_app, name="toy")


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"dgan-al {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """dgan-al: a labelled-data factory from a StyleGAN and a few annotations."""


F = TypeVar("F", bound=Callable)


def handles_user_errors(fn: F) -> F:
    """Wrap a command so that a ``UserError`` prints one red line and exits with code 2.

    An error about a setting that is one of the command's parameters names it by its flag (``size`` ->
    ``--size``), so the message says what to change on the command line.
    """
    flags = {name: _flag(name, param.default) for name, param in inspect.signature(fn).parameters.items()}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            flag = flags.get(err.setting) if err.setting is not None else None
            err_console.print(f"[bold red]error:[/] {escape(err.render(flag))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=err.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _flag(name: str, default) -> str:
    """The command-line flag of parameter ``name``: its declared long flag (``--filter``), else ``--name``."""
    declared = [d for d in getattr(default, "param_decls", None) or () if d.startswith("--")]
    return declared[0] if declared else "--" + name.replace("_", "-")
