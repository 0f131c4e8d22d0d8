"""Bayesian factorization machines, learned by Gibbs sampling instead of gradients.

Introduced in chapter 12. Instead of one set of weights that minimises a penalised
loss, Gibbs sampling (Freudenthaler, Schmidt-Thieme and Rendle 2011; for a matrix,
Salakhutdinov and Mnih's BPMF, 2008) draws many sets from their posterior and
averages the predictions of all of them. Every weight has a Gaussian prior whose mean
and precision are drawn too (one pair per field and factor), and so is the noise
precision ``alpha``: there is no L2 strength and no learning rate to tune.

The draws here go field by field. When every row has exactly one feature of a field
on (a one-hot field: the user, the movie, the day), the features of that field never
meet in a row, so given every other field their weights ``(w_l, v_l)`` are
independent Bayesian linear regressions, one per feature: the same half-step as
alternating least squares (:mod:`mfkit.als`), with a draw from the Gaussian posterior
instead of its mean. A multi-hot field couples its features, so they are drawn one
after the other; :class:`GibbsFM` does that for *bags*, fields that are the same for
every row of one key (a user's bag of rated movies), from sums kept per key.

Examples
--------
>>> from mfkit.feature_rows import FeatureRows, one_hot
>>> users, movies = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
>>> rows = FeatureRows.concat(one_hot(users, 2), one_hot(movies, 2))
>>> fm = GibbsFM(rows.fields, dim=2, seed=0)
>>> fm.sample(rows, torch.tensor([5.0, 3.0, 4.0, 2.0]), burn_in=5, samples=20, progress=False)
>>> fm.predict(rows).shape
torch.Size([4])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from mfkit.feature_rows import FeatureRows

__all__ = ["GibbsFM", "draw_gaussian_rows"]


def _grouped_gram(
    design: torch.Tensor, target: torch.Tensor, groups: torch.Tensor, n_groups: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group, ``sum_r design[r] design[r]^T`` and ``sum_r design[r] target[r]``."""
    d = design.shape[1]
    gram = torch.zeros(n_groups, d, d, dtype=design.dtype)
    rhs = torch.zeros(n_groups, d, dtype=design.dtype)
    order = torch.argsort(groups, stable=True)
    counts = torch.bincount(groups, minlength=n_groups)
    starts = torch.cumsum(counts, 0) - counts
    # Groups of similar size, padded to the largest of each chunk: one batched matmul
    # per chunk of groups instead of one outer product per row.
    for chunk in torch.split(torch.argsort(counts), 128):
        longest = int(counts[chunk].max())
        if longest == 0:
            continue
        at = starts[chunk].unsqueeze(1) + torch.arange(longest)
        valid = (torch.arange(longest) < counts[chunk].unsqueeze(1)).to(design.dtype)
        rows = order[at.clamp(max=len(order) - 1)]
        padded = design[rows] * valid.unsqueeze(2)
        gram[chunk] = padded.mT @ padded
        rhs[chunk] = (padded.mT @ (target[rows] * valid).unsqueeze(2)).squeeze(2)
    return gram, rhs


def _draw(precision: torch.Tensor, rhs: torch.Tensor, generator) -> torch.Tensor:
    """Draws from ``N(P^-1 rhs, P^-1)`` for a batch of precisions ``P`` ``(..., d, d)``."""
    chol = torch.linalg.cholesky(precision)
    mean = torch.cholesky_solve(rhs.unsqueeze(-1), chol).squeeze(-1)
    noise = torch.randn(rhs.shape, generator=generator, dtype=rhs.dtype).unsqueeze(-1)
    # L^T x = z gives x with covariance (L L^T)^-1 = P^-1.
    return mean + torch.linalg.solve_triangular(chol.mT, noise, upper=True).squeeze(-1)


