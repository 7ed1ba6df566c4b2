"""Network inspection of APNet (Section 5.1): decoded prototypes and the weights behind the figures.

Every function takes a model with APNet's layer names (an :class:`apnet.APNet`, or the
functional models :mod:`apnet.refinement` returns), so refined models are inspected the same
way:

* :func:`decode_prototypes` / :func:`write_prototypes` -- the mel-spectrogram, class and audio
  of each prototype (Section 5.1.2, Figure 5);
* :func:`reconstruct` -- autoencoder reconstructions (Section 5.1.1, Figure 4);
* :func:`fully_connected_weights` -- ``W^T`` (Section 5.1.3, Figure 6);
* :func:`weighted_sum_weights` -- the kernels ``H_j[f]`` (Section 5.1.4, Figure 7);
* :func:`closest_prototypes` -- closest prototypes with the learned weighted sum and with a
  plain mean (Figure 8);
* :func:`prototype_distance_matrix` -- Eq. 11 (Figure 9, and the prototype refinement);
* :func:`class_order` -- prototypes sorted by class, as the figures show them;
* :func:`load_run` -- a training run folder as an :class:`APNetRun` (model, config, scaler,
  dataset, fold, results).

Inputs ``x`` are min-max scaled spectrograms ``(N, T, F)``, or unscaled ones with the
training run's ``scaler`` (then they are scaled batch by batch, so a memory-mapped
:class:`audiodata.features.FeatureArray` can be passed whole).
"""
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure

from audiodata.cli import positive_int, require
from audiodata.errors import ParameterError
from audiodata.features import mel_to_audio
from audiodata.features.extract import n_samples
from audiodata.io import write_audio
from audioruns.preprocessing import ScaledModel, load_scaled_model
from audioruns.runs import Run, locate, read_results

#: Layers every inspected model must have (the names :class:`apnet.APNet` gives them).
REQUIRED_LAYERS = ("latent", "pool1", "pool2", "prototypes", "similarity", "weighted_sum", "dense",
                   "decoder_conv1", "unpool2", "decoder_act1", "decoder_conv2", "unpool1", "decoder_act2",
                   "decoder_conv3", "decoder_tanh", "reconstruction")


def _check_model(model):
    if isinstance(model, ScaledModel):
        raise ValueError(f"model {model.name!r} takes raw log-mels (its input scaler is inside); these functions "
                         "work on the trained model and scaled inputs: use "
                         "`model, scaler = audioruns.preprocessing.detach_scaler(model)` (or load the file with "
                         "`audioruns.preprocessing.load_scaled_model`)")
    names = {layer.name for layer in model.layers}
    missing = [name for name in REQUIRED_LAYERS if name not in names]
    if missing:
        raise ValueError(f"model {model.name!r} is not an APNet: it has no layer(s) {missing}")


def _batches(x, batch_size, scaler=None):
    """Yield ``(start, batch)`` over the first axis of ``x``, scaled when a scaler is given."""
    batch_size = require(positive_int, batch_size, "batch_size", strict=True)
    for start in range(0, len(x), batch_size):
        batch = np.asarray(x[start:start + batch_size], dtype=np.float32)
        yield start, (batch if scaler is None else scaler.transform(batch))


def _to_numpy(value):
    return keras.ops.convert_to_numpy(value)


# ----------------------------------------------------------------------------- sub-models
def encoder_model(model):
    """The encoder of an APNet-like model: input ``X`` -> ``[Z, mask1, mask2]`` (Eq. 1).

    Parameters
    ----------
    model : APNet-like keras.Model

    Returns
    -------
    encoder : keras.Model
        Outputs ``Z`` ``[shape=(batch, T', F', C)]`` and the two max-pooling masks.

    Raises
    ------
    ValueError
        ``model`` lacks a layer of an APNet.
    """
    _check_model(model)
    mask1 = model.get_layer("pool1").output[1]
    mask2 = model.get_layer("pool2").output[1]
    return keras.Model(model.inputs[0], [model.get_layer("latent").output, mask1, mask2], name="encoder")


