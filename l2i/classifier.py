"""The classifier ``f`` interpreted by L2I: the VGG-style CNN of Kumar et al. (ICASSP 2018)."""
from pathlib import Path

import keras
import numpy as np

from audiodata.cli import int_range, positive_int, require
from audioruns.checkpoints import load_model_file

__all__ = ["KumarCNN", "check_input_statistics", "load_pretrained_weights", "BLOCK_NAMES"]

#: Names of the six block outputs (feature maps after the block's last ReLU, before its pooling).
BLOCK_NAMES = ("block1", "block2", "block3", "block4", "block5", "block6")
_POOLINGS = ("max", "avg")
#: Prediction heads after the ``conv 2x2`` (1024) stage: Kumar et al.'s class convolution, or
#: the L2I authors' fine-tuning head (their ``FtEx``/``FtEx_v2`` in ``networks.py``).
HEADS = ("kumar", "ftex")


@keras.saving.register_keras_serializable(package="l2i")
class KumarCNN(keras.Model):
    """VGG-style audio CNN of Kumar et al. (2018), the network ``f`` interpreted by L2I.

    Six convolutional blocks B1-B6: B1-B5 have two ``conv 3x3 + batch norm + ReLU``
    layers, B6 one, each block ends with a 2x2 max pooling; channels 16, 32, 64, 128,
    256, 512. Then a ``conv 2x2`` (valid, 1024 channels) + batch norm + ReLU, and one
    of two prediction heads:

    * ``head="kumar"`` (Kumar et al.'s AudioSet network): a ``conv 1x1`` giving one
      score map per class, global (max or average) pooling of the score maps over
      time and frequency;
    * ``head="ftex"`` (the L2I authors' fine-tuning head, ``FtEx`` / ``FtEx_v2`` of
      their ``networks.py``): a ``conv 1x1`` to ``head_units`` channels + ReLU, global
      (max or average) pooling, dropout, and a linear layer to the ``C`` logits.

    and a softmax (multi-class) or sigmoid (multi-label).

    Batch norms use momentum 0.9 (PyTorch's 0.1, as in the original network): with
    Keras' default 0.99 the moving statistics lag far behind after the few hundred
    steps of ESC-sized training and inference-mode predictions collapse.

    Input is a log-mel spectrogram laid out time first, ``(batch, T, n_mels)`` (a
    channel axis is added inside). Layer names (for ``get_layer``):

    * ``"block1"`` ... ``"block6"``: each block's output feature map *before* its
      pooling layer (``"block<i>_pool"``), shape ``(batch, T_i, F_i, C_i)`` -- the
      hidden representations ``f_I(x)`` L2I's interpreter reads (Sec. IV-B4:
      B4, B5, B6). For ``T=431, n_mels=128``: block4 ``(53, 16, 128)``,
      block5 ``(26, 8, 256)``, block6 ``(13, 4, 512)``.
    * ``"block<i>_conv<j>"``, ``"block<i>_bn<j>"``: the convolutions and batch norms.
    * ``"head_conv"``, ``"head_bn"``, ``"head_relu"``: the 2x2 convolution stage.
    * ``head="kumar"``: ``"class_conv"``, per-class score maps; ``"logits"``: pooled
      scores (batch, C).
    * ``head="ftex"``: ``"ftex_conv"`` (1x1, ``head_units`` channels, ReLU),
      ``"ftex_pool"`` (global pooling), ``"head_dropout"``, ``"logits"`` (the linear
      layer, (batch, C)).
    * ``"prediction"``: probabilities (batch, C), the model's output.

    Args:
        n_classes: int, number of classes ``C``.
        n_frames: int or None, number of time frames ``T`` (431 for 5 s at 44.1 kHz,
            hop 512); None accepts any length >= 128.
        n_mels: int, number of mel bands (128 in the paper), at least 64.
        multilabel: bool, sigmoid output (multi-label) instead of softmax.
        filters: six ints, channels of B1-B6 (default ``(16, 32, 64, 128, 256, 512)``).
        head_filters: int, channels of the 2x2 head convolution (1024).
        pooling: ``"max"`` or ``"avg"``, global pooling of the class score maps
            (``"kumar"``) or of the ``head_units`` maps (``"ftex"``).
        dropout: float in [0, 1), dropout before the class convolution (``"kumar"``)
            or before the linear layer (``"ftex"``); 0 = none.
        head: ``"kumar"`` or ``"ftex"`` (see above).
        head_units: int, channels of the 1x1 convolution of the ``"ftex"`` head (the
            authors: 256 on ESC-50, 512 on SONYC-UST); ignored by ``"kumar"``.
        input_mean, input_std: optional sequences of ``n_mels`` floats: per-band
            standardisation of the log-mel input, ``(x - mean) / std``, done by a
            ``Normalization`` layer named ``"input_normalization"`` so that the
            saved model takes raw cached features (statistics of the training rows).
        **kwargs: ``name``, ``trainable``.

    Example:

    >>> model = KumarCNN(n_classes=10, n_frames=431)
    >>> model.get_layer("block4").output.shape
    (None, 53, 16, 128)
    >>> model.output.shape
    (None, 10)

    References:
        A. Kumar, M. Khadkevich, C. Fugen, "Knowledge transfer from weakly labeled
        audio using convolutional neural network for sound events and scenes",
        ICASSP 2018 (network architecture). Parekh et al., IEEE/ACM TASLP 2024,
        Sec. IV-B1 (the classifier f) and IV-B4 (B4-B6 feed the interpreter).
    """

    def __init__(
        self,
        n_classes,
        n_frames=431,
        n_mels=128,
        multilabel=False,
        filters=(16, 32, 64, 128, 256, 512),
        head_filters=1024,
        pooling="max",
        dropout=0.0,
        input_mean=None,
        input_std=None,
        head="kumar",
        head_units=256,
        **kwargs,
    ):
        require(positive_int, n_classes, "n_classes", strict=True)
        if n_frames is not None:
            require(int_range(128), n_frames, "n_frames", strict=True)
        require(int_range(64), n_mels, "n_mels", strict=True)
        filters = tuple(int(f) for f in filters)
        if len(filters) != 6 or min(filters) < 1:
            raise ValueError(f"`filters` must be six positive ints (B1-B6); received filters={filters!r}")
        require(positive_int, head_filters, "head_filters", strict=True)
        if pooling not in _POOLINGS:
            raise ValueError(f"`pooling` must be one of {_POOLINGS}; received pooling={pooling!r}")
        if head not in HEADS:
            raise ValueError(f"`head` must be one of {HEADS}; received head={head!r}")
        require(positive_int, head_units, "head_units", strict=True)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); received dropout={dropout!r}")
        input_mean, input_std = check_input_statistics(input_mean, input_std, n_mels)

        inputs = keras.Input(shape=(n_frames, n_mels), name="mel")
        x = inputs
        if input_mean is not None:
            x = keras.layers.Normalization(axis=-1, mean=input_mean, variance=np.square(input_std).tolist(),
                                           name="input_normalization")(x)
        x = keras.layers.Reshape((n_frames if n_frames is not None else -1, n_mels, 1), name="add_channel")(x)
        for block, channels in enumerate(filters, start=1):
            n_convs = 1 if block == 6 else 2
            for j in range(1, n_convs + 1):
                x = keras.layers.Conv2D(channels, 3, padding="same", name=f"block{block}_conv{j}")(x)
                x = keras.layers.BatchNormalization(momentum=0.9, name=f"block{block}_bn{j}")(x)
                name = f"block{block}" if j == n_convs else f"block{block}_relu{j}"
                x = keras.layers.ReLU(name=name)(x)
            x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        x = keras.layers.Conv2D(head_filters, 2, padding="valid", name="head_conv")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name="head_bn")(x)
        x = keras.layers.ReLU(name="head_relu")(x)
        pool = keras.layers.GlobalMaxPooling2D if pooling == "max" else keras.layers.GlobalAveragePooling2D
        if head == "kumar":
            if dropout > 0:
                x = keras.layers.Dropout(float(dropout), name="head_dropout")(x)
            x = keras.layers.Conv2D(n_classes, 1, name="class_conv")(x)
            logits = pool(name="logits")(x)
        else:
            x = keras.layers.Conv2D(int(head_units), 1, activation="relu", name="ftex_conv")(x)
            x = pool(name="ftex_pool")(x)
            if dropout > 0:
                x = keras.layers.Dropout(float(dropout), name="head_dropout")(x)
            logits = keras.layers.Dense(n_classes, name="logits")(x)
        outputs = keras.layers.Activation("sigmoid" if multilabel else "softmax", name="prediction")(logits)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        self.n_classes = int(n_classes)
        self.n_frames = None if n_frames is None else int(n_frames)
        self.n_mels = int(n_mels)
        self.multilabel = bool(multilabel)
        self.filters = filters
        self.head_filters = int(head_filters)
        self.pooling = pooling
        self.dropout = float(dropout)
        self.input_mean = input_mean
        self.input_std = input_std
        self.head = head
        self.head_units = int(head_units)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "n_classes": self.n_classes,
            "n_frames": self.n_frames,
            "n_mels": self.n_mels,
            "multilabel": self.multilabel,
            "filters": list(self.filters),
            "head_filters": self.head_filters,
            "pooling": self.pooling,
            "dropout": self.dropout,
            "input_mean": self.input_mean,
            "input_std": self.input_std,
            "head": self.head,
            "head_units": self.head_units,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def hidden_model(self, layer_names=("block4", "block5", "block6")):
        """Sub-model ``x -> [f_I(x)]``: the named block outputs (L2I's hidden layers)."""
        return keras.Model(self.inputs[0], [self.get_layer(n).output for n in layer_names], name="hidden_layers")


