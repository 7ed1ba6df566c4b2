"""The editing session behind the web application: a loaded APNet, its fold, its edits and their undo.

:class:`Workspace` holds everything the pages show and change, with no web code in it, so it
is used (and tested) directly as well:

* the model of a training run folder (``experiments/apnet/train.py``: ``model.keras``,
  ``config.yaml``, ``scaler.json``, ``results.json``) and its fold's cached features;
* a stack of model versions: every edit (delete prototypes, convert an instance into a
  prototype, retrain) pushes a new version, :meth:`Workspace.undo` pops it; version 0 is the
  loaded model and is never changed;
* the 2-D maps of the training instances' latent vectors ``Z_i = f(X_i)`` (Eq. 1, flattened)
  and of the prototypes ``P_j`` in the same space: PCA (prototypes projected with the
  instances' components) and t-SNE (instances and prototypes embedded together);
* test-fold evaluation (accuracy, confusion matrix) and saving a version as a new ``.keras``
  file, never over an existing file and never over the loaded model, written atomically
  (:func:`audioruns.checkpoints.save_model_atomic`) and bounded: saving a version already saved
  returns its file, at most :data:`MAX_SAVES` files per session, and none when the disk has
  less than :data:`MIN_FREE_BYTES` free (:class:`StorageLimit`, HTTP 507), so a loop of saves
  cannot fill the disk.

Every method that reads or replaces the current model takes :attr:`Workspace.lock`, since the
web server calls them from a thread pool; retraining (:meth:`Workspace.retrain`) trains a copy
outside the lock and refuses edits until it finishes.
"""
import errno
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from audioruns.checkpoints import DivergenceGuard, EpochOrder, save_model_atomic
from audiodata.errors import AudioDataError, ParameterError

from audioapp.errors import Conflict, NotFound
from audioapp.files import audio_file

#: Projections of the latent space offered by :meth:`Workspace.projection`.
PROJECTIONS = ("pca", "tsne")
#: Most epochs one retrain request may ask for.
MAX_EPOCHS = 500
#: Most model files one session saves (each a full ``.keras`` file; saving an already saved version
#: again returns its file and does not count).
MAX_SAVES = 50
#: Saving is refused when the output folder's disk has less than this free (bytes).
MIN_FREE_BYTES = 512 * 2**20


class StorageLimit(AudioDataError, OSError):
    """A save refused because of the session's save cap or the free disk space (HTTP 507)."""


def _shown(path):
    """``path`` as the page shows it: relative to the working directory when inside it (so pages and
    screenshots do not carry the machine's absolute paths), else absolute."""
    path = os.path.abspath(os.fspath(path))
    relative = os.path.relpath(path)
    return path if relative == ".." or relative.startswith(".." + os.sep) else relative


@dataclass
class Version:
    """One state of the edited model.

    Attributes
    ----------
    id : int
        Increasing number (0 = the loaded model).
    model : keras.Model
    description : str
        What produced it ("deleted prototypes [2, 5]", ...).
    encoder_id : int
        Id of the version whose encoder weights it shares: prototype edits keep the
        encoder, so the instances' latent vectors are computed once per encoder.
    origins : list of str
        Where each prototype comes from ("trained", "instance 3_theo_12").
    cache : dict
        Computed results of this version (decoded prototypes, maps, evaluation).
    """

    id: int
    model: keras.Model
    description: str
    encoder_id: int
    origins: list
    cache: dict = field(default_factory=dict)


class _Rows:
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


class _Cancelled(Exception):
    """Raised by :class:`_Progress` to leave ``fit`` at once (no validation pass) on cancellation."""


