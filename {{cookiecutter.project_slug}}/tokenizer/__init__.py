"""The tokenizer: `python -m tokenizer.train` trains it, `tokenizer.load` reads it back."""
