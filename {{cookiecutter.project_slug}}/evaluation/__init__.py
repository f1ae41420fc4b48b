"""Evaluation: metrics, `make eval`, and text generation (`make generate`)."""

import os

# Passive OpenMP waiting: spinning threads made 2-thread generation many times slower whenever
# anything else ran on the machine (measured). Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
