"""Normalisation fitted on the training split only, streamed so it works on memory-mapped arrays.

APNet scales its inputs with a global min-max to [-1, 1], matching the tanh output of its
decoder (reference implementation, ``normalizer: minmax``); L2I-style models can use the
per-frequency standardisation.
"""
import json
from pathlib import Path

import numpy as np

from ..errors import ParameterError


def _batches(data, rows, batch_size):
    if hasattr(data, "iter_batches"):  # a FeatureArray: bounded-memory reads
        for _, batch in data.iter_batches(batch_size, rows):
            yield batch
        return
    rows = np.arange(len(data)) if rows is None else np.asarray(rows)
    for start in range(0, len(rows), batch_size):
        yield np.asarray(data[np.sort(rows[start:start + batch_size])])


class _Scaler:
    """Shared save/load for the scalers (their state is a few numbers or vectors)."""

    _state = ()

    def get_config(self):
        return {k: (v.tolist() if isinstance(v, (np.ndarray, np.generic)) else v) for k, v in vars(self).items()}

    @classmethod
    def from_config(cls, config):
        obj = cls.__new__(cls)
        for key, value in config.items():
            setattr(obj, key, np.asarray(value, dtype=np.float32) if key in cls._state and value is not None
                    else value)
        return obj

    def save(self, path):
        Path(path).write_text(json.dumps({"class": type(self).__name__, "config": self.get_config()}))

    @staticmethod
    def load(path):
        blob = json.loads(Path(path).read_text())
        classes = {c.__name__: c for c in (MinMaxScaler, StandardScaler)}
        if blob.get("class") not in classes:
            raise ParameterError(f"{path}: not a saved scaler (class {blob.get('class')!r})")
        return classes[blob["class"]].from_config(blob["config"])

    def _check_fitted(self):
        if any(getattr(self, k) is None for k in self._state):
            raise ParameterError(f"{type(self).__name__} is not fitted: call fit() on the training split first")


class MinMaxScaler(_Scaler):
    """Global min-max scaling to ``feature_range`` (default [-1, 1]).

    Example
    -------
    >>> scaler = MinMaxScaler().fit(features, rows=train_rows)   # doctest: +SKIP
    >>> x = scaler.transform(features[test_rows])                # doctest: +SKIP
    """

    _state = ("data_min", "data_max")

    def __init__(self, feature_range=(-1.0, 1.0)):
        lo, hi = feature_range
        if not lo < hi:
            raise ParameterError(f"feature_range must be (low, high) with low < high, got {feature_range}")
        self.feature_range = [float(lo), float(hi)]
        self.data_min = None
        self.data_max = None

    def fit(self, data, rows=None, batch_size=256):
        """Fit on ``data[rows]`` (an array or a FeatureArray; pass only the training rows)."""
        lo, hi = np.inf, -np.inf
        for batch in _batches(data, rows, batch_size):
            lo, hi = min(lo, float(batch.min())), max(hi, float(batch.max()))
        if not np.isfinite(lo):
            raise ParameterError("MinMaxScaler.fit got no data")
        self.data_min, self.data_max = np.float32(lo), np.float32(hi)
        return self

    def transform(self, x):
        self._check_fitted()
        lo, hi = self.feature_range
        span = max(float(self.data_max - self.data_min), 1e-12)
        return ((np.asarray(x, dtype=np.float32) - self.data_min) / span * (hi - lo) + lo).astype(np.float32)

    def inverse_transform(self, x):
        self._check_fitted()
        lo, hi = self.feature_range
        span = float(self.data_max - self.data_min)
        return ((np.asarray(x, dtype=np.float32) - lo) / (hi - lo) * span + self.data_min).astype(np.float32)


class StandardScaler(_Scaler):
    """Per-frequency (last axis) standardisation to zero mean and unit variance."""

    _state = ("mean", "std")

    def __init__(self):
        self.mean = None
        self.std = None

    def fit(self, data, rows=None, batch_size=256):
        """Fit on ``data[rows]``, streaming (Chan et al. pairwise update of mean and variance)."""
        count, mean, m2 = 0, None, None
        for batch in _batches(data, rows, batch_size):
            flat = batch.reshape(-1, batch.shape[-1]).astype(np.float64)
            n_b, mean_b, var_b = len(flat), flat.mean(axis=0), flat.var(axis=0)
            if mean is None:
                count, mean, m2 = n_b, mean_b, var_b * n_b
                continue
            delta = mean_b - mean
            total = count + n_b
            mean = mean + delta * n_b / total
            m2 = m2 + var_b * n_b + delta ** 2 * count * n_b / total
            count = total
        if mean is None:
            raise ParameterError("StandardScaler.fit got no data")
        self.mean = mean.astype(np.float32)
        self.std = np.sqrt(m2 / count).astype(np.float32)
        return self

    def transform(self, x):
        self._check_fitted()
        return ((np.asarray(x, dtype=np.float32) - self.mean) / np.maximum(self.std, 1e-8)).astype(np.float32)

    def inverse_transform(self, x):
        self._check_fitted()
        return (np.asarray(x, dtype=np.float32) * np.maximum(self.std, 1e-8) + self.mean).astype(np.float32)


def load_scaler(path):
    """A scaler saved with ``save`` (``scaler.json``), read back as the class that was saved
    (:class:`MinMaxScaler` or :class:`StandardScaler`)."""
    return _Scaler.load(path)
