"""The model: its config and presets (config.py) and one file per architecture."""
