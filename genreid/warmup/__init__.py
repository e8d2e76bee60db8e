"""Stage 1: the identity-encoder warm-up with Cluster-Contrast, reported as the "baseline"."""
