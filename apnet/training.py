"""Training APNet (Section 4.4): data streamed from the feature cache, resumable fits, one fold end to end.

* :func:`compile_apnet` -- Adam and the loss of Eq. 10, ``alpha l_c + beta l_p + gamma l_r``;
* :class:`FeatureBatches` -- a :class:`keras.utils.PyDataset` reading batches of rows from the
  memory-mapped cache, so datasets larger than memory stream;
* :func:`load_fold` -- a dataset split into train/validation/test rows of its cached features;
* :func:`fit_resumable` -- ``fit`` that keeps the weights with the best validation accuracy,
  logs ``history.csv``, stops early after ``early_stopping`` epochs without improvement,
  stops with :class:`audioruns.errors.TrainingDivergedError` when a loss becomes NaN/Inf, and
  resumes an interrupted run from its last epoch (early-stopping counter, batch order and
  dropout masks included: the resumed run is bit-identical to an uninterrupted one);
* :func:`training_settings` -- batch size, normaliser, last-layer initialisation and
  early stopping of one model, read from a dataset config (the authors' per-model values);
* :func:`train_fold` -- all of the above for one fold, as the experiment scripts run it.
"""
import sys
from pathlib import Path

import keras
import numpy as np

from apnet.baselines import build_baseline
from apnet.initializers import PrototypeClassKernel
from apnet.losses import PrototypeLoss
from apnet.model import APNet
from audiodata.cli import positive_int, require
from audiodata.cli import seed as seed_type
from audiodata.errors import ParameterError
from audiodata.features import MinMaxScaler, StandardScaler
from audioruns.batches import EpochOrderedBatches
# Re-exported: these are used by name as apnet.training.* (tests, docs, the app); each is defined once in audioruns.
from audioruns.checkpoints import EpochTimer, completed_epochs, load_model_file  # noqa: F401
from audioruns.distribute import check_batch_size, data_parallel
from audioruns.fit import EarlyStoppingState, ResumableEarlyStopping, early_stopping_state  # noqa: F401
from audioruns.fit import _check_patience
from audioruns.folds import Fold
from audioruns.folds import load_fold as _load_fold
from audioruns.metrics import accuracy
from audioruns.fit import fit_resumable as _fit_resumable
from audioruns.preprocessing import attach_scaler, load_scaled_model  # registers the saved model's scaler
from audiodata.features.normalization import load_scaler  # noqa: F401  (re-exported: runs' scaler.json)

#: Metric that selects the weights (Section 4.4): validation accuracy of the class output.
APNET_MONITOR = "val_probabilities_accuracy"
#: The same for single-output models (the baselines).
CLASSIFIER_MONITOR = "val_accuracy"

#: Feature set of each baseline when the config names none (Table 1).
BASELINE_FEATURES = {"sb_cnn": "mel_sb_cnn", "att_crnn": "mel_att_crnn", "openl3_mlp": "mel_openl3"}
MODELS = ("apnet",) + tuple(BASELINE_FEATURES)
#: Input normalisers (the authors' ``normalizer``): a global min-max to [-1, 1] or a per-band standardisation.
NORMALIZERS = ("minmax", "standard")


