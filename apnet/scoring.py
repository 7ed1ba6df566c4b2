"""Score a run folder (trained here or imported with :mod:`apnet.reference`) on one split of a dataset."""
import json
from pathlib import Path

import keras
import numpy as np
import yaml
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from apnet.training import feature_set  # importing it registers the layers of apnet and apnet.baselines
from audiodata.datasets import get_dataset
from audiodata.errors import DatasetNotFoundError, ParameterError
from audiodata.features import cached_features, compute_features, load_feature_params
from audioruns.metrics import accuracy
from audioruns.folds import split_fold
from audioruns.preprocessing import load_scaled_model

SPLITS = ("train", "validation", "test")


def run_classes(run_dir, dataset_classes):
    """Class names of the run's outputs: ``results.json``'s ``classes``, else the dataset's.

    Parameters
    ----------
    run_dir : str or Path
        The run folder.
    dataset_classes : sequence of str
        The dataset's class names, used when ``results.json`` names none.

    Returns
    -------
    list of str
    """
    results_path = Path(run_dir) / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    return list(results.get("classes") or dataset_classes)


def split_clips(ds, fold, split):
    """The clips of ``split`` of fold ``fold`` (validation = next fold for cross-validated datasets).

    Parameters
    ----------
    ds : audiodata.datasets.Dataset
    fold : int
    split : {'train', 'validation', 'test'}

    Returns
    -------
    clips : pandas.DataFrame
        The clips of the split (one row per clip).

    Raises
    ------
    audiodata.errors.ParameterError
        An unknown ``split``.
    audiodata.errors.DatasetNotFoundError
        The split has no clips.
    """
    if split not in SPLITS:
        raise ParameterError(f"split must be one of {SPLITS}, got {split!r}")
    clips = split_fold(ds, fold, validation=True)[split]
    if len(clips) == 0:
        raise DatasetNotFoundError(f"{ds.name}: the {split} split of fold {fold} has no clips in {ds.root}")
    return clips


def compute_split_features(paths, params, *, n_jobs=1, progress=True):
    """Features of each file of ``paths`` (``audiodata.features.compute_features``), stacked, with a progress bar.

    Parameters
    ----------
    paths : iterable of str or Path
        Audio files.
    params : dict
        Feature parameters (:func:`audiodata.features.load_feature_params`).
    n_jobs : int
        Parallel jobs (joblib).
    progress : bool
        Show a progress bar.

    Returns
    -------
    features : np.ndarray [shape=(len(paths), ...)]
        The features of each file, stacked on a new first axis.
    """
    paths = list(paths)
    bar = tqdm(total=len(paths), desc="features", unit="clip", disable=not progress)
    rows = []
    for row in Parallel(n_jobs=n_jobs, return_as="generator")(delayed(compute_features)(p, params) for p in paths):
        rows.append(row)
        bar.update(1)
    bar.close()
    return np.stack(rows)


def score_run(run_dir, dataset=None, fold=None, *, data_dir=None, split="test", batch_size=64, n_jobs=1,
              progress=True, return_predictions=False, cache_dir=None):
    """Accuracy of the run folder ``run_dir`` on ``split`` of ``dataset``/``fold``.

    The features are those the run was trained on (``config.yaml``'s ``features`` for APNet,
    ``baseline_features`` for a baseline), read from the feature cache (computed the first time:
    the split's clips get their own cache generation, which reuses the rows of any generation of
    the same dataset and feature set, e.g. the whole dataset's from training), scaled with the
    run's scaler (inside ``model.keras``, or ``scaler.json`` beside an older one:
    :func:`audioruns.preprocessing.load_scaled_model`). Labels are matched to the model's outputs by class
    name, so a model of Speech Commands v0.02 (35 words) scores a v0.01 folder (30 of them).

    Parameters
    ----------
    run_dir : str or Path
        Folder with ``model.keras``, ``config.yaml`` and ``results.json`` (and ``scaler.json``
        when ``model.keras`` does not hold the scaler).
    dataset, fold : optional
        Default: the run's own (``results.json``).
    data_dir : str or Path, optional
        Where the dataset is (:func:`audiodata.datasets.get_dataset`).
    split : {'train', 'validation', 'test'}
    batch_size : int
        Batch size of ``model.predict``.
    n_jobs : int
        Parallel feature-extraction jobs.
    progress : bool
        A feature-extraction progress bar on stderr.
    return_predictions : bool
        Also return the clips' ids, probabilities, labels and classes.
    cache_dir : str or Path, optional
        Feature cache (default ``$AUDIO_CACHE_DIR`` or ``~/.cache/audio-interpretability``).

    Returns
    -------
    dict with ``accuracy``, ``n_clips``, ``n_correct``, ``model``, ``dataset``, ``fold``, ``split``,
    ``features``; with ``return_predictions`` also ``clip_id`` (list), ``probabilities``
    (``(n, K)`` array over the model's classes), ``labels`` (model class indices) and ``classes``.

    Raises
    ------
    audiodata.errors.AudioDataError
        A missing file of the run or dataset, an empty split, or a dataset class the model
        does not know (the message names it).
    """
    run_dir = Path(run_dir)
    for name in ("model.keras", "config.yaml"):
        if not (run_dir / name).is_file():
            raise ParameterError(f"{run_dir / name} does not exist (expected a run folder of "
                                 "experiments/apnet/train.py or import_reference.py)")
    results_path = run_dir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    model_name = results.get("model", "apnet")
    dataset = dataset or results.get("dataset")
    fold = int(fold if fold is not None else results.get("fold", 1))
    if dataset is None:
        raise ParameterError(f"{run_dir}: no dataset in results.json; pass one")
    ds = get_dataset(dataset, data_dir=data_dir)
    clips = split_clips(ds, fold, split)
    classes = run_classes(run_dir, ds.classes)
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({ds.classes[k] for k in clips["label"]} - set(index))
    if unknown:
        raise ParameterError(f"{dataset}: classes {unknown} of the {split} split are not among the model's "
                             f"{len(classes)} classes ({run_dir / 'results.json'})")
    labels = np.array([index[ds.classes[k]] for k in clips["label"]])

    features = feature_set(model_name, config)
    params = load_feature_params(ds.config_name, features)
    # The trained model on scaled inputs and its scaler, from either layout (ModelFileError for a damaged file
    # or an older model.keras without scaler.json).
    model, scaler = load_scaled_model(run_dir / "model.keras")
    n_out = int(model.outputs[0].shape[-1])
    if n_out != len(classes):
        raise ParameterError(f"{run_dir}: the model has {n_out} outputs but {len(classes)} class names")
    if len(model.outputs) > 1:
        model = keras.Model(model.inputs[0], model.outputs[0])
    expected = tuple(model.input_shape[1:])
    with cached_features(ds.cache_name, features, params, clips, compute_features, cache_dir=cache_dir,
                         n_jobs=n_jobs, progress=progress) as feats:
        x = feats[:]
    if tuple(x.shape[1:]) != expected:
        raise ParameterError(f"{run_dir}: the model takes {expected} but feature set {features!r} of "
                             f"{ds.config_name} gives {tuple(x.shape[1:])}")
    probabilities = model.predict(scaler.transform(x), batch_size=batch_size, verbose=0)
    correct = accuracy(probabilities, labels, normalize=False)
    out = {"accuracy": correct / len(labels), "n_clips": int(len(labels)), "n_correct": correct, "model": model_name,
           "dataset": dataset, "fold": fold, "split": split, "features": features}
    if return_predictions:
        out.update(clip_id=list(clips["clip_id"]), probabilities=probabilities, labels=labels, classes=classes)
    return out
