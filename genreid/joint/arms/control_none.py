"""control_none (not in the papers): stage 3's memory training with no positive view, only the loss's
original-view term; it asks whether generated views help beyond more training. It clusters with GCL's
``train.gcl.cluster``, so that its only difference from GCL is the view."""

from __future__ import annotations

from genreid.joint.contrastive import ContrastiveMethod
from genreid.registry import register_method


@register_method("control_none", label="control_none", order=10, needs_generator=False)
class ControlNone(ContrastiveMethod):
    """The contrastive-only step exactly as the base class runs it (no positive view)."""
