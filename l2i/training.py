"""Training L2I: the classifier f, then the interpreter post-hoc or by design (Sec. III-B, III-C, IV-B).

* :func:`load_fold` -- the cached log-mel (input of f) and log-magnitude (NMF target)
  features of one fold, with targets (NaN where a label is not annotated);
* :class:`L2IBatches` -- a :class:`keras.utils.PyDataset` reading both caches by row;
* :class:`L2ITrainer` -- the model that is fitted: the interpreter, plus f's output
  when f is trained too, with the loss of the chosen mode (:data:`MODES`);
* :func:`train_classifier`, :func:`train_interpreter` -- one fold end to end, resumable;
* :func:`validation_split`, :class:`ValidationFidelity` -- the optional validation split of the
  interpreter (``config["validation_fraction"]``) and the fidelity that selects its checkpoint;
* :func:`interpreter_scores`, :func:`classifier_scores` -- fidelity and the dataset's metric, as
  ``evaluate.py`` computes them (:func:`l2i.metrics.fidelity_scores`, :func:`l2i.metrics.task_scores`).

Loss scales. Tables II and III weight ``L_NMF`` and ``||H||_1`` by ``alpha`` and
``beta``. The values the paper reports for ``L_NMF`` (0.028-0.08, Tables VI-VII) are
per-bin means, not the sum of Eq. 3 over 513 x 431 bins, so we use the **mean**
squared error over frequency and time and the **mean** absolute activation, each
averaged over the batch; with sums, the same ``alpha``, ``beta`` would drown the
fidelity term: :func:`l2i.losses.nmf_reconstruction_loss` with ``reduction="mean"`` (the
sum of Eq. 3 is ``reduction="sum"``, ``F * T`` times our term).
"""
import dataclasses
import sys
from pathlib import Path

import keras
import numpy as np
import yaml

from audiodata.features import StandardScaler
from audioruns.batches import EpochOrderedBatches
from audioruns.checkpoints import load_model_file, save_model_atomic
from audioruns.fit import best_checkpoint  # noqa: F401  (re-exported: l2i.training.best_checkpoint)
from audioruns.distribute import check_batch_size, data_parallel
from audioruns.distribute import predict as _predict
from audioruns.distribute import predict_on_batch as _predict_on_batch
from audioruns.fit import fit_resumable as _fit_resumable
from audioruns.folds import Fold
from audioruns.runs import run_directory as _run_directory
from audioruns.folds import load_fold as _load_fold
from audioruns.runs import write_results
from l2i.classifier import KumarCNN
from l2i.losses import masked_binary_crossentropy, nmf_reconstruction_loss
from l2i.metrics import fidelity_scores, task_scores
from l2i.nmf import load_dictionary
from l2i.runs import config_path
from l2i.trainer import MODES, L2ITrainer

__all__ = [
    "MODES",
    "L2IBatches",
    "L2ITrainer",
    "FoldFeatures",
    "load_fold",
    "masked_binary_crossentropy",
    "fit_resumable",
    "validation_split",
    "selection_metric",
    "ValidationFidelity",
    "best_checkpoint",
    "train_classifier",
    "train_interpreter",
    "interpreter_scores",
    "classifier_scores",
    "run_directory",
    "load_config",
    "write_results",
    "evaluate_interpreter",
]


def run_directory(output, dataset, fold, seed):
    """``<output>/l2i/<dataset>/fold<N>/seed<S>`` (created; :func:`audioruns.runs.run_directory`).

    Parameters
    ----------
    output : str or Path
        Root of the runs.
    dataset : str
    fold : int
    seed : int

    Returns
    -------
    run_dir : Path
    """
    return _run_directory(output, "l2i", dataset, fold, seed)


# --------------------------------------------------------------------------- data


class FoldFeatures(Fold):
    """A :class:`audioruns.folds.Fold` whose input is the log-mel (``mel``) and NMF target the log-magnitude."""

    @property
    def mel(self):
        """Log-mel features ``(n, T, n_mels)``, the input of f."""
        return self.features

    @property
    def logmag(self):
        """Log-magnitude features ``(n, T, F)``, the target of the NMF reconstruction."""
        return self.others["logmag"]