def decoder_model(model):
    """The decoder ``g`` of an APNet-like model: ``[Z, mask1, mask2]`` -> ``(batch, T, F)`` (Eq. 2).

    Shares its layers (and weights) with ``model``.

    Parameters
    ----------
    model : APNet-like keras.Model

    Returns
    -------
    decoder : keras.Model
        Inputs ``[Z, mask1, mask2]``, output ``[shape=(batch, T, F)]``.

    Raises
    ------
    ValueError
        ``model`` lacks a layer of an APNet.
    """
    _check_model(model)
    latent = keras.Input(shape=tuple(model.get_layer("latent").output.shape[1:]), name="latent_input")
    mask1 = keras.Input(shape=tuple(model.get_layer("pool1").output[1].shape[1:]), name="mask1_input")
    mask2 = keras.Input(shape=tuple(model.get_layer("pool2").output[1].shape[1:]), name="mask2_input")
    y = model.get_layer("decoder_conv1")(latent)
    y = model.get_layer("decoder_act1")(model.get_layer("unpool2")([y, mask2]))
    y = model.get_layer("decoder_conv2")(y)
    y = model.get_layer("decoder_act2")(model.get_layer("unpool1")([y, mask1]))
    y = model.get_layer("decoder_tanh")(model.get_layer("decoder_conv3")(y))
    return keras.Model([latent, mask1, mask2], model.get_layer("reconstruction")(y), name="decoder")


def prototype_weights(model):
    """The prototypes ``P`` of the prototype layer, ``(M, T', F', C)`` (Section 3.3).

    Parameters
    ----------
    model : APNet-like keras.Model

    Returns
    -------
    P : np.ndarray [shape=(M, T', F', C)]

    Raises
    ------
    ValueError
        ``model`` lacks a layer of an APNet.
    """
    _check_model(model)
    return _to_numpy(model.get_layer("prototypes").prototypes)


# ----------------------------------------------------------------------------- distances
def instance_prototype_distances(model, x, *, batch_size=256, scaler=None):
    """``D_ij = ||Z_i - P_j||^2`` of Eq. 4 for every input and prototype.

    The prototype layer's frequency-dependent distances ``(N, M, F')`` summed over ``f``.

    Parameters
    ----------
    model : APNet-like keras.Model
    x : array-like [shape=(N, T, F)]
        Spectrograms (scaled, or unscaled with ``scaler``).
    batch_size : int
    scaler : fitted scaler with ``transform``, optional

    Returns
    -------
    D : np.ndarray [shape=(N, M)], float32
    """
    _check_model(model)
    sub = keras.Model(model.inputs[0], model.get_layer("prototypes").output)
    out = np.empty((len(x), model.get_layer("prototypes").n_prototypes), np.float32)
    for start, batch in _batches(x, batch_size, scaler):
        out[start:start + len(batch)] = _to_numpy(sub.predict_on_batch(batch)).sum(axis=-1)
    return out


def prototype_distance_matrix(prototypes):
    """Distance matrix of the prototypes, ``D_jl = ||P_j - P_l||_2^2`` (Eq. 11).

    Computed in float64 as ``||P_j||^2 + ||P_l||^2 - 2 <P_j, P_l>``, clamped at 0, with an
    exactly zero diagonal and exactly symmetric.

    Parameters
    ----------
    prototypes : keras.Model or np.ndarray [shape=(M, T', F', C)]
        An APNet-like model (its prototype weights are used) or the prototypes themselves.

    Returns
    -------
    D : np.ndarray [shape=(M, M)], float64

    References
    ----------
    - Zinemanas et al., Electronics 2021, Section 5.2.1, Eq. (11), Figure 9.
    """
    p = prototype_weights(prototypes) if isinstance(prototypes, keras.Model) else np.asarray(prototypes)
    p = p.reshape(len(p), -1).astype(np.float64)
    sq = np.sum(p * p, axis=1)
    d = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (p @ p.T), 0.0)
    d = (d + d.T) / 2.0
    np.fill_diagonal(d, 0.0)
    return d