class _Progress(keras.callbacks.Callback):
    """Reports batches and epochs of a fit to ``report`` and stops it when ``cancelled`` is set."""

    def __init__(self, report, cancelled, epochs, steps):
        super().__init__()
        self.report, self.cancelled, self.epochs, self.steps = report, cancelled, epochs, steps
        self.history = []
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        done = self._epoch * self.steps + batch + 1
        loss = None if not logs or logs.get("loss") is None else float(logs["loss"])
        self.report(epoch=self._epoch + 1, batch=batch + 1, progress=done / (self.epochs * self.steps), loss=loss)
        if self.cancelled is not None and self.cancelled.is_set():
            raise _Cancelled

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "seconds": time.perf_counter() - self._start}
        row.update({k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0})
        self.history.append(row)
        self.report(history=list(self.history))


class _KeepBest(keras.callbacks.Callback):
    """Keeps, in memory, the weights of the epoch with the best ``monitor`` and restores them at the end.

    The selection of Section 4.4 (best validation accuracy) without writing a checkpoint file.
    """

    def __init__(self, monitor):
        super().__init__()
        self.monitor, self.best, self.best_epoch, self.weights = monitor, -np.inf, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and math.isfinite(float(value)) and float(value) > self.best:
            self.best, self.best_epoch, self.weights = float(value), epoch + 1, self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)


