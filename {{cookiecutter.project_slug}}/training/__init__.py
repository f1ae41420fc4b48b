"""Training: the entry point (train.py), the loop (trainer.py), the optimizer and callbacks."""
