"""Losses of the generator and the contrastive stage: GAN, reconstruction, view-invariant, prototype."""