def _copy_model(model):
    """A new model with the same architecture and weights (no shared variables)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _positive_int(value, name, maximum=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1 or (
            maximum is not None and value > maximum):
        allowed = f"an integer in [1, {maximum}]" if maximum else "a positive integer"
        raise ParameterError(f"`{name}` must be {allowed}; received {name}={value!r}")
    return int(value)


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
        from audiodata.datasets import get_dataset
        from audiodata.features import load_feature_params

        from apnet.inspection import load_run
        from apnet.training import load_fold

        progress = log is not None  # the command line: split sizes, size warning, extraction progress bar on stderr
        log = log or (lambda message: None)
        self.max_points = _positive_int(max_points, "max_points")
        self.max_saves = _positive_int(max_saves, "max_saves")
        self._saved = {}  # (folder, version id) -> {"path", "summary", "bytes"} of the files written
        self.seed = int(seed)
        self.model_path = Path(os.path.abspath(model_path))
        if self.model_path.suffix != ".keras":
            raise ParameterError(f"--model {model_path}: expected a .keras file of a training run folder")
        log(f"loading {self.model_path}")
        run = load_run(self.model_path)
        for name, given, found in (("dataset", dataset, run["dataset"]), ("fold", fold, run["fold"])):
            if given is not None and str(given) != str(found):
                raise ParameterError(f"--{name} {given}: the model {self.model_path} was trained on {name} {found} "
                                     f"(its scaler belongs to that split); pass --{name} {found} or leave it out")
        self.run_dir = run["run_dir"]
        self.config, self.scaler = run["config"], run["scaler"]
        self.dataset_name, self.fold = run["dataset"], int(run["fold"])
        self.output_dir = Path(os.path.abspath(output_dir)) if output_dir else self.run_dir
        self.batch_size = int(self.config.get("batch_size", 64))
        features = self.config["features"]
        log(f"loading {self.dataset_name} fold {self.fold} ({features} features)")
        self.data = load_fold(self.dataset_name, self.fold, features, data_dir=data_dir, cache_dir=cache_dir,
                              progress=progress)
        self.dataset = get_dataset(self.dataset_name, data_dir=data_dir)
        self.feature_params = load_feature_params(self.dataset.config_name, features)
        self.classes = tuple(str(c) for c in self.data.classes)
        self.data_root = Path(os.path.abspath(self.dataset.root))

        clip_ids = self.data.features.clips["clip_id"].astype(str).to_numpy()
        paths = dict(zip(self.dataset.clips["clip_id"].astype(str), self.dataset.clips["path"]))
        self._clips = {}
        for split in ("train", "validation", "test"):
            labels = self.data.targets[split].argmax(axis=1)
            for row, label in zip(self.data.rows[split], labels):
                cid = clip_ids[row]
                self._clips[cid] = {"split": split, "row": int(row), "label": int(label), "path": paths.get(cid)}
        train_rows = self.data.rows["train"]
        rng = np.random.default_rng(self.seed)
        picked = np.arange(len(train_rows))
        if len(picked) > self.max_points:
            picked = np.sort(rng.choice(len(picked), size=self.max_points, replace=False))
        self.map_rows = train_rows[picked]
        self.map_ids = [str(clip_ids[r]) for r in self.map_rows]
        self.map_labels = self.data.targets["train"].argmax(axis=1)[picked].astype(int)
        self._train = _Rows(self.data.features, train_rows)
        self._train_position = {str(clip_ids[r]): i for i, r in enumerate(train_rows)}
        self._latents, self._pca_fits = {}, {}

        model = run["model"]
        n_prototypes = model.get_layer("prototypes").n_prototypes
        self._versions = [Version(0, model, f"loaded {self.model_path.name}", 0, ["trained"] * n_prototypes)]
        self._next_id = 1
        self.lock = threading.RLock()
        self.busy = None
        log(f"encoding {len(self.map_ids)} training instances")
        self._latent_matrix(self._versions[0])

    # ------------------------------------------------------------------ versions
    @property
    def current(self):
        """The version being edited (the top of the stack)."""
        return self._versions[-1]

    def version(self, version_id=None):
        """A version on the stack by id (None: the current one)."""
        if version_id is None:
            return self.current
        if isinstance(version_id, bool) or not isinstance(version_id, (int, np.integer)):
            raise ParameterError(f"version must be an integer (or null for the current one); received {version_id!r}")
        for v in self._versions:
            if v.id == int(version_id):
                return v
        raise NotFound(f"model version {version_id} is not on the edit stack (undone?); "
                       f"current version is {self.current.id}")

    def _push(self, model, description, origins, new_encoder=False):
        """Put ``model`` on the stack; ``new_encoder``: its encoder differs from the current one's."""
        version_id = self._next_id
        encoder_id = version_id if new_encoder else self.current.encoder_id
        v = Version(version_id, model, description, encoder_id, list(origins))
        self._next_id += 1
        self._versions.append(v)
        return v

    def _check_free(self):
        if self.busy:
            raise Conflict(f"{self.busy}: edits are locked until it finishes (or is cancelled)")

    def n_prototypes(self, version=None):
        return int((version or self.current).model.get_layer("prototypes").n_prototypes)

    def status(self):
        """A JSON-ready summary: model, data, current version, edit history."""
        with self.lock:
            v = self.current
            evaluation = {str(w.id): w.cache["evaluation"]["accuracy"] for w in self._versions
                          if "evaluation" in w.cache}
            return {
                "model_path": str(self.model_path),
                "output_dir": str(self.output_dir),
                "output_dir_shown": _shown(self.output_dir),
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
        return self.scaler.transform(self.features(clip_id)[None])

    @property
    def value_range(self):
        """Colour limits of every spectrogram image: the training data range of the scaler."""
        return float(self.scaler.data_min), float(self.scaler.data_max)

    # ------------------------------------------------------------------ latent space
    def _latent_matrix(self, version):
        """Flattened latents ``(N, T' F' C)`` of the map instances under ``version``'s encoder."""
        from apnet.inspection import encoder_model

        key = version.encoder_id
        if key not in self._latents:
            encoder = encoder_model(version.model)
            x = _Rows(self.data.features, self.map_rows)
            out = []
            for start in range(0, len(x), 256):
                batch = self.scaler.transform(x[start:start + 256])
                out.append(keras.ops.convert_to_numpy(encoder.predict_on_batch(batch)[0]).reshape(len(batch), -1))
            self._latents[key] = np.concatenate(out).astype(np.float32)
            alive = {w.encoder_id for w in self._versions}
            for stale in [k for k in self._latents if k not in alive and k != key]:
                del self._latents[stale]
        return self._latents[key]

    def decoded(self, version_id=None):
        """:func:`apnet.inspection.decode_prototypes` of a version over the training split (cached)."""
        from apnet.inspection import decode_prototypes

        with self.lock:
            v = self.version(version_id)
            if "decoded" not in v.cache:
                v.cache["decoded"] = decode_prototypes(v.model, self._train, self.batch_size, self.scaler)
            return v.cache["decoded"]

    def projection(self, method="pca", version_id=None):
        """2-D coordinates of the map instances and of the prototypes.

        ``"pca"``: principal components of the instances' latents; the prototypes are
        projected on them. ``"tsne"``: t-SNE of the instances and prototypes together
        (after a PCA to 50 dimensions), seeded; slower, computed once per version.

        Returns
        -------
        dict with ``method``, ``version``, ``instances`` (list of ``{"id", "label", "x", "y"}``),
        ``prototypes`` (list of ``{"index", "class", "w_class", "origin", "x", "y"}``) and
        ``classes``.
        """
        from apnet.inspection import prototype_weights

        if method not in PROJECTIONS:
            raise ParameterError(f"projection must be one of {PROJECTIONS}; received {method!r}")
        with self.lock:
            v = self.version(version_id)
            key = f"map_{method}"
            if key not in v.cache:
                latents = self._latent_matrix(v)
                protos = prototype_weights(v.model).reshape(self.n_prototypes(v), -1).astype(np.float32)
                if method == "pca":
                    xy_i, xy_p, extra = self._pca(v, latents, protos)
                else:
                    xy_i, xy_p, extra = self._tsne(latents, protos)
                decoded = self.decoded(v.id)
                v.cache[key] = {
                    "method": method,
                    "version": v.id,
                    "classes": list(self.classes),
                    "instances": [{"id": cid, "label": int(lab), "x": round(float(a), 5), "y": round(float(b), 5)}
                                  for cid, lab, (a, b) in zip(self.map_ids, self.map_labels, xy_i)],
                    "prototypes": [{"index": j, "class": int(decoded["classes"][j]),
                                    "w_class": int(decoded["w_classes"][j]), "origin": v.origins[j],
                                    "x": round(float(a), 5), "y": round(float(b), 5)}
                                   for j, (a, b) in enumerate(xy_p)],
                    **extra,
                }
            return v.cache[key]

    def _derive_decoded(self, new, parent, kept=None, added=None):
        """The decoded prototypes of ``new`` from its parent's, without a pass over the training split.

        A prototype edit leaves the encoder and decoder unchanged, so the kept prototypes keep
        their nearest training instance and decoded spectrogram; a converted instance is its
        own nearest training instance (``D`` = 0 up to rounding), so its decoded spectrogram
        is its reconstruction. Only the classes of the decoded spectrograms, which depend on
        every prototype, are computed again.
        """
        from apnet.inspection import fully_connected_weights

        decoded = parent.cache.get("decoded")
        if decoded is None:
            return
        mel, nearest, distance = decoded["mel"], decoded["nearest"], decoded["nearest_distance"]
        if kept is not None:
            mel, nearest, distance = mel[kept], nearest[kept], distance[kept]
        if added is not None:
            _, reconstruction, distances = new.model.predict_on_batch(self.scaled(added))
            reconstruction = keras.ops.convert_to_numpy(reconstruction)
            mel = np.concatenate([mel, reconstruction.astype(mel.dtype)])
            nearest = np.append(nearest, self._train_position[str(added)])
            distance = np.append(distance, keras.ops.convert_to_numpy(distances)[0, -1].sum())
        probabilities = keras.ops.convert_to_numpy(new.model.predict_on_batch(mel)[0])
        new.cache["decoded"] = {"mel": mel, "nearest": nearest, "nearest_distance": distance,
                                "probabilities": probabilities, "classes": probabilities.argmax(axis=1),
                                "w_classes": fully_connected_weights(new.model).argmax(axis=0)}

    def _pca(self, version, latents, protos):
        from sklearn.decomposition import PCA

        if version.encoder_id not in self._pca_fits:
            self._pca_fits[version.encoder_id] = PCA(n_components=2, random_state=self.seed).fit(latents)
        pca = self._pca_fits[version.encoder_id]
        return pca.transform(latents), pca.transform(protos), {
            "explained_variance": [round(float(r), 4) for r in pca.explained_variance_ratio_]}

    def _tsne(self, latents, protos):
        """t-SNE on one thread: its OpenMP loops slow down 10-fold or more when the cores are shared with
        TensorFlow (a retrain) or other jobs, and one thread takes a few seconds for the map's size."""
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        both = np.concatenate([latents, protos]).astype(np.float64)
        n_dims = min(50, both.shape[0] - 1, both.shape[1])
        perplexity = float(min(30.0, max(2.0, (len(both) - 1) / 3.0)))
        with threadpool_limits(limits=1):
            reduced = PCA(n_components=n_dims, random_state=self.seed).fit_transform(both)
            xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=self.seed).fit_transform(reduced)
        return xy[:len(latents)], xy[len(latents):], {"perplexity": perplexity}

    # ------------------------------------------------------------------ inspection
    def instance(self, clip_id, version_id=None):
        """Class, prediction and closest prototypes (Eq. 4 distances) of one clip of the fold."""
        info = self.clip(clip_id)
        with self.lock:
            v = self.version(version_id)
            probs, _, distances = v.model.predict_on_batch(self.scaled(clip_id))
        probs = keras.ops.convert_to_numpy(probs)[0]
        d = keras.ops.convert_to_numpy(distances)[0].sum(axis=-1)
        closest = np.argsort(d, kind="stable")[:3]
        return {
            "clip_id": str(clip_id),
            "split": info["split"],
            "label": info["label"],
            "class_name": self.classes[info["label"]],
            "predicted": int(np.argmax(probs)),
            "predicted_name": self.classes[int(np.argmax(probs))],
            "probabilities": [round(float(p), 5) for p in probs],
            "closest_prototypes": [{"index": int(j), "distance": float(d[j])} for j in closest],
            "convertible": info["split"] == "train",
            "version": v.id,
        }

    def prototype(self, index, version_id=None):
        """Decoded class, row of ``W`` and nearest training instance of prototype ``index``."""
        from apnet.inspection import fully_connected_weights

        with self.lock:
            v = self.version(version_id)
            index = self._prototype_index(v, index)
            decoded = self.decoded(v.id)
            w_row = fully_connected_weights(v.model)[:, index]
        nearest = int(decoded["nearest"][index])
        cls, w_cls = int(decoded["classes"][index]), int(decoded["w_classes"][index])
        return {
            "index": index,
            "class": cls,
            "class_name": self.classes[cls],
            "w_class": w_cls,
            "w_class_name": self.classes[w_cls],
            "w_row": [round(float(w), 5) for w in w_row],
            "origin": v.origins[index],
            "nearest_clip_id": self._train_clip_id(nearest),
            "nearest_distance": float(decoded["nearest_distance"][index]),
            "version": v.id,
        }

    def _train_clip_id(self, position):
        row = int(self.data.rows["train"][position])
        return str(self.data.features.clips["clip_id"].iloc[row])

    def _prototype_index(self, version, index):
        n = self.n_prototypes(version)
        try:
            index = int(index)
        except (TypeError, ValueError):
            raise NotFound(f"prototype {str(index)[:40]!r}: not an index") from None
        if not 0 <= index < n:
            raise NotFound(f"prototype {index} does not exist in version {version.id} ({n} prototypes)")
        return index

    def prototype_mel(self, index, version_id=None):
        """The decoded prototype ``g(P_j)`` unscaled to the feature units ``(T, F)`` (Section 5.1.2)."""
        with self.lock:
            v = self.version(version_id)
            index = self._prototype_index(v, index)
            return self.scaler.inverse_transform(self.decoded(v.id)["mel"][index])

    def reconstruction_mel(self, clip_id, version_id=None):
        """The autoencoder reconstruction ``g(f(X))`` of a clip, unscaled (Section 5.1.1)."""
        from apnet.inspection import reconstruct

        x = self.scaled(clip_id)
        with self.lock:
            v = self.version(version_id)
            return self.scaler.inverse_transform(reconstruct(v.model, x)[0])

    def mel_audio(self, S):
        """Audio of an unscaled mel-spectrogram: mel inversion + Griffin-Lim, peak 0.9 (Section 5.1.1)."""
        from apnet.figures import prototype_audio

        return prototype_audio(S, None, self.feature_params)

    # ------------------------------------------------------------------ edits
    def delete_prototypes(self, indices):
        """Push a version without the prototypes ``indices`` and their rows of ``H`` and ``W``."""
        from apnet.refinement import remove_prototypes

        with self.lock:
            self._check_free()
            v = self.current
            if isinstance(indices, (int, np.integer)) and not isinstance(indices, bool):
                indices = [indices]
            if not isinstance(indices, (list, tuple)) or not indices:
                raise ParameterError(f"give a non-empty list of prototype indices; received {indices!r}")
            bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, (int, np.integer))]
            if bad:
                raise ParameterError(f"prototype indices must be integers; received {bad}")
            model = remove_prototypes(v.model, indices)
            gone = set(int(i) for i in indices)
            kept = [j for j in range(self.n_prototypes(v)) if j not in gone]
            origins = [v.origins[j] for j in kept]
            new = self._push(model, f"deleted prototype(s) {sorted(gone)}", origins)
            self._derive_decoded(new, v, kept=kept)
            return {"version": new.id, "n_prototypes": self.n_prototypes(new)}

    def convert_instance(self, clip_id):
        """Push a version where training instance ``clip_id`` is a new prototype of its class.

        Its latent vector ``Z_i = f(X_i)`` under the current encoder becomes the last
        prototype (:func:`apnet.refinement.add_prototype`); its row of ``W`` votes for the
        instance's class.
        """
        from apnet.inspection import encoder_model
        from apnet.refinement import add_prototype

        info = self.clip(clip_id)
        if info["split"] != "train":
            raise ParameterError(f"clip {clip_id!r} is in the {info['split']} split; only training instances "
                                 "can become prototypes")
        with self.lock:
            self._check_free()
            v = self.current
            latent = keras.ops.convert_to_numpy(encoder_model(v.model).predict_on_batch(self.scaled(clip_id))[0])[0]
            model = add_prototype(v.model, latent, info["label"])
            new = self._push(model, f"converted instance {clip_id} (class {self.classes[info['label']]}) "
                                    f"into prototype {self.n_prototypes(v)}", v.origins + [f"instance {clip_id}"])
            self._derive_decoded(new, v, added=clip_id)
            return {"version": new.id, "n_prototypes": self.n_prototypes(new), "index": self.n_prototypes(new) - 1}

    def undo(self):
        """Drop the current version (the loaded model, version 0, always stays)."""
        with self.lock:
            self._check_free()
            if len(self._versions) == 1:
                raise Conflict("nothing to undo: the model is the one loaded")
            dropped = self._versions.pop()
            return {"version": self.current.id, "undone": dropped.description,
                    "n_prototypes": self.n_prototypes()}

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, version_id=None):
        """Test-fold accuracy and confusion matrix (rows: true class, columns: predicted) of a version."""
        from apnet.training import FeatureBatches, predict_classes

        with self.lock:
            v = self.version(version_id)
            if "evaluation" not in v.cache:
                batches = FeatureBatches(self.data.features, self.data.rows["test"], self.data.targets["test"],
                                         self.batch_size, scaler=self.scaler)
                predicted = predict_classes(v.model, batches).argmax(axis=1)
                labels = self.data.targets["test"].argmax(axis=1)
                confusion = np.zeros((len(self.classes), len(self.classes)), dtype=int)
                np.add.at(confusion, (labels, predicted), 1)
                v.cache["evaluation"] = {"version": v.id, "accuracy": float(np.mean(predicted == labels)),
                                         "confusion": confusion.tolist(), "n_test": int(len(labels)),
                                         "n_prototypes": self.n_prototypes(v)}
            return v.cache["evaluation"]

    def retrain(self, epochs, report=None, cancelled=None):
        """Train a copy of the current version ``epochs`` more epochs, evaluate it and push it.

        The run's settings (:func:`apnet.training.compile_apnet` with ``alpha``, ``beta``,
        ``gamma``, ``learning_rate``; ``batch_size``; ``seed``) on the fold's training split,
        keeping the epoch of best validation accuracy (Section 4.4), in memory: nothing is
        written. Edits are refused meanwhile (:class:`Conflict`).

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
        from apnet.training import APNET_MONITOR, FeatureBatches, compile_apnet

        report = report or (lambda **kwargs: None)
        epochs = _positive_int(epochs, "epochs", MAX_EPOCHS)
        with self.lock:
            self._check_free()
            base = self.current
            model = _copy_model(base.model)
            self.busy = f"a retrain of version {base.id} ({epochs} epoch(s)) is running"
        start = time.perf_counter()
        try:
            config, seed = self.config, int(self.config["seed"])
            keras.utils.set_random_seed(seed)
            compile_apnet(model, config["alpha"], config["beta"], config["gamma"], float(config["learning_rate"]))
            train = FeatureBatches(self.data.features, self.data.rows["train"], self.data.targets["train"],
                                   self.batch_size, scaler=self.scaler, shuffle=True, seed=seed)
            validation = FeatureBatches(self.data.features, self.data.rows["validation"],
                                        self.data.targets["validation"], self.batch_size, scaler=self.scaler)
            progress, best = _Progress(report, cancelled, epochs, len(train)), _KeepBest(APNET_MONITOR)
            report(phase="training", epochs=epochs, steps=len(train), epoch=0, batch=0, progress=0.0)
            try:
                # No Keras shuffling (Python's global random): the order is FeatureBatches' (seed, epoch) one.
                # DivergenceGuard raises TrainingDivergedError on a NaN/Inf loss or weight: no version is pushed.
                model.fit(train, validation_data=validation, epochs=epochs, shuffle=False, verbose=0,
                          callbacks=[DivergenceGuard(), EpochOrder(train), progress, best])
            except _Cancelled:
                return {"cancelled": True, "version": base.id, "history": progress.history,
                        "seconds": time.perf_counter() - start}
            report(phase="evaluating", progress=1.0)
            original, before = self.evaluate(0), self.evaluate(base.id)
            with self.lock:
                new = self._push(model, f"retrained {len(progress.history)} epoch(s) from version {base.id}",
                                 base.origins, new_encoder=True)
            after = self.evaluate(new.id)
            return {
                "version_before": base.id,
                "version": new.id,
                "epochs": len(progress.history),
                "best_epoch": best.best_epoch,
                "history": progress.history,
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

        ``n`` is the first number whose files do not exist; the file is written atomically
        under a temporary name (:func:`audioruns.checkpoints.save_model_atomic`: complete and
        flushed to disk) and then hard-linked to its final name, which fails rather than
        replace a file that appeared meanwhile, so no existing file (the loaded model
        included) is ever overwritten. When the folder is not the run folder, the run's
        ``config.yaml`` and ``scaler.json`` (and a ``results.json`` naming the dataset and
        fold) are copied there unless present, so the saved model loads like a run
        (``python -m audioapp --model <folder>/model_edited_<n>.keras``).

        Bounded, so that repeated saves cannot fill the disk: a version already saved to that
        folder (its file still there) is not written again (``already_saved`` is true and its
        file is returned); at most :attr:`max_saves` files are written per session; nothing is
        written when the disk has less than :data:`MIN_FREE_BYTES` free.

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
        import shutil

        folder = Path(os.path.abspath(output_dir)) if output_dir else self.output_dir
        with self.lock:
            v = self.current
            previous = self._saved.get((str(folder), v.id))
            if previous is not None and Path(previous["path"]).is_file():
                return self._save_result(v, previous, True, folder)
            if len(self._saved) >= self.max_saves:
                raise StorageLimit(f"this session has saved {len(self._saved)} models (the limit, "
                                   f"{self.max_saves} files, {self._session_bytes() / 2**20:.1f} MB); restart the "
                                   "app to save more, after removing the files you no longer need")
            folder.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(folder).free
            if free < MIN_FREE_BYTES:
                raise StorageLimit(f"only {free / 2**20:.0f} MB free on the disk of {folder}; saving needs at least "
                                   f"{MIN_FREE_BYTES / 2**20:.0f} MB free; nothing was written")
            self._prepare_folder(folder)
            summary = {
                "source_model": str(self.model_path),
                "dataset": self.dataset_name,
                "fold": self.fold,
                "version": v.id,
                "edits": [w.description for w in self._versions],
                "n_prototypes": self.n_prototypes(v),
                "prototype_origins": v.origins,
                "test_accuracy": v.cache.get("evaluation", {}).get("accuracy"),
                "test_accuracy_original": self._versions[0].cache.get("evaluation", {}).get("accuracy"),
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            n = 0
            while True:
                n += 1
                target = folder / f"model_edited_{n}.keras"
                sidecar = target.with_suffix(".json")
                if target.exists() or sidecar.exists() or _same_file(target, self.model_path):
                    continue
                temporary = folder / f".model_edited_{n}.{os.getpid()}.{threading.get_ident()}.keras"
                try:
                    save_model_atomic(v.model, temporary)
                    _publish(temporary, target)
                except FileExistsError:
                    continue
                except OSError as err:
                    if err.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise StorageLimit(f"the disk of {folder} is full ({err.strerror}); nothing was kept") from None
                    raise
                finally:
                    temporary.unlink(missing_ok=True)
                break
            _write_new(sidecar, json.dumps({**summary, "model": target.name}, indent=2) + "\n")
            record = {"path": str(target), "summary": str(sidecar), "bytes": target.stat().st_size}
            self._saved[(str(folder), v.id)] = record
            return self._save_result(v, record, False, folder)

    def _session_bytes(self):
        return sum(record["bytes"] for record in self._saved.values())

    def _save_result(self, version, record, already_saved, folder):
        import shutil

        return {"path": record["path"], "summary": record["summary"], "path_shown": _shown(record["path"]),
                "version": version.id,
                "n_prototypes": self.n_prototypes(version), "already_saved": already_saved,
                "bytes": record["bytes"], "saves": len(self._saved), "max_saves": self.max_saves,
                "session_bytes": self._session_bytes(), "disk_free_bytes": shutil.disk_usage(folder).free}

    def _prepare_folder(self, folder):
        if folder == self.run_dir:
            return
        import shutil

        for name in ("config.yaml", "scaler.json"):
            source, target = self.run_dir / name, folder / name
            if not target.exists():
                shutil.copyfile(source, target)
            elif target.read_bytes() != source.read_bytes():
                raise ParameterError(f"{target} belongs to another run (it differs from {source}); choose another "
                                     "output folder")
        results = folder / "results.json"
        if not results.exists():
            _write_new(results, json.dumps({"dataset": self.dataset_name, "fold": self.fold,
                                            "source_model": str(self.model_path)}, indent=2) + "\n")


def _same_file(a, b):
    try:
        return os.path.abspath(a) == os.path.abspath(b) or (Path(a).exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _publish(temporary, target):
    """Give ``temporary`` the name ``target`` without ever replacing an existing ``target``."""
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system: exclusive create + copy
        import shutil

        with open(target, "xb") as out, open(temporary, "rb") as source:
            shutil.copyfileobj(source, out)


def _write_new(path, text):
    with open(path, "x", encoding="utf-8") as out:
        out.write(text)
