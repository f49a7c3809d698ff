"""Reading a systemd ``EnvironmentFile`` as systemd does (docs/cli.md#check-config): the cases
of systemd's own parser tests first, then quotes, comments and names."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_trio.cli.env_file import parse_env_file, read_env_files
from nexus_trio.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # backslash-newline joins lines; an escaped trailing blank stays; a lone key is ignored
        (
            "a=a\nb=b\\\nc\nd=d\\\ne\\\nf\ng=g\\ \nh=h\ni=i\\",
            [("a", "a"), ("b", "bc"), ("d", "def"), ("g", "g "), ("h", "h"), ("i", "i")],
        ),
        ("a=a\\\n", [("a", "a")]),
        # a comment ends at its newline, even after a backslash
        (
            '#SPAMD_ARGS="-d --socketpath=/var/lib/bulwark/spamd \\\n'
            "#--nouser-config                                     \\\n"
            "normal=line",
            [("normal", "line")],
        ),
        (
            '# Generated\n\nHWMON_MODULES="coretemp f71882fg"\n\n# For compatibility reasons\n\n'
            "MODULE_0=coretemp\nMODULE_1=f71882fg",
            [
                ("HWMON_MODULES", "coretemp f71882fg"),
                ("MODULE_0", "coretemp"),
                ("MODULE_1", "f71882fg"),
            ],
        ),
        ("a=\nb=", [("a", ""), ("b", "")]),
    ],
    ids=["continuations", "escape-at-end", "comment-backslash", "comments", "empty"],
)
def test_systemds_own_cases(text: str, expected: list[tuple[str, str]]) -> None:
    assert parse_env_file(text) == expected


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("K=plain value  ", "plain value"),
        ("  K  =   spaced", "spaced"),
        ("K=b # not a comment", "b # not a comment"),
        ("K='single $HOME \\n \"kept\"'", 'single $HOME \\n "kept"'),
        ('K="a\\"b\\\\c\\$d\\`e"', 'a"b\\c$d`e'),
        ('K="\\n stays two characters"', "\\n stays two characters"),
        ('K="joined \\\nline"', "joined line"),
        ("K='spans\nlines'", "spans\nlines"),
        ("K=\"a\"'b'c", "abc"),
        ('K="quoted"  trailing  ', "quotedtrailing"),
        ("K=$OTHER", "$OTHER"),
        ('K="unterminated', "unterminated"),
        ("K=crlf\r\n", "crlf"),
    ],
)
def test_quotes_escapes_and_blanks(line: str, value: str) -> None:
    assert parse_env_file(line) == [("K", value)]


def test_semicolon_and_hash_lines_are_comments_and_lines_without_equals_are_ignored() -> None:
    assert parse_env_file("; K=1\n  # K=2\nK\nK=3\n") == [("K", "3")]


def test_later_files_and_lines_win_and_names_systemd_drops_are_reported(tmp_path: Path) -> None:
    first = tmp_path / "first.env"
    first.write_text("A=1\nexport B=2\nA=3\n")
    second = tmp_path / "second.env"
    second.write_text("C=4\nA=5\n1D=6\n")
    env, warnings = read_env_files([first, second])
    assert env == {"A": "5", "C": "4"}
    assert warnings == [
        f"{first}: 'export B' is not a variable name; systemd ignores it",
        f"{second}: '1D' is not a variable name; systemd ignores it",
    ]


def test_a_file_that_is_not_utf8_or_cannot_be_read_is_an_error(tmp_path: Path) -> None:
    latin = tmp_path / "latin.env"
    latin.write_bytes(b"K=caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin\.env is not UTF-8 \(byte 5\)"):
        read_env_files([latin])
    with pytest.raises(ConfigError, match=r"cannot read env file .*absent\.env: No such file"):
        read_env_files([tmp_path / "absent.env"])
