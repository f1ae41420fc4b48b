"""Plugins: optional callbacks that llm.config.js turns on by name (`plugins.enabled`).

Each plugin is one file here, plugins/<name>.py, with a `load(cfg)` function that returns a
Plugin (base.py) or None; manager.py loads the enabled ones for training/run.py. A plugin that
fails to load, or raises while training, prints one warning and is switched off: a plugin never
stops a training run.
"""
