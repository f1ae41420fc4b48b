"""Training: the loop (trainer.py), its entry point (train.py), checkpoints and callbacks."""

import os

# OpenMP threads spin while they wait by default; on a laptop with anything else running, that
# made 2 torch threads up to 2x slower than 1 (shared/notes: measured). Passive waiting fixes it.
# It must be set before torch is imported, which is why it lives here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
