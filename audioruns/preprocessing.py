"""Input normalisation saved inside the model file, so that ``model.keras`` alone predicts from a log-mel.

A run of :func:`apnet.training.train_fold` fits a numpy scaler on the training split
(:class:`audiodata.features.MinMaxScaler` or :class:`audiodata.features.StandardScaler`) and
trains the model on scaled features. What it keeps as ``model.keras`` is that model with the
scaler in front (:func:`attach_scaler`), as KerasHub's audio converters put the feature
normalisation into the saved preprocessor:

* :class:`FeatureScaler` -- a registered Keras layer (``keras.ops`` only) applying the same
  transform as the numpy scalers (min-max to a range, or standardisation; global or per band),
  its statistics held in its config; :meth:`FeatureScaler.from_scaler` /
  :meth:`FeatureScaler.to_scaler` convert from and to the numpy scalers, :meth:`FeatureScaler.inverse`
  undoes it;
* :class:`ScaledModel` -- the functional model ``log-mel -> FeatureScaler -> model``: its first
  layer after the input is the :class:`FeatureScaler`, the next the trained model, whose layers
  :meth:`ScaledModel.get_layer` also finds (``get_layer("prototypes")``);
* :func:`attach_scaler` / :func:`detach_scaler` -- from a trained model and its scaler to a
  :class:`ScaledModel` and back;
* :func:`load_scaled_model` -- the one reader of a run folder's model: ``(model on scaled inputs,
  scaler)`` from a self-contained file, or from an older folder whose ``model.keras`` is the bare
  model with ``scaler.json`` beside it.

Example
-------
>>> import numpy as np, keras
>>> from audiodata.features import MinMaxScaler
>>> from audioruns.preprocessing import attach_scaler, detach_scaler
>>> x = np.random.default_rng(0).normal(-40, 10, size=(8, 16, 4)).astype("float32")
>>> scaler = MinMaxScaler().fit(x)
>>> inputs = keras.Input((16, 4))
>>> bare = keras.Model(inputs, keras.layers.Dense(2)(inputs))
>>> full = attach_scaler(bare, scaler)                    # log-mel -> bare(scaler(log-mel))
>>> bool(np.allclose(full.predict(x, verbose=0), bare.predict(scaler.transform(x), verbose=0), atol=1e-6))
True
>>> inner, restored = detach_scaler(full)
>>> inner is bare, float(restored.data_min) == float(scaler.data_min)
(True, True)
"""
from pathlib import Path

import keras
import numpy as np

from audiodata.features.normalization import MinMaxScaler, StandardScaler, load_scaler
from audioruns.checkpoints import load_model_file
from audioruns.errors import ModelFileError

__all__ = ["FeatureScaler", "ScaledModel", "attach_scaler", "detach_scaler", "load_scaled_model",
           "SCALER_FILE", "METHODS"]

#: File of the numpy scaler beside ``model.keras`` (:meth:`audiodata.features.MinMaxScaler.save`).
SCALER_FILE = "scaler.json"
#: Transforms of :class:`FeatureScaler`, named as the runs' ``normalizer`` setting.
METHODS = ("minmax", "standard")

# The numpy scalers' guards against a zero span / standard deviation.
_MIN_SPAN = 1e-12
_MIN_STD = 1e-8


def _stat(value, name):
    """A statistic as float32: a scalar (global) or a vector over the last axis (per band)."""
    if value is None:
        raise ValueError(f"FeatureScaler needs `{name}`")
    array = np.asarray(value, dtype=np.float32)
    if array.ndim > 1 or not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must be a finite number or a vector over the last axis; received {value!r}")
    return array


def _plain(array):
    """JSON form of a statistic: a float or a list of floats (float32 values, exactly representable)."""
    array = np.asarray(array, dtype=np.float32)
    return float(array) if array.ndim == 0 else [float(v) for v in array]


