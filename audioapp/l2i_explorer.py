"""The L2I page's back end: explain a test clip or an uploaded file with a trained L2I run (Sec. III-E).

The one module of the app that uses :mod:`l2i` (the APNet pages are
:mod:`audioapp.workspace`'s). It wraps :mod:`l2i.pipeline`: :func:`~l2i.pipeline.load_run`,
:func:`~l2i.pipeline.load_clip`, :func:`~l2i.pipeline.explain_signal` and
:func:`~l2i.pipeline.test_split`, and :mod:`l2i.interpretation` for the audio of Algorithm 1.

Every file is decoded by :meth:`L2IExplorer.decode` (:func:`~l2i.pipeline.load_clip` with a
duration limit): its header is read first and a file longer than :data:`MAX_DURATION_FACTOR`
times the run's clip length is refused before a sample is decoded (HTTP 413; a compressed
file of silence can decode to hours of audio); then only the analysed window is decoded. Dataset clips are served only when their real path
(symbolic links resolved, at request time) lies in the dataset folder.

A clip is named by a *source*: ``"clip:<clip_id>"`` for a test clip of the run's fold, or
``"upload:<token>"`` for an uploaded file (stored in the app's cache folder under a random
token; the client's file name is only displayed). The relevances do not depend on ``tau``,
so one explanation per source is computed and cached, and ``tau`` only selects the
components ``L_{c,x} = {k : r_k > tau}``.
"""
import os
import re
import secrets
import threading
from pathlib import Path

import numpy as np

from audiodata.cli import float_range, require
from audiodata.datasets import get_dataset
from audiodata.errors import AudioFileError, ParameterError
from audiodata.io import AudioTooLongError, audio_info
from l2i import interpretation
from l2i.interpretation import relevant_components
from l2i.pipeline import check_tau, explain_signal, load_clip, load_run, test_split

from audioapp.errors import NotFound, PayloadTooLarge, existing_index
from audioapp.files import audio_file
from audioapp.rendering import LRUCache

_TOKEN = re.compile(r"^[0-9a-f]{32}$")
#: File endings kept for stored uploads (the content is decoded whatever the name says).
UPLOAD_EXTENSIONS = (".wav", ".flac", ".ogg")
#: Uploads kept at once; the oldest file is deleted beyond that, so the cache folder stays bounded.
MAX_UPLOADS = 32
#: Longest file decoded, as a multiple of the run's clip length (ESC-10: 4 x 5 s = 20 s). Longer files
#: are refused from their header, before decoding (HTTP 413): the analysed window is the first
#: clip length of the file anyway, and the cap bounds the memory and time a request can take.
MAX_DURATION_FACTOR = 4


