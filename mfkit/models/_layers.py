"""Layers shared by the neural models: an MLP of Linear -> [BatchNorm] -> ReLU -> Dropout."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp(sizes: Sequence[int], dropout: float, batch_norm: bool) -> nn.Sequential:
    """Linear layers of ``sizes``, each followed by [BatchNorm,] ReLU and dropout."""
    layers: list[nn.Module] = []
    for size_in, size_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers.append(nn.Linear(size_in, size_out))
        if batch_norm:
            layers.append(nn.BatchNorm1d(size_out))
        layers += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


def check_mlp_args(hidden: Sequence[int], dropout: float) -> tuple[int, ...]:
    hidden = tuple(hidden)
    if not hidden or any(h < 1 for h in hidden):
        raise ValueError(f"hidden must be one or more layer sizes >= 1, got {hidden}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return hidden


def one_hot(codes: torch.Tensor, size: int) -> torch.Tensor:
    """One-hot rows without the *unknown* column: code 0 becomes all zeros."""
    return nn.functional.one_hot(codes, size)[:, 1:].float()
