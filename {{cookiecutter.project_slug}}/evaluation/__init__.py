"""Evaluate (loss, perplexity, speed) and generate text with a trained model."""
