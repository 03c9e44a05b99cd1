"""``--debug`` is a global flag of every command, and only a flag before ``--``."""

from xned.cli.main import _debug_flag


def test_debug_anywhere_among_the_options():
    assert _debug_flag(["link", "--debug", "text", "-f", "jsonl"]) == (["link", "text", "-f", "jsonl"], True)
    assert _debug_flag(["--debug", "info"]) == (["info"], True)
    assert _debug_flag(["link", "text"]) == (["link", "text"], False)


def test_after_double_dash_it_is_an_argument():
    assert _debug_flag(["link", "--", "--debug"]) == (["link", "--", "--debug"], False)
    assert _debug_flag(["link", "--debug", "--", "--debug"]) == (["link", "--", "--debug"], True)
