"""genreid: reproduction harness for GCL (CVPR 2021) and GCL+ (TPAMI 2023) unsupervised person ReID."""

import os as _os

# OpenMP threads that spin while waiting make torch 15-30x slower whenever another process
# shares the cores (measured on the 2-core reference machine); passive waiting costs ~nothing.
# Must be set before torch loads its OpenMP runtime; an explicit user setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