@keras.saving.register_keras_serializable(package="audioruns")
class FeatureScaler(keras.layers.Layer):
    """The input normalisation of a run, as a layer: min-max to a range, or standardisation.

    ``method="minmax"``: ``(x - data_min) / max(data_max - data_min, 1e-12) * (high - low) + low``
    with ``feature_range = (low, high)`` (:class:`audiodata.features.MinMaxScaler`);
    ``method="standard"``: ``(x - mean) / max(std, 1e-8)``
    (:class:`audiodata.features.StandardScaler`). Each statistic is a number (global) or a
    vector of length ``F`` broadcast over the last axis (per band). The statistics are part of
    the config (a few numbers, or ``F`` of them), not weights, so the layer adds no weights to
    the model it precedes. Computed in float32 as the numpy scalers do, the outputs equal
    theirs to float32 rounding (usually bit for bit).

    Parameters
    ----------
    method : {"minmax", "standard"}
    feature_range : pair of float
        ``(low, high)`` of ``"minmax"``, ``low < high``.
    data_min, data_max : float or sequence of float, optional
        ``"minmax"``: the training data's minimum and maximum.
    mean, std : float or sequence of float, optional
        ``"standard"``: the training data's mean and standard deviation.
    **kwargs
        ``name``, ``dtype`` of :class:`keras.layers.Layer`.

    Notes
    -----
    Input ``(batch, ..., F)``, output of the same shape and the layer's compute dtype.

    Example
    -------
    >>> import numpy as np
    >>> layer = FeatureScaler("minmax", data_min=-80.0, data_max=0.0)
    >>> [round(float(v), 6) for v in layer(np.array([[-80.0, -40.0, 0.0]], "float32"))[0]]
    [-1.0, 0.0, 1.0]
    """

    def __init__(self, method, feature_range=(-1.0, 1.0), data_min=None, data_max=None, mean=None, std=None,
                 **kwargs):
        kwargs.setdefault("name", "feature_scaler")
        super().__init__(**kwargs)
        if method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}; received method={method!r}")
        self.method = method
        self.feature_range = (0.0, 1.0)
        self.data_min = self.data_max = self.mean = self.std = None
        if method == "minmax":
            low, high = (float(v) for v in feature_range)
            if not low < high:
                raise ValueError(f"`feature_range` must be (low, high) with low < high; received {feature_range!r}")
            self.feature_range = (low, high)
            self.data_min, self.data_max = _stat(data_min, "data_min"), _stat(data_max, "data_max")
            difference = (self.data_max - self.data_min).astype(np.float32)
            self._span = np.maximum(difference, _MIN_SPAN).astype(np.float32)  # the numpy scaler's span
            self._inverse_span = difference
        else:
            self.mean, self.std = _stat(mean, "mean"), _stat(std, "std")
            self._std = np.maximum(self.std, _MIN_STD).astype(np.float32)
        self.built = True

    # ------------------------------------------------------------------ transform
    def _constant(self, value):
        return keras.ops.convert_to_tensor(value, dtype=self.compute_dtype)

    def call(self, inputs):
        x = keras.ops.cast(inputs, self.compute_dtype)
        if self.method == "minmax":
            low, high = self.feature_range
            x = keras.ops.divide(keras.ops.subtract(x, self._constant(self.data_min)), self._constant(self._span))
            return keras.ops.add(keras.ops.multiply(x, self._constant(high - low)), self._constant(low))
        return keras.ops.divide(keras.ops.subtract(x, self._constant(self.mean)), self._constant(self._std))

    def inverse(self, x):
        """Undo the scaling (the numpy scalers' ``inverse_transform``): scaled ``(..., F)`` -> log-mel.

        Parameters
        ----------
        x : array or tensor [shape=(..., F)]

        Returns
        -------
        tensor [shape=(..., F)], the layer's compute dtype
        """
        x = keras.ops.cast(x, self.compute_dtype)
        if self.method == "minmax":
            low, high = self.feature_range
            x = keras.ops.divide(keras.ops.subtract(x, self._constant(low)), self._constant(high - low))
            return keras.ops.add(keras.ops.multiply(x, self._constant(self._inverse_span)),
                                 self._constant(self.data_min))
        return keras.ops.add(keras.ops.multiply(x, self._constant(self._std)), self._constant(self.mean))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    # ------------------------------------------------------------------ conversions
    @classmethod
    def from_scaler(cls, scaler, **kwargs):
        """The layer of a fitted numpy scaler (:class:`audiodata.features.MinMaxScaler` or ``StandardScaler``).

        Raises
        ------
        ValueError
            ``scaler`` is not fitted or not one of the two classes.
        """
        if isinstance(scaler, MinMaxScaler):
            if scaler.data_min is None or scaler.data_max is None:
                raise ValueError("the MinMaxScaler is not fitted: call fit() on the training split first")
            return cls("minmax", feature_range=scaler.feature_range, data_min=scaler.data_min,
                       data_max=scaler.data_max, **kwargs)
        if isinstance(scaler, StandardScaler):
            if scaler.mean is None or scaler.std is None:
                raise ValueError("the StandardScaler is not fitted: call fit() on the training split first")
            return cls("standard", mean=scaler.mean, std=scaler.std, **kwargs)
        raise ValueError(f"expected an audiodata.features MinMaxScaler or StandardScaler; received "
                         f"{type(scaler).__name__}")

    def to_scaler(self):
        """The equivalent numpy scaler (what ``scaler.json`` holds), statistics as float32.

        Returns
        -------
        audiodata.features.MinMaxScaler or audiodata.features.StandardScaler
        """
        if self.method == "minmax":
            scaler = MinMaxScaler(feature_range=self.feature_range)
            scaler.data_min, scaler.data_max = self._numpy_stat(self.data_min), self._numpy_stat(self.data_max)
            return scaler
        scaler = StandardScaler()
        scaler.mean, scaler.std = self.mean.copy(), self.std.copy()
        return scaler

    @staticmethod
    def _numpy_stat(array):
        return np.float32(array) if np.ndim(array) == 0 else np.asarray(array, dtype=np.float32).copy()

    def get_config(self):
        config = super().get_config()
        config["method"] = self.method
        if self.method == "minmax":
            config.update(feature_range=list(self.feature_range), data_min=_plain(self.data_min),
                          data_max=_plain(self.data_max))
        else:
            config.update(mean=_plain(self.mean), std=_plain(self.std))
        return config


