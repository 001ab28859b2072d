"""Stop rules: one line, or a block that ends where it would dedent."""

from accs_lsp.decoding import BlockStop, LineStop


def test_line_stop_cuts_at_the_newline():
    assert LineStop().cut("a + b") is None
    assert LineStop().cut("a + b\nprint(x)") == len("a + b")


def test_block_stop_ends_before_a_dedent():
    text = "x = 1\n    y = 2\n    if y:\n        z = 3\nreturn z"
    rule = BlockStop("    ")
    assert rule.cut(text) == text.index("\nreturn")


def test_block_stop_sees_a_dedent_before_the_line_is_complete():
    assert BlockStop("    ").cut("x = 1\nre") == len("x = 1")


def test_block_stop_keeps_blank_lines_inside_the_block():
    assert BlockStop("    ").cut("x = 1\n\n    y = 2\n") is None


def test_block_stop_cuts_blank_lines_before_a_dedent():
    assert BlockStop("    ").cut("x = 1\n\n\ndef g():") == len("x = 1")


def test_block_stop_at_module_level_ends_at_the_next_paragraph():
    text = "def f():\n    return 1\n\n    # still f\n    pass\n\n\ndef g():\n"
    assert BlockStop("").cut(text) == text.index("\n\n\ndef g")
