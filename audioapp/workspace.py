"""The editing session behind the web application: a loaded APNet, its fold, its edits and their undo.

:class:`Workspace` holds everything the pages show and change, with no web code in it, so it
is used (and tested) directly as well. It is a facade over focused modules:

* :mod:`audioapp.loading` -- the model of a training run folder (``experiments/apnet/train.py``:
  ``model.keras``, ``config.yaml``, ``scaler.json``, ``results.json``), its fold's cached
  features, the table of its clips and the sample drawn on the maps;
* :mod:`audioapp.versions` -- the stack of model versions: every edit pushes a new version,
  :meth:`Workspace.undo` pops it; version 0 is the loaded model and is never changed;
* :mod:`audioapp.projections` -- the 2-D maps (PCA, t-SNE) of the training instances' latent
  vectors ``Z_i = f(X_i)`` (Eq. 1, flattened) and of the prototypes ``P_j`` in the same space;
* :mod:`audioapp.decoding`, :mod:`audioapp.inspection` -- decoded prototypes,
  reconstructions, their audio, and what the pages show of one clip or prototype;
* :mod:`audioapp.editing` -- deleting prototypes, converting an instance into a prototype;
* :mod:`audioapp.retraining`, :mod:`audioapp.evaluation` -- retraining a version (progress,
  cancellation, best epoch) and its test-fold accuracy and confusion matrix;
* :mod:`audioapp.saving` -- saving a version as a new ``.keras`` file, never over an existing
  file and bounded (:class:`~audioapp.saving.StorageLimit`, HTTP 507).

Every method that reads or replaces the current model takes :attr:`Workspace.lock`, since the
web server calls them from a thread pool; retraining (:meth:`Workspace.retrain`) trains a copy
outside the lock and refuses edits until it finishes.
"""
import os
import threading
import time
from pathlib import Path

import numpy as np

from audiodata.cli import positive_int, require
from audiodata.errors import ParameterError

from audioapp import decoding, editing, inspection
from audioapp.errors import Conflict, NotFound
from audioapp.evaluation import evaluate_model
from audioapp.files import audio_file, shown_path
from audioapp.loading import FeatureRows, clip_table, map_sample, open_fold, open_run
from audioapp.projections import PROJECTIONS, LatentMaps, check_method
from audioapp.retraining import MAX_EPOCHS, check_epochs, copy_model, fit_version
from audioapp.saving import MAX_SAVES, MIN_FREE_BYTES, RunSource, StorageLimit, save_version
from audioapp.versions import Version, VersionStack, n_prototypes

__all__ = ["MAX_EPOCHS", "MAX_SAVES", "MIN_FREE_BYTES", "PROJECTIONS", "StorageLimit", "Version", "Workspace"]


