"""Base model: unknown keys are errors, values are validated on assignment too.

``strict``: a value must already have the field's type: ``epochs: true`` or ``epochs: "5"`` is
an error, not 1 or 5 (YAML makes ``yes``/``on`` and quoted numbers easy to write by mistake).
Integers are still accepted where a float is expected. ``allow_inf_nan=False``: ``.nan`` and
``.inf`` are refused everywhere (a NaN learning rate would only surface as a diverged run).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, strict=True,
                              allow_inf_nan=False)
