"""Several processes from a plain ``python stages/<trainer>.py``: the stage starts itself under torchrun.

``dvc repro`` runs each stage's command with plain ``python``. With ``runtime.nproc_per_node`` above
one (or ``runtime.nnodes`` above one) a training stage does not train in that process: it runs
``python -m torch.distributed.run`` with its own script and arguments, waits, and exits with its
status, so DVC records the outputs that rank 0 wrote as for any other run. Under torchrun (its
``LOCAL_RANK`` in the environment, also when a user starts torchrun by hand) nothing is relaunched.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
LAUNCHED_ENV = ("LOCAL_RANK", "TORCHELASTIC_RUN_ID")


@dataclass(frozen=True)
class LaunchPlan:
    """torchrun's settings (``runtime.nproc_per_node``, ``nnodes``, ``node_rank``, ``master_addr``,
    ``master_port``)."""

    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500

    @property
    def processes(self) -> int:
        return self.nproc_per_node * self.nnodes


def under_torchrun() -> bool:
    return any(name in os.environ for name in LAUNCHED_ENV)


def needs_launch(plan: LaunchPlan) -> bool:
    """True in the plain process of a stage that is asked for several processes."""
    return plan.processes > 1 and not under_torchrun()


def torchrun_command(plan: LaunchPlan, script: str | os.PathLike, argv: list[str]) -> list[str]:
    """``python -m torch.distributed.run ... script argv``; one node rendezvouses on a free local port
    (``--standalone``, so two runs never collide), several on ``master_addr:master_port``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(plan.nproc_per_node)]
    if plan.nnodes == 1:
        cmd.append("--standalone")
    else:
        cmd += ["--nnodes", str(plan.nnodes), "--node_rank", str(plan.node_rank),
                "--master_addr", plan.master_addr, "--master_port", str(plan.master_port)]
    return [*cmd, str(script), *argv]


def launch(plan: LaunchPlan, script: str | os.PathLike, argv: list[str]) -> int:
    """Run ``script argv`` under torchrun and return its exit status (0 when every process succeeded)."""
    cmd = torchrun_command(plan, script, argv)
    log.info("starting %s in %d processes (%d per node) under torchrun: %s", Path(script).name, plan.processes,
             plan.nproc_per_node, " ".join(cmd[1:]))
    return subprocess.run(cmd, check=False).returncode