class L2IExplorer:
    """A trained L2I system and the clips it can explain.

    Args:
        model_dir: run folder holding ``interpreter.keras`` (``<mode>_<theta>/``) or its
            ``seed<S>`` parent (see :func:`l2i.pipeline.load_run`).
        cache_dir: folder for the uploaded files (the app's cache folder).
        fold: test fold whose clips are listed (default: the run's, else 1).
        data_dir: dataset folder (default ``$AUDIO_DATA_DIR``).
        dataset: optional, when the run folder does not name it.
        max_duration: longest file decoded, in seconds (default :data:`MAX_DURATION_FACTOR`
            times the run's clip length).
    """

    def __init__(self, model_dir, cache_dir, fold=None, data_dir=None, dataset=None, max_duration=None):
        self.run = load_run(model_dir, dataset=dataset)
        self.fold = int(fold if fold is not None else (self.run.fold if self.run.fold is not None else 1))
        clips, labels, classes = test_split(self.run.dataset, self.fold, data_dir)
        if tuple(classes) != tuple(self.run.classes):
            raise ParameterError(f"the classes of {self.run.path} differ from those of {self.run.dataset}")
        self._clips = {str(cid): {"path": str(path),
                                  "labels": [classes[j] for j in np.flatnonzero(np.nan_to_num(t) > 0)]}
                       for cid, path, t in zip(clips["clip_id"], clips["path"], labels)}
        self._data_root = str(get_dataset(self.run.dataset, data_dir=data_dir).root)
        self.cache_dir = Path(os.path.abspath(cache_dir))
        self.upload_dir = self.cache_dir / "uploads"
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self._uploads = {}
        self._explanations = LRUCache(16)
        self._lock = threading.Lock()
        if max_duration is None:
            max_duration = MAX_DURATION_FACTOR * float(self.run.duration)
        seconds = float_range(float(self.run.duration), name="max_duration",
                              description=f"a number of seconds >= the clip length {self.run.duration:g}")
        self.max_duration = float(require(seconds, max_duration, "max_duration"))

    # ------------------------------------------------------------------ sources
    def info(self):
        run = self.run
        return {"model": str(run.path), "dataset": run.dataset, "fold": self.fold, "classes": list(run.classes),
                "n_components": run.n_components, "sr": run.sr, "duration": run.duration,
                "multilabel": run.multilabel, "mode": run.results.get("mode"), "theta": run.results.get("theta"),
                "max_duration": self.max_duration}

    def clips(self):
        """The test clips: ``[{"clip_id", "class_name"}]`` (class names joined for multi-label data)."""
        return [{"clip_id": cid, "class_name": ", ".join(c["labels"]) or "?"} for cid, c in self._clips.items()]

    def roots(self):
        """Folders audio may be read from: the dataset's test clips and the upload folder."""
        return [r for r in (self._data_root, str(self.cache_dir)) if r]

    def decode(self, path, name=None):
        """The analysed clip of an audio file: :func:`l2i.pipeline.load_clip` with :attr:`max_duration`.

        The header is read first: a file longer than :attr:`max_duration` is refused before a
        sample is decoded (a header that does not give the length is counted while decoding and
        stopped at the limit). Then only the first ``run.duration`` seconds are decoded (plus
        1 s for the resampler), mixed to mono, resampled to ``run.sr``, padded or cut and peak
        normalised like the run's training clips.

        Returns
        -------
        y : np.ndarray [shape=(round(sr * duration),)], float32
        info : dict
            ``original_sr``, ``channels``, ``seconds`` (None when the header does not give
            it), ``warnings`` (e.g. a truncated WAV: the header's and the file's lengths).

        Raises
        ------
        audioapp.errors.PayloadTooLarge
            Longer than :attr:`max_duration` (HTTP 413).
        audiodata.errors.AudioFileError
            Not audio, no samples, NaN/Inf.
        """
        name = name or Path(path).name
        run = self.run
        header = audio_info(path)
        try:
            # A truncated WAV also warns (AudioFileWarning, to the server log); the page gets info["warnings"].
            y, clip = load_clip(path, run.sr, run.duration, peak_normalize=run.logmag_params.get("peak_normalize"),
                                max_duration=self.max_duration, header=header)
        except AudioTooLongError:
            how = (f"lasts {header.seconds:.1f} s (according to its header)" if header.seconds is not None
                   else f"lasts more than {self.max_duration:g} s")
            raise PayloadTooLarge(f"{name} {how}: the L2I page explains {run.duration:g}-second clips and decodes "
                                  f"files of at most {self.max_duration:g} s ({self.max_duration / run.duration:g} x "
                                  "the clip length); cut the file to the part to explain") from None
        notes = []
        if header.truncated:
            claimed = header.header_frames / header.samplerate
            notes.append(f"{name} is truncated: its header announces {claimed:.3f} s ({header.header_frames} frames) "
                         f"but it holds {header.seconds:.3f} s ({header.frames} frames); only that part is analysed")
        info = {"original_sr": clip["original_sr"], "channels": clip["channels"], "seconds": clip["seconds"],
                "warnings": notes}
        return y, info

    def add_upload(self, filename, data):
        """Store uploaded bytes, decode them as one clip (:meth:`decode`) and return a source.

        Raises
        ------
        audiodata.errors.AudioFileError
            Not audio (the message names the client's file name and says what is accepted).
        audioapp.errors.PayloadTooLarge
            Longer than :attr:`max_duration` (the file is not kept).
        """
        name = Path(str(filename or "upload")).name[:120] or "upload"
        suffix = Path(name).suffix.lower()
        if suffix not in UPLOAD_EXTENSIONS:
            suffix = ".bin"
        token = secrets.token_hex(16)
        path = self.upload_dir / f"{token}{suffix}"
        path.write_bytes(data)
        try:
            y, info = self.decode(path, name)
        except AudioFileError as err:
            path.unlink(missing_ok=True)
            raise AudioFileError(name, f"is not an audio file this app can read ({err.reason.split(' (')[0]}); "
                                       f"upload a WAV, FLAC or OGG file") from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        with self._lock:
            self._uploads[token] = {"name": name, "path": path, "y": y, "info": info}
            while len(self._uploads) > MAX_UPLOADS:
                oldest = next(iter(self._uploads))
                self._uploads.pop(oldest)["path"].unlink(missing_ok=True)
        seconds = None if info["seconds"] is None else round(float(info["seconds"]), 3)
        return {"source": f"upload:{token}", "name": name, "seconds": seconds,
                "original_sr": info["original_sr"], "channels": info["channels"], "warnings": info["warnings"]}

    def _signal(self, source):
        kind, _, key = str(source).partition(":")
        if kind == "clip":
            clip = self._clips.get(key)
            if clip is None:
                raise NotFound(f"clip {key[:80]!r} is not a test clip of {self.run.dataset} fold {self.fold}")
            path = audio_file(clip["path"], self.roots())
            y, _ = self.decode(path, key)
            return y, key, ", ".join(clip["labels"])
        if kind == "upload":
            upload = self._uploads.get(key) if _TOKEN.match(key) else None
            if upload is None:
                raise NotFound(f"upload {key[:40]!r} does not exist (the app keeps the last {MAX_UPLOADS} uploads "
                           "until it stops)")
            return upload["y"], upload["name"], None
        raise NotFound(f"source {str(source)[:60]!r}: expected 'clip:<clip_id>' or 'upload:<token>'")

    def explanation(self, source):
        """The :class:`l2i.pipeline.Explanation` of a source for the class ``f`` predicts (cached)."""
        def compute():
            y, name, label = self._signal(source)
            with self._lock:
                e = explain_signal(self.run, y, tau=0.0)
            return e, name, label

        return self._explanations.get(str(source), compute)

    # ------------------------------------------------------------------ results
    def explain(self, source, tau=0.1):
        """Prediction, relevance of every component and the relevant ones for ``tau`` (JSON-ready)."""
        tau = check_tau(tau)
        e, name, label = self.explanation(source)
        names = self.run.classes
        top = np.argsort(-e.f)[:5]
        return {
            "source": str(source),
            "name": name,
            "true_class": label,
            "predicted": [names[j] for j in e.predicted],
            "class": names[e.c],
            "class_probability": float(e.f[e.c]),
            "top5": [{"class": names[j], "probability": float(e.f[j]), "interpreter": float(e.g[j])} for j in top],
            "tau": tau,
            "relevance": [float(r) for r in e.relevance],
            "components": [int(k) for k in relevant_components(e.relevance, tau)],
        }

    def input_audio(self, source):
        e, _, _ = self.explanation(source)
        return e.y, self.run.sr

    def interpretation_audio(self, source, tau):
        """``x_int`` of Algorithm 1 for the components relevant at ``tau``."""
        e, _, _ = self.explanation(source)
        components = relevant_components(e.relevance, check_tau(tau))
        y = interpretation.interpret(e.X, e.phase, self.run.W, e.H, components, stft=self.run.stft, length=e.y.size)
        return y, self.run.sr

    def component_audio(self, source, k):
        """``x_k`` of Algorithm 1 for one component ``k``."""
        e, _, _ = self.explanation(source)
        n = self.run.n_components
        k = existing_index(k, n, "component", f"(the dictionary has {n})")
        y = interpretation.component_audio(e.X, e.phase, self.run.W, e.H, [k], stft=self.run.stft, length=e.y.size)
        return y[0], self.run.sr

    def spectrograms(self, source, tau):
        """Input log-magnitude ``X`` and interpretation spectrogram ``X_int`` for ``tau`` (time first)."""
        e, _, _ = self.explanation(source)
        components = relevant_components(e.relevance, check_tau(tau))
        return e.X, interpretation.interpretation_spectrogram(e.X, self.run.W, e.H, components)
