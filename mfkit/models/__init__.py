"""Recommendation models, as plain ``torch.nn.Module`` s, one module per family.

The models of chapters 2-8 score ``(user row, movie row)`` pairs with ``forward``
and all movies for some users with ``score_all``, so the training loop
(:mod:`mfkit.train`) and retrieval (:mod:`mfkit.retrieval`) work with any of them.
Three read something richer than a user row: the softmax model a bag of movies,
the sequence models a history in time order (``score_next``), and the two-tower
model a bag and the user's features (its ``forward`` returns the two towers'
vectors).

=====================================  =======  =============================================
module                                 chapter  models
=====================================  =======  =============================================
:mod:`mfkit.models.factorization`      2        :class:`MatrixFactorization`
:mod:`mfkit.models.softmax`            5        :class:`SoftmaxModel`
:mod:`mfkit.models.features`           6        :class:`HybridModel`, :class:`DemographicsModel`
:mod:`mfkit.models.implicit`           7        :class:`ImplicitMLP`, :func:`drop_ids`
:mod:`mfkit.models.ranking`            8        :class:`NeuMF`, :class:`EASE`, :func:`ease_weights`
:mod:`mfkit.models.sequential`         9        :class:`GRU4Rec`, :class:`SASRec`
:mod:`mfkit.models.two_tower`          11       :class:`TwoTower`
:mod:`mfkit.models.fm`                 -        :class:`FactorizationMachine`,
                                                :class:`DeepFM`, :class:`DCN`
=====================================  =======  =============================================

Import them from here: ``from mfkit.models import MatrixFactorization``. Every model
keeps the arguments it needs to be rebuilt in ``config``, which :mod:`mfkit.saving`
stores next to its weights.
"""

from mfkit.models.factorization import MatrixFactorization
from mfkit.models.features import DemographicsModel, HybridModel
from mfkit.models.fm import DCN, DeepFM, FactorizationMachine
from mfkit.models.implicit import ImplicitMLP, drop_ids
from mfkit.models.ranking import EASE, NeuMF, ease_weights
from mfkit.models.sequential import GRU4Rec, SASRec
from mfkit.models.softmax import SoftmaxModel
from mfkit.models.two_tower import TwoTower

__all__ = [
    "DCN",
    "EASE",
    "DeepFM",
    "DemographicsModel",
    "FactorizationMachine",
    "GRU4Rec",
    "HybridModel",
    "ImplicitMLP",
    "MatrixFactorization",
    "NeuMF",
    "SASRec",
    "SoftmaxModel",
    "TwoTower",
    "drop_ids",
    "ease_weights",
]
