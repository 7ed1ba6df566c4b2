"""The APNet authors' published models (Keras 2.2.4 / TensorFlow 1.x / DCASE-models) as our run folders.

The authors of APNet published, for each dataset and model, a folder with ``model.json`` (the
Keras 2 architecture), ``best_weights.hdf5`` (its weights), ``scaler.pickle`` (the fitted
DCASE-models normaliser) and ``results.pickle`` (their test predictions), with the run's
``config.json`` in a parent folder. Keras 2.2 and TensorFlow 1 no longer install, so this module
reads those files without them:

* the architecture is parsed as JSON and rebuilt with this package's layers
  (:class:`apnet.APNet`, :func:`apnet.baselines.sb_cnn`, :func:`apnet.baselines.att_crnn`); no
  ``Lambda`` code from the file is ever run;
* the weights are read with h5py and mapped layer by layer, in order of layer type, onto ours; a
  shape that disagrees is an error naming both layers;
* the pickles are read with :func:`restricted_load`, which can build nothing but NumPy arrays
  and scalars and plain records of the few classes those files hold.

:func:`import_reference` writes an ordinary run folder (``model.keras`` with the authors' scaler
inside, :func:`audioruns.preprocessing.attach_scaler`; ``config.yaml``, ``scaler.json``,
``results.json``), so scoring, prototype inspection, refinement and the web application work on
it as on a model trained here, and ``keras.models.load_model`` of ``model.keras`` alone predicts
from unscaled log-mel spectrograms.

Example (paths relative to the repository)::

    from apnet.reference import import_reference
    run_dir = import_reference("../shared/reference/APNet/experiments/UrbanSound8k/SB_CNN/fold1",
                               "results/reference/sb_cnn/urbansound8k/fold1")
"""
import hashlib
import io
import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import yaml

try:  # NumPy >= 2 moved numpy.core to numpy._core
    from numpy._core import multiarray
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray

from apnet.baselines import att_crnn, sb_cnn
from apnet.model import APNet
from audiodata.datasets import medley_solos_db, speech_commands, urbansound8k
from audiodata.errors import ParameterError
from audiodata.features import MinMaxScaler, StandardScaler, feature_shape, load_feature_params
from audioruns.preprocessing import attach_scaler

#: The authors' dataset names (keys of ``config.json``'s ``datasets``) -> ours.
DATASETS = {"UrbanSound8k": "urbansound8k", "GoogleSpeechCommands": "speech_commands",
            "MedleySolosDb": "medley_solos_db"}
#: The authors' model names (keys of ``config.json``'s ``models``) -> ours.
MODELS = {"APNet": "apnet", "SB_CNN": "sb_cnn", "AttRNNSpeechModel": "att_crnn"}
#: Our feature set of each model (``audiodata/configs/<dataset>.yaml``).
FEATURE_SETS = {"apnet": "mel", "sb_cnn": "mel_sb_cnn", "att_crnn": "mel_att_crnn"}


# ----------------------------------------------------------------------------------------- pickles
class PickledRecord:
    """Stand-in for an object of an allowed class of a reference pickle: its state, nothing else.

    ``class_name`` is the original ``module.Class``; the pickled attributes are in ``__dict__``.
    """

    def __init__(self, *args):
        self._args = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (state, slotstate)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_state"] = state

    def __repr__(self):
        return f"PickledRecord({getattr(self, 'class_name', '?')}, {sorted(k for k in vars(self) if k != 'class_name')})"


def _record_class(qualified):
    return type(qualified.rsplit(".", 1)[-1], (PickledRecord,), {"class_name": qualified})


