"""GCL+ prototype losses (docs/method.md#prototype-loss).

Prototypes are the mean memory feature of each cluster, computed once per epoch. The loss is
CE(f C^T / T, y) + soft-CE(f_mix C^T / T, soft target). The authors' code uses raw (un-normalised)
f and C (C = plain means of the memory slots) and no temperature, and never defines the criterion
or its weight (the released GCL+ code does not run); here f and C are L2-normalised with
temperature 0.05 by default, and ``normalise=False`` with ``temperature=1`` is the authors' variant.
:func:`cluster_prototypes` returns the raw means; :func:`prototype_logits` normalises both sides
when asked, so the switch is in one place (``train.gcl_plus.proto_normalise``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genreid.cluster.means import cluster_means


@torch.no_grad()
def cluster_prototypes(features: torch.Tensor, labels: torch.Tensor, num_clusters: int | None = None,
                       normalise: bool = False) -> torch.Tensor:
    """(num_clusters, D) mean feature per label >= 0 (raw unless ``normalise``); outliers (-1) are ignored."""
    protos = cluster_means(features, labels, num_clusters)
    if protos.shape[0] == 0:
        raise ValueError("no clusters: every label is -1")
    return F.normalize(protos, dim=1) if normalise else protos


def prototype_logits(f: torch.Tensor, prototypes: torch.Tensor, temperature: float, normalise: bool) -> torch.Tensor:
    f = F.normalize(f.float(), dim=1) if normalise else f.float()
    c = F.normalize(prototypes.float(), dim=1) if normalise else prototypes.float()
    return f @ c.t() / temperature


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean_b -sum_c target[b,c] log softmax(logits)[b,c]; equals CE when the target is one-hot."""
    return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()


def prototype_loss(f: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor, temperature: float = 0.05,
                   normalise: bool = True, f_mix: torch.Tensor | None = None,
                   soft_target: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Hard CE on the original views plus, when given, soft CE on the mixed views."""
    hard = F.cross_entropy(prototype_logits(f, prototypes, temperature, normalise), labels.to(f.device))
    parts = {"proto_hard": hard.detach()}
    if f_mix is None:
        return hard, parts
    soft = soft_cross_entropy(prototype_logits(f_mix, prototypes, temperature, normalise), soft_target)
    parts["proto_soft"] = soft.detach()
    return hard + soft, parts
