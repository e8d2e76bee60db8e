"""SMPL-format body models: the official SMPL file through ``smplx``, or the procedural stand-in."""

from genreid.body.smpl import NUM_BETAS, NUM_JOINTS, POSE_DIM, BodyModel, load_body_model

__all__ = ["BodyModel", "NUM_BETAS", "NUM_JOINTS", "POSE_DIM", "load_body_model"]
