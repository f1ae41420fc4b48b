"""create-llm: scaffold a complete, readable PyTorch project for training your own language model.

    create-llm my-llm --template tiny
"""

__version__ = "0.1.0"