@keras.saving.register_keras_serializable(package="audioruns")
class ScaledModel(keras.Model):
    """A trained model with its input normalisation in front: ``log-mel -> FeatureScaler -> model``.

    A functional model whose layers are the input (named ``log_mel``), the
    :class:`FeatureScaler` and ``model`` itself (not a copy: its weights are shared), with
    ``model``'s outputs (a list when it has several). Saved as ``.keras`` it holds both, so
    ``keras.models.load_model(path)`` (after importing the package that registers ``model``'s
    layers) predicts from unscaled features. :meth:`get_layer` looks in ``model`` too, so the
    named layers of the trained model stay reachable (``get_layer("prototypes")``).

    Parameters
    ----------
    model : keras.Model
        One input ``(batch, ...)``, trained on scaled inputs.
    scaler : FeatureScaler or a fitted numpy scaler
        Converted with :meth:`FeatureScaler.from_scaler` when it is not a layer.
    **kwargs
        ``name`` (default ``model.name``), ``trainable`` of :class:`keras.Model`.

    Attributes
    ----------
    inner : keras.Model
        ``model``.
    feature_scaler : FeatureScaler
    """

    def __init__(self, model, scaler, **kwargs):
        if not isinstance(model, keras.Model):
            raise ValueError(f"`model` must be a keras.Model; received {type(model).__name__}")
        if isinstance(model, ScaledModel):
            raise ValueError(f"model {model.name!r} already has its input scaler attached")
        if len(model.inputs) != 1:
            raise ValueError(f"model {model.name!r} has {len(model.inputs)} inputs; a scaler goes in front of one")
        if not isinstance(scaler, FeatureScaler):
            scaler = FeatureScaler.from_scaler(scaler)
        kwargs.setdefault("name", model.name)
        inputs = keras.Input(shape=tuple(model.inputs[0].shape[1:]), dtype=model.inputs[0].dtype, name="log_mel")
        outputs = model(scaler(inputs))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.output_names = list(model.output_names)  # not the nested model's name once per output

    @property
    def feature_scaler(self):
        return self.layers[1]

    @property
    def inner(self):
        return self.layers[2]

    def get_layer(self, name=None, index=None):
        """A layer of this model, or by ``name`` a layer of :attr:`inner` (the trained model's named layers)."""
        if name is not None and index is None:
            try:
                return super().get_layer(name=name)
            except ValueError:
                return self.inner.get_layer(name=name)
        return super().get_layer(name=name, index=index)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "model": keras.saving.serialize_keras_object(self.inner),
                "scaler": keras.saving.serialize_keras_object(self.feature_scaler)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"), custom_objects=custom_objects)
        scaler = keras.saving.deserialize_keras_object(config.pop("scaler"), custom_objects=custom_objects)
        return cls(model, scaler, **config)