#: Classes a reference pickle may name. NumPy's array/scalar reconstructors build arrays and
#: nothing else; every other allowed class becomes a :class:`PickledRecord` (its code never runs).
_NUMPY_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype")} | {
    (module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")}
_RECORD_GLOBALS = {
    ("dcase_models.data.scaler", "Scaler"),
    ("sklearn.preprocessing._data", "StandardScaler"),
    ("sklearn.preprocessing.data", "StandardScaler"),
    ("sed_eval.scene", "SceneClassificationMetrics"),
    ("dcase_util.ui.ui", "FancyStringifier"),
}


def _numpy_global(module, name):
    if name == "ndarray":
        return np.ndarray
    if name == "dtype":
        return np.dtype
    return getattr(multiarray, name)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path):
        super().__init__(file)
        self._path = path

    def find_class(self, module, name):
        if (module, name) in _NUMPY_GLOBALS:
            return _numpy_global(module, name)
        if (module, name) in _RECORD_GLOBALS:
            return _record_class(f"{module}.{name}")
        raise ParameterError(
            f"{self._path}: refusing to load: the pickle asks for {module}.{name}, which a reference scaler or "
            "results file never holds (only NumPy arrays and scalars, DCASE-models' Scaler, scikit-learn's "
            "StandardScaler and sed_eval's metrics are allowed); it may be malicious")

    def persistent_load(self, pid):
        raise ParameterError(f"{self._path}: refusing to load: the pickle uses persistent ids")


def restricted_load(path):
    """Unpickle ``path`` allowing only what the authors' ``scaler.pickle``/``results.pickle`` hold.

    NumPy arrays, dtypes and scalars are rebuilt as such; DCASE-models' ``Scaler``,
    scikit-learn's ``StandardScaler`` and sed_eval's metrics objects become
    :class:`PickledRecord` holding their attributes (none of their code runs). Any other global
    (``os.system``, ``builtins.eval``, ...) is refused with a :class:`ParameterError` naming the
    file, before anything is called.
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"{path} does not exist")
    data = path.read_bytes()
    try:
        return _RestrictedUnpickler(io.BytesIO(data), path).load()
    except ParameterError:
        raise
    except Exception as err:  # truncated or not a pickle
        raise ParameterError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from None


def load_reference_scaler(path):
    """The authors' fitted ``scaler.pickle`` as one of our scalers.

    DCASE-models' ``minmax`` normaliser (global ``[min, max]`` of the training set, mapped to
    ``[-1, 1]``) becomes :class:`audiodata.features.MinMaxScaler`; ``standard`` (scikit-learn's
    per-band ``StandardScaler``) becomes :class:`audiodata.features.StandardScaler` with its
    ``mean_`` and ``scale_``.
    """
    obj = restricted_load(path)
    normalizer = getattr(obj, "normalizer", None)
    state = getattr(obj, "scaler", None)
    if isinstance(normalizer, str):
        normalizer, state = [normalizer], [state]
    if not isinstance(normalizer, list) or not isinstance(state, list) or len(normalizer) != 1 or len(state) != 1:
        raise ParameterError(f"{path}: not a DCASE-models Scaler with one normaliser "
                             f"(normalizer={normalizer!r})")
    kind, state = normalizer[0], state[0]
    if kind == "minmax":
        lo, hi = (float(v) for v in state)
        if not hi > lo:
            raise ParameterError(f"{path}: min-max scaler with max {hi} <= min {lo}")
        scaler = MinMaxScaler(feature_range=(-1.0, 1.0))
        scaler.data_min, scaler.data_max = np.float32(lo), np.float32(hi)
        return scaler
    if kind == "standard":
        mean, scale = getattr(state, "mean_", None), getattr(state, "scale_", None)
        if mean is None or scale is None:
            raise ParameterError(f"{path}: standard scaler without mean_/scale_")
        scaler = StandardScaler()
        scaler.mean = np.asarray(mean, dtype=np.float32)
        scaler.std = np.asarray(scale, dtype=np.float32)
        return scaler
    raise ParameterError(f"{path}: unknown normaliser {kind!r} (expected 'minmax' or 'standard')")


def load_reference_predictions(path):
    """The authors' ``results.pickle``: ``{"annotations": (n, K), "predictions": (n, K)}``, float arrays.

    Rows are in the order the original code read the test files, not sorted by name.
    """
    obj = restricted_load(path)
    if not isinstance(obj, dict) or "annotations" not in obj or "predictions" not in obj:
        raise ParameterError(f"{path}: expected a dict with 'annotations' and 'predictions'")
    out = {}
    for key in ("annotations", "predictions"):
        value = np.asarray(obj[key], dtype=np.float64)
        out[key] = value.reshape(value.shape[0], -1)
    if out["annotations"].shape != out["predictions"].shape:
        raise ParameterError(f"{path}: annotations {out['annotations'].shape} and predictions "
                             f"{out['predictions'].shape} differ in shape")
    return out


# -------------------------------------------------------------------------------- Keras 2 files
def _flatten_layers(layers, parent=None):
    out = []
    for layer in layers:
        config = layer.get("config", {})
        if layer.get("class_name") in ("Model", "Functional", "Sequential") and "layers" in config:
            out.extend(_flatten_layers(config["layers"], parent=layer.get("name", config.get("name"))))
        else:
            out.append({"class_name": layer.get("class_name"), "name": config.get("name", layer.get("name")),
                        "config": config, "parent": parent})
    return out


def read_keras2_architecture(path):
    """``model.json`` of Keras 2 (``model.to_json()``, possibly JSON-encoded twice) as a layer list.

    Returns ``{"keras_version", "input_shape", "layers"}``; ``layers`` is flat, in file order,
    each ``{"class_name", "name", "config", "parent"}`` (``parent``: the nested model holding it).
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"{path} does not exist")
    try:
        blob = json.loads(path.read_text())
        if isinstance(blob, str):
            blob = json.loads(blob)
        layers = _flatten_layers(blob["config"]["layers"])
    except (ValueError, KeyError, TypeError) as err:
        raise ParameterError(f"{path}: not a Keras model.json ({type(err).__name__}: {err})") from None
    shape = None
    for layer in layers:
        if layer["class_name"] == "InputLayer" and layer["parent"] is None:
            shape = layer["config"].get("batch_input_shape")
            break
    if not shape or len(shape) != 3 or None in shape[1:]:
        raise ParameterError(f"{path}: expected one (batch, T, F) input, found {shape!r}")
    return {"keras_version": blob.get("keras_version"), "input_shape": tuple(int(d) for d in shape[1:]),
            "layers": layers}