def load_fold(dataset, fold, *, data_dir=None, cache_dir=None, n_jobs=-1, progress=False):
    """Split ``dataset`` for ``fold`` and extract (or read from the cache) ``mel`` and ``logmag``.

    ESC-50 / ESC-10: test fold ``fold``, train on all other folds, no validation
    (Sec. IV-A1, 1600 training clips per ESC-50 fold). SONYC-UST and OpenMIC-2018:
    their official partition (``fold`` must be 1). Targets are one-hot or multi-hot
    float32, with NaN where ``label_mask`` says a label is not annotated (OpenMIC).
    See :func:`audioruns.folds.load_fold` for the parameters (``progress``: split sizes and a
    progress bar, for the command lines).

    Parameters
    ----------
    dataset : str
    fold : int
    data_dir, cache_dir : str or Path, optional
        Where the datasets and the feature cache are.
    n_jobs : int
        Parallel feature-extraction jobs (-1: all cores).
    progress : bool

    Returns
    -------
    FoldFeatures
    """
    data = _load_fold(dataset, fold, "mel", others=("logmag",), validation=False, mask_unlabelled=True,
                      data_dir=data_dir, cache_dir=cache_dir, n_jobs=n_jobs, progress=progress)
    return FoldFeatures(**{item.name: getattr(data, item.name) for item in dataclasses.fields(data)})


class L2IBatches(EpochOrderedBatches):
    """Batches read by row numbers from the memory-mapped ``mel`` and ``logmag`` caches.

    ``x`` is the log-mel ``(batch, T, n_mels)`` (raw: the classifier normalises it).
    What a batch holds depends on ``targets``:

    * ``"l2i"``: ``(x, y)`` with ``y = {"labels": (batch, C), "spectrogram": (batch, F, T),
      "teacher": (batch, C)}``, the log-magnitude transposed to frequency-first as ``W H`` is;
    * ``"classifier"``: ``(x, labels)``;
    * ``"none"``: ``(x,)`` only (prediction).

    Within a batch the rows are read in increasing order (faster on a memory map) and the
    targets follow them. With ``shuffle`` the order is a permutation drawn from
    ``(seed, epoch)`` so that a resumed run sees the same batches as an uninterrupted one
    (see :class:`audioruns.batches.EpochOrderedBatches`).

    Args:
        mel: log-mel feature array ``(n, T, n_mels)`` (e.g. a memory map), always read.
        logmag: log-magnitude feature array ``(n, T, F)``; needed with ``targets="l2i"``,
            may be None otherwise.
        rows: int array of the rows of ``mel``/``logmag`` to serve (not empty).
        labels: ``(len(rows), C)`` targets (NaN = not annotated); may be None with
            ``targets="none"``.
        batch_size: positive int (the last batch may be smaller).
        teacher: ``(len(rows), C)`` outputs of the frozen f (post-hoc), or None (zeros).
        targets: ``"l2i"``, ``"classifier"`` or ``"none"`` (see above).
        shuffle, seed: reshuffle every epoch from this seed.
        **kwargs: :class:`keras.utils.PyDataset` arguments (``workers``, ...).

    Raises:
        ValueError: an unknown ``targets``, a ``batch_size`` that is not a positive int,
            no rows, ``labels``/``teacher`` not as long as ``rows``, or ``targets="l2i"``
            without ``logmag``.
    """

    def __init__(self, mel, logmag, rows, labels, batch_size, teacher=None, targets="l2i", shuffle=False, seed=0,
                 **kwargs):
        if targets not in ("l2i", "classifier", "none"):
            raise ValueError(f"`targets` must be 'l2i', 'classifier' or 'none'; received targets={targets!r}")
        for name, array in (("labels", labels), ("teacher", teacher)):
            if array is not None and len(array) != len(rows):
                raise ValueError(f"{name} ({len(array)}) and rows ({len(rows)}) differ in length")
        if targets == "l2i" and logmag is None:
            raise ValueError("targets='l2i' needs the logmag features")
        self.mel, self.logmag = mel, logmag
        self.labels = None if labels is None else np.asarray(labels, dtype=np.float32)
        self.teacher = None if teacher is None else np.asarray(teacher, dtype=np.float32)
        self.targets = targets
        super().__init__(rows, batch_size, shuffle=shuffle, seed=seed, **kwargs)

    def _batch(self, positions, rows):
        x = np.asarray(self.mel[rows], dtype=np.float32)
        if self.targets == "none":
            return (x,)
        labels = self.labels[positions]
        if self.targets == "classifier":
            return x, labels
        spectrogram = np.ascontiguousarray(np.asarray(self.logmag[rows], dtype=np.float32).transpose(0, 2, 1))
        teacher = self.teacher[positions] if self.teacher is not None else np.zeros_like(labels)
        return x, {"labels": labels, "spectrogram": spectrogram, "teacher": teacher}


