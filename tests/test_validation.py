"""The parse check that ends every constrained completion."""

from accs_lsp.completion.validation import first_parsing


def test_a_parsing_buffer_never_gets_a_candidate_that_breaks_it() -> None:
    text = "def f(x):\n    return \n"
    offset = text.index("return ") + len("return ")
    assert first_parsing(text, offset, ["x +", "x + 1", ""]) == ("x + 1", 1)
    assert first_parsing(text, offset, ["x +", "(x"]) == ("", 2)


def test_a_broken_buffer_prefers_a_candidate_that_repairs_it() -> None:
    text = "total = compute(a, \nprint(total)\n"
    offset = text.index("\n")
    assert first_parsing(text, offset, ["b, c", "b)", ""]) == ("b)", 1)


def test_a_broken_buffer_nothing_repairs_keeps_the_longest_candidate() -> None:
    text = "x = [1, 2\ny = (\n"
    offset = text.index("\n")
    assert first_parsing(text, offset, ["]", ""]) == ("]", 0)