def read_keras2_weights(path):
    """``best_weights.hdf5`` of Keras 2 (``model.save_weights``): ``{layer: [(variable, array), ...]}``.

    Keys are the top-level layer names of the file; a nested model's entry lists the variables of
    all its layers, named ``<inner layer>/<variable>:0``. Order is the file's ``weight_names``.
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"{path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            out = {}
            for name in root.attrs["layer_names"]:
                name = name.decode() if isinstance(name, bytes) else str(name)
                group = root[name]
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
                out[name] = [(n, np.asarray(group[n])) for n in names]
    except (OSError, KeyError) as err:
        raise ParameterError(f"{path}: not a Keras 2 HDF5 weight file ({err})") from None
    return out


def _layer_weights(weights, layer, path):
    """Arrays of one layer of the architecture, from :func:`read_keras2_weights`'s dict."""
    if layer["parent"] is None:
        return [a for _, a in weights.get(layer["name"], [])]
    prefix = layer["name"] + "/"
    entries = weights.get(layer["parent"])
    if entries is None:
        raise ParameterError(f"{path}: no weights for the nested model {layer['parent']!r}")
    return [a for n, a in entries if n.startswith(prefix)]


def _set_weights(our_layer, arrays, their_name, path):
    expected = [tuple(w.shape) for w in our_layer.weights]
    got = [tuple(a.shape) for a in arrays]
    if expected != got:
        raise ParameterError(f"{path}: layer {their_name!r} has weights of shapes {got}, but our layer "
                             f"{our_layer.name!r} expects {expected}")
    our_layer.set_weights(arrays)


def _by_class(layers, *class_names):
    return [layer for layer in layers if layer["class_name"] in class_names]


def _kind(layers):
    names = {layer["class_name"] for layer in layers}
    if "PrototypeLayer" in names:
        return "apnet"
    if "Bidirectional" in names:
        return "att_crnn"
    if "Conv2D" in names and "Dense" in names:
        return "sb_cnn"
    raise ParameterError(f"unknown architecture with layers {sorted(names)} (expected APNet, SB-CNN or Att-CRNN)")


