"""Baselines of L2I (Parekh et al., TASLP 2024, Sec. IV-C; Tables IV and VIII).

Post-hoc (fidelity to f, Table IV): :class:`FLINT`, :class:`VIBI`.
By design (classification, Table VIII): :class:`NMFClassifier` (unsupervised NMF),
:class:`TDLNMFClassifier` (task-driven NMF), :func:`apnet_baseline`, and
:class:`FLINT` with ``mode="bydesign"``. Training and scoring one of them on a dataset fold:
:func:`l2i.baselines.training.train_baseline` (``experiments/l2i/train_baseline.py``).
See ``docs/l2i_baselines.md``.
"""
from l2i.baselines.apnet_baseline import apnet_baseline
from l2i.baselines.flint import FLINT, FLINT_MODES
from l2i.baselines.gumbel_top_k_selection import GumbelTopKSelection
from l2i.baselines.nmf_classifier import NMFClassifier
from l2i.baselines.non_neg_unit_norm import NonNegUnitNorm
from l2i.baselines.sweep_dictionary_sizes import PAPER_SIZES, sweep_dictionary_sizes
from l2i.baselines.tdl_nmf_classifier import TDLNMFClassifier
from l2i.baselines.unrolled_nmf_encoder import UnrolledNMFEncoder
from l2i.baselines.vibi import VIBI

__all__ = [
    "FLINT",
    "FLINT_MODES",
    "GumbelTopKSelection",
    "NMFClassifier",
    "NonNegUnitNorm",
    "PAPER_SIZES",
    "TDLNMFClassifier",
    "UnrolledNMFEncoder",
    "VIBI",
    "apnet_baseline",
    "sweep_dictionary_sizes",
]