def compile_apnet(model, alpha, beta, gamma, learning_rate=1e-3):
    """Compile an :class:`apnet.APNet` with Adam and the total loss of Eq. 10.

    ``l = alpha l_c + beta l_p + gamma l_r``: categorical cross-entropy on
    ``probabilities`` (Eq. 9), :class:`apnet.losses.PrototypeLoss` on the ``prototypes``
    distances (Eq. 5) and the mean squared error on ``reconstruction``. The mean (over
    time-frequency bins) is used for ``l_r`` rather than the sum of Eq. 3, as in the
    reference implementation whose Table 2 weights we reuse; the weights would have to be
    rescaled for the sum.

    Targets must be a dict ``{"probabilities": one-hot, "reconstruction": X,
    "prototypes": anything with a batch axis}`` (see :class:`FeatureBatches`). The
    class accuracy is logged as ``probabilities_accuracy``.

    Parameters
    ----------
    model : apnet.APNet
    alpha, beta, gamma : float
        Weights of ``l_c``, ``l_p`` and ``l_r`` (Eq. 10, Table 2).
    learning_rate : float
        Adam's learning rate (0.001 in Section 4.4).

    Returns
    -------
    model : apnet.APNet
        The same model, compiled.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss={
            "probabilities": keras.losses.CategoricalCrossentropy(name="classification_loss"),
            "reconstruction": keras.losses.MeanSquaredError(name="reconstruction_loss"),
            "prototypes": PrototypeLoss(),
        },
        loss_weights={"probabilities": float(alpha), "reconstruction": float(gamma), "prototypes": float(beta)},
        metrics={"probabilities": ["accuracy"]},
    )
    return model


class FeatureBatches(EpochOrderedBatches):
    """Batches of cached features read by row numbers, scaled on the fly by the run's scaler.

    Only one batch is in memory at a time: each ``__getitem__`` reads its rows from the
    memory-mapped :class:`audiodata.features.FeatureArray` (sorted, for sequential reads).
    The order of the batches depends only on ``(seed, epoch)``
    (:class:`audioruns.batches.EpochOrderedBatches`), so a resumed run sees the batches of an
    uninterrupted one.

    Args:
        features: a FeatureArray (or any array indexable by row numbers), ``(n, T, F)``.
        rows: int array, the rows of this split.
        labels: ``(len(rows), K)`` one-hot targets, aligned with ``rows``.
        batch_size: int.
        scaler: fitted scaler with ``transform`` (``MinMaxScaler`` or ``StandardScaler``), or None.
        targets: ``"apnet"`` for APNet's three targets (class, input, dummy) or
            ``"classifier"`` for the one-hot targets only.
        shuffle: bool, reshuffle every epoch.
        seed: int, seed of the shuffling.
        **kwargs: :class:`keras.utils.PyDataset` arguments (``workers``, ...).
    """

    def __init__(self, features, rows, labels, batch_size, scaler=None, targets="apnet", shuffle=False, seed=0,
                 **kwargs):
        if targets not in ("apnet", "classifier"):
            raise ValueError(f"`targets` must be 'apnet' or 'classifier'; received targets={targets!r}")
        if len(rows) != len(labels):
            raise ValueError(f"rows ({len(rows)}) and labels ({len(labels)}) differ in length")
        self.features = features
        self.labels = np.asarray(labels, dtype=np.float32)
        self.scaler = scaler
        self.targets = targets
        super().__init__(rows, batch_size, shuffle=shuffle, seed=seed, **kwargs)

    def _batch(self, positions, rows):
        x = np.asarray(self.features[rows], dtype=np.float32)
        if self.scaler is not None:
            x = self.scaler.transform(x)
        y = self.labels[positions]
        if self.targets == "classifier":
            return x, y
        return x, {"probabilities": y, "reconstruction": x, "prototypes": np.zeros(len(x), np.float32)}


#: The splits of a fold, in the order :func:`fold_batches` builds them.
SPLITS = ("train", "validation", "test")


def fold_batches(data, batch_size, *, scaler=None, targets="apnet", seed=0, splits=SPLITS):
    """The :class:`FeatureBatches` of a fold's splits, as a run trains and tests on them.

    The ``"train"`` split is reshuffled every epoch in the order drawn from ``(seed, epoch)``;
    the other splits keep their row order.

    Parameters
    ----------
    data : audioruns.folds.Fold
        The fold (:func:`load_fold`).
    batch_size : int
    scaler : fitted scaler, optional
        The run's input scaler (``transform``), applied to every batch; None: features as cached.
    targets : {"apnet", "classifier"}
        APNet's three targets or the one-hot targets only (:class:`FeatureBatches`).
    seed : int
        Seed of the training split's order (the run's ``seed``).
    splits : sequence of str
        The splits to build (keys of ``data.rows``); each must hold rows.

    Returns
    -------
    dict
        Split name -> :class:`FeatureBatches`, in the order of ``splits``.
    """
    return {split: FeatureBatches(data.features, data.rows[split], data.targets[split], batch_size, scaler=scaler,
                                  targets=targets, shuffle=split == "train", seed=seed)
            for split in splits}


def compile_for_run(model, config):
    """Compile an APNet with the loss weights and learning rate of a run's config (:func:`compile_apnet`).

    Parameters
    ----------
    model : APNet-like keras.Model
    config : dict
        The run's config: ``alpha``, ``beta``, ``gamma`` (Eq. 10, Table 2) and ``learning_rate``.

    Returns
    -------
    model : keras.Model
        The same model, compiled.
    """
    return compile_apnet(model, config["alpha"], config["beta"], config["gamma"], float(config["learning_rate"]))


#: A fold of features (:class:`audioruns.folds.Fold`: ``features``, ``rows``, ``targets``, ``classes``).
FoldData = Fold


def load_fold(dataset, fold, features="mel", *, data_dir=None, cache_dir=None, n_jobs=-1, progress=False):
    """Load ``dataset``, extract (or read from the cache) its features and split fold ``fold``.

    The split follows Section 4.2: for cross-validated datasets the test fold is ``fold``
    and validation the next fold (also for ESC-10, whose loader defaults to no validation);
    Medley-solos-DB and Speech Commands have one official partition (``fold=1``). Every
    split must hold clips. Parameters, return value (a :class:`audioruns.folds.Fold`) and errors
    are those of :func:`audioruns.folds.load_fold`.

    Parameters
    ----------
    dataset : str
        Dataset name (a loader of :mod:`audiodata`).
    fold : int
        The test fold.
    features : str
        Feature set of the cache (``"mel"``, ``"mel_sb_cnn"``, ...).
    data_dir, cache_dir : str or Path, optional
        Where the datasets and the feature cache are.
    n_jobs : int
        Parallel feature-extraction jobs (-1: all cores).
    progress : bool
        Split sizes, warnings and a progress bar on stderr instead of silence.

    Returns
    -------
    data : audioruns.folds.Fold
        ``features`` ``[shape=(n_clips, T, F)]``, ``rows`` and ``targets`` (one-hot
        ``[shape=(n_split, n_classes)]``) of the ``"train"``, ``"validation"`` and ``"test"`` splits,
        and ``classes``.
    """
    return _load_fold(dataset, fold, features, validation=True, data_dir=data_dir, cache_dir=cache_dir,
                      n_jobs=n_jobs, progress=progress)


def fit_resumable(model, train_data, validation_data, run_dir, epochs, monitor, *, verbose=2, early_stopping=None,
                  export=None):
    """:func:`audioruns.fit.fit_resumable` keeping the epoch with the highest ``monitor`` as ``model.keras``.

    The selection of Section 4.4 (best validation accuracy, :data:`APNET_MONITOR`), with the
    authors' early stopping (``early_stopping`` epochs without a strict improvement; their
    ``considered_improvement: 0.0``). ``export(model)``, if given, is the model saved (its
    input normalisation attached). Returns ``(history DataFrame, epochs run by this call)``.

    Parameters
    ----------
    model : keras.Model
        A compiled model (:func:`compile_apnet`).
    train_data, validation_data : keras.utils.PyDataset
        Training and validation batches (:func:`fold_batches`).
    run_dir : str or Path
        Folder of the run: ``model.keras``, ``history.csv`` and the training backup.
    epochs : int
        Total number of epochs (those already completed included).
    monitor : str
        Logged metric that selects the kept epoch (:data:`APNET_MONITOR`, :data:`CLASSIFIER_MONITOR`).
    verbose : int
        Keras ``fit`` verbosity.
    early_stopping : int, optional
        Patience in epochs; None: no early stopping.
    export : callable, optional
        ``export(model)`` -> the model to save as ``model.keras``.

    Returns
    -------
    history : pandas.DataFrame
        One row per completed epoch (``history.csv``).
    epochs_run : int
        Epochs run by this call.
    """
    return _fit_resumable(model, train_data, run_dir, epochs, validation_data=validation_data, monitor=monitor,
                          keep_best="model", early_stopping=early_stopping, verbose=verbose, export=export)


def training_settings(model_name, config):
    """Batch size, normaliser, last-layer initialisation and early stopping of ``model_name``.

    The authors' configs (``experiments/<Dataset>/<Model>/config.json`` of their repository)
    differ per model; a dataset config of ``apnet/configs`` holds them as:

    * ``batch_size`` -- APNet's ``B`` (Table 2); ``baseline_batch_size[model]`` for a baseline
      (the authors': 128 for SB-CNN and Att-CRNN, 32 for the OpenL3 MLP), ``batch_size`` if
      the config names none;
    * ``normalizer[model]`` -- ``"minmax"`` (global min-max to [-1, 1] over the training
      split) or ``"standard"`` (per mel band: zero mean, unit variance); ``"minmax"`` if the
      config names none. APNet must be ``"minmax"``: its decoder ends in a tanh;
    * ``init_last_layer`` -- APNet only: start the last layer from
      :class:`apnet.initializers.PrototypeClassKernel` (True, the authors' UrbanSound8K run)
      or from Glorot uniform (False, their other datasets); True if absent;
    * ``early_stopping`` -- patience in epochs (the authors' 100) or None (off, the default).

    Parameters
    ----------
    model_name : str
        ``"apnet"`` or a baseline of :data:`MODELS`.
    config : dict
        A dataset config of ``apnet/configs``.

    Returns
    -------
    dict with ``batch_size`` (int), ``normalizer`` (str), ``init_last_layer`` (bool, None for
    a baseline) and ``early_stopping`` (int or None).

    Raises
    ------
    ValueError
        An unknown model or normaliser, a normaliser other than ``"minmax"`` for APNet, a
        batch size or patience that is not a positive integer.
    """
    if model_name not in MODELS:
        raise ValueError(f"unknown model {model_name!r}; choose one of {list(MODELS)}")
    batch_size = config.get("batch_size")
    if model_name != "apnet":
        batch_size = (config.get("baseline_batch_size") or {}).get(model_name, batch_size)
    batch_size = require(positive_int, batch_size, f"{model_name}: the batch size", strict=True)
    normalizer = (config.get("normalizer") or {}).get(model_name, "minmax")
    if normalizer not in NORMALIZERS:
        raise ValueError(f"{model_name}: `normalizer` must be one of {list(NORMALIZERS)}; received {normalizer!r}")
    if model_name == "apnet" and normalizer != "minmax":
        raise ValueError("apnet: `normalizer` must be 'minmax' (its decoder reconstructs the input with a tanh, "
                         f"in [-1, 1]); received {normalizer!r}")
    init_last_layer = None
    if model_name == "apnet":
        init_last_layer = config.get("init_last_layer", True)
        if not isinstance(init_last_layer, bool):
            raise ValueError(f"`init_last_layer` must be true or false; received {init_last_layer!r}")
    return {"batch_size": int(batch_size), "normalizer": normalizer, "init_last_layer": init_last_layer,
            "early_stopping": _check_patience(config.get("early_stopping"))}


def make_scaler(normalizer):
    """An unfitted scaler for a :data:`NORMALIZERS` name: ``MinMaxScaler((-1, 1))`` or ``StandardScaler()``.

    Parameters
    ----------
    normalizer : {"minmax", "standard"}

    Returns
    -------
    scaler : audiodata.features.MinMaxScaler or audiodata.features.StandardScaler
        Not fitted.

    Raises
    ------
    ValueError
        ``normalizer`` is not one of :data:`NORMALIZERS`.
    """
    if normalizer == "minmax":
        return MinMaxScaler(feature_range=(-1.0, 1.0))
    if normalizer == "standard":
        return StandardScaler()
    raise ValueError(f"`normalizer` must be one of {list(NORMALIZERS)}; received {normalizer!r}")


def build_model(model_name, input_shape, n_classes, config):
    """APNet with the config's ``n_prototypes``/``n_filters``/``kernel_size``, or a baseline.

    APNet's last layer starts from :class:`apnet.initializers.PrototypeClassKernel` when
    ``config["init_last_layer"]`` is true (or absent) and from Glorot uniform when it is
    false (:func:`training_settings`).

    A baseline gets the keyword arguments of ``config["baseline_options"][model_name]``
    (e.g. ``{"sb_cnn": {"batch_norm_momentum": 0.9}}``), if the config has any.

    Parameters
    ----------
    model_name : str
        ``"apnet"`` or a baseline of :data:`MODELS`.
    input_shape : tuple of int
        ``(T, F)``, the shape of one input.
    n_classes : int
    config : dict
        A dataset config (``n_prototypes``, ``n_filters``, ``kernel_size``, ``init_last_layer``,
        ``baseline_options``).

    Returns
    -------
    model : keras.Model
        Not compiled.

    Raises
    ------
    ValueError
        ``config["init_last_layer"]`` is not a bool (APNet) or the model is unknown.
    """
    if model_name == "apnet":
        init_last_layer = config.get("init_last_layer", True)
        if not isinstance(init_last_layer, bool):
            raise ValueError(f"`init_last_layer` must be true or false; received {init_last_layer!r}")
        dense = PrototypeClassKernel(noise=0.1) if init_last_layer else "glorot_uniform"
        return APNet(input_shape=input_shape, n_classes=n_classes, n_prototypes=int(config["n_prototypes"]),
                     n_filters=int(config["n_filters"]), kernel_size=int(config.get("kernel_size", 5)),
                     dense_kernel_initializer=dense)
    if model_name not in MODELS:
        raise ValueError(f"unknown model {model_name!r}; choose one of {list(MODELS)}")
    options = dict((config.get("baseline_options") or {}).get(model_name) or {})
    return build_baseline(model_name, input_shape, n_classes, **options)


def feature_set(model_name, config):
    """Feature set a model is trained on: ``config['features']`` for APNet, else the baseline's.

    Parameters
    ----------
    model_name : str
        ``"apnet"`` or a baseline of :data:`MODELS`.
    config : dict
        A dataset config (``features``, optional ``baseline_features``).

    Returns
    -------
    str
        Name of the feature set.
    """
    if model_name == "apnet":
        return config["features"]
    return config.get("baseline_features", {}).get(model_name, BASELINE_FEATURES[model_name])


def predict_classes(model, data):
    """Class probabilities of ``model`` (its first output) over a :class:`FeatureBatches`.

    Parameters
    ----------
    model : keras.Model
        A model whose first output is the class probabilities.
    data : FeatureBatches or np.ndarray [shape=(n, T, F)]

    Returns
    -------
    probabilities : np.ndarray [shape=(n, n_classes)]
    """
    if len(model.outputs) > 1:
        model = keras.Model(model.inputs[0], model.outputs[0])
    return model.predict(data, verbose=0)


def train_fold(config, dataset, fold, run_dir, *, model_name="apnet", data_dir=None, cache_dir=None, verbose=2,
               progress=False, distribute=False):
    """Train and test one model on one fold, as Section 4.4 and the authors' configs prescribe; resumable.

    Steps: read the model's settings (:func:`training_settings`: batch size, normaliser,
    last-layer initialisation, early stopping); seed everything with ``config['seed']``;
    load the fold (:func:`load_fold`); fit the model's scaler
    (:class:`audiodata.features.MinMaxScaler` to ``[-1, 1]`` or the per-band
    :class:`audiodata.features.StandardScaler`) on the training rows only and save it as
    ``run_dir/scaler.json`` (read it back with :func:`load_scaler`); build the model
    (:func:`build_model`); compile it (:func:`compile_apnet` for APNet, cross-entropy for
    the baselines) with Adam(``learning_rate``); fit for ``epochs`` with
    :func:`fit_resumable`, stopping early if ``early_stopping`` says so; reload the best
    ``model.keras`` and compute the test accuracy. An interrupted run resumes where it
    stopped and ends with the same weights as an uninterrupted one; a NaN/Inf loss raises
    :class:`audioruns.errors.TrainingDivergedError` (nothing of that epoch is saved).

    Parameters
    ----------
    config : dict
        ``seed``, ``features``, ``n_prototypes``, ``n_filters``, ``kernel_size``, ``alpha``,
        ``beta``, ``gamma``, ``batch_size``, ``learning_rate``, ``epochs`` and, optionally,
        ``baseline_batch_size``, ``normalizer``, ``init_last_layer``, ``early_stopping``,
        ``baseline_features``, ``baseline_options`` (see ``apnet/configs``).
    dataset : str
    fold : int
    run_dir : str or Path
        Output folder of this run.
    model_name : str
        ``"apnet"`` or a baseline of :data:`MODELS`.
    data_dir, cache_dir : str or Path, optional
        Passed to :func:`load_fold`.
    verbose : int
        Keras ``fit`` verbosity.
    progress : bool
        Passed to :func:`load_fold`: split sizes, the small-dataset warning and a feature
        extraction progress bar on stderr (the command lines), instead of silence.
    distribute : bool
        Build, compile and fit the model data-parallel over every visible device
        (:func:`audioruns.distribute.data_parallel`; the batch size must be a multiple of the
        device count); the test predictions run on one device.

    Returns
    -------
    results : dict
        ``test_accuracy``, ``best_val_accuracy``, ``best_epoch``, ``n_params``, ``epochs``
        (completed), ``epochs_this_run``, ``seconds`` (sum over epochs),
        ``seconds_per_epoch``, split sizes, the feature set and shape, the settings of
        :func:`training_settings` (``batch_size``, ``normalizer``, ``init_last_layer``,
        ``early_stopping``), ``stopped_early`` (bool) and ``stopped_epoch`` (1-based epoch
        after which the patience ran out, or None) and ``distribution``
        (:meth:`audioruns.distribute.DeviceInfo.as_dict`: backend, strategy, device count and names).

    Raises
    ------
    audiodata.errors.ParameterError
        A bad setting: ``n_prototypes`` < 1 (APNet), ``seed`` outside ``[0, 2**32 - 1]``, or
        what :func:`training_settings` refuses.
    """

    if model_name == "openl3_mlp":
        raise ParameterError(
            "openl3_mlp needs L3 embeddings from the official OpenL3 weights (openl3_audio_mel256_env.h5 / "
            "openl3_audio_mel256_music.h5), which this package cannot download: build the network with "
            "apnet.baselines.openl3_audio_embedding, load them with apnet.baselines.load_openl3_weights, and train "
            "apnet.baselines.openl3_mlp on the embeddings (see docs/apnet_baselines.md)")
    try:
        settings = training_settings(model_name, config)
    except ValueError as err:
        raise ParameterError(str(err)) from None
    if model_name == "apnet" or "n_prototypes" in config:
        require(positive_int, config.get("n_prototypes"), "n_prototypes")
    seed = require(seed_type, config.get("seed"), "seed")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    features = feature_set(model_name, config)
    data = load_fold(dataset, fold, features, data_dir=data_dir, cache_dir=cache_dir, progress=progress)
    scaler = make_scaler(settings["normalizer"]).fit(data.features, rows=data.rows["train"])
    scaler.save(run_dir / "scaler.json")

    batches = fold_batches(data, settings["batch_size"], scaler=scaler,
                           targets="apnet" if model_name == "apnet" else "classifier", seed=seed)
    with data_parallel(distribute) as devices:
        if distribute:
            check_batch_size(settings["batch_size"], devices.n_devices)
            if progress and devices.strategy == "mirrored" and devices.n_devices > 1 and model_name != "apnet":
                print(f"warning: tf.distribute.MirroredStrategy computes the batch statistics of "
                      f"BatchNormalization on each device's {settings['batch_size'] // devices.n_devices} rows, "
                      f"so {model_name} trains differently from one device (docs/distributed.md); "
                      "KERAS_BACKEND=jax keeps the global batch", file=sys.stderr, flush=True)
        model = build_model(model_name, data.input_shape, len(data.classes), config)
        if model_name == "apnet":
            compile_for_run(model, config)
            monitor = APNET_MONITOR
        else:
            model.compile(optimizer=keras.optimizers.Adam(learning_rate=float(config["learning_rate"])),
                          loss="categorical_crossentropy", metrics=["accuracy"])
            monitor = CLASSIFIER_MONITOR
        history, epochs_run = fit_resumable(model, batches["train"], batches["validation"], run_dir,
                                            int(config["epochs"]), monitor, verbose=verbose,
                                            early_stopping=settings["early_stopping"],
                                            export=lambda trained: attach_scaler(trained, scaler))

    best, _ = load_scaled_model(run_dir / "model.keras")  # the trained model, on scaled inputs
    probabilities = predict_classes(best, batches["test"])
    labels = data.targets["test"].argmax(axis=1)
    test_accuracy = accuracy(probabilities, labels)
    seconds = float(history["seconds"].sum()) if "seconds" in history else 0.0
    best_row = history.loc[history[monitor].idxmax()] if monitor in history and len(history) else None
    stopped = early_stopping_state(history, monitor, settings["early_stopping"]).stopped_epoch
    return {
        "test_accuracy": test_accuracy,
        "best_val_accuracy": None if best_row is None else float(best_row[monitor]),
        "best_epoch": None if best_row is None else int(best_row["epoch"]) + 1,
        "n_params": int(best.count_params()),
        "epochs": int(len(history)),
        "epochs_this_run": int(epochs_run),
        "seconds": seconds,
        "seconds_per_epoch": seconds / len(history) if len(history) else None,
        **settings,
        "stopped_early": stopped is not None,
        "stopped_epoch": None if stopped is None else stopped + 1,
        "features": features,
        "input_shape": list(data.input_shape),
        "n_train": int(len(data.rows["train"])),
        "n_validation": int(len(data.rows["validation"])),
        "n_test": int(len(data.rows["test"])),
        "distribution": devices.as_dict(),
    }