def _build_apnet(arch, weights, path):
    layers = arch["layers"]
    convs = [layer for layer in _by_class(layers, "Conv2D") if layer["parent"] is not None]
    deconvs = _by_class(layers, "Conv2DTranspose")
    protos, sums, denses = (_by_class(layers, c) for c in ("PrototypeLayer", "WeightedSum", "Dense"))
    leaky = _by_class(layers, "LeakyReLU")
    if len(convs) != 3 or len(deconvs) != 3 or len(protos) != 1 or len(sums) != 1 or len(denses) != 1:
        raise ParameterError(f"{path}: not the APNet of Zinemanas et al. (3 Conv2D, 3 Conv2DTranspose, "
                             f"1 PrototypeLayer, 1 WeightedSum, 1 Dense expected; found {len(convs)}, "
                             f"{len(deconvs)}, {len(protos)}, {len(sums)}, {len(denses)})")
    if protos[0]["config"].get("distance", "euclidean") != "euclidean" or not protos[0]["config"].get(
            "use_weighted_sum", True):
        raise ParameterError(f"{path}: only the euclidean, frequency-dependent prototype distance is supported "
                             f"(found {protos[0]['config']})")
    proto_w = _layer_weights(weights, protos[0], path)
    dense_w = _layer_weights(weights, denses[0], path)
    conv1 = convs[0]["config"]
    if not proto_w or not dense_w:
        raise ParameterError(f"{path}: no prototype or dense weights")
    model = APNet(input_shape=arch["input_shape"], n_classes=int(dense_w[0].shape[1]),
                  n_prototypes=int(proto_w[0].shape[0]), n_filters=int(conv1["filters"]),
                  kernel_size=int(conv1["kernel_size"][0]),
                  negative_slope=float(leaky[0]["config"].get("alpha", 0.3)) if leaky else 0.3)
    pairs = [(f"encoder_conv{i}", convs[i - 1]) for i in (1, 2, 3)]
    pairs += [(f"decoder_conv{i}", deconvs[i - 1]) for i in (1, 2, 3)]
    pairs += [("prototypes", protos[0]), ("weighted_sum", sums[0]), ("dense", denses[0])]
    for ours, theirs in pairs:
        _set_weights(model.get_layer(ours), _layer_weights(weights, theirs, path), theirs["name"], path)
    return model


def _build_sb_cnn(arch, weights, path):
    layers = arch["layers"]
    convs, bns, denses = (_by_class(layers, c) for c in ("Conv2D", "BatchNormalization", "Dense"))
    pools, drops = _by_class(layers, "MaxPooling2D"), _by_class(layers, "Dropout")
    if len(convs) != 3 or len(denses) != 2 or len(pools) != 2 or len(bns) not in (0, 3):
        raise ParameterError(f"{path}: not the SB-CNN of DCASE-models (3 Conv2D, 2 MaxPooling2D, 2 Dense expected)")
    model = sb_cnn(arch["input_shape"], n_classes=int(denses[1]["config"]["units"]),
                   filters=[int(c["config"]["filters"]) for c in convs],
                   kernel_size=tuple(convs[0]["config"]["kernel_size"]),
                   pool_sizes=[tuple(p["config"]["pool_size"]) for p in pools],
                   dense_units=int(denses[0]["config"]["units"]),
                   dropout_rate=float(drops[0]["config"]["rate"]) if drops else 0.5,
                   batch_norm=bool(bns))
    pairs = [(f"conv{i}", convs[i - 1]) for i in (1, 2, 3)]
    pairs += [(f"batchnorm{i}", bns[i - 1]) for i in range(1, len(bns) + 1)]
    pairs += [("dense1", denses[0]), ("output", denses[1])]
    for ours, theirs in pairs:
        _set_weights(model.get_layer(ours), _layer_weights(weights, theirs, path), theirs["name"], path)
    return model


_RECURRENT_ACTIVATIONS = {"hard_sigmoid": "hard_sigmoid_keras2", "sigmoid": "sigmoid"}


