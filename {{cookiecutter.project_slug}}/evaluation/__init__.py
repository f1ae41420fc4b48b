"""Evaluation: `make eval` (evaluate.py) and text generation (generate.py, `make generate`)."""
