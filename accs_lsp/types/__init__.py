"""Types at the cursor: a small type model, providers (Jedi, basedpyright) and the inhabitation search."""