# --------------------------------------------------------------------------- fitting


def fit_resumable(model, train_data, run_dir, epochs, *, verbose=2, validation=None):
    """:func:`audioruns.fit.fit_resumable` for L2I: the last epoch, or the best of a validation callback.

    With ``validation``, a callback that adds ``validation.monitor`` to each epoch's logs
    (:class:`ValidationFidelity`), the weights of the epoch with the highest value (the first
    one on ties; NaN never counts) are kept in ``run_dir/best.weights.h5`` and ``best.json``
    (:func:`best_checkpoint`) and ``model`` ends with them (with none, the last epoch's).
    Everything else (``backup/``, ``history.csv``, bit-identical resume, divergence) is
    :func:`audioruns.fit.fit_resumable`'s.

    Parameters
    ----------
    model : keras.Model
        A compiled model.
    train_data : keras.utils.PyDataset
        Training batches (:class:`L2IBatches`).
    run_dir : str or Path
        Folder of the run.
    epochs : int
        Total number of epochs (those already completed included).
    verbose : int
        Keras ``fit`` verbosity.
    validation : ValidationFidelity, optional
        Callback that logs ``validation.monitor``; None: keep the last epoch.

    Returns
    -------
    history : list of dict
        The rows of ``history.csv``, every value a float.
    epochs_run : int
        Epochs run by this call.
    """
    options = {} if validation is None else {"callbacks": [validation], "monitor": validation.monitor,
                                             "keep_best": "weights"}
    history, epochs_run = _fit_resumable(model, train_data, run_dir, epochs, verbose=verbose, **options)
    rows = [{key: float(value) for key, value in row.items()} for row in history.to_dict("records")]
    return rows, epochs_run


# --------------------------------------------------------------------------- validation split


#: Second entry of the seed sequence of :func:`validation_split` (the batch order uses ``[seed, epoch]``).
_SPLIT_STREAM = 7919


def validation_split(labels, fraction, *, seed, multilabel=False):
    """Positions of a validation split carved from training clips, and of the clips left for training.

    Single-label (one-hot ``labels``): stratified, ``round(fraction * n_c)`` clips of each
    class ``c`` (half up; at most ``n_c - 1``, so every class keeps a training clip);
    multi-label: ``round(fraction * n)`` clips drawn at random. The draw depends only on
    ``seed`` (the run's), ``labels`` and ``fraction``.

    Parameters
    ----------
    labels : array (n, C)
        Targets of the training clips (NaN: not annotated).
    fraction : float in (0, 1)
    seed : int
    multilabel : bool

    Returns
    -------
    train, validation : sorted int arrays
        Disjoint positions into ``labels``, together ``0 .. n-1``.

    Raises
    ------
    ValueError
        ``fraction`` outside (0, 1), or a split with no validation clip.
    """
    labels = np.asarray(labels, dtype=np.float64)
    fraction = float(fraction)
    if not 0 < fraction < 1:
        raise ValueError(f"`fraction` must be in (0, 1); received fraction={fraction!r}")
    n = len(labels)
    rng = np.random.default_rng([int(seed), _SPLIT_STREAM])
    if multilabel:
        groups = [np.arange(n)]
    else:
        classes = np.argmax(np.nan_to_num(labels, nan=-np.inf), axis=1)
        groups = [np.flatnonzero(classes == c) for c in range(labels.shape[1])]
    held = []
    for members in groups:
        order = rng.permutation(members)
        k = min(int(np.floor(fraction * len(members) + 0.5)), len(members) - 1)
        held.append(order[:max(k, 0)])
    validation = np.sort(np.concatenate(held)).astype(np.int64) if held else np.zeros(0, np.int64)
    if len(validation) == 0:
        raise ValueError(f"validation fraction {fraction} of {n} training clips leaves no validation clip")
    train = np.setdiff1d(np.arange(n), validation)
    return train, validation


