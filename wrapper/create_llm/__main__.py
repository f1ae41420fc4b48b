"""`python -m create_llm` is the same as the `create-llm` command."""

from create_llm.cli import app

app()
