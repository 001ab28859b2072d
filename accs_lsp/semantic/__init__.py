"""The semantic layer: the examples of the function at the cursor (doctests, `# accs:`
comments, the project's test asserts), and a candidate check that runs them in the
sandbox on each finished candidate."""

from accs_lsp.semantic.check import CheckOutcome, ExampleCheck
from accs_lsp.semantic.examples import Example, FunctionExamples, examples_at

__all__ = ["CheckOutcome", "Example", "ExampleCheck", "FunctionExamples", "examples_at"]
