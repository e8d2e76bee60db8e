"""UDA source pre-training: the identity encoder trained with labels on the source dataset."""
