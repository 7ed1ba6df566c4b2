"""The run layer shared by both papers: everything between the cached features and a trained model.

It imports only :mod:`audiodata` and Keras; :mod:`apnet` and :mod:`l2i` build on it, and the web
app (:mod:`audioapp`) and the command lines (``experiments/``) sit above them
(``docs/architecture.md``).

* :mod:`audioruns.folds` -- a dataset fold: split, cached features, targets (:class:`Fold`);
* :mod:`audioruns.batches` -- feature batches read by row in an order fixed by ``(seed, epoch)``;
* :mod:`audioruns.fit` -- one resumable ``fit``: best-epoch selection, early stopping, ``history.csv``;
* :mod:`audioruns.checkpoints` -- atomic model files and backups, divergence guard, epoch timer;
* :mod:`audioruns.preprocessing` -- the input normalisation as a layer saved inside model files;
* :mod:`audioruns.runs` -- run folders: paths, ``results.json``, identities, :class:`Run`;
* :mod:`audioruns.cli` -- argument groups shared by the command lines;
* :mod:`audioruns.distribute` -- ``--distribute``: one model data-parallel over every visible device;
* :mod:`audioruns.jobs` -- many commands at once, one per device or CPU share, skipped when complete
  (``experiments/reproduce.py``).
"""
