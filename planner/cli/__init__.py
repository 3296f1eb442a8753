"""The command line: one module per command group; each builds a request model, calls one function and renders."""