def draw_gaussian_rows(
    design: torch.Tensor,
    target: torch.Tensor,
    groups: torch.Tensor,
    n_groups: int,
    prior_mean: torch.Tensor,
    prior_precision: torch.Tensor,
    alpha: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One draw of ``n_groups`` independent Bayesian linear regressions.

    Group ``l`` regresses ``target[r]`` on ``design[r]`` (rows ``r`` with ``groups[r]
    == l``) with noise precision ``alpha`` and prior ``N(prior_mean,
    diag(1 / prior_precision))``. Its posterior is Gaussian with precision ``P_l =
    diag(prior_precision) + alpha * sum_r design[r] design[r]^T`` and mean ``P_l^-1
    (prior_precision * prior_mean + alpha * sum_r design[r] target[r])``; the draw is
    ``mean + L^-T z`` for ``P_l = L L^T`` and ``z ~ N(0, I)``. Returns ``(n_groups,
    d)``; a group without rows is a draw from the prior.
    """
    gram, rhs = _grouped_gram(design, target, groups, n_groups)
    d = design.shape[1]
    precision = alpha * gram + torch.diag_embed(prior_precision.expand(n_groups, d))
    rhs = alpha * rhs + prior_precision * prior_mean
    return _draw(precision, rhs, generator)


def _bag_feature(theta, holders, c, gram, residual, own, alpha, mean, prior, noise):
    """One feature of a bag field: draw its ``[w, v]`` and update the per-key sums.

    ``holders`` are the keys whose bag holds the feature, with values ``c``; for each
    key ``k``, ``gram[k]`` is ``sum_r [1, Q_r][1, Q_r]^T`` over its rows, ``residual[k]``
    ``sum_r [1, Q_r] (y_r - pred_r)`` and ``own[k]`` the bag's factor sum. A row's
    design for this feature is ``c [1, a + Q_r]`` with ``a`` the bag's sum without
    the feature, so its sums over a key's rows follow from ``gram[k]`` and
    ``residual[k]`` by the linear map ``T = [[1, 0], [a, I]]``.
    """
    m, c2 = gram[holders], c * c
    a = own[holders] - c[:, None] * theta[1:]
    n, q1 = m[:, 0, 0], m[:, 0, 1:]
    total = np.tensordot(c2, m, axes=1)  # sum of c^2 M_k; then the terms with a
    weighted = c2[:, None] * a
    outer = weighted.T @ q1
    total[0, 1:] += (weighted * n[:, None]).sum(0)
    total[1:, 0] = total[0, 1:]
    total[1:, 1:] += outer + outer.T + (weighted * n[:, None]).T @ a
    e0, e1 = residual[holders, 0], residual[holders, 1:]
    rhs = np.concatenate([[c @ e0], c @ (e0[:, None] * a + e1)]) + total @ theta
    drawn = _draw_one(np.diag(prior) + alpha * total, alpha * rhs + prior * mean, noise)
    delta = drawn - theta
    # Row r's prediction moved by c <delta, [1, a + Q_r]> = c <T^T delta, [1, Q_r]>.
    moved = np.empty((len(a), len(delta)))
    moved[:, 0] = delta[0] + a @ delta[1:]
    moved[:, 1:] = delta[1:]
    residual[holders] -= c[:, None] * np.einsum("kij,kj->ki", m, moved)
    own[holders] += c[:, None] * delta[1:]
    return drawn


def _draw_one(precision: np.ndarray, rhs: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """One draw from ``N(P^-1 rhs, P^-1)`` given standard normal ``noise``."""
    lower = np.linalg.cholesky(precision)
    return np.linalg.solve(precision, rhs) + np.linalg.solve(lower.T, noise)


def _same_bags(rows: FeatureRows, keyed: FeatureRows, keys: torch.Tensor) -> bool:
    """Whether row ``r`` of ``rows`` holds what row ``keys[r]`` of ``keyed`` holds: the
    same length and the same sums of indices, squared indices and index-weighted values
    (a check that needs no copy of the rows)."""

    def sums(table: FeatureRows) -> torch.Tensor:
        row_of = torch.repeat_interleave(torch.arange(len(table)), table.indptr.diff())
        index = table.indices.to(torch.float64)
        out = torch.zeros(3, len(table), dtype=torch.float64)
        for i, part in enumerate((index, index.square(), index * table.values)):
            out[i].index_add_(0, row_of, part)
        return out.T

    same_length = torch.equal(rows.indptr.diff(), keyed.indptr.diff()[keys])
    return same_length and torch.allclose(sums(rows), sums(keyed)[keys], rtol=1e-9, atol=0)


class GibbsFM:
    """A second-order factorization machine learned by Gibbs sampling.

    ``y(x) = w0 + sum_l w_l x_l + sum_{l < m} <v_l, v_m> x_l x_m``, as
    :class:`mfkit.models.FactorizationMachine`. :meth:`sample` draws ``w0``, every
    ``(w_l, v_l)`` field by field, each field's prior means and precisions
    (Normal-Gamma hyperpriors, as libFM's MCMC) and the noise precision ``alpha``;
    after ``burn_in`` sweeps it keeps ``samples`` draws, and :meth:`predict` averages
    their predictions.

    A one-hot field (one feature of value 1 per row) is drawn in one batch
    (:func:`draw_gaussian_rows`). A *bag* field (``bags``) is multi-hot, but the same
    for every row of one key, e.g. a user's bag of rated movies for every rating of
    that user: its features are drawn one after the other (they meet in rows, so they
    are not independent), each from sums kept per key, which costs
    ``O(keys holding the feature x dim^2)`` rather than a pass over the rows.

    Parameters
    ----------
    fields : tuple of int
        Width of each field (``FeatureRows.fields``).
    dim : int
        Factors per feature.
    bags : dict of int to int
        Bag fields: ``{bag field position: position of the one-hot field of its key}``,
        e.g. ``{2: 0}`` for a user bag in field 2 and the user id in field 0.
    init_std : float
        Standard deviation of the factors' first values.
    seed : int
        Seeds every draw.
    """

    def __init__(
        self,
        fields: Sequence[int],
        dim: int,
        *,
        bags: dict[int, int] | None = None,
        init_std: float = 0.1,
        seed: int = 0,
    ) -> None:
        if dim < 1 or not fields or min(fields) < 1:
            raise ValueError(f"dim and every field width must be >= 1, got {dim} and {fields}")
        self.fields, self.dim = tuple(int(f) for f in fields), dim
        self.bags = dict(bags or {})
        for bag, key in self.bags.items():
            if not (0 <= bag < len(fields) and 0 <= key < len(fields)) or key in self.bags:
                raise ValueError(f"bags {self.bags}: each maps a bag field to a one-hot field")
        self.offsets = torch.cumsum(torch.tensor((0, *self.fields[:-1])), 0)
        self.generator = torch.Generator().manual_seed(seed)
        n = sum(self.fields)
        self.w0 = 0.0
        # Column 0 is each feature's weight w_l, columns 1.. its factors v_l.
        self.theta = torch.zeros(n, dim + 1, dtype=torch.float64)
        self.theta[:, 1:] = init_std * torch.randn(n, dim, generator=self.generator)
        self.mean = torch.zeros(len(self.fields), dim + 1, dtype=torch.float64)
        self.precision = torch.ones(len(self.fields), dim + 1, dtype=torch.float64)
        self.alpha = 1.0
        self.kept: list[tuple[float, torch.Tensor]] = []
        self.rating_range: tuple[float, float] | None = None

    # ------------------------------------------------------------------ layout
    def _layout(self, rows: FeatureRows) -> tuple[torch.Tensor, dict[int, FeatureRows]]:
        """Feature codes ``(n, fields)`` of the one-hot fields (a bag field: its key's
        code), and each bag field's bags, one row per key of the key field."""
        if tuple(rows.fields) != self.fields:
            raise ValueError(f"rows have fields {rows.fields}, the model {self.fields}")
        n, n_fields = len(rows), len(self.fields)
        bounds = torch.cumsum(torch.tensor(self.fields), 0)
        field_of = torch.bucketize(rows.indices, bounds, right=True)
        row_of = torch.repeat_interleave(torch.arange(n), rows.indptr.diff())
        per_field = torch.bincount(row_of * n_fields + field_of, minlength=n * n_fields)
        per_field = per_field.view(n, n_fields)
        codes = torch.zeros(n, n_fields, dtype=torch.int64)
        is_one_hot = torch.tensor([f not in self.bags for f in range(n_fields)])
        entry = is_one_hot[field_of]
        if bool((per_field[:, is_one_hot] != 1).any()) or bool((rows.values[entry] != 1).any()):
            raise ValueError(
                "every field not in bags must be one-hot (exactly one feature of value 1 "
                "per row); a multi-hot field is drawn as a bag: GibbsFM(..., bags={field: key})"
            )
        codes[row_of[entry], field_of[entry]] = rows.indices[entry]
        key_bags = {}
        for bag, key in self.bags.items():
            keys = codes[:, key] - self.offsets[key]
            codes[:, bag] = keys
            mine = field_of == bag
            bag_rows = FeatureRows(
                torch.cat([torch.zeros(1, dtype=torch.int64), per_field[:, bag].cumsum(0)]),
                rows.indices[mine],
                rows.values[mine],
                rows.n_features,
            )
            first = torch.full((self.fields[key],), n, dtype=torch.int64)  # each key's first row
            first.scatter_reduce_(0, keys, torch.arange(n), "amin")
            first = torch.where(first == n, 0, first)  # keys without rows: any row, unused
            keyed = bag_rows.take(first)
            if not _same_bags(bag_rows, keyed, keys):
                raise ValueError(
                    f"field {bag} is not the same for every row of a key of field {key}"
                )
            # Keys without rows get an empty bag (take(first) gave them row 0's).
            seen = torch.zeros(self.fields[key], dtype=torch.bool)
            seen[keys] = True
            lengths = torch.where(seen, keyed.indptr.diff(), 0)
            keep = seen.repeat_interleave(keyed.indptr.diff())
            key_bags[bag] = FeatureRows(
                torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)]),
                keyed.indices[keep],
                keyed.values[keep],
                rows.n_features,
            )
        return codes, key_bags

    # ------------------------------------------------------------------ predictions
    def _parts(self, codes, key_bags, theta):
        """Per row: the sum of ``x_l w_l``, of ``x_l v_l`` and of ``x_l^2 ||v_l||^2``."""
        linear = torch.zeros(len(codes), dtype=theta.dtype)
        factors = torch.zeros(len(codes), self.dim, dtype=theta.dtype)
        squares = torch.zeros(len(codes), dtype=theta.dtype)
        for f in range(len(self.fields)):
            if f in self.bags:
                bag = key_bags[f]
                offsets = bag.indptr[:-1]
                summed = torch.nn.functional.embedding_bag(
                    bag.indices,
                    theta,
                    offsets,
                    mode="sum",
                    per_sample_weights=bag.values.to(theta.dtype),
                )[codes[:, f]]
                norms = theta[:, 1:].square().sum(dim=1, keepdim=True)
                squared = torch.nn.functional.embedding_bag(
                    bag.indices,
                    norms,
                    offsets,
                    mode="sum",
                    per_sample_weights=bag.values.to(theta.dtype).square(),
                )[codes[:, f], 0]
            else:
                summed = theta[codes[:, f]]
                squared = summed[:, 1:].square().sum(dim=1)
            linear += summed[:, 0]
            factors += summed[:, 1:]
            squares += squared
        return linear, factors, squares

    def _predict_once(self, codes, key_bags, w0: float, theta: torch.Tensor) -> torch.Tensor:
        linear, factors, squares = self._parts(codes, key_bags, theta)
        return w0 + linear + 0.5 * (factors.square().sum(dim=1) - squares)

    # ------------------------------------------------------------------ the sweep
    def _field_prior(self, f: int, drawn: torch.Tensor) -> None:
        """Draw field ``f``'s prior means and precisions (Normal-Gamma hyperprior with
        mu_0 = 0 and gamma_0 = alpha_0 = beta_0 = 1, libFM's), one pair per column."""
        width = len(drawn)
        spread = (drawn - self.mean[f]).square().sum(dim=0) + self.mean[f].square()
        self.precision[f] = self._gamma((2 + width) / 2, (1 + spread) / 2)
        center = drawn.sum(dim=0) / (width + 1)
        scale = ((width + 1) * self.precision[f]) ** -0.5
        noise = torch.randn(self.dim + 1, generator=self.generator, dtype=torch.float64)
        self.mean[f] = center + scale * noise

    def _one_hot_field(self, f, codes, y, pred, factors):
        """Draw one-hot field ``f``; return the updated predictions and factor sums."""
        width, start = self.fields[f], int(self.offsets[f])
        block = self.theta[start : start + width]
        own = codes[:, f] - start
        old = block[own]
        partner = factors - old[:, 1:]  # the other features' factors
        design = torch.cat([torch.ones(len(y), 1, dtype=y.dtype), partner], dim=1)
        old_part = (old * design).sum(dim=1)  # w_l + <v_l, partner>
        drawn = draw_gaussian_rows(
            design,
            y - pred + old_part,
            own,
            width,
            self.mean[f],
            self.precision[f],
            self.alpha,
            self.generator,
        )
        block.copy_(drawn)
        self._field_prior(f, drawn)
        new = drawn[own]
        return pred - old_part + (new * design).sum(dim=1), partner + new[:, 1:]

    def _bag_field(self, f, codes, key_bags, y, pred, factors) -> None:
        """Draw bag field ``f`` feature by feature, from sums kept per key."""
        bag, keys = key_bags[f], codes[:, f]
        n_keys, width, start = len(bag), self.fields[f], int(self.offsets[f])
        key_of = torch.repeat_interleave(torch.arange(n_keys), bag.indptr.diff())
        weight = bag.values.to(torch.float64)
        # P_k: the bag's own factor sum per key; Q_r = the rest of row r's factors.
        own_sum = torch.zeros(n_keys, self.dim, dtype=torch.float64).index_add_(
            0, key_of, weight.unsqueeze(1) * self.theta[bag.indices, 1:]
        )
        rest = factors - own_sum[keys]
        design = torch.cat([torch.ones(len(y), 1, dtype=torch.float64), rest], dim=1)
        # Per key: M_k = sum [1, Q_r][1, Q_r]^T and e_k = sum [1, Q_r] (y_r - pred_r).
        gram, residual = _grouped_gram(design, y - pred, keys, n_keys)
        by_feature = torch.argsort(bag.indices, stable=True)
        counts = torch.bincount(bag.indices - start, minlength=width)
        ends = torch.cumsum(counts, 0).tolist()
        noise = torch.randn(width, self.dim + 1, generator=self.generator, dtype=torch.float64)
        # Thousands of tiny steps: numpy's per-call cost is a fraction of torch's. The
        # arrays share memory with the tensors.
        holders_all, values_all = key_of[by_feature].numpy(), weight[by_feature].numpy()
        theta = self.theta[start : start + width].numpy()
        mean, prior = self.mean[f].numpy(), self.precision[f].numpy()
        gram_np, residual_np, own = gram.numpy(), residual.numpy(), own_sum.numpy()
        for j in range(width):
            begin = ends[j] - int(counts[j])
            holders, c = holders_all[begin : ends[j]], values_all[begin : ends[j]]
            if not len(holders):
                theta[j] = mean + noise[j].numpy() / np.sqrt(prior)
                continue
            theta[j] = _bag_feature(
                theta[j],
                holders,
                c,
                gram_np,
                residual_np,
                own,
                self.alpha,
                mean,
                prior,
                noise[j].numpy(),
            )
        self._field_prior(f, self.theta[start : start + width])

    def _sweep(self, codes, key_bags, y) -> None:
        """One Gibbs sweep: w0, then each field's weights and its prior, then alpha."""
        linear, factors, squares = self._parts(codes, key_bags, self.theta)
        rest = linear + 0.5 * (factors.square().sum(dim=1) - squares)  # all but w0
        precision = 1.0 + self.alpha * len(y)  # prior N(0, 1) on w0
        mean = self.alpha * float((y - rest).sum()) / precision
        noise = float(torch.randn((), generator=self.generator, dtype=torch.float64))
        self.w0 = mean + noise / precision**0.5
        pred = rest + self.w0
        for f in range(len(self.fields)):
            if f in self.bags:
                self._bag_field(f, codes, key_bags, y, pred, factors)
                linear, factors, squares = self._parts(codes, key_bags, self.theta)
                pred = self.w0 + linear + 0.5 * (factors.square().sum(dim=1) - squares)
            else:
                pred, factors = self._one_hot_field(f, codes, y, pred, factors)
        squared_error = float((y - pred).square().sum())
        self.alpha = float(self._gamma((1 + len(y)) / 2, torch.tensor((1 + squared_error) / 2)))

    def _gamma(self, shape: float, rate: torch.Tensor) -> torch.Tensor:
        """Gamma(shape, rate) draws of ``rate``'s shape, from this sampler's stream."""
        # torch's gamma sampler reads the global generator: lend it this stream's next seed.
        seed = int(torch.randint(2**62, (), generator=self.generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.distributions.Gamma(torch.full_like(rate, shape), rate).sample()

    # ------------------------------------------------------------------ public
    def sample(
        self,
        rows: FeatureRows,
        targets: torch.Tensor,
        *,
        burn_in: int = 20,
        samples: int = 100,
        clip: bool = True,
        progress: bool = True,
    ) -> None:
        """Run ``burn_in`` sweeps, then keep the next ``samples`` draws.

        With ``clip``, each draw's predictions are clipped to the range of
        ``targets`` before they are averaged (as libFM does).
        """
        if burn_in < 0 or samples < 1:
            raise ValueError(f"need burn_in >= 0 and samples >= 1, got {burn_in} and {samples}")
        codes, key_bags = self._layout(rows)
        y = torch.as_tensor(targets, dtype=torch.float64)
        if y.shape != (len(rows),):
            raise ValueError(f"targets must have shape ({len(rows)},), got {tuple(y.shape)}")
        self.rating_range = (float(y.min()), float(y.max())) if clip else None
        self.kept = []
        for sweep in tqdm(range(burn_in + samples), desc="Gibbs sweeps", disable=not progress):
            self._sweep(codes, key_bags, y)
            if sweep >= burn_in:
                self.kept.append((self.w0, self.theta.clone()))

    def draws(self, rows: FeatureRows) -> torch.Tensor:
        """Each kept draw's predictions for ``rows``: ``(samples, n)``."""
        if not self.kept:
            raise RuntimeError("no draws yet: call sample() first")
        codes, key_bags = self._layout(rows)
        out = torch.stack(
            [self._predict_once(codes, key_bags, w0, theta) for w0, theta in self.kept]
        ).float()
        return out.clamp(*self.rating_range) if self.rating_range else out

    def predict(self, rows: FeatureRows) -> torch.Tensor:
        """The posterior mean prediction: the average over the kept draws."""
        return self.draws(rows).mean(dim=0)
