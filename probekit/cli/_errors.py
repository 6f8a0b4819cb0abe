"""How the command line reports failures: one ``Error: ...`` line and exit status 1, never a traceback.

Every subcommand runs inside :class:`Group`, which turns any exception the
library raises into a :class:`click.ClickException` (``Error: <message>``,
exit status 1). With ``-v`` the traceback is logged as well. Output paths are
checked before any work starts (:func:`check_output`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

__all__ = ["Group", "error_message", "check_output", "split_list"]

logger = logging.getLogger("probekit.cli")

#: exceptions the library raises for bad input or state (their message is the whole story)
LIBRARY_ERRORS = (ValueError, LookupError, OSError, RuntimeError, TypeError, ImportError)


def error_message(exc: BaseException) -> str:
    """The one-line message of ``exc`` (unexpected exception types are named as such).

    Examples
    --------
    >>> error_message(KeyError("site L9.resid is not in this store"))
    'site L9.resid is not in this store'
    >>> error_message(AttributeError("x"))
    'unexpected AttributeError: x (a probekit bug; run with -v for the traceback)'
    """
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    text = str(text) or type(exc).__name__
    if isinstance(exc, LIBRARY_ERRORS):
        return text
    if type(exc).__module__ != "builtins":  # another library's own error, e.g. safetensors' SafetensorError
        return f"{type(exc).__name__}: {text}"
    return f"unexpected {type(exc).__name__}: {text} (a probekit bug; run with -v for the traceback)"


class Group(click.Group):
    """A click group whose subcommands report library errors as ``Error: ...`` with exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            logger.info("%s failed", ctx.invoked_subcommand or "probekit", exc_info=True)
            raise click.ClickException(error_message(exc)) from exc


def check_output(path: str | os.PathLike, *, kind: str = "directory") -> Path:
    """Raise a :class:`click.ClickException` unless ``path`` can be written (as a ``kind``) by this process.

    Checked before any work starts, so a long run does not fail at its end
    for want of a place to write. Nothing is created.
    """
    path = Path(path)
    if path.exists():
        if kind == "directory" and not path.is_dir():
            raise click.ClickException(f"cannot write to {path}: it exists and is not a directory")
        if kind == "file" and path.is_dir():
            raise click.ClickException(f"cannot write to {path}: it is a directory")
        target = path if path.is_dir() else path.parent
    else:
        target = path.parent
        while not target.exists() and target != target.parent:
            target = target.parent
        if not target.is_dir():
            raise click.ClickException(f"cannot create {path}: {target} is a file, not a directory")
    if not os.access(target, os.W_OK | os.X_OK):
        raise click.ClickException(f"cannot write to {path}: {target} is not writable (permission denied)")
    return path


def split_list(values: tuple[str, ...] | list[str] | str | None) -> list[str]:
    """Comma-separated option values (one or several, as a repeatable option gives them) as one list.

    >>> split_list(("upos, deprel", "sentlen")), split_list("L1.resid,"), split_list(None)
    (['upos', 'deprel', 'sentlen'], ['L1.resid'], [])
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = (values,)
    return [v.strip() for item in values for v in item.split(",") if v.strip()]