class Workspace:
    """A trained APNet loaded for inspection, editing, retraining and evaluation.

    Args:
        model_path: ``model.keras`` of a training run folder (``experiments/apnet/train.py``,
            or a ``.keras`` saved by this class beside its run files).
        dataset, fold: optional; when given they must be the run's (its scaler was fitted on
            that fold's training split).
        data_dir, cache_dir: dataset folder (default ``$AUDIO_DATA_DIR``) and feature cache.
        output_dir: folder of the saved edited models (default: the loaded model's folder).
        max_points: at most this many training instances on the maps (a seeded random
            sample; the prototypes are always all shown).
        seed: seed of that sample and of t-SNE.
        log: function called with progress messages while loading (default: none).
        max_saves: most model files :meth:`save` writes in this session (default :data:`MAX_SAVES`).

    Example:

    >>> ws = Workspace("results/apnet/fsdd/fold1/seed0/model.keras", data_dir="data")  # doctest: +SKIP
    >>> ws.delete_prototypes([3]); ws.convert_instance("7_theo_12")                      # doctest: +SKIP
    >>> ws.retrain(epochs=1)["accuracy_after"]; ws.save()["path"]                         # doctest: +SKIP
    """

    def __init__(self, model_path, dataset=None, fold=None, data_dir=None, cache_dir=None, output_dir=None,
                 max_points=1500, seed=0, log=None, max_saves=MAX_SAVES):
        progress = log is not None  # the command line: split sizes, size warning, extraction progress bar on stderr
        log = log or (lambda message: None)
        self.max_points = require(positive_int, max_points, "max_points", strict=True)
        self.max_saves = require(positive_int, max_saves, "max_saves", strict=True)
        self._saved = {}  # (folder, version id) -> {"path", "summary", "bytes"} of the files written
        self.seed = int(seed)
        self.model_path = Path(os.path.abspath(model_path))
        log(f"loading {self.model_path}")
        run = open_run(self.model_path, dataset, fold)
        self.run_dir = run.run_dir
        self.config, self.scaler = run.config, run.scaler
        self.dataset_name, self.fold = run.dataset, int(run.fold)
        self.output_dir = Path(os.path.abspath(output_dir)) if output_dir else self.run_dir
        self.batch_size = int(self.config.get("batch_size", 64))
        features = self.config["features"]
        log(f"loading {self.dataset_name} fold {self.fold} ({features} features)")
        self.data, self.dataset, self.feature_params = open_fold(self.dataset_name, self.fold, features, data_dir,
                                                                 cache_dir, progress)
        self.classes = tuple(str(c) for c in self.data.classes)
        self.data_root = Path(os.path.abspath(self.dataset.root))
        self._clips = clip_table(self.data, self.dataset)
        self.map_rows, self.map_ids, self.map_labels = map_sample(self.data, self.max_points, self.seed)
        self._maps = LatentMaps(self.data.features, self.map_rows, self.map_ids, self.map_labels, self.scaler,
                                self.seed)
        train_rows = self.data.rows["train"]
        self._train = FeatureRows(self.data.features, train_rows)
        clip_ids = self.data.features.clips["clip_id"].astype(str).to_numpy()
        self._train_position = {str(clip_ids[r]): i for i, r in enumerate(train_rows)}
        self._versions = VersionStack(run.model, f"loaded {self.model_path.name}")
        self.lock = threading.RLock()
        self.busy = None
        log(f"encoding {len(self.map_ids)} training instances")
        self._latent_matrix(self.current)

    # ------------------------------------------------------------------ versions
    @property
    def current(self):
        """The version being edited (the top of the stack)."""
        return self._versions.current

    def version(self, version_id=None):
        """A version on the stack by id (None: the current one)."""
        return self._versions.get(version_id)

    def _check_free(self):
        if self.busy:
            raise Conflict(f"{self.busy}: edits are locked until it finishes (or is cancelled)")

    def n_prototypes(self, version=None):
        return n_prototypes((version or self.current).model)

    def status(self):
        """A JSON-ready summary: model, data, current version, edit history."""
        with self.lock:
            v = self.current
            evaluation = {str(w.id): w.cache["evaluation"]["accuracy"] for w in self._versions
                          if "evaluation" in w.cache}
            return {
                "model_path": str(self.model_path),
                "output_dir": str(self.output_dir),
                "output_dir_shown": shown_path(self.output_dir),
                "dataset": self.dataset_name,
                "fold": self.fold,
                "classes": list(self.classes),
                "n_train": int(len(self.data.rows["train"])),
                "n_test": int(len(self.data.rows["test"])),
                "n_map_instances": len(self.map_ids),
                "version": v.id,
                "n_prototypes": self.n_prototypes(v),
                "n_params": int(v.model.count_params()),
                "history": [{"version": w.id, "description": w.description, "n_prototypes": self.n_prototypes(w)}
                            for w in self._versions],
                "can_undo": len(self._versions) > 1 and not self.busy,
                "busy": self.busy,
                "test_accuracy": evaluation,
            }

    def undo(self):
        """Drop the current version (the loaded model, version 0, always stays)."""
        with self.lock:
            self._check_free()
            dropped = self._versions.undo()
            return {"version": self.current.id, "undone": dropped.description, "n_prototypes": self.n_prototypes()}

    # ------------------------------------------------------------------ data access
    def clip(self, clip_id):
        """``{"split", "row", "label", "path"}`` of a clip of the fold, or :class:`NotFound`."""
        info = self._clips.get(str(clip_id))
        if info is None:
            raise NotFound(f"clip {str(clip_id)[:80]!r} is not in {self.dataset_name} fold {self.fold}")
        return info

    def clip_path(self, clip_id):
        """The audio file of a clip, its real path (links resolved now) checked to lie inside the dataset folder."""
        path = self.clip(clip_id)["path"]
        if path is None:
            raise NotFound(f"clip {clip_id!r} has no audio file in {self.data_root}")
        return audio_file(path, [self.data_root])

    def features(self, clip_id):
        """The unscaled features ``(T, F)`` of a clip (log-mel in dB for APNet's feature sets)."""
        return np.asarray(self.data.features[self.clip(clip_id)["row"]], dtype=np.float32)

    def scaled(self, clip_id):
        """The features of a clip scaled as the model's inputs, ``(1, T, F)``."""
        return self.scaler.transform(self.features(clip_id)[None])

    @property
    def value_range(self):
        """Colour limits of every spectrogram image: the training data range of the scaler."""
        return float(self.scaler.data_min), float(self.scaler.data_max)

    # ------------------------------------------------------------------ latent space
    def _latent_matrix(self, version):
        """Flattened latents ``(N, T' F' C)`` of the map instances under ``version``'s encoder."""
        return self._maps.latent_matrix(version, self._versions.encoder_ids())

    def decoded(self, version_id=None):
        """:func:`apnet.inspection.decode_prototypes` of a version over the training split (cached)."""
        with self.lock:
            return decoding.decode(self.version(version_id), self._train, self.batch_size, self.scaler)

    def projection(self, method="pca", version_id=None):
        """2-D coordinates of the map instances and of the prototypes (:meth:`audioapp.projections.LatentMaps.projection`).

        ``"pca"``: principal components of the instances' latents; the prototypes are
        projected on them. ``"tsne"``: t-SNE of the instances and prototypes together
        (after a PCA to 50 dimensions), seeded; slower, computed once per version.
        """
        check_method(method)
        with self.lock:
            v = self.version(version_id)
            key = f"map_{method}"
            if key not in v.cache:
                v.cache[key] = self._maps.projection(method, v, self.decoded(v.id), self.classes,
                                                     self._versions.encoder_ids())
            return v.cache[key]

    # ------------------------------------------------------------------ inspection
    def instance(self, clip_id, version_id=None):
        """Class, prediction and closest prototypes (Eq. 4 distances) of one clip of the fold."""
        info = self.clip(clip_id)
        with self.lock:
            v = self.version(version_id)
            return inspection.instance_summary(v.model, self.scaled(clip_id), clip_id, info, self.classes, v.id)

    def prototype(self, index, version_id=None):
        """Decoded class, row of ``W`` and nearest training instance of prototype ``index``."""
        with self.lock:
            v = self.version(version_id)
            index = inspection.prototype_index(v, index)
            return inspection.prototype_summary(v, index, self.decoded(v.id), self.classes, self._train_clip_id)

    def _train_clip_id(self, position):
        row = int(self.data.rows["train"][position])
        return str(self.data.features.clips["clip_id"].iloc[row])

    def prototype_mel(self, index, version_id=None):
        """The decoded prototype ``g(P_j)`` unscaled to the feature units ``(T, F)`` (Section 5.1.2)."""
        with self.lock:
            v = self.version(version_id)
            index = inspection.prototype_index(v, index)
            return decoding.prototype_mel(self.decoded(v.id), index, self.scaler)

    def reconstruction_mel(self, clip_id, version_id=None):
        """The autoencoder reconstruction ``g(f(X))`` of a clip, unscaled (Section 5.1.1)."""
        x = self.scaled(clip_id)
        with self.lock:
            return decoding.reconstruction_mel(self.version(version_id).model, x, self.scaler)

    def mel_audio(self, S):
        """Audio of an unscaled mel-spectrogram: mel inversion + Griffin-Lim, peak 0.9 (Section 5.1.1)."""
        return decoding.mel_audio(S, self.feature_params)

    # ------------------------------------------------------------------ edits
    def delete_prototypes(self, indices):
        """Push a version without the prototypes ``indices`` and their rows of ``H`` and ``W``."""
        with self.lock:
            self._check_free()
            v = self.current
            edit = editing.deletion(v, indices)
            new = self._versions.push(edit.model, edit.description, edit.origins)
            decoding.derive_decoded(new, v, kept=edit.kept)
            return {"version": new.id, "n_prototypes": self.n_prototypes(new)}

    def convert_instance(self, clip_id):
        """Push a version where training instance ``clip_id`` is a new prototype of its class.

        Its latent vector ``Z_i = f(X_i)`` under the current encoder becomes the last
        prototype (:func:`apnet.refinement.add_prototype`); its row of ``W`` votes for the
        instance's class.
        """
        info = self.clip(clip_id)
        if info["split"] != "train":
            raise ParameterError(f"clip {clip_id!r} is in the {info['split']} split; only training instances "
                                 "can become prototypes")
        with self.lock:
            self._check_free()
            v = self.current
            x = self.scaled(clip_id)
            edit = editing.conversion(v, clip_id, x, info["label"], self.classes[info["label"]])
            new = self._versions.push(edit.model, edit.description, edit.origins)
            decoding.derive_decoded(new, v, added=clip_id, added_x=x,
                                    added_position=self._train_position[str(clip_id)])
            return {"version": new.id, "n_prototypes": self.n_prototypes(new), "index": self.n_prototypes(new) - 1}

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, version_id=None):
        """Test-fold accuracy and confusion matrix (rows: true class, columns: predicted) of a version."""
        with self.lock:
            v = self.version(version_id)
            if "evaluation" not in v.cache:
                scores = evaluate_model(v.model, self.data, self.batch_size, self.scaler, len(self.classes))
                v.cache["evaluation"] = {"version": v.id, **scores, "n_prototypes": self.n_prototypes(v)}
            return v.cache["evaluation"]

    def retrain(self, epochs, report=None, cancelled=None):
        """Train a copy of the current version ``epochs`` more epochs, evaluate it and push it.

        The run's settings on the fold's training split, keeping the epoch of best validation
        accuracy (Section 4.4), in memory: nothing is written
        (:func:`audioapp.retraining.fit_version`). Edits are refused meanwhile (:class:`Conflict`).

        Parameters
        ----------
        epochs : int
        report : callable, optional
            Called with keyword arguments (``epoch``, ``batch``, ``progress`` in [0, 1],
            ``loss``, ``history``, ``phase``) as training goes.
        cancelled : threading.Event, optional
            Set it to stop after the current batch; nothing is pushed then.

        Returns
        -------
        dict with ``accuracy_original`` (the loaded model), ``accuracy_before`` (the version
        retrained), ``accuracy_after``, ``confusion_before``, ``confusion_after``,
        ``version_before``, ``version``, ``history`` (one row per epoch), ``best_epoch``,
        ``seconds``; or ``{"cancelled": True, ...}``.
        """
        report = report or (lambda **kwargs: None)
        epochs = check_epochs(epochs)
        with self.lock:
            self._check_free()
            base = self.current
            model = copy_model(base.model)
            self.busy = f"a retrain of version {base.id} ({epochs} epoch(s)) is running"
        start = time.perf_counter()
        try:
            # A diverging fit raises TrainingDivergedError: no version is pushed.
            fit = fit_version(model, self.config, self.data, self.batch_size, self.scaler, epochs, report, cancelled)
            if fit.cancelled:
                return {"cancelled": True, "version": base.id, "history": fit.history,
                        "seconds": time.perf_counter() - start}
            report(phase="evaluating", progress=1.0)
            original, before = self.evaluate(0), self.evaluate(base.id)
            with self.lock:
                new = self._versions.push(model, f"retrained {len(fit.history)} epoch(s) from version {base.id}",
                                          base.origins, new_encoder=True)
            after = self.evaluate(new.id)
            return {
                "version_before": base.id,
                "version": new.id,
                "epochs": len(fit.history),
                "best_epoch": fit.best_epoch,
                "history": fit.history,
                "accuracy_original": original["accuracy"],
                "accuracy_before": before["accuracy"],
                "accuracy_after": after["accuracy"],
                "confusion_before": before["confusion"],
                "confusion_after": after["confusion"],
                "n_prototypes": self.n_prototypes(new),
                "seconds": time.perf_counter() - start,
            }
        finally:
            with self.lock:
                self.busy = None

    # ------------------------------------------------------------------ saving
    def save(self, output_dir=None):
        """Save the current version as ``model_edited_<n>.keras`` (+ ``.json``) in the output folder.

        See :func:`audioapp.saving.save_version`: never over an existing file (the loaded model
        included); the file holds the model with its input scaler in front
        (:func:`audioruns.preprocessing.attach_scaler`), and outside the run folder the run's
        ``config.yaml`` (copied) and ``scaler.json`` (written) go beside it, so it loads like a run (``python -m audioapp --model
        <folder>/model_edited_<n>.keras``); a version already saved to that folder is not
        written again (``already_saved``); at most :attr:`max_saves` files per session, none
        when the disk has less than :data:`MIN_FREE_BYTES` free.

        Returns
        -------
        dict with ``path``, ``summary`` (the JSON written beside it), ``version``,
        ``n_prototypes``, ``already_saved``, ``bytes`` (size of the model file), ``saves``
        (files written this session), ``max_saves``, ``session_bytes`` (their total size)
        and ``disk_free_bytes``.

        Raises
        ------
        StorageLimit
            :attr:`max_saves` files already written, or too little free disk space (HTTP 507).
        """
        folder = Path(os.path.abspath(output_dir)) if output_dir else self.output_dir
        source = RunSource(self.model_path, self.run_dir, self.dataset_name, self.fold, self.scaler)
        with self.lock:
            return save_version(self._versions, folder, source, self._saved, self.max_saves)