def _carve_validation(data, fraction, seed):
    """``data`` with ``rows``/``targets`` ``"train"`` split into ``"train"`` and ``"validation"``."""
    keep, held = validation_split(data.targets["train"], fraction, seed=seed, multilabel=data.multilabel)
    rows, targets = dict(data.rows), dict(data.targets)
    rows["train"], rows["validation"] = data.rows["train"][keep], data.rows["train"][held]
    targets["train"], targets["validation"] = data.targets["train"][keep], data.targets["train"][held]
    return dataclasses.replace(data, rows=rows, targets=targets)


def selection_metric(dataset, multilabel):
    """Key of :func:`interpreter_scores` that selects the checkpoint: the dataset's fidelity metric.

    ``fidelity_top1`` (single-label), ``fidelity_weighted_f1`` (OpenMIC-2018),
    ``fidelity_macro_auprc`` (SONYC-UST and other multi-label data, the authors' metric).

    Parameters
    ----------
    dataset : str
    multilabel : bool

    Returns
    -------
    str
    """
    if not multilabel:
        return "fidelity_top1"
    return "fidelity_weighted_f1" if dataset == "openmic" else "fidelity_macro_auprc"


class ValidationFidelity(keras.callbacks.Callback):
    """Adds the fidelity of the interpreter on validation clips to each epoch's logs as ``val_<metric>``.

    The model is an :class:`L2ITrainer`; ``g`` is its ``"interpreter"`` output and ``f``
    its ``"classifier"`` output (by design) or ``teacher`` (post-hoc: f's fixed outputs on
    the validation clips, in the order of ``batches``). The metric is
    :func:`selection_metric`'s, computed by :func:`interpreter_scores`.

    Args:
        batches: :class:`L2IBatches` of the validation clips (``targets="none"``, no shuffle).
        teacher: ``(n, C)`` outputs of the frozen f, or None.
        dataset, classes, multilabel: as for :func:`interpreter_scores`.
    """

    def __init__(self, batches, teacher=None, dataset=None, classes=None, multilabel=False):
        super().__init__()
        self.batches = batches
        self.teacher = None if teacher is None else np.asarray(teacher)
        self.dataset, self.classes, self.multilabel = dataset, classes, multilabel
        self.metric = selection_metric(dataset, multilabel)
        self.monitor = f"val_{self.metric}"

    def score(self, model=None):
        model = model or self.model
        g_probs, f_probs = [], []
        for i in range(len(self.batches)):
            out = _predict_on_batch(model, self.batches[i][0])
            g_probs.append(np.asarray(out["interpreter"]))
            if self.teacher is None:
                f_probs.append(np.asarray(out["classifier"]))
        g = np.concatenate(g_probs)
        f = self.teacher if self.teacher is not None else np.concatenate(f_probs)
        ks = (1,) if not self.multilabel else (1, 5)
        scores = interpreter_scores(g, f, self.multilabel, ks=ks, dataset=self.dataset, classes=self.classes)
        return float(scores[self.metric])

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[self.monitor] = self.score()


# --------------------------------------------------------------------------- scores


