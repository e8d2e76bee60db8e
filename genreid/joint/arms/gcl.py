"""GCL (CVPR 2021): the view-invariant memory loss on generated novel views, nothing more; its
pseudo-labels come from ``train.gcl.cluster`` (the rho rule)."""

from __future__ import annotations

from genreid.joint.generative import GenerativeMethod
from genreid.registry import register_method


@register_method("gcl", label="GCL", order=30, needs_generator=True, config_key="gcl")
class GCL(GenerativeMethod):
    """The generative joint step exactly as the base class runs it."""
