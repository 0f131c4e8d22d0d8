"""mfkit: tested building blocks for the course *Recommender Systems with PyTorch*.

Modules, one job each: :mod:`mfkit.data` (MovieLens and synthetic data),
:mod:`mfkit.splits` (train/test splits), :mod:`mfkit.metrics` (rating and ranking
metrics), :mod:`mfkit.cli` (the ``mfkit`` command).
"""

__version__ = "0.1.0"