def _build_att_crnn(arch, weights, path):
    layers = arch["layers"]
    convs, bns, bis, denses = (_by_class(layers, c) for c in ("Conv2D", "BatchNormalization", "Bidirectional",
                                                               "Dense"))
    if len(convs) != 2 or len(bns) != 2 or len(bis) != 2 or len(denses) != 4:
        raise ParameterError(f"{path}: not the Att-CRNN (AttRNNSpeechModel) of the authors (2 Conv2D, 2 "
                             "BatchNormalization, 2 Bidirectional LSTM, 4 Dense expected)")
    lstm = bis[0]["config"]["layer"]["config"]
    recurrent = lstm.get("recurrent_activation", "hard_sigmoid")
    if recurrent not in _RECURRENT_ACTIVATIONS or lstm.get("activation", "tanh") != "tanh":
        raise ParameterError(f"{path}: unsupported LSTM activations {lstm.get('activation')!r}/{recurrent!r}")
    # The query of the attention (the authors' Lambda ``lambda_1``) is the last LSTM output, as in
    # de Andrade et al.'s code; the Lambda's bytecode is never run (the parity tests check it).
    model = att_crnn(arch["input_shape"], n_classes=int(denses[3]["config"]["units"]),
                     conv_filters=[int(c["config"]["filters"]) for c in convs],
                     conv_kernel_size=tuple(convs[0]["config"]["kernel_size"]),
                     lstm_units=int(lstm["units"]),
                     dense_units=[int(denses[1]["config"]["units"]), int(denses[2]["config"]["units"])],
                     recurrent_activation=_RECURRENT_ACTIVATIONS[recurrent])
    pairs = [("conv1", convs[0]), ("conv2", convs[1]), ("batchnorm1", bns[0]), ("batchnorm2", bns[1]),
             ("bilstm1", bis[0]), ("bilstm2", bis[1]), ("attention", denses[0]), ("dense1", denses[1]),
             ("dense2", denses[2]), ("output", denses[3])]
    for ours, theirs in pairs:
        _set_weights(model.get_layer(ours), _layer_weights(weights, theirs, path), theirs["name"], path)
    return model


_BUILDERS = {"apnet": _build_apnet, "sb_cnn": _build_sb_cnn, "att_crnn": _build_att_crnn}


def build_reference_model(source):
    """Our Keras 3 model with the weights of the authors' folder ``source``.

    Returns ``(model, kind)``, ``kind`` in ``"apnet"``, ``"sb_cnn"``, ``"att_crnn"``.
    """
    source = Path(source)
    arch = read_keras2_architecture(source / "model.json")
    weights_path = source / "best_weights.hdf5"
    weights = read_keras2_weights(weights_path)
    kind = _kind(arch["layers"])
    return _BUILDERS[kind](arch, weights, weights_path), kind


# ------------------------------------------------------------------------------------ the run
def find_reference_config(source):
    """``config.json`` of the authors' run: in ``source`` or the nearest parent folder holding one."""
    source = Path(source).resolve()
    for folder in (source, *source.parents):
        if (folder / "config.json").is_file():
            return folder / "config.json"
    raise ParameterError(f"no config.json in {source} or any parent folder (expected the authors' "
                         "<Dataset>/<Model>/config.json above the fold folder)")


def dcase_models_samples(sequence_time, sr, hop, n_fft):
    """Samples DCASE-models (0.2.0-rc0) pads or cuts a clip to before its STFT (``center=False``).

    ``sequence_frames = int(sequence_time * sr) // hop`` (``librosa.time_to_frames``), then
    ``frames_to_samples(sequence_frames, hop, n_fft) = sequence_frames * hop + n_fft // 2``.
    """
    frames = int(np.floor(sequence_time * sr)) // hop
    return frames * hop + n_fft // 2


