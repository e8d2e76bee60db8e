"""genreid: reproduction harness for GCL (CVPR 2021) and GCL+ (TPAMI 2023) unsupervised person ReID."""

__version__ = "0.1.0"