def check_input_statistics(input_mean, input_std, n_bands):
    """The per-band input standardisation of a model on log-mels: both statistics or neither.

    Parameters
    ----------
    input_mean, input_std : array-like [shape=(n_bands,)] or None
    n_bands : int
        Mel bands of the input (its last axis).

    Returns
    -------
    input_mean, input_std : list of float (``n_bands`` each, std > 0), or None, None
    """
    if (input_mean is None) != (input_std is None):
        raise ValueError("give both `input_mean` and `input_std`, or neither")
    if input_mean is None:
        return None, None
    input_mean = [float(v) for v in np.ravel(input_mean)]
    input_std = [float(v) for v in np.ravel(input_std)]
    if len(input_mean) != n_bands or len(input_std) != n_bands or min(input_std) <= 0:
        raise ValueError(f"`input_mean`/`input_std` must hold {n_bands} values (std > 0)")
    return input_mean, input_std


def load_pretrained_weights(model, path, skip_mismatch=()):
    """Load weights stored *by layer name* into ``model`` (e.g. AudioSet weights, converted).

    The AudioSet-pretrained weights of Kumar et al. are PyTorch files; we do not ship
    or download them. Convert them once into one of these formats, keyed by the layer
    names of :class:`KumarCNN` (``block1_conv1``, ``block1_bn1``, ..., ``head_conv``,
    ``head_bn``, ``class_conv``):

    * ``.npz``: arrays named ``"<layer>/<index>"`` in the order of
      ``layer.get_weights()`` (Conv2D: kernel ``(kh, kw, in, out)``, bias;
      BatchNormalization: gamma, beta, moving mean, moving variance). A PyTorch conv
      kernel ``(out, in, kh, kw)`` becomes ``transpose(2, 3, 1, 0)``.
    * ``.keras``: a saved Keras model; weights are copied layer by layer by name.
    * ``.weights.h5`` / ``.h5``: Keras weights of a model with the same layer names
      (``model.save_weights``), copied the same way.

    Layers of ``model`` absent from the file keep their weights (e.g. a new
    ``class_conv`` when fine-tuning to another number of classes); to load every
    other layer while a present layer has a different shape, name it in
    ``skip_mismatch`` (a layer named there may also be absent from ``model``: pass
    ``("class_conv",)`` to load Kumar et al.'s AudioSet weights into ``head="ftex"``,
    as the authors do).

    Args:
        model: a Keras model, typically :class:`KumarCNN`.
        path: str or Path of the weights file.
        skip_mismatch: layer names whose shape mismatch is tolerated (left as is).

    Returns:
        list of the layer names that were loaded.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unknown format, a layer of the file not in ``model``, or a layer
            whose number or shapes of weights differ -- the message names the layer.

    Example:

    >>> import tempfile, os
    >>> model = KumarCNN(n_classes=5, n_frames=128, filters=(2, 2, 2, 2, 2, 2), head_filters=4)
    >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> np.savez(path, **{f"{l.name}/{i}": w for l in model.layers for i, w in enumerate(l.get_weights())})
    >>> "block1_conv1" in load_pretrained_weights(model, path)
    True
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} does not exist")
    name = path.name.lower()
    if name.endswith(".npz"):
        stored = _npz_weights(path)
    elif name.endswith(".keras"):
        stored = _model_weights(load_model_file(path, compile=False))
    elif name.endswith(".h5"):
        stored = _h5_weights(path, model)
    else:
        raise ValueError(f"{path}: unknown weights format; use .npz, .keras, .weights.h5 or .h5")
    by_name = {layer.name: layer for layer in model.layers}
    loaded = []
    for layer_name, arrays in stored.items():
        if not arrays:
            continue
        if layer_name not in by_name:
            if layer_name in skip_mismatch:  # e.g. AudioSet's class_conv into a head="ftex" model
                continue
            raise ValueError(f"{path}: layer {layer_name!r} of the weights file is not a layer of {model.name!r}")
        layer = by_name[layer_name]
        current = layer.get_weights()
        shapes = [tuple(np.shape(a)) for a in arrays]
        expected = [tuple(w.shape) for w in current]
        if shapes != expected:
            if layer_name in skip_mismatch:
                continue
            raise ValueError(
                f"{path}: layer {layer_name!r} has weights of shapes {shapes} in the file, "
                f"the model expects {expected}"
            )
        layer.set_weights([np.asarray(a, dtype=w.dtype) for a, w in zip(arrays, current)])
        loaded.append(layer_name)
    return loaded


def _npz_weights(path):
    stored = {}
    with np.load(path, allow_pickle=False) as blob:
        for key in blob.files:
            layer_name, _, index = key.rpartition("/")
            if not layer_name or not index.isdigit():
                raise ValueError(f"{path}: array {key!r} is not named '<layer>/<index>'")
            stored.setdefault(layer_name, {})[int(index)] = blob[key]
    return {name: [arrays[i] for i in sorted(arrays)] for name, arrays in stored.items()}


def _model_weights(source):
    return {layer.name: layer.get_weights() for layer in source.layers if layer.get_weights()}


def _h5_weights(path, model):
    """Weights saved by ``save_weights`` of a model with ``model``'s architecture."""
    source = keras.models.clone_model(model)
    try:
        source.load_weights(path)
    except Exception as error:  # the message of Keras names the offending layer
        raise ValueError(f"{path}: cannot read these weights into {model.name!r}: {error}") from error
    return _model_weights(source)
