"""Helpers for the DVC pipeline itself (dvc.yaml wiring), not for any one method."""
