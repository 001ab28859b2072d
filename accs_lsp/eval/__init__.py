"""Quality evaluation: constrained against unconstrained decoding on the same holes."""
