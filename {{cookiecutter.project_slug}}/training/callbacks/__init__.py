"""Callbacks: code that runs at the trainer's events (see base.py for the list)."""
