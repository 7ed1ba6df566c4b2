"""The run layer shared by both papers: what happens between the features and a trained model.

It imports only :mod:`audiodata` and Keras, and both :mod:`apnet` and :mod:`l2i` build on it:

* :mod:`audioruns.checkpoints` -- atomic model files, resumable backups, divergence guard,
  epoch-ordered batches, epoch timer;
"""
