"""Pseudo-labels from unlabeled features: k-reciprocal Jaccard distance, DBSCAN, label quality."""

from genreid.cluster.jaccard import jaccard_distance
from genreid.cluster.pseudo_labels import ClusterSettings, cluster_features
from genreid.cluster.quality import label_quality

__all__ = ["ClusterSettings", "cluster_features", "jaccard_distance", "label_quality"]