def check_feature_params(their, params, path):
    """Raise unless our feature set ``params`` computes the authors' ``MelSpectrogram`` ``their``."""
    expected = {
        "sr": int(their["sr"]), "n_fft": int(their["n_fft"]), "hop_length": int(their["audio_hop"]),
        "win_length": int(their["audio_win"]), "n_mels": int(their["mel_bands"]),
        "n_samples": dcase_models_samples(float(their["sequence_time"]), int(their["sr"]), int(their["audio_hop"]),
                                          int(their["n_fft"])),
        "center": False, "mono": "first", "htk": True, "log": "db",
    }
    ours = {"center": True, "mono": "mean", **params}
    different = {k: (v, ours.get(k)) for k, v in expected.items() if ours.get(k) != v}
    if different:
        raise ParameterError(f"{path}: the authors' features differ from ours in "
                             + ", ".join(f"{k} (theirs {a!r}, ours {b!r})" for k, (a, b) in different.items()))


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def import_reference(source, output, overwrite=False):
    """Import the authors' fold/test folder ``source`` into the run folder ``output``.

    Writes ``model.keras`` (our model with their weights, their fitted scaler in front:
    :func:`audioruns.preprocessing.attach_scaler`), ``config.yaml`` (the authors'
    training settings in our config's keys), ``scaler.json`` (their fitted scaler, also),
    ``results.json`` (``model``, ``dataset``, ``fold``, ``classes``, ``imported_from``: the files
    read and their SHA-256) and, when ``source`` has them, ``reference_predictions.npz`` (their
    test annotations and predictions). Every file is written to a temporary name first.

    Returns the run folder (``Path``).

    Raises
    ------
    audiodata.errors.ParameterError
        A missing or malformed file, an unknown dataset or model, weights whose shapes do not
        fit the architecture, or features we do not compute as the authors did (each message
        names the file or layer).
    """
    source, output = Path(source), Path(output)
    if not source.is_dir():
        raise ParameterError(f"{source} is not a folder (expected the authors' fold or test folder)")
    if (output / "model.keras").exists() and not overwrite:
        raise ParameterError(f"{output} already holds a model.keras; choose another --output or pass overwrite")
    config_path = find_reference_config(source)
    their = json.loads(config_path.read_text())
    dataset_key = next(iter(their.get("datasets", {})), None)
    model_key = next(iter(their.get("models", {})), None)
    if dataset_key not in DATASETS:
        raise ParameterError(f"{config_path}: unknown dataset {dataset_key!r} (known: {sorted(DATASETS)})")
    if model_key not in MODELS:
        raise ParameterError(f"{config_path}: unsupported model {model_key!r} (supported: {sorted(MODELS)})")
    dataset, model_name = DATASETS[dataset_key], MODELS[model_key]
    fold = int(source.name[4:]) if source.name.startswith("fold") and source.name[4:].isdigit() else 1

    model, kind = build_reference_model(source)
    if kind != model_name:
        raise ParameterError(f"{source}: config.json says {model_key} but model.json holds a {kind}")
    features = FEATURE_SETS[model_name]
    params = load_feature_params(dataset, features)
    check_feature_params(their["features"]["MelSpectrogram"], params, config_path)
    if tuple(feature_shape(params)) != tuple(model.input_shape[1:]):
        raise ParameterError(f"{source}: the model takes {model.input_shape[1:]} but feature set {features!r} "
                             f"gives {feature_shape(params)}")
    scaler = load_reference_scaler(source / "scaler.pickle")
    model_config = their["models"][model_key]
    train = their.get("train", {})
    loss_weights = model_config.get("train_arguments", {}).get("loss_weights", [None, None, None])
    config = {
        "seed": 0,
        "features": FEATURE_SETS["apnet"],
        "baseline_features": {k: v for k, v in FEATURE_SETS.items() if k != "apnet"},
        "folds": [fold],
        "n_prototypes": int(model.n_prototypes) if kind == "apnet" else None,
        "n_filters": int(model.n_filters) if kind == "apnet" else None,
        "kernel_size": int(model.kernel_size) if kind == "apnet" else None,
        "alpha": loss_weights[0], "beta": loss_weights[1], "gamma": loss_weights[2],
        "batch_size": int(train.get("batch_size", 128)),
        "learning_rate": float(train.get("learning_rate", 1e-3)),
        "epochs": int(train.get("epochs", 200)),
        "early_stopping": train.get("early_stopping"),
        "normalizer": {model_name: model_config.get("normalizer")},
        "init_last_layer": bool(model_config.get("train_arguments", {}).get("init_last_layer", 0)),
    }
    classes = list(_class_names(dataset))
    n_out = int(model.outputs[0].shape[-1])
    if len(classes) != n_out:
        raise ParameterError(f"{source}: the model has {n_out} outputs but {dataset} has {len(classes)} classes")
    files = {name: source / name for name in ("model.json", "best_weights.hdf5", "scaler.pickle", "results.pickle")}
    results = {
        "model": model_name, "dataset": dataset, "fold": fold, "seed": 0, "classes": classes,
        "features": features, "input_shape": list(model.input_shape[1:]), "n_params": int(model.count_params()),
        "imported_from": {
            "source": str(source), "config": str(config_path), "authors_model": model_key,
            "authors_dataset": dataset_key,
            "sha256": {name: _sha256(p) for name, p in files.items() if p.is_file()},
            "sha256_config": _sha256(config_path),
        },
    }
    output.mkdir(parents=True, exist_ok=True)
    _write_atomic(output / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())
    tmp = output / "scaler.json.tmp"
    scaler.save(tmp)
    tmp.replace(output / "scaler.json")
    if files["results.pickle"].is_file():
        ref = load_reference_predictions(files["results.pickle"])
        buffer = io.BytesIO()
        np.savez(buffer, **ref)
        _write_atomic(output / "reference_predictions.npz", buffer.getvalue())
    tmp = output / "model.tmp.keras"
    attach_scaler(model, scaler).save(tmp)  # self-contained: log-mel in, the authors' outputs out
    tmp.replace(output / "model.keras")
    _write_atomic(output / "results.json", (json.dumps(results, indent=2) + "\n").encode())
    return output


