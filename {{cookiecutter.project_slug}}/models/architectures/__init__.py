"""One file per architecture, each read top to bottom (gpt.py: decoder-only, Llama-style)."""