def classifier_scores(labels, probabilities, multilabel, *, prefix="", dataset=None, classes=None):
    """The dataset's classification metric (:func:`l2i.metrics.task_scores`, what ``evaluate.py`` reports).

    Accuracy (multi-class); weighted F1 (OpenMIC-2018); macro/micro AUPRC over the annotated
    labels (SONYC-UST and other multi-label data). ``classes`` default to ``0 .. C-1``.

    Parameters
    ----------
    labels : np.ndarray [shape=(n, C)]
        One-hot or multi-hot targets (NaN: not annotated).
    probabilities : np.ndarray [shape=(n, C)]
    multilabel : bool
    prefix : str
        Prefix of the keys.
    dataset : str, optional
        Chooses the metric and the ignored classes.
    classes : sequence, optional
        Class names.

    Returns
    -------
    dict
        Metric name (with ``prefix``) -> float.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    classes = tuple(classes) if classes is not None else tuple(range(probabilities.shape[1]))
    return task_scores(dataset, classes, multilabel, labels, probabilities, prefix=prefix)


def interpreter_scores(interpreter_probs, classifier_probs, multilabel, *, ks=(1, 5), dataset=None, classes=None):
    """Fidelity of the interpreter to the classifier (Sec. IV-C), as ``evaluate.py`` computes it.

    :func:`l2i.metrics.fidelity_scores` with the keys prefixed by ``fidelity_``: top-k
    (multi-class); the authors' AUPRCs and max-F1, ours with suffix ``_ap`` (SONYC-UST,
    'non-machinery-impact' left out as in evaluation); weighted F1 (OpenMIC-2018).
    ``dataset``/``classes`` choose the metric and the ignored classes (default: a generic
    multi-label dataset, thresholds 0.5, nothing ignored).

    Parameters
    ----------
    interpreter_probs : np.ndarray [shape=(n, C)]
        Output of the interpreter g.
    classifier_probs : np.ndarray [shape=(n, C)]
        Output of the classifier f.
    multilabel : bool
    ks : sequence of int
        The k of the top-k fidelities (multi-class).
    dataset : str, optional
    classes : sequence, optional

    Returns
    -------
    dict
        ``fidelity_<key>`` -> float.
    """
    g = np.asarray(interpreter_probs, dtype=np.float64)
    f = np.asarray(classifier_probs, dtype=np.float64)
    classes = tuple(classes) if classes is not None else tuple(range(f.shape[1]))
    return {f"fidelity_{k}": v for k, v in fidelity_scores(dataset, classes, multilabel, f, g, ks=ks).items()}


# --------------------------------------------------------------------------- one fold end to end


def _seconds(history):
    return float(sum(row.get("seconds", 0.0) for row in history))


def train_classifier(config, dataset, fold, run_dir, *, data_dir=None, cache_dir=None, verbose=2, progress=False,
                     distribute=False):
    """Train the classifier f (:class:`KumarCNN`) from scratch on one fold; resumable.

    The paper fine-tunes AudioSet-pretrained weights (Sec. IV-B1); without them we
    train from scratch with Adam. The per-band mean and deviation of the training
    log-mels go into the model's input normalisation. Writes ``run_dir/classifier.keras``,
    ``history.csv``, ``backup/``.

    Parameters
    ----------
    config : dict
        The ``classifier`` section of the dataset's config: ``learning_rate``,
        ``epochs``, ``batch_size``, ``dropout``, ``pooling``; plus ``seed``.
    dataset, fold : str, int
    run_dir : str or Path
    data_dir, cache_dir, progress : passed to :func:`load_fold` (``progress``: split sizes,
        small-dataset warning and extraction progress bar on stderr).
    verbose : int
        Keras ``fit`` verbosity.
    distribute : bool
        Build, compile, fit and test the model data-parallel over every visible device
        (:func:`audioruns.distribute.data_parallel`; ``batch_size`` must be a multiple of the device count).

    Returns
    -------
    results : dict
        Test accuracy (or AUPRC), ``n_params``, ``epochs``, ``seconds``, split sizes, ``distribution``
        (:meth:`audioruns.distribute.DeviceInfo.as_dict`).

    Raises
    ------
    audioruns.errors.TrainingDivergedError
        A loss or weight became NaN/Inf (:func:`fit_resumable`); no ``classifier.keras`` is written.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed = int(config["seed"])
    keras.utils.set_random_seed(seed)
    data = load_fold(dataset, fold, data_dir=data_dir, cache_dir=cache_dir, progress=progress)
    batch_size = int(config["batch_size"])
    with data_parallel(distribute) as devices:
        if distribute:
            check_batch_size(batch_size, devices.n_devices)
        model = _fresh_classifier({"classifier": config}, data)
        loss = masked_binary_crossentropy if data.multilabel else "categorical_crossentropy"
        model.compile(optimizer=keras.optimizers.Adam(float(config["learning_rate"])), loss=loss,
                      metrics=None if data.multilabel else ["accuracy"])
        train = L2IBatches(data.mel, None, data.rows["train"], data.targets["train"], batch_size,
                           targets="classifier", shuffle=True, seed=seed)
        history, epochs_run = fit_resumable(model, train, run_dir, int(config["epochs"]), verbose=verbose)
        save_model_atomic(model, run_dir / "classifier.keras")
        test = L2IBatches(data.mel, None, data.rows["test"], None, batch_size, targets="none")
        probabilities = _predict(model, test)
    results = classifier_scores(data.targets["test"], probabilities, data.multilabel, prefix="test_",
                                dataset=dataset, classes=data.classes)
    results.update({
        "n_params": int(model.count_params()),
        "epochs": len(history),
        "epochs_this_run": int(epochs_run),
        "seconds": _seconds(history),
        "n_train": int(len(data.rows["train"])),
        "n_test": int(len(data.rows["test"])),
        "distribution": devices.as_dict(),
    })
    return results


