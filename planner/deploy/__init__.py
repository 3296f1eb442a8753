"""Deployment configs: one module per serving engine, option names checked against profiles/engine_options/, rendering."""