def attach_scaler(model, scaler):
    """``log-mel -> scaler -> model``: the model a run saves as ``model.keras`` (:class:`ScaledModel`).

    Parameters
    ----------
    model : keras.Model
        Trained on scaled inputs ``(batch, T, F)``; shared, not copied.
    scaler : audiodata.features.MinMaxScaler, audiodata.features.StandardScaler or FeatureScaler
        Fitted on the training split.

    Returns
    -------
    ScaledModel
        Input: unscaled features of ``model``'s input shape; outputs: ``model``'s. When
        ``model`` is compiled, so is the result, with the same loss, metrics and optimizer
        (its state included), so the saved file keeps the optimizer state as the bare model's did.

    Raises
    ------
    ValueError
        The model's optimizer state does not match its trainable variables.
    """
    scaled = ScaledModel(model, scaler)
    optimizer = getattr(model, "optimizer", None)
    if getattr(model, "compiled", False) and optimizer is not None:
        # A copy of the optimizer with the same state: the saving code writes an object once, so the shared
        # one would be stored under the inner model, which is restored uncompiled.
        copy = optimizer.__class__.from_config(optimizer.get_config())
        scaled.compile_from_config(model.get_compile_config())
        scaled.optimizer = copy
        if optimizer.built:
            copy.build(scaled.trainable_variables)
            if [v.shape for v in copy.variables] != [v.shape for v in optimizer.variables]:
                raise ValueError(f"{model.name}: its optimizer state does not match its trainable variables")
            for target, source in zip(copy.variables, optimizer.variables):
                target.assign(source)
    return scaled


def detach_scaler(model):
    """The trained model and its numpy scaler: ``(inner model, scaler)``, or ``(model, None)`` without one.

    Undoes :func:`attach_scaler`: for a :class:`ScaledModel` (or a functional model whose layers
    are an input, a :class:`FeatureScaler` and a model) returns the model on scaled inputs and
    :meth:`FeatureScaler.to_scaler`; any other model comes back unchanged with ``None``.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    model : keras.Model
    scaler : fitted scaler or None
    """
    layers = getattr(model, "layers", [])
    if (len(layers) == 3 and isinstance(layers[1], FeatureScaler) and isinstance(layers[2], keras.Model)
            and len(getattr(model, "inputs", []) or []) == 1):
        return layers[2], layers[1].to_scaler()
    return model, None


def load_scaled_model(path, *, scaler_file=SCALER_FILE, require_scaler=True, **kwargs):
    """Read a run's model file in either layout: ``(model on scaled inputs, scaler)``.

    * New layout: ``path`` holds a :class:`ScaledModel` (the scaler inside): the trained model and
      its scaler come from the file alone (a ``scaler.json`` beside it is not read).
    * Old layout: ``path`` holds the bare model and the scaler is ``scaler_file`` in the same
      folder (:func:`audiodata.features.load_scaler`).

    Import the package whose layers the model uses first (``import apnet``).

    Parameters
    ----------
    path : str or Path
        The ``.keras`` file (e.g. ``RUN/model.keras``).
    scaler_file : str
        Name of the scaler beside an old-layout model.
    require_scaler : bool
        Raise when neither holds a scaler; False returns ``(model, None)`` instead.
    **kwargs
        Passed to ``keras.models.load_model`` (e.g. ``compile=False``).

    Returns
    -------
    model : keras.Model
        The trained model, on scaled inputs (the decoder, prototypes etc. as trained).
    scaler : audiodata.features.MinMaxScaler or audiodata.features.StandardScaler or None

    Raises
    ------
    audioruns.errors.ModelFileError
        ``path`` is missing, truncated or cannot be loaded; or it holds no scaler and
        ``scaler_file`` is missing beside it (the message names both files).
    """
    path = Path(path)
    model, scaler = detach_scaler(load_model_file(path, **kwargs))
    if scaler is not None:
        return model, scaler
    scaler_path = path.parent / scaler_file
    if scaler_path.is_file():
        try:
            return model, load_scaler(scaler_path)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ModelFileError(scaler_path, f"cannot read the scaler {scaler_path} of {path} "
                                              f"({type(err).__name__}: {err})") from err
    if require_scaler:
        raise ModelFileError(scaler_path, f"{scaler_path} does not exist: {path} holds no input scaler (a model "
                                          f"file of the older layout), so its {scaler_file} must lie beside it")
    return model, None