def _class_names(dataset):
    """Class names of ``dataset`` in label order, without a data folder (the loaders' constants;
    the authors' ``label_list`` orders are the same: classID, alphabetical words, instrument_id)."""
    if dataset == "speech_commands":
        return speech_commands.WORDS_V2
    if dataset == "urbansound8k":
        return urbansound8k.CLASSES
    return medley_solos_db.CLASSES


def _write_atomic(path, data):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def match_stored_predictions(reference, probabilities, labels):
    """Find, for each of our clips, the authors' stored prediction row that belongs to it.

    ``results.pickle`` rows are in the order the original code listed the files, without names,
    so a clip's row is taken as the row of its class (``annotations``) whose probabilities are
    nearest to ours (largest absolute difference over classes).

    Parameters
    ----------
    reference : dict
        ``annotations`` and ``predictions``, ``(n, K)`` (:func:`load_reference_predictions`, or
        ``reference_predictions.npz`` of an imported run).
    probabilities : array ``(m, K)``
        Our predictions for ``m`` clips.
    labels : array ``(m,)``
        Their class indices.

    Returns
    -------
    list of dict, one per clip: ``row`` (index into the stored arrays), ``gap`` (largest absolute
    difference over classes), ``second_gap`` (the same for the next-nearest row of that class;
    a ``gap`` far below it identifies the row unambiguously), ``their_class`` and ``our_class``.
    """
    annotations = np.asarray(reference["annotations"]).argmax(axis=1)
    stored = np.asarray(reference["predictions"])
    out = []
    for p, label in zip(np.asarray(probabilities), np.asarray(labels)):
        rows = np.flatnonzero(annotations == label)
        if len(rows) == 0:
            raise ParameterError(f"no stored prediction is annotated with class {int(label)}")
        gaps = np.abs(stored[rows] - p).max(axis=1)
        order = np.argsort(gaps)
        best = int(rows[order[0]])
        out.append({"row": best, "gap": float(gaps[order[0]]),
                    "second_gap": float(gaps[order[1]]) if len(order) > 1 else None,
                    "their_class": int(stored[best].argmax()), "our_class": int(np.argmax(p))})
    return out
