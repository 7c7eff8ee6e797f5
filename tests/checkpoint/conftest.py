"""Fixtures for checkpoint tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def ids() -> torch.Tensor:
    return torch.randint(0, 80, (2, 9), generator=torch.Generator().manual_seed(1))