# ----------------------------------------------------------------------------- Section 5.1.2
def decode_prototypes(model, x_train, *, batch_size=256, scaler=None):
    """Mel-spectrogram and class of every prototype (Section 5.1.2).

    The decoder needs the max-pooling masks of an encoded input, which a prototype does not
    have. As in the paper, prototype ``j`` is decoded with the masks of the training
    instance nearest to it in the latent space, ``argmin_i D_ij`` (Eq. 4, the
    frequency-dependent distances of the prototype layer summed over ``f``):
    ``g(P_j; masks(X_nearest))``. The decoded spectrogram is then classified by the full
    model, which gives the prototype's class.

    Parameters
    ----------
    model : APNet-like keras.Model
    x_train : array-like [shape=(N, T, F)]
        Training spectrograms (scaled, or unscaled with ``scaler``).
    batch_size : int
    scaler : fitted scaler with ``transform``, optional

    Returns
    -------
    dict with
        ``mel`` : np.ndarray [shape=(M, T, F)] -- decoded prototypes, scaled like the input
        (in ``[-1, 1]``, the decoder's tanh);
        ``nearest`` : np.ndarray [shape=(M,), int] -- row of ``x_train`` nearest to each
        prototype (whose masks were used);
        ``nearest_distance`` : np.ndarray [shape=(M,)] -- its ``D_ij``;
        ``probabilities`` : np.ndarray [shape=(M, K)] -- the model's output on ``mel``;
        ``classes`` : np.ndarray [shape=(M,), int] -- their argmax, the prototype's class;
        ``w_classes`` : np.ndarray [shape=(M,), int] -- argmax of each row of ``W``
        (Eq. 8), the class the prototype votes for most.

    References
    ----------
    - Zinemanas et al., Electronics 2021, Section 5.1.2, Figure 5.
    """
    distances = instance_prototype_distances(model, x_train, batch_size=batch_size, scaler=scaler)
    nearest = np.argmin(distances, axis=0)
    nearest_x = np.asarray(x_train[nearest], dtype=np.float32)
    if scaler is not None:
        nearest_x = scaler.transform(nearest_x)
    _, mask1, mask2 = encoder_model(model).predict_on_batch(nearest_x)
    mel = _to_numpy(decoder_model(model).predict_on_batch([prototype_weights(model), mask1, mask2]))
    probabilities = _to_numpy(model.predict_on_batch(mel)[0])
    return {
        "mel": mel,
        "nearest": nearest,
        "nearest_distance": distances[nearest, np.arange(distances.shape[1])],
        "probabilities": probabilities,
        "classes": probabilities.argmax(axis=1),
        "w_classes": fully_connected_weights(model).argmax(axis=0),
    }


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "class"


