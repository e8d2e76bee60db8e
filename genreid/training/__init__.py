"""Trainers for the three training stages, and what they share (checkpoints)."""
