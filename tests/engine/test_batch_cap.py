"""``*.iters_per_epoch`` of stages 2 and 3 is a cap: it shortens an epoch, never lengthens it, and a
cap above one pass is warned about (it reads like a count)."""

from __future__ import annotations

import logging

from genreid.engine import batches as batches_module
from genreid.engine.batches import cap_batches, epoch_batches


def test_cap_above_one_pass_runs_one_pass_and_warns(caplog):
    plan = epoch_batches(range(80), 16, stream=1)
    assert len(plan) == 5
    batches_module._NOTED.discard(("test.cap_short", "short"))
    with caplog.at_level(logging.WARNING, logger="genreid.engine.batches"):
        out = cap_batches(plan, 25, "test.cap_short", "clustered images")
        again = cap_batches(plan, 25, "test.cap_short", "clustered images")
    assert out == plan and again == plan
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # once per key and process
    assert "test.cap_short is 25" in warnings[0] and "the epoch runs 5" in warnings[0]


def test_cap_below_one_pass_truncates_and_null_keeps_all():
    plan = epoch_batches(range(80), 16, stream=1)
    assert cap_batches(plan, 2, "test.cap_low", "training images") == plan[:2]
    assert cap_batches(plan, None, "test.cap_none", "training images") == plan
    assert cap_batches(plan, 5, "test.cap_equal", "training images") == plan
