"""Your own interaction table in, a table of recommendations out.

Inside, mfkit reads the columns ``user_id``, ``movie_id`` and, where a function needs
them, ``rating`` and ``timestamp``: the names of MovieLens. A table with other names
(``userID, itemID, rating, timestamp``, as Microsoft Recommenders names them, or
``customer, product``) names its columns once, in :class:`Columns`, which renames it to
mfkit's names and the results back. Ids may be of any hashable type: numbers or
strings. ``movie_id`` is the item column whatever the items are.

:func:`recommendations` gives the top ``k`` items of many users at once as a table
``user_id, movie_id, score, rank``, the items each user already has left out, in the
table's own ids: a form other libraries' metric functions read.

Examples
--------
>>> import pandas as pd
>>> from mfkit.features import Indexer
>>> clicks = pd.DataFrame({"customer": ["ann", "ann", "bob"], "product": ["x", "y", "x"]})
>>> columns = Columns(user="customer", item="product")
>>> table = columns.standardize(clicks)
>>> list(table.columns)
['user_id', 'movie_id']
>>> Indexer.from_interactions(table).movies.ids.tolist()
['x', 'y']
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from mfkit.evaluation import Scorer, model_scorer, top_k_for_users
from mfkit.features import Indexer
from mfkit.splits import MissingColumnsError

__all__ = ["Columns", "recommendations"]

#: mfkit's own column names, in the order :meth:`Columns.standardize` returns them.
STANDARD = ("user_id", "movie_id", "rating", "timestamp")


@dataclass(frozen=True)
class Columns:
    """The column names of an interaction table, given once.

    Parameters
    ----------
    user, item : str
        The columns that hold the user and the item of each interaction.
    rating, timestamp : str, optional
        The rating (explicit feedback) and the time (Unix seconds, for the temporal
        splits and the sequence models), where the table has them. Implicit data has
        no rating: evaluate it with ``min_rating=None``.
    """

    user: str
    item: str
    rating: str | None = None
    timestamp: str | None = None

    def renames(self) -> dict[str, str]:
        """``{your name: mfkit's name}`` for each column given."""
        given = (self.user, self.item, self.rating, self.timestamp)
        return {mine: theirs for mine, theirs in zip(given, STANDARD, strict=True) if mine}

    def standardize(self, table: pd.DataFrame) -> pd.DataFrame:
        """The given columns of ``table``, renamed to mfkit's names (other columns dropped).

        Raises :class:`~mfkit.splits.MissingColumnsError` for a named column the table
        lacks, and ``ValueError`` for missing ids or non-numeric ratings or times.
        """
        renames = self.renames()
        missing = [name for name in renames if name not in table.columns]
        if missing:
            raise MissingColumnsError(
                f"the table lacks column(s) {missing} named in {self}; it has {list(table.columns)}"
            )
        out = table[list(renames)].rename(columns=renames).reset_index(drop=True)
        for mine, column in ((self.user, "user_id"), (self.item, "movie_id")):
            if out[column].isna().any():
                raise ValueError(f"column {mine!r} has missing ids")
        for column in ("rating", "timestamp"):
            if column in out and not pd.api.types.is_numeric_dtype(out[column]):
                raise ValueError(
                    f"{column} must be numeric, got dtype {out[column].dtype}; convert it first "
                    "(times as Unix seconds)"
                )
        return out

    def restore(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` with mfkit's column names turned back into yours (others kept)."""
        back = {theirs: mine for mine, theirs in self.renames().items()}
        return table.rename(columns=back)


@torch.no_grad()
def recommendations(
    model: torch.nn.Module | Scorer,
    indexer: Indexer,
    seen: pd.DataFrame,
    users=None,
    *,
    k: int = 10,
    measure: str | None = None,
    batch_size: int = 512,
) -> pd.DataFrame:
    """The top ``k`` items of each of ``users``, as one table.

    Parameters
    ----------
    model : nn.Module or callable
        A model of :mod:`mfkit.models` (scored through
        :func:`mfkit.evaluation.model_scorer`: a softmax or two-tower model reads each
        user's bag of ``seen`` items, a sequence model their sequence in time
        order) or a function ``user_rows -> (n, n_items)`` scores.
    indexer : Indexer
    seen : DataFrame
        ``user_id, movie_id`` pairs never recommended again, normally the training data.
    users : sequence of ids, optional
        Whose lists (default: every user of ``indexer``). An unknown id raises
        :class:`~mfkit.features.UnknownIdError`.
    k : int
        The length of each list; a user with fewer unseen items gets a shorter one.

    Returns
    -------
    DataFrame ``user_id, movie_id, score, rank`` (rank 1 is the best), ``k`` rows per
    user in the order of ``users``, in the indexer's own ids.
    """
    if isinstance(model, torch.nn.Module):
        model = model_scorer(model, indexer, seen, measure)
    rows = (
        torch.arange(indexer.n_users)
        if users is None
        else torch.from_numpy(indexer.users.index(list(users)))
    )
    seen_users, seen_items = indexer.pairs(seen)
    scores, items = top_k_for_users(
        model,
        rows,
        seen_users,
        seen_items,
        indexer.n_movies,
        k,
        batch_size=batch_size,
        with_scores=True,
    )
    keep = items >= 0  # a user with fewer than k unseen items has a shorter list
    rank = torch.arange(1, items.shape[1] + 1).expand_as(items)
    return pd.DataFrame(
        {
            "user_id": indexer.users.ids_of(rows[:, None].expand_as(items)[keep]),
            "movie_id": indexer.movies.ids_of(items[keep]),
            "score": scores[keep].double().numpy(),
            "rank": rank[keep].numpy(),
        }
    )
