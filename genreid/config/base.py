"""Base model: unknown keys are errors, values are validated on assignment too.

``strict``: a value must already have the field's type: ``epochs: true`` or ``epochs: "5"`` is
an error, not 1 or 5 (YAML makes ``yes``/``on`` and quoted numbers easy to write by mistake).
Integers are still accepted where a float is expected. ``allow_inf_nan=False``: ``.nan`` and
``.inf`` are refused everywhere (a NaN learning rate would only surface as a diverged run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, strict=True,
                              allow_inf_nan=False)


@dataclass(frozen=True)
class NameFrom:
    """A string field whose allowed values come from a registry (asked at validation time, so that the
    schema imports no registry member): the validator refuses other values, the docs list them."""

    choices: Callable[[], Sequence[str]]
    what: str  # "a stage-3 method", for the error message

    def __call__(self, value: str) -> str:
        allowed = self.choices()
        if value not in allowed:
            raise ValueError(f"{value!r} is not {self.what}; use one of {', '.join(allowed)}")
        return value


def registered_name(choices: Callable[[], Sequence[str]], what: str) -> Any:
    """The annotation of a string restricted to ``choices()`` (see :class:`NameFrom`)."""
    check = NameFrom(choices, what)
    return Annotated[str, AfterValidator(check), check]
