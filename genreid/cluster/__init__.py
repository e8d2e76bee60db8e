"""Pseudo-labels from unlabeled features: k-reciprocal Jaccard distance, DBSCAN, label quality."""

from genreid.cluster.jaccard import jaccard_distance

__all__ = ["jaccard_distance"]
