"""The chip path's patches of a convolution (layers.im2col_codes) are F.unfold's, in its order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from rramctl.training.layers import im2col_codes


@pytest.mark.parametrize(
    ("shape", "kernel", "top"),
    [
        ((4, 1, 14, 14), (3, 3), 16),
        ((3, 64, 7, 7), (3, 3), 16),
        ((2, 3, 5, 6), (2, 3), 256),
        ((2, 3, 5, 6), (3, 2), 300),
    ],
)
def test_im2col_codes_are_unfolds_patches(shape: tuple[int, int, int, int], kernel: tuple[int, int], top: int) -> None:
    g = torch.Generator().manual_seed(sum(shape) + top)
    x = torch.randint(0, top, shape, generator=g).float()
    n, c = shape[0], shape[1]
    want = F.unfold(x, kernel).transpose(1, 2).reshape(-1, c * kernel[0] * kernel[1]).round().to(torch.int64)
    got = im2col_codes(x, kernel)
    assert got.dtype == (np.uint8 if top <= 256 else np.int64)  # every code in 0..255: bytes
    assert got.shape[0] == n * (shape[2] - kernel[0] + 1) * (shape[3] - kernel[1] + 1)
    np.testing.assert_array_equal(got.astype(np.int64), want.numpy())


@pytest.mark.parametrize(
    ("shape", "kernel", "stride"), [((2, 5, 9, 8), (3, 3), (2, 2)), ((3, 2, 7, 10), (2, 3), (1, 3))]
)
def test_strided_patches_are_unfolds(
    shape: tuple[int, int, int, int], kernel: tuple[int, int], stride: tuple[int, int]
) -> None:
    """Every sh-th row and sw-th column of patches, in F.unfold's order (stride = the convolution's)."""
    x = torch.randint(0, 16, shape, generator=torch.Generator().manual_seed(sum(shape))).float()
    want = F.unfold(x, kernel, stride=stride).transpose(1, 2).reshape(-1, shape[1] * kernel[0] * kernel[1])
    got = im2col_codes(x, kernel, stride)
    np.testing.assert_array_equal(got.astype(np.int64), want.round().to(torch.int64).numpy())
