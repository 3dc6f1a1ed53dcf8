"""Demo and simulation code: the demo bank, live demo traffic, the carrier simulator, the SMTP sink.

Nothing in the product imports this package (the import-linter contract in pyproject.toml says so);
only the CLI (``switchboard run`` / ``seed`` / ``traffic`` / ``smtp`` in a demo), tests and benches do.
"""
