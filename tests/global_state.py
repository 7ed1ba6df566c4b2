"""Helpers of the resume tests: nothing a resumed run does may depend on the global random generators."""
import random

import keras
import numpy as np


def scramble_global_state():
    """Reseed every global generator (Keras/TensorFlow, Python, NumPy) to values no run uses."""
    keras.utils.set_random_seed(4321)
    random.seed(12345)
    np.random.seed(777)