def plot_mel(path, S, *, title=None, label="dB"):
    """Save a ``(T, F)`` spectrogram as a PNG (frequency upwards; matplotlib, no pyplot state).

    Parameters
    ----------
    path : str or Path
        The PNG file to write.
    S : np.ndarray [shape=(T, F)]
        The spectrogram (frames, mel bands).
    title : str, optional
        Title of the plot.
    label : str
        Label of the colour bar.

    Returns
    -------
    path : Path
    """
    fig = Figure(figsize=(4.0, 3.0), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(np.asarray(S).T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
    fig.colorbar(image, ax=ax, label=label)
    ax.set_xlabel("frame")
    ax.set_ylabel("mel band")
    if title:
        ax.set_title(title, fontsize=9)
    fig.savefig(path, dpi=100)
    return Path(path)


def write_prototypes(folder, decoded, feature_params, *, scaler=None, class_names=None, clip_ids=None, peak=0.9):
    """Write every decoded prototype as ``prototype_<j>_<class>.wav/.png`` plus a summary.

    Each mel-spectrogram of :func:`decode_prototypes` is unscaled
    (``scaler.inverse_transform``), turned into audio by
    :func:`audiodata.features.mel_to_audio` (mel inversion + Griffin-Lim, Section 5.1.1)
    with the dataset's feature parameters, peak-normalised to ``peak`` (as the reference
    implementation normalises by the maximum) and written next to a PNG of the (unscaled)
    spectrogram. ``summary.json`` and ``summary.csv`` list, per prototype: ``prototype``
    (j), ``nearest_row``, ``nearest_clip_id``, ``nearest_distance``, ``class`` (from the
    decoded spectrogram), ``class_name``, ``w_class`` (argmax of ``W``), ``w_class_name``,
    ``wav`` and ``png``.

    Parameters
    ----------
    folder : str or Path
    decoded : dict
        Output of :func:`decode_prototypes`.
    feature_params : dict
        The feature set's parameters (``audiodata.features.load_feature_params``): ``sr``,
        ``n_fft``, ``hop_length``, ... and ``duration``, which fixes the audio length.
    scaler : fitted scaler with ``inverse_transform``, optional
    class_names : sequence of str, optional
        Names of the classes (default: their indices).
    clip_ids : sequence of str, optional
        Clip id of each row of the ``x_train`` given to :func:`decode_prototypes`.
    peak : float
        Peak amplitude of the written audio.

    Returns
    -------
    pd.DataFrame
        The summary table.

    Raises
    ------
    ValueError
        ``feature_params`` are not mel features.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if feature_params.get("type", "mel") != "mel":
        raise ValueError(f"prototypes can only be turned into audio from mel features; received type="
                         f"{feature_params.get('type')!r}")
    name_of = (lambda k: str(class_names[k])) if class_names is not None else str
    sr = int(feature_params["sr"])
    length = n_samples(feature_params) if feature_params.get("duration") or feature_params.get("n_samples") else None
    rows = []
    for j, mel in enumerate(decoded["mel"]):
        S = scaler.inverse_transform(mel) if scaler is not None else np.asarray(mel)
        cls, w_cls = int(decoded["classes"][j]), int(decoded["w_classes"][j])
        stem = f"prototype_{j}_{_safe(name_of(cls))}"
        y = mel_to_audio(S, **{**feature_params, "length": length})
        top = float(np.max(np.abs(y))) if y.size else 0.0
        write_audio(folder / f"{stem}.wav", y * (peak / top) if top > 0 else y, sr)
        plot_mel(folder / f"{stem}.png", S, title=f"prototype {j}: class {name_of(cls)}")
        nearest = int(decoded["nearest"][j])
        rows.append({
            "prototype": j,
            "nearest_row": nearest,
            "nearest_clip_id": None if clip_ids is None else str(clip_ids[nearest]),
            "nearest_distance": float(decoded["nearest_distance"][j]),
            "class": cls,
            "class_name": name_of(cls),
            "w_class": w_cls,
            "w_class_name": name_of(w_cls),
            "wav": f"{stem}.wav",
            "png": f"{stem}.png",
        })
    summary = pd.DataFrame(rows)
    summary.to_csv(folder / "summary.csv", index=False)
    (folder / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    return summary


# ----------------------------------------------------------------------------- figures
def reconstruct(model, x, *, batch_size=256, scaler=None):
    """Autoencoder reconstructions ``g(f(X))`` ``(N, T, F)``, scaled like the input (Section 5.1.1).

    Parameters
    ----------
    model : APNet-like keras.Model
    x : np.ndarray [shape=(N, T, F)]
        Inputs, unscaled when ``scaler`` is given.
    batch_size : int
    scaler : fitted scaler with ``transform``, optional
        Applied to each batch of ``x``.

    Returns
    -------
    reconstruction : np.ndarray [shape=(N, T, F)]

    Raises
    ------
    ValueError
        ``model`` lacks a layer of an APNet.
    """
    _check_model(model)
    sub = keras.Model(model.inputs[0], model.get_layer("reconstruction").output)
    return np.concatenate([_to_numpy(sub.predict_on_batch(b)) for _, b in _batches(x, batch_size, scaler)])


def fully_connected_weights(model):
    """``W^T`` ``(K, M)``, the transposed kernel of the last layer (Eq. 8, Section 5.1.3, Figure 6).

    Parameters
    ----------
    model : APNet-like keras.Model

    Returns
    -------
    W_T : np.ndarray [shape=(K, M)]

    Raises
    ------
    ValueError
        ``model`` lacks a layer of an APNet.
    """
    _check_model(model)
    return _to_numpy(model.get_layer("dense").kernel).T


def weighted_sum_weights(model, *, upsample=False):
    """The weighted-sum kernels ``H`` (Eq. 7, Section 5.1.4, Figure 7).

    Parameters
    ----------
    model : APNet-like keras.Model
    upsample : bool
        Repeat each latent frequency bin to the input's ``F`` bands (``F / F'`` each, cut at
        ``F``), "to compare them in the input space" as in Figure 7.

    Returns
    -------
    H : np.ndarray [shape=(M, F') or (M, F)]
    """
    _check_model(model)
    kernel = _to_numpy(model.get_layer("weighted_sum").kernel)
    if not upsample:
        return kernel
    n_bands = int(model.inputs[0].shape[2])
    factor = -(-n_bands // kernel.shape[1])
    return np.repeat(kernel, factor, axis=1)[:, :n_bands]


def closest_prototypes(model, x, *, k=3, batch_size=256, scaler=None):
    """The ``k`` prototypes most similar to each input, with the learned weighted sum and with a mean.

    The experiment of Figure 8: the frequency-dependent similarity ``S_ij[f]`` (Eq. 6) is
    integrated over ``f`` (1) with the learned kernel, ``sum_f H_j[f] S_ij[f]`` (Eq. 7),
    and (2) with a fixed mean, ``H_j[f] = 1 / F'``.

    Parameters
    ----------
    model : APNet-like keras.Model
    x : np.ndarray [shape=(N, T, F)]
        Inputs, unscaled when ``scaler`` is given.
    k : int
        Number of prototypes per input.
    batch_size : int
    scaler : fitted scaler with ``transform``, optional
        Applied to each batch of ``x``.

    Returns
    -------
    dict with ``weighted`` and ``mean`` : np.ndarray [shape=(N, k), int], prototypes by
    decreasing similarity; ``weighted_similarity`` and ``mean_similarity`` : np.ndarray
    [shape=(N, M)].
    """
    _check_model(model)
    k = require(positive_int, k, "k", strict=True)
    sub = keras.Model(model.inputs[0], model.get_layer("similarity").output)
    kernel = weighted_sum_weights(model)
    weighted, mean = [], []
    for _, batch in _batches(x, batch_size, scaler):
        s = _to_numpy(sub.predict_on_batch(batch)).astype(np.float64)
        weighted.append(np.sum(s * kernel[None], axis=-1))
        mean.append(np.mean(s, axis=-1))
    weighted, mean = np.concatenate(weighted), np.concatenate(mean)
    top = lambda s: np.argsort(-s, axis=1, kind="stable")[:, :k]  # noqa: E731
    return {"weighted": top(weighted), "mean": top(mean), "weighted_similarity": weighted,
            "mean_similarity": mean}


def class_order(classes):
    """Order of the prototypes sorted by class (stable), as Figures 6 and 9 show them.

    Parameters
    ----------
    classes : np.ndarray [shape=(M,)]
        Class of each prototype.

    Returns
    -------
    order : np.ndarray [shape=(M,), int]
    """
    return np.argsort(np.asarray(classes), kind="stable")


# ----------------------------------------------------------------------------- training runs
@dataclass(kw_only=True)
class APNetRun(Run):
    """A training run folder of ``experiments/apnet/train.py`` (or ``refine.py``), loaded by :func:`load_run`.

    Attributes
    ----------
    model : keras.Model
        The trained model on scaled inputs (loaded, compiled).
    config : dict
        Its ``config.yaml``.
    scaler : audiodata.features.MinMaxScaler or StandardScaler
        The scaler fitted on the training split.
    path, dataset, fold, results, run_dir
        Inherited from :class:`audioruns.runs.Run` (``run_dir`` is ``path``).
    """

    model: object = None
    config: dict = field(default_factory=dict)
    scaler: object = None

    #: Keys of the dict :func:`load_run` returned before it returned an :class:`APNetRun`.
    _OLD_KEYS = ("model", "config", "scaler", "dataset", "fold", "run_dir")

    def __getitem__(self, key):
        """``run["model"]`` as ``run.model``: kept for one release for old notebooks (the dict of old ``load_run``)."""
        if key not in self._OLD_KEYS:
            raise KeyError(key)
        return getattr(self, key)


def load_run(model_path):
    """Read the training run folder that holds ``model_path`` (written by ``experiments/apnet/train.py``).

    The folder holds ``model.keras``, ``config.yaml`` (seed, features, loss weights, batch
    size, ...), ``scaler.json`` (the scaler fitted on the training split) and
    ``results.json`` (``dataset`` and ``fold``). When ``results.json`` lacks them they are
    read from the path, ``<output>/<model>/<dataset>/fold<N>/seed<S>/`` (or a ``refine_<method>/``
    folder below it; :func:`audioruns.runs.locate`). Both layouts of the
    model file are read (:func:`audioruns.preprocessing.load_scaled_model`): a ``model.keras``
    holding its scaler (written since the scaler went into the model file; ``scaler.json`` is
    then not needed), or the bare model of an older folder with ``scaler.json`` beside it.

    Parameters
    ----------
    model_path : str or Path
        The run's ``model.keras``.

    Returns
    -------
    APNetRun
        ``model`` (loaded, compiled: the trained model on scaled inputs), ``config`` (dict),
        ``scaler`` (:class:`audiodata.features.MinMaxScaler` for APNet, or the
        ``StandardScaler`` of a baseline), ``dataset`` (str), ``fold`` (int), ``results``
        (``results.json``) and ``run_dir`` / ``path`` (Path).

    Raises
    ------
    audiodata.errors.ParameterError
        A missing file, no dataset/fold to be found, or a ``results.json`` that is not JSON;
        the message names the path.
    audioruns.errors.ModelFileError
        ``model_path`` is truncated or corrupt, or an older model file without ``scaler.json``.
    """
    model_path = Path(model_path)
    run_dir = model_path.parent
    for path in (model_path, run_dir / "config.yaml"):
        if not path.is_file():
            raise ParameterError(f"{path} does not exist (expected a training run folder of "
                                 "experiments/apnet/train.py)")
    results = read_results(run_dir)
    dataset, fold = results.get("dataset"), results.get("fold")
    if dataset is None or fold is None:
        location = locate(run_dir)
        if location is None:
            raise ParameterError(f"{run_dir}: no dataset/fold in results.json and the path is not "
                                 "<output>/<model>/<dataset>/fold<N>/seed<S>/")
        dataset, fold = location["dataset"], location["fold"]
    model, scaler = load_scaled_model(model_path)
    return APNetRun(path=run_dir, dataset=str(dataset), fold=int(fold), results=results, model=model,
                    config=yaml.safe_load((run_dir / "config.yaml").read_text()), scaler=scaler)
