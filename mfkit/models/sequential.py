"""Models of what a user watches next: GRU4Rec and SASRec.

Built in chapter 9 (sequence-aware recommendation). Both read a history from
:func:`mfkit.sequences.histories` (movie rows, oldest first, right-padded with the
row ``n_items``) and return one hidden state per position; the state at step
``t`` scores every movie as the one at ``t + 1`` by a dot product with the movie
embeddings (:meth:`~mfkit.models.SASRec.logits`).
Position ``t`` never sees a later position, so training on every step of a
history at once is honest, and right padding never changes a real position's
state.

:class:`~mfkit.models.GRU4Rec` (Hidasi et al. 2016) runs a GRU over the history;
:class:`~mfkit.models.SASRec` (Kang and McAuley 2018) adds learned positional
embeddings and runs causal self-attention blocks (PyTorch's pre-norm
``TransformerEncoderLayer``).
"""

from __future__ import annotations

import torch
from torch import nn

from mfkit.sequences import last_positions

__all__ = ["GRU4Rec", "SASRec", "SequenceModel"]


def _check_sizes(n_items: int, dim: int, dropout: float) -> None:
    if n_items < 1 or dim < 1:
        raise ValueError(f"n_items and dim must be at least 1, got {n_items} and {dim}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


class SequenceModel(nn.Module):
    """What the sequence models share: movie embeddings with a padding row, and scoring.

    Subclasses build ``self.items`` with :meth:`_item_table` and define
    ``forward(seqs) -> (batch, width, dim)`` hidden states.
    """

    items: nn.Embedding

    def _item_table(self, n_items: int, dim: int) -> nn.Embedding:
        items = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        nn.init.normal_(items.weight, 0.0, dim**-0.5)
        with torch.no_grad():
            items.weight[n_items] = 0.0
        return items

    @property
    def pad(self) -> int:
        """The padding row (one past the last movie)."""
        return self.items.num_embeddings - 1

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every movie from hidden states: ``(..., dim) -> (..., n_items)``."""
        return hidden @ self.items.weight[:-1].T

    @torch.no_grad()
    def score_next(self, seqs: torch.Tensor) -> torch.Tensor:
        """``(batch, n_items)`` scores of the movie after each history's latest one.

        Runs in eval mode (no dropout) and restores the mode it found.
        """
        was_training = self.training
        self.eval()
        try:
            hidden = self(seqs)
        finally:
            self.train(was_training)
        last = last_positions(seqs, self.pad).clamp(min=0)
        return self.logits(hidden[torch.arange(len(seqs)), last])


class GRU4Rec(SequenceModel):
    """A GRU over the movie embeddings of a history (Hidasi et al. 2016).

    Parameters
    ----------
    n_items : int
        Movies in the catalogue; row ``n_items`` is the padding.
    dim : int
        Size of the embeddings and of the GRU's state.
    dropout : float
        Dropout on the embeddings.
    seed : int or None

    Examples
    --------
    >>> model = GRU4Rec(5, dim=4, seed=0)
    >>> model(torch.tensor([[0, 3, 5]])).shape
    torch.Size([1, 3, 4])
    >>> model.score_next(torch.tensor([[0, 3, 5]])).shape
    torch.Size([1, 5])
    """

    def __init__(
        self, n_items: int, *, dim: int = 64, dropout: float = 0.2, seed: int | None = None
    ) -> None:
        super().__init__()
        _check_sizes(n_items, dim, dropout)
        self.config = {"n_items": n_items, "dim": dim, "dropout": dropout}
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.items = self._item_table(n_items, dim)
            self.gru = nn.GRU(dim, dim, batch_first=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(batch, width, dim)`` of right-padded histories."""
        return self.gru(self.drop(self.items(seqs)))[0]


class SASRec(SequenceModel):
    """Self-attentive sequential recommendation (Kang and McAuley 2018).

    Movie embedding plus a learned embedding of the position, then ``blocks``
    pre-norm transformer blocks whose attention is causal (step ``t`` attends to
    steps ``<= t``), then a layer norm.

    Parameters
    ----------
    n_items : int
        Movies in the catalogue; row ``n_items`` is the padding.
    dim : int
        Size of the embeddings, of attention and of the feed-forward layers.
    maxlen : int
        Longest history it reads (number of positional embeddings).
    blocks, heads : int
        Transformer blocks and attention heads (``dim`` must divide by ``heads``).
    dropout : float
        Dropout on the input, the attention weights and inside each block.
    seed : int or None

    Examples
    --------
    >>> model = SASRec(5, dim=4, maxlen=3, seed=0)
    >>> model(torch.tensor([[0, 3, 5]])).shape
    torch.Size([1, 3, 4])
    >>> [w.shape for w in model.attention(torch.tensor([[0, 3, 5]]))]
    [torch.Size([1, 3, 3]), torch.Size([1, 3, 3])]
    """

    def __init__(
        self,
        n_items: int,
        *,
        dim: int = 64,
        maxlen: int = 50,
        blocks: int = 2,
        heads: int = 1,
        dropout: float = 0.2,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        _check_sizes(n_items, dim, dropout)
        if maxlen < 1 or blocks < 1 or heads < 1 or dim % heads:
            raise ValueError(
                f"maxlen, blocks and heads must be at least 1 and dim must divide by heads, "
                f"got maxlen={maxlen}, blocks={blocks}, heads={heads}, dim={dim}"
            )
        self.config = {
            "n_items": n_items,
            "dim": dim,
            "maxlen": maxlen,
            "blocks": blocks,
            "heads": heads,
            "dropout": dropout,
        }
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.items = self._item_table(n_items, dim)
            self.positions = nn.Embedding(maxlen, dim)
            nn.init.normal_(self.positions.weight, 0.0, dim**-0.5)
            layer = nn.TransformerEncoderLayer(
                dim, heads, dim, dropout, batch_first=True, norm_first=True
            )
            self.blocks = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def _inputs(self, seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        width = seqs.shape[1]
        if width > self.config["maxlen"]:
            raise ValueError(
                f"histories are {width} long but the model reads at most "
                f"maxlen={self.config['maxlen']}: build them with histories(..., maxlen=)"
            )
        x = self.drop(self.items(seqs) + self.positions.weight[:width])
        return x, nn.Transformer.generate_square_subsequent_mask(width)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(batch, width, dim)`` of right-padded histories."""
        x, causal = self._inputs(seqs)
        return self.norm(self.blocks(x, mask=causal, is_causal=True))

    @torch.no_grad()
    def attention(self, seqs: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of each block, ``(batch, width, width)`` (averaged over heads).

        Row ``t`` of a block's weights says how much step ``t`` draws on each step
        ``<= t``; computed in eval mode.
        """
        was_training = self.training
        self.eval()
        try:
            x, causal = self._inputs(seqs)
            weights = []
            for layer in self.blocks.layers:
                y = layer.norm1(x)
                weights.append(layer.self_attn(y, y, y, attn_mask=causal, need_weights=True)[1])
                x = layer(x, src_mask=causal, is_causal=True)
        finally:
            self.train(was_training)
        return weights
