"""Type aliases shared across the package."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
"""A float64 numpy array; shapes are given in each docstring."""
