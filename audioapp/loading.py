"""Loading what a :class:`~audioapp.workspace.Workspace` edits: an APNet training run and its fold.

* :func:`open_run` -- ``model.keras`` of a run folder (``experiments/apnet/train.py``:
  ``model.keras``, ``config.yaml``, ``scaler.json``, ``results.json``, via
  :func:`apnet.inspection.load_run`), checked against the dataset and fold asked for;
* :func:`open_fold` -- the fold's cached features (:func:`apnet.training.load_fold`), the
  dataset and its feature parameters;
* :func:`clip_table` -- every clip of the fold by id: split, feature row, label, audio file;
* :func:`map_sample` -- the seeded sample of training instances drawn on the maps;
* :class:`FeatureRows` -- a lazy ``features[rows]`` (bounded memory).
"""
from pathlib import Path

import numpy as np

from apnet.inspection import load_run
from apnet.training import load_fold
from audiodata.datasets import get_dataset
from audiodata.errors import ParameterError
from audiodata.features import load_feature_params


class FeatureRows:
    """A lazy ``features[rows]`` that slices and fancy-indexes like an array (bounded memory)."""

    def __init__(self, features, rows):
        self.features, self.rows = features, np.asarray(rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        rows = self.rows[index]
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows),) + tuple(self.features.shape[1:]), np.float32)
        out[order] = np.asarray(self.features[rows[order]], dtype=np.float32)
        return out


def open_run(model_path, dataset=None, fold=None):
    """The run of ``model_path`` (:func:`apnet.inspection.load_run`'s :class:`~apnet.inspection.APNetRun`), checked.

    Parameters
    ----------
    model_path : Path
        Absolute path of a ``.keras`` file in a run folder.
    dataset, fold : optional
        When given they must be the run's: its scaler was fitted on that fold's training split.

    Raises
    ------
    ParameterError
        Not a ``.keras`` file, or another dataset or fold than the run's.
    """
    if Path(model_path).suffix != ".keras":
        raise ParameterError(f"--model {model_path}: expected a .keras file of a training run folder")
    run = load_run(model_path)
    for name, given, found in (("dataset", dataset, run.dataset), ("fold", fold, run.fold)):
        if given is not None and str(given) != str(found):
            raise ParameterError(f"--{name} {given}: the model {model_path} was trained on {name} {found} "
                                 f"(its scaler belongs to that split); pass --{name} {found} or leave it out")
    return run


def open_fold(dataset_name, fold, features, data_dir=None, cache_dir=None, progress=False):
    """``(data, dataset, feature_params)``: :func:`apnet.training.load_fold`'s fold, the dataset, its features' parameters.

    ``progress``: print the split sizes, a small-dataset warning and an extraction progress bar
    on stderr (the command line).
    """
    data = load_fold(dataset_name, fold, features, data_dir=data_dir, cache_dir=cache_dir, progress=progress)
    dataset = get_dataset(dataset_name, data_dir=data_dir)
    return data, dataset, load_feature_params(dataset.config_name, features)


def clip_table(data, dataset):
    """``{clip_id: {"split", "row", "label", "path"}}`` of every clip of the fold (``path`` None when unknown)."""
    clip_ids = data.features.clips["clip_id"].astype(str).to_numpy()
    paths = dict(zip(dataset.clips["clip_id"].astype(str), dataset.clips["path"]))
    clips = {}
    for split in ("train", "validation", "test"):
        labels = data.targets[split].argmax(axis=1)
        for row, label in zip(data.rows[split], labels):
            cid = clip_ids[row]
            clips[cid] = {"split": split, "row": int(row), "label": int(label), "path": paths.get(cid)}
    return clips


def map_sample(data, max_points, seed):
    """The training instances drawn on the maps: at most ``max_points``, a seeded random sample.

    Returns
    -------
    rows : np.ndarray
        Their rows in the feature array, in training-split order.
    ids : list of str
        Their clip ids.
    labels : np.ndarray of int
        Their classes.
    """
    clip_ids = data.features.clips["clip_id"].astype(str).to_numpy()
    train_rows = data.rows["train"]
    picked = np.arange(len(train_rows))
    if len(picked) > max_points:
        picked = np.sort(np.random.default_rng(seed).choice(len(picked), size=max_points, replace=False))
    rows = train_rows[picked]
    return rows, [str(clip_ids[r]) for r in rows], data.targets["train"].argmax(axis=1)[picked].astype(int)
