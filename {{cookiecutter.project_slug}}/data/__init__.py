"""Text in, token ids out: sample.py, download.py, sources.py, prepare.py, dataset.py."""
