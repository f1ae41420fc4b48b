"""Settings that only work when they are in place before torch is imported.

Every entry point that uses torch imports this module first (`import torch_env` above its other
imports), so they live here once.

OMP_WAIT_POLICY=PASSIVE: by default OpenMP's idle threads spin while they wait for work. When
anything else runs on the machine (another training, a browser, the tests), spinning threads fight
over the cores: 2 torch threads can run 2x slower than 1, and token-by-token generation 30x
slower. Passive waiting puts idle threads to sleep and costs nothing measurable otherwise.
OpenMP reads the variable once, when torch loads it; setdefault keeps a value you set yourself.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
