"""Reading a systemd ``EnvironmentFile`` as systemd reads it, for ``check-config --env-file``
(docs/cli.md#check-config).

Theory of operation. systemd.exec(5) describes the format loosely ("KEY=VALUE lines, shell-like
quotes"); what counts is systemd's parser, a character state machine that :class:`_Reader`
follows state for state:

- A line whose first non-blank character is ``#`` or ``;`` is a comment, to its end. A ``#``
  anywhere else is part of the value: ``A=b # c`` is ``b # c``.
- Blanks around the key and before the value are dropped, and so are trailing blanks of an
  unquoted value; a line without ``=`` is ignored. CR ends a line as LF does.
- Unquoted, a backslash keeps the next character (``\\ `` keeps a trailing blank) and a
  backslash before a newline joins the next line.
- In single quotes everything is literal, newlines included. In double quotes a backslash
  escapes only ``"``, ``\\``, ````` and ``$`` (elsewhere it stays, as in a shell) and a
  backslash-newline joins lines. Quoted and unquoted parts concatenate: ``A="a"'b'c`` is ``abc``.
- No ``$VAR`` expansion, no ``export``: ``export A=b`` defines the key ``export A``, which is
  not a variable name, and systemd drops it (so do we, with a warning).
- The file must be UTF-8 (systemd refuses to start the unit otherwise); a later assignment of
  a name wins.

A dotenv library reads a different format (comments after values, ``export``, expansion,
``\\n`` in double quotes), so a file it accepts could give ``serve`` other values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from nexus_trio.errors import ConfigError

_BLANK = " \t\n\r"
_NEWLINE = "\n\r"
_ESCAPED_IN_DOUBLE_QUOTES = '"\\`$'
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _blank_start(c: str, start: int | None, length: int) -> int | None:
    """Where the trailing blanks begin once ``c`` is appended at ``length``."""
    if c not in _BLANK:
        return None
    return length if start is None else start


class _Reader:
    """The parser's state machine: :meth:`feed` one character at a time, then :meth:`end`."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []
        self.state = self.pre_key
        self.key: list[str] = []
        self.value: list[str] = []
        #: Where the trailing blanks of the key (of an unquoted value) begin; None: none yet.
        self.key_blank: int | None = None
        self.value_blank: int | None = None

    def push(self, *, strip_value: bool) -> None:
        key = "".join(self.key[: self.key_blank])
        value = self.value[: self.value_blank] if strip_value else self.value
        self.pairs.append((key, "".join(value)))
        self.key, self.value = [], []

    def pre_key(self, c: str) -> None:
        if c in "#;":
            self.state = self.comment
        elif c not in _BLANK:
            self.state, self.key, self.key_blank = self.in_key, [c], None

    def in_key(self, c: str) -> None:
        if c in _NEWLINE:
            self.state = self.pre_key
        elif c == "=":
            self.state, self.value, self.value_blank = self.pre_value, [], None
        else:
            self.key_blank = _blank_start(c, self.key_blank, len(self.key))
            self.key.append(c)

    def pre_value(self, c: str) -> None:
        if c in _NEWLINE:
            self.push(strip_value=False)
            self.state = self.pre_key
        elif c in "'\"\\":
            self.state = {"'": self.single_quoted, '"': self.double_quoted}.get(c, self.escaped)
        elif c not in _BLANK:
            self.state = self.unquoted
            self.value.append(c)

    def unquoted(self, c: str) -> None:
        if c in _NEWLINE:
            self.push(strip_value=True)
            self.state = self.pre_key
        elif c == "\\":
            self.state, self.value_blank = self.escaped, None
        else:
            self.value_blank = _blank_start(c, self.value_blank, len(self.value))
            self.value.append(c)

    def escaped(self, c: str) -> None:
        self.state = self.unquoted
        if c not in _NEWLINE:
            self.value.append(c)

    def single_quoted(self, c: str) -> None:
        if c == "'":
            self.state = self.pre_value
        else:
            self.value.append(c)

    def double_quoted(self, c: str) -> None:
        if c == '"':
            self.state = self.pre_value
        elif c == "\\":
            self.state = self.double_quoted_escaped
        else:
            self.value.append(c)

    def double_quoted_escaped(self, c: str) -> None:
        self.state = self.double_quoted
        if c in _ESCAPED_IN_DOUBLE_QUOTES:
            self.value.append(c)
        elif c != "\n":
            self.value.append("\\" + c)

    def comment(self, c: str) -> None:
        if c in _NEWLINE:
            self.state = self.pre_key

    def feed(self, text: str) -> None:
        for c in text:
            self.state(c)

    def end(self) -> list[tuple[str, str]]:
        """The assignments read, in file order; an assignment the file ends in is kept."""
        if self.state not in (self.pre_key, self.in_key, self.comment):
            self.push(strip_value=self.state == self.unquoted)
        return self.pairs


def parse_env_file(text: str) -> list[tuple[str, str]]:
    """Every ``(key, value)`` assignment of an environment file's text, in order, names not
    yet checked."""
    reader = _Reader()
    reader.feed(text)
    return reader.end()


def read_env_files(paths: Iterable[Path]) -> tuple[dict[str, str], list[str]]:
    """The environment that ``EnvironmentFile=`` lines naming ``paths`` give a unit, in that
    order (a later assignment wins), and a warning for each assignment systemd drops.

    Blocks while reading the files (small).

    Raises:
        ConfigError: a file cannot be read or is not UTF-8.
    """
    env: dict[str, str] = {}
    warnings: list[str] = []
    for path in paths:
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read env file {path}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"env file {path} is not UTF-8 (byte {exc.start})") from exc
        for key, value in parse_env_file(text):
            if _NAME.fullmatch(key):
                env[key] = value
            else:
                warnings.append(f"{path}: {key!r} is not a variable name; systemd ignores it")
    return env, warnings
