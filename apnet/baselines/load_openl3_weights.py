"""Load the official OpenL3 HDF5 weight files into :func:`~apnet.baselines.openl3_audio_embedding`."""
import os

import h5py
import numpy as np

#: Substrings of the names of Kapre front-end layers and weights (spectrogram, STFT kernels, mel filterbank),
#: whose weights are skipped: this package computes the log-mel spectrogram outside the model.
KAPRE_MARKERS = ("spectrogram", "stft", "filterbank", "freq2mel", "dft_")


def load_openl3_weights(model, path):
    """Copy the convolution and batch-norm weights of an OpenL3 ``.h5`` file onto ``model``.

    The official files (``openl3_audio_mel256_music.h5``,
    ``openl3_audio_mel256_env.h5``, installed by the ``openl3`` pip package
    next to its ``models.py``) are Keras 2 HDF5 weight files: a root (or
    ``model_weights``) group whose ``layer_names`` attribute lists the layers
    in order, each layer a group whose ``weight_names`` attribute lists its
    datasets (``conv2d_3/kernel:0``, ``batch_normalization_2/gamma:0``, ...).
    As Keras 2 did when OpenL3 loads them, the layers with weights are matched
    **by order** with the layers with weights of ``model``, and every array
    must have the shape of the variable it replaces. Layers of the Kapre
    front end (names or weight names containing one of
    :data:`KAPRE_MARKERS`; older files still hold the STFT kernels and the mel
    filterbank) are skipped. Nothing is assigned unless the whole file
    matches.

    Args:
        model: the network of
            :func:`~apnet.baselines.openl3_audio_embedding` (16 layers with
            weights: 8 batch normalisations, 8 convolutions).
        path: path of the ``.h5`` file.

    Returns:
        ``model``, with the loaded weights.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a Keras 2 HDF5 weight file, or its layers
            do not match the model's (the message names the file, the file's
            layer and the model's layer, and their shapes).

    Example:

    >>> from apnet.baselines import load_openl3_weights, openl3_audio_embedding
    >>> net = openl3_audio_embedding()
    >>> load_openl3_weights(net, "openl3_audio_mel256_music.h5")  # doctest: +SKIP

    References:
        - Cramer, Wu, Salamon, Bello, "Look, Listen and Learn More: Design
          Choices for Deep Audio Embeddings", ICASSP 2019; weights released
          with the ``openl3`` package (github.com/marl/openl3).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"OpenL3 weight file {path!r} does not exist")

    file_layers = _read_keras2_weights(path)
    model_layers = [layer for layer in model.layers if layer.weights]
    if len(file_layers) != len(model_layers):
        raise ValueError(
            f"{path}: the file has {len(file_layers)} layers with weights (Kapre layers skipped): "
            f"{[name for name, _ in file_layers]}, but model {model.name!r} has {len(model_layers)}: "
            f"{[layer.name for layer in model_layers]}"
        )
    for (file_name, arrays), layer in zip(file_layers, model_layers):
        file_shapes = [tuple(a.shape) for _, a in arrays]
        model_shapes = [tuple(w.shape) for w in layer.weights]
        if file_shapes != model_shapes:
            raise ValueError(
                f"{path}: layer {file_name!r} of the file (weights {[n for n, _ in arrays]}, shapes {file_shapes}) "
                f"does not match layer {layer.name!r} of model {model.name!r} (shapes {model_shapes})"
            )
    for (_, arrays), layer in zip(file_layers, model_layers):
        layer.set_weights([a for _, a in arrays])
    return model


def _read_keras2_weights(path):
    """``[(layer_name, [(weight_name, array), ...]), ...]`` of the layers with weights, Kapre skipped."""
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise ValueError(
                f"{path} is not a Keras 2 HDF5 weight file (no 'layer_names' attribute); "
                "expected an OpenL3 file such as openl3_audio_mel256_music.h5"
            )
        layers = []
        for layer_name in (_decode(n) for n in root.attrs["layer_names"]):
            if layer_name not in root:
                raise ValueError(f"{path}: layer {layer_name!r} is listed in 'layer_names' but has no group")
            group = root[layer_name]
            weight_names = [_decode(n) for n in group.attrs.get("weight_names", [])]
            if not weight_names or _is_kapre(layer_name, weight_names):
                continue
            arrays = []
            for weight_name in weight_names:
                if weight_name not in group:
                    raise ValueError(f"{path}: weight {weight_name!r} of layer {layer_name!r} is missing")
                arrays.append((weight_name, np.asarray(group[weight_name])))
            layers.append((layer_name, arrays))
    return layers


def _is_kapre(layer_name, weight_names):
    names = [layer_name.lower()] + [w.lower() for w in weight_names]
    return any(marker in name for marker in KAPRE_MARKERS for name in names)


def _decode(name):
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)
