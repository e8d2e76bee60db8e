"""The generator sheet names its columns: input, mesh, reconstruction, each novel view's angle, cycle."""

import numpy as np
import pytest
import torch

from genreid.gan.sheet import column_labels, tiles_to_image


def test_the_sheet_has_a_band_of_column_labels_above_the_unchanged_grid():
    labels = column_labels([45, 180])
    assert labels == ["input", "mesh 0°", "recon.", "view 45°", "view 180°", "cycle"]
    top, bottom = torch.rand(2, 6, 3, 16, 8), torch.zeros(2, 6, 3, 16, 8)
    plain = np.asarray(tiles_to_image(top, bottom, scale=3))
    named = np.asarray(tiles_to_image(top, bottom, scale=3, labels=labels))
    band = named.shape[0] - plain.shape[0]
    assert band > 0 and named.shape[1] == plain.shape[1]
    assert np.array_equal(named[band:], plain)  # the grid itself is untouched
    header = named[:band]
    column = (8 + 2) * 3
    for j in range(len(labels)):  # every column has ink (its label) in the band
        assert (header[:, 6 + j * column: (j + 1) * column] < 128).any(), labels[j]
    with pytest.raises(ValueError, match="5 column labels for 6 columns"):
        tiles_to_image(top, bottom, labels=labels[:5])
