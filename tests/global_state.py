"""Helpers of the resume tests: scramble the global random generators, read back a run's backup arrays."""
import random
from pathlib import Path

import h5py
import keras
import numpy as np


def scramble_global_state():
    """Reseed every global generator (Keras/TensorFlow, Python, NumPy) to values no run uses."""
    keras.utils.set_random_seed(4321)
    random.seed(12345)
    np.random.seed(777)


def h5_arrays(path):
    """Every array of an HDF5 file (a ``.weights.h5``: weights, optimizer state) by HDF5 path."""
    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset)
                          else None)
    return arrays


def backup_arrays(run_dir):
    """The arrays of the one weights file of ``run_dir/backup``."""
    (path,) = (Path(run_dir) / "backup").glob("*.weights.h5")
    return h5_arrays(path)
