"""The ``seqrec`` app: its root, the one-line error contract and how messages reach stderr.

Conventions shared by every command:

* results go to stdout (tables, CSV, JSON); progress, epoch lines and warnings go to stderr;
* a failure is ONE line on stderr, ``error: <what>: <why>``, and a non-zero exit code (1 for bad
  input or a failed run, 2 for a malformed command line); ``seqrec --debug <command>`` shows
  the traceback instead;
* nothing the user owns is replaced unless asked (``--force``), and every output is written
  atomically (:mod:`seqrec.files`).

Importing this module (and ``seqrec --help``) loads neither torch nor pandas: commands import
what they need when they run.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from typer.core import TyperGroup


class CliError(Exception):
    """A problem the user can fix; its message is printed as is after ``error:``."""


def one_line(text: str) -> str:
    """``text`` joined into one line (blank lines dropped)."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else "unknown error"


def message(error: BaseException) -> str:
    """What to print after ``error:`` for ``error``."""
    from seqrec.errors import SeqrecError

    if isinstance(error, (CliError, SeqrecError)):
        return one_line(str(error))
    if isinstance(error, KeyError) and error.args:  # str(KeyError) adds quotes
        return one_line(str(error.args[0]))
    if isinstance(error, OSError) and error.filename is not None:
        return one_line(f"{error.filename}: {error.strerror or error}")
    if isinstance(error, (ValueError, RuntimeError, OSError, MemoryError)):
        return one_line(str(error))
    return one_line(f"{type(error).__name__}: {error} (run `seqrec --debug ...` for the "
                    "traceback)")


def echo_error(text: str) -> None:
    typer.echo(f"error: {text}", err=True)


class _Group(TyperGroup):
    """The root command: turns every failure into one ``error:`` line and an exit code."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv
        with messages_on_stderr(debug):
            code = self._run(argv, prog_name, complete_var, debug, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(self, argv: list[str], prog_name: str | None, complete_var: str | None, debug: bool,
             **extra: Any) -> int:
        try:
            result = super().main(argv, prog_name or "seqrec", complete_var, standalone_mode=False,
                                  **extra)
        except typer.Abort:
            echo_error("aborted")
            return 1
        except KeyboardInterrupt:
            echo_error("interrupted")
            return 130
        except typer.Exit as done:
            return int(done.exit_code or 0)
        except Exception as error:
            if _is_usage_error(error):  # typer's (vendored) click: bad or missing options
                if type(error).__name__ == "NoArgsIsHelpError":
                    typer.echo(error.format_message())
                    return 0
                echo_error(_usage_message(error))
                return 2
            if debug:
                raise
            echo_error(message(error))
            return 1
        return result if isinstance(result, int) else 0


def _is_usage_error(error: Exception) -> bool:
    return hasattr(error, "format_message") and isinstance(getattr(error, "exit_code", None), int)


def _usage_message(error: Any) -> str:
    """click's usage messages in our form: ``<option>: <why>`` where click names the option."""
    text = one_line(error.format_message())
    param = getattr(error, "param", None)
    hint = getattr(param, "opts", None)
    if hint and not text.startswith(hint[0]):
        return f"{hint[0]}: {text}"
    return text


@contextmanager
def messages_on_stderr(debug: bool) -> Iterator[None]:
    """Python warnings and seqrec log warnings as ``warning: ...`` lines (INFO logs with
    --debug)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.DEBUG if debug else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s" if debug
                                           else "warning: %(message)s"))
    logger = logging.getLogger("seqrec")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate, old_propagate = False, logger.propagate

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        typer.echo(f"warning: {one_line(str(message))}", err=True)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            if not debug:
                warnings.showwarning = show
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


app = typer.Typer(
    cls=_Group,
    name="seqrec",
    help="Sequential recommendation with transformers (eSASRec): train, evaluate, recommend.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from seqrec import __version__

        typer.echo(f"seqrec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Sequential recommendation with transformers (eSASRec): train, evaluate, recommend.

    Errors are one line on stderr with a non-zero exit code; add --debug (before the command) for
    the traceback.
    """


def main() -> None:
    """Console-script entry point (``seqrec``) and ``python -m seqrec``."""
    typer.main.get_command(app).main(prog_name="seqrec")
