"""What training and inference both need: device.py (where and how fast to compute),
checkpoints.py (checkpoint files: save, verify, find, load a trained model), sharded_checkpoints.py
(FSDP's sharded checkpoints), distributed.py (the processes of a torchrun run) and metrics.py
(validation loss, perplexity, bits per byte)."""
