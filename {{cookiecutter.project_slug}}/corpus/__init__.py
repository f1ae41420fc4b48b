"""Raw text, before any tokenizer: the files in data/raw (sources.py) or the built-in stories
(sample.py). Both `make tokenizer` and `make data` read their documents from here."""