def train_interpreter(config, dataset, fold, run_dir, *, mode="posthoc", theta="att", classifier_path=None,
                      dictionary_path=None, data_dir=None, cache_dir=None, verbose=2, progress=False,
                      distribute=False):
    """Train the L2I interpreter on one fold (post-hoc or by design); resumable.

    * ``"posthoc"``: loads the trained classifier (``classifier_path``), freezes it,
      pre-computes its outputs on the training clips and fits Psi and Theta with the
      loss of Eq. 4 (``config["posthoc"]``: alpha, beta, epochs; Table II).
    * ``"bydesign"`` / ``"bydesign_nopred"``: builds a new classifier (same
      architecture, input normalisation from the training clips) and fits it jointly
      with the interpreter (``config["bydesign"]``: gamma, alpha, beta, epochs; Table III).

    Writes ``run_dir/interpreter.keras`` (and ``classifier.keras`` for the by-design
    modes), ``history.csv``, ``backup/``.

    Checkpoint: the last epoch's weights by default. With ``config["validation_fraction"]``
    (a float in (0, 1); None or 0: off) a validation split is carved from the training clips
    (:func:`validation_split`: stratified by class for single-label data, drawn from the
    run's seed), the interpreter is trained on the rest, the validation fidelity
    (:func:`selection_metric`) is logged in ``history.csv`` as ``val_<metric>`` and the weights
    of the best epoch are kept (:func:`fit_resumable`; ``best.weights.h5``, ``best.json``).
    Post-hoc, f was trained on all training clips, validation ones included (fidelity only
    asks that the interpreter agree with f on clips it was not fitted on); by design, f's
    input normalisation comes from the remaining training clips.

    Parameters
    ----------
    config : dict
        A whole dataset config (``seed``, ``batch_size``, ``learning_rate``,
        ``interpreter``, ``posthoc``, ``bydesign``).
    dataset : str
    fold : int
    run_dir : str or Path
        Output folder of this run.
    mode : one of :data:`MODES`
    theta : ``"att"`` or ``"max"``
    classifier_path : path of ``classifier.keras`` (needed post-hoc; by design it
        only provides the input normalisation, when given).
    dictionary_path : path of the dictionary ``.npy`` (:func:`l2i.nmf.save_dictionary`).
    data_dir, cache_dir, progress : passed to :func:`load_fold` (``progress``: split sizes,
        small-dataset warning and extraction progress bar on stderr, plus a line with the split
        carved by ``validation_fraction``).
    verbose : int
        Keras ``fit`` verbosity.
    distribute : bool
        Load or build f, build, compile and fit the interpreter data-parallel over every visible device
        (:func:`audioruns.distribute.data_parallel`; ``batch_size`` must be a multiple of the device
        count); the test scores are computed on one device.

    Returns
    -------
    results : dict
        ``distribution`` (:meth:`audioruns.distribute.DeviceInfo.as_dict`), ``accuracy`` (interpreter vs
        labels), ``classifier_accuracy``,
        ``fidelity_<key>`` for each key of :func:`l2i.metrics.fidelity_scores` (``fidelity_top1``/
        ``fidelity_top5``; ``fidelity_macro_auprc`` ... for SONYC-UST; ``fidelity_weighted_f1`` for OpenMIC),
        ``test_nmf_loss`` (mean squared error per bin), ``n_params`` (whole model),
        ``n_params_interpreter`` (Psi + Theta), ``epochs``, ``seconds``, ``checkpoint``
        (``"last_epoch"`` or ``"best_validation"``); with a validation split also
        ``validation_fraction``, ``n_validation``, ``validation_clips`` (clip ids),
        ``selection_metric`` (``val_<metric>``), ``selected_epoch`` (0-based, as in ``history.csv``;
        None when no epoch had a defined value: the last epoch is kept) and ``best_validation_fidelity``.

    Raises
    ------
    audioruns.errors.TrainingDivergedError
        A loss or weight became NaN/Inf (:func:`fit_resumable`); no ``interpreter.keras`` is written.
    audioruns.errors.ModelFileError
        ``classifier_path`` (or the run's backup) is missing, truncated or corrupt.
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}; received mode={mode!r}")
    if dictionary_path is None:
        raise ValueError("`dictionary_path` is required (learn one with experiments/l2i/learn_dictionary.py)")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed = int(config["seed"])
    keras.utils.set_random_seed(seed)
    data = load_fold(dataset, fold, data_dir=data_dir, cache_dir=cache_dir, progress=progress)
    fraction = config.get("validation_fraction")
    if fraction:
        data = _carve_validation(data, fraction, seed)
        if progress:
            print(f"validation_fraction {fraction}: train {len(data.rows['train']):,}, validation "
                  f"{len(data.rows['validation']):,} (carved from train), test {len(data.rows['test']):,} clips",
                  file=sys.stderr, flush=True)
    W, _ = load_dictionary(dictionary_path)
    if W.shape[0] != data.logmag.shape[2]:
        raise ValueError(f"{dictionary_path}: dictionary has {W.shape[0]} frequencies, the logmag features "
                         f"{data.logmag.shape[2]}")
    batch_size = int(config["batch_size"])
    hyper = config["posthoc" if mode == "posthoc" else "bydesign"]
    interpreter_kwargs = dict(config.get("interpreter", {}))
    if "hidden_layers" in interpreter_kwargs:
        interpreter_kwargs["hidden_layers"] = list(interpreter_kwargs["hidden_layers"])
    interpreter_kwargs["n_frames"] = int(data.logmag.shape[1])

    with data_parallel(distribute) as devices:
        if distribute:
            check_batch_size(batch_size, devices.n_devices)
        teacher = None
        if mode == "posthoc":
            if classifier_path is None:
                raise ValueError("post-hoc training needs `classifier_path` (train it with train_classifier.py)")
            classifier = load_model_file(classifier_path, compile=False)
            plain = L2IBatches(data.mel, None, data.rows["train"], None, batch_size, targets="none")
            teacher = _predict(classifier, plain)
        else:
            classifier = _fresh_classifier(config, data, classifier_path)
        trainer = L2ITrainer(classifier, W, mode=mode, alpha=float(hyper["alpha"]), beta=float(hyper["beta"]),
                             gamma=float(hyper.get("gamma", 1.0)), theta=theta,
                             interpreter_kwargs=interpreter_kwargs, name="l2i_trainer")
        trainer.compile(optimizer=keras.optimizers.Adam(float(config["learning_rate"])))
        train = L2IBatches(data.mel, data.logmag, data.rows["train"], data.targets["train"], batch_size,
                           teacher=teacher, shuffle=True, seed=seed)
        validation = None
        if fraction:
            held = L2IBatches(data.mel, None, data.rows["validation"], None, batch_size, targets="none")
            validation = ValidationFidelity(held, teacher=_predict(classifier, held) if mode == "posthoc" else None,
                                            dataset=dataset, classes=data.classes, multilabel=data.multilabel)
        history, epochs_run = fit_resumable(trainer, train, run_dir, int(hyper["epochs"]), verbose=verbose,
                                            validation=validation)

    interpreter = trainer.interpreter
    save_model_atomic(interpreter, run_dir / "interpreter.keras")
    if mode != "posthoc":
        save_model_atomic(classifier, run_dir / "classifier.keras")
    results = evaluate_interpreter(interpreter, classifier, data, split="test", batch_size=batch_size)
    shared = {id(w) for w in classifier.weights}
    results.update({
        "mode": mode,
        "theta": theta,
        "n_components": int(W.shape[1]),
        "n_params": int(trainer.count_params()),
        "n_params_interpreter": int(sum(np.prod(w.shape) for w in interpreter.weights if id(w) not in shared)),
        "epochs": len(history),
        "epochs_this_run": int(epochs_run),
        "seconds": _seconds(history),
        "final_train_loss": history[-1]["loss"] if history else None,
        "n_train": int(len(data.rows["train"])),
        "n_test": int(len(data.rows["test"])),
        "checkpoint": "best_validation" if fraction else "last_epoch",
        "distribution": devices.as_dict(),
    })
    if fraction:
        best = best_checkpoint(run_dir)
        clips = getattr(data.mel, "clips", None)
        held = data.rows["validation"]
        results.update({
            "validation_fraction": float(fraction),
            "n_validation": int(len(held)),
            "validation_clips": [str(c) for c in clips["clip_id"].to_numpy()[held]] if clips is not None
            else [int(r) for r in held],
            "selection_metric": validation.monitor,
            "selected_epoch": None if best is None else int(best["epoch"]),
            "best_validation_fidelity": None if best is None else float(best["value"]),
        })
    return results


def evaluate_interpreter(interpreter, classifier, data, *, split="test", batch_size=32):
    """Scores of ``interpreter`` and ``classifier`` on a split of :func:`load_fold`'s data.

    Parameters
    ----------
    interpreter : keras.Model
        Outputs ``(g, X_hat, ...)``.
    classifier : keras.Model
    data : FoldFeatures
    split : str
        Key of ``data.rows``.
    batch_size : int

    Returns
    -------
    dict
        :func:`classifier_scores` of the interpreter and (prefix ``classifier_``) of the classifier,
        :func:`interpreter_scores`, and ``test_nmf_loss`` (mean squared error per bin).
    """
    rows = data.rows[split]
    plain = L2IBatches(data.mel, None, rows, None, batch_size, targets="none")
    g_probs, f_probs, sq_err, count = [], [], 0.0, 0
    for i in range(len(plain)):
        (x,) = plain[i]
        g, x_hat, _ = interpreter.predict_on_batch(x)
        f = classifier.predict_on_batch(x)
        positions = plain._order[i * batch_size:(i + 1) * batch_size]
        positions = positions[np.argsort(rows[positions], kind="stable")]
        target = np.asarray(data.logmag[rows[positions]], dtype=np.float64).transpose(0, 2, 1)
        sq_err += float(nmf_reconstruction_loss(target, np.asarray(x_hat, dtype=np.float64))) * len(target)
        count += target.size
        g_probs.append(np.asarray(g))
        f_probs.append(np.asarray(f))
    g_probs, f_probs = np.concatenate(g_probs), np.concatenate(f_probs)
    labels = data.targets[split]
    task = {"dataset": getattr(data, "dataset", None), "classes": data.classes}
    results = classifier_scores(labels, g_probs, data.multilabel, **task)
    results.update(classifier_scores(labels, f_probs, data.multilabel, prefix="classifier_", **task))
    results.update(interpreter_scores(g_probs, f_probs, data.multilabel, **task))
    results["test_nmf_loss"] = sq_err / max(count, 1)
    return results


def _fresh_classifier(config, data, classifier_path=None):
    """A new :class:`KumarCNN` for by-design training (input statistics of the training clips)."""

    if classifier_path is not None:
        reference = load_model_file(classifier_path, compile=False)
        mean, std = reference.input_mean, reference.input_std
    else:
        scaler = StandardScaler().fit(data.mel, rows=data.rows["train"])
        mean, std = scaler.mean, np.maximum(scaler.std, 1e-4)
    section = config.get("classifier", {})
    return KumarCNN(
        n_classes=len(data.classes), n_frames=int(data.mel.shape[1]), n_mels=int(data.mel.shape[2]),
        multilabel=data.multilabel, pooling=section.get("pooling", "max"), dropout=float(section.get("dropout", 0.0)),
        filters=tuple(section.get("filters", (16, 32, 64, 128, 256, 512))),
        head_filters=int(section.get("head_filters", 1024)), input_mean=mean, input_std=std, name="classifier",
        head=section.get("head", "kumar"), head_units=int(section.get("head_units", 256)),
    )


def load_config(dataset, path=None):
    """The YAML config of ``dataset``: the one shipped in ``l2i/configs/<dataset>.yaml`` (ESC-10 uses esc50's).

    Parameters
    ----------
    dataset : str
    path : str or Path, optional
        Explicit config file (overrides the shipped one; ``--config`` of the scripts).

    Returns
    -------
    config : dict

    Raises
    ------
    FileNotFoundError
        The config file does not exist.
    """


    path = config_path(dataset) if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    with open(path) as handle:
        return yaml.safe_load(handle)
