"""Errors of the edge runtime: :class:`~rdd.contract.InputError` (a bad input: one line naming
the file or key) and :class:`OptionError`, a bad value of one runner / benchmark option.

The library names options by their key (``batch must be >= 1``); the command line shows the
same error with flag spellings (``--batch must be >= 1``): :meth:`OptionError.as_flags` is the
one place that translation happens. Standard library only.
"""

from __future__ import annotations

import string

from rdd.contract import InputError

__all__ = ["InputError", "OptionError", "flag", "literal", "printable", "one_line"]


def flag(key: str) -> str:
    """The command-line spelling of an option key: ``max_input_pixels`` → ``--max-input-pixels``."""
    return "--" + key.replace("_", "-")


def literal(text: object) -> str:
    """``text`` (a file name, a value the user gave) inside an :class:`OptionError` message: its
    braces are text, not option fields."""
    return str(text).replace("{", "{{").replace("}", "}}")


class OptionError(InputError):
    """A bad value of option ``key``; ``msg`` may name other options as ``{key}`` fields (and
    starts with ``":"`` or ``","`` to follow the key without a space); any other text in it
    goes through :func:`literal`. ``key`` None: an error about something else whose message
    names options (a hint).

    ``str(err)`` names options by key (``batch applies to images and video files``);
    :meth:`as_flags` by flag (``--batch applies to --images and video files``).
    """

    def __init__(self, key: str | None, msg: str) -> None:
        self.key, self.msg = key, msg
        super().__init__(self._render(lambda k: k))

    def _render(self, spell) -> str:
        names = {f for _, f, _, _ in string.Formatter().parse(self.msg) if f}
        msg = self.msg.format(**{n: spell(n) for n in names})
        if self.key is None:  # a message that only mentions options
            return msg
        return f"{spell(self.key)}{'' if msg.startswith((':', ',')) else ' '}{msg}"

    def as_flags(self) -> str:
        return self._render(flag)


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with control characters escaped (ESC → ``\\x1b``, newline → ``\\n``, bidi
    overrides …). Model names (``rdd_meta``), file names and error messages reach the terminal
    only through this, so a crafted name cannot move the cursor, recolour or rewrite the screen.
    ``lines=True`` keeps the text's own line breaks (a table, a summary) and escapes the rest."""
    if lines:
        return "\n".join(printable(line) for line in str(text).split("\n"))
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def one_line(err: BaseException, *, flags: bool = True) -> str:
    """An error as the one line the command lines print (option keys spelled as flags)."""
    text = err.as_flags() if flags and isinstance(err, OptionError) else str(err)
    return printable(" ".join(text.split()) or type(err).__name__)
