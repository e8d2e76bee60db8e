"""Stage 2: generator pre-training with the warm-up encoder frozen."""
