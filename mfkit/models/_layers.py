"""Pieces shared by the neural models: an MLP of Linear -> [BatchNorm] -> ReLU -> Dropout,
one-hot codes, and side features kept as buffers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from mfkit.features import SideFeatures


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


class SideFeatureModel(nn.Module):
    """A model that keeps the encoded side features of every user and movie as buffers.

    The buffers (``user_<key>``, ``movie_<key>``) move with the model between devices
    and are not saved in its ``state_dict``: :mod:`mfkit.saving` stores ``side`` itself.
    """

    def _store_side(self, side: SideFeatures) -> None:
        self.side = side
        self._user_keys, self._movie_keys = tuple(side.users), tuple(side.movies)
        for key, table in side.users.items():
            self.register_buffer(f"user_{key}", table.clone(), persistent=False)
        for key, table in side.movies.items():
            self.register_buffer(f"movie_{key}", table.clone(), persistent=False)

    @property
    def n_users(self) -> int:
        return len(self.side.users["age"])

    @property
    def n_movies(self) -> int:
        return len(self.side.movies["year"])

    def _users(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoded features of user rows ``rows``."""
        return {key: getattr(self, f"user_{key}")[rows] for key in self._user_keys}

    def _movies(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoded features of movie rows ``rows``."""
        return {key: getattr(self, f"movie_{key}")[rows] for key in self._movie_keys}
