"""From a trained L2I run folder to interpretations and evaluation scores (L2I, Sec. III-E, IV-C, V).

The command-line scripts ``experiments/l2i/{interpret,evaluate,tables}.py`` and the
notebooks call these functions:

* :func:`load_run` -- a trained run folder (``<output>/l2i/<dataset>/fold<N>/seed<S>/<mode>_<theta>/``
  written by ``train_interpreter.py``) as an :class:`L2IRun`: interpreter, the classifier
  ``f`` it explains (the one stored inside ``interpreter.keras``, so ``f`` and ``g``
  share their weights exactly), the dictionary ``W``, the class names and the feature
  parameters of the dataset;
* :func:`load_clip` -- any audio file as the network expects it: resampled to the
  dataset rate (44.1 kHz), mixed to mono, cut to one window of the dataset clip
  length (5 s for ESC-50, 10 s for SONYC-UST and OpenMIC-2018) starting at
  ``start`` seconds, zero-padded when shorter;
* :func:`explain_signal` -- prediction of ``f`` and ``g``, relevances ``r_{k,c,x}``
  and relevant components ``L_{c,x}`` of one clip (Sec. III-E), returned as an
  :class:`Explanation` that :meth:`Explanation.write` turns into audio files and a figure
  (Algorithm 1);
* :func:`evaluate_run` -- fidelity, accuracy, reconstruction and fidelity losses,
  ``FF_median`` for several thresholds ``tau`` and the Random Baseline (Sec. IV-C),
  optionally on corrupted clips (Sec. V-B);
* :func:`find_results` -- every ``results.json`` below a folder, with the run it belongs to
  (what ``tables.py`` and the notebooks read).

Interpreted classes. Multi-class data: the class predicted by ``f`` (argmax).
Multi-label data: every class with ``f(x)_c > 0.5`` is interpreted (one ``FF_x`` per
(clip, class) pair); a clip with no such class has no faithfulness value. SONYC-UST's
'non-machinery-impact' is left out of the fidelity AUPRCs and of faithfulness (Sec. V-A).

Random Baseline (Sec. IV-C). For each ``tau``, as many components as ``L_{c,x}`` holds
on average over the test set (per class for multi-label data), rounded, are drawn at
random among the components *not* in ``L_{c,x}`` (fewer when not enough remain) and
removed; its ``FF_median`` is reported at every ``tau`` (the paper gives ``tau = 0.1``).
"""
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from audiodata.datasets import DATASETS, get_dataset
from audiodata.datasets.esc50 import CLASSES, ESC10_TARGETS
from audiodata.errors import AudioFileError, ParameterError
from audiodata.features import STFTParams, features_from_signal, load_feature_params, log_magnitude_spectrogram
from audiodata.features.extract import peak_normalize as _peak_normalize
from audiodata.io import audio_info, load_audio, write_audio
from audioruns.checkpoints import load_model_file
from audioruns.folds import fold_targets, split_fold
from audioruns.runs import Run, locate, read_results
from l2i import metrics
from l2i.corruption import add_white_noise, mix, mixing_partner
from l2i.interpretation import relevance, relevant_components, write_interpretation
from l2i.losses import crossentropy, nmf_reconstruction_loss
from l2i.runs import differences, identity_from_results, read_identity

__all__ = [
    "CORRUPTIONS",
    "DEFAULT_TAUS",
    "Explanation",
    "L2IRun",
    "check_tau",
    "class_index",
    "dataset_classes",
    "evaluate_run",
    "explain_signal",
    "find_results",
    "interpret_file",
    "load_clip",
    "load_run",
    "test_split",
]

#: Thresholds of Table V.
DEFAULT_TAUS = (0.1, 0.3, 0.5, 0.7, 0.9)
#: Corruptions of the audio corruption experiment (Sec. V-B): none, white noise at 0 dB, mixture with
#: a clip of another class at 0 dB.
CORRUPTIONS = ("none", "noise", "mix")
#: OpenMIC-2018's 20 instruments in the order of its ``class-map.json`` (fixed by the dataset; the loader reads
#: them from the data folder, so its class attribute is empty until a folder is opened).
OPENMIC_CLASSES = ("accordion", "banjo", "bass", "cello", "clarinet", "cymbals", "drums", "flute", "guitar",
                   "mallet_percussion", "mandolin", "organ", "piano", "saxophone", "synthesizer", "trombone",
                   "trumpet", "ukulele", "violin", "voice")
#: A ``results.json`` anywhere below a system folder (:func:`find_results`, which also reads the
#: ``evaluation_<corruption>/`` folders inside runs); a run folder itself is read by :func:`_location`.
_RUN_PATTERN = re.compile(r"l2i/(?P<dataset>[^/]+)/fold(?P<fold>\d+)/seed(?P<seed>\d+)/(?P<system>[^/]+)")


# --------------------------------------------------------------------------- checks
def check_tau(tau):
    """``tau`` as a float in ``[0, 1)`` (Sec. III-E), or :class:`ParameterError` naming it.

    Parameters
    ----------
    tau : float or str
        Relevance threshold.

    Returns
    -------
    tau : float

    Raises
    ------
    audiodata.errors.ParameterError
        ``tau`` is not a number in ``[0, 1)``.
    """
    try:
        value = float(tau)
    except (TypeError, ValueError):
        raise ParameterError(f"tau must be a number in [0, 1), got {tau!r}") from None
    if not 0.0 <= value < 1.0:
        raise ParameterError(f"tau must lie in [0, 1) (the paper uses 0.1 to 0.9), got {tau!r}")
    return value


def dataset_classes(dataset):
    """Class names of ``dataset`` (no data needed), index = label.

    Parameters
    ----------
    dataset : str

    Returns
    -------
    classes : tuple of str

    Raises
    ------
    audiodata.errors.ParameterError
        An unknown dataset, or one whose class names come from its data folder.
    """
    if dataset == "esc10":
        return tuple(CLASSES[t] for t in ESC10_TARGETS)
    if dataset not in DATASETS:
        raise ParameterError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    classes = tuple(getattr(DATASETS[dataset][0], "classes", None) or ())
    if not classes and dataset == "openmic":
        return OPENMIC_CLASSES
    if not classes:
        raise ParameterError(f"{dataset}: its class names come from the data folder; pass them explicitly")
    return classes


# --------------------------------------------------------------------------- a trained run
@dataclass(kw_only=True)
class L2IRun(Run):
    """A trained L2I system, ready to explain clips.

    Attributes
    ----------
    path : Path
        The run folder (holding ``interpreter.keras``); also :attr:`run_dir`.
    dataset : str
    fold : int or None
        From the path (``.../l2i/<dataset>/fold<N>/seed<S>/<system>``), else the run's ``results.json``.
    results : dict
        The run's ``results.json`` (empty if absent); :attr:`info` is the same dict.
    classes : tuple of str
    interpreter : l2i.interpreter.L2IInterpreter
    classifier : keras.Model
        ``f`` (shares its layers with ``interpreter``).
    W : np.ndarray [shape=(F, K)]
    theta : np.ndarray [shape=(K, C)]
        Kernel of ``"theta_linear"``.
    mel_params, logmag_params : dict
        Feature parameters (``audiodata/configs/<dataset>.yaml``).
    """

    classes: tuple
    interpreter: object
    classifier: object
    W: np.ndarray
    theta: np.ndarray
    mel_params: dict
    logmag_params: dict
    _forward: object = field(default=None, repr=False, compare=False)

    @property
    def info(self):
        """The run's ``results.json``: :attr:`results` under its former name (read-only)."""
        return self.results

    @property
    def multilabel(self):
        return bool(self.interpreter.multilabel)

    @property
    def n_components(self):
        return int(self.W.shape[1])

    @property
    def sr(self):
        return int(self.logmag_params["sr"])

    @property
    def duration(self):
        return float(self.logmag_params["duration"])

    @property
    def stft(self):
        """The STFT of the log-magnitude features (:class:`audiodata.features.STFTParams`, for Algorithm 1)."""
        return STFTParams.from_feature_params(self.logmag_params)

    @property
    def ignored(self):
        """Indices of the classes left out of fidelity AUPRCs and faithfulness."""
        return metrics.ignored_classes(self.dataset, self.classes)

    def features(self, y):
        """``mel`` [shape=(T, n_mels)] (input of f), ``X`` and ``phase`` [shape=(T, F)] of a mono clip."""
        mel = features_from_signal(y, self.mel_params)
        p = self.logmag_params
        X, phase = log_magnitude_spectrogram(y, n_frames=p.get("n_frames"), return_phase=True,
                                             **self.stft.stft_kwargs())
        return mel, X, phase

    def predict(self, mel):
        """One forward pass on a batch of log-mels [shape=(B, T, n_mels)].

        Returns
        -------
        dict of np.ndarray
            ``f`` (B, C) classifier probabilities, ``g`` (B, C) interpreter
            probabilities, ``H`` (B, K, T), ``z`` (B, K) or (B, C, K).
        """
        if self._forward is None:
            layer = self.interpreter.get_layer
            outputs = {"f": self.classifier.outputs[0], "g": layer("interpreter_prediction").output,
                       "H": layer("nmf_activations").output, "z": layer("theta_pool").output}
            self._forward = keras.Model(self.interpreter.inputs[0], outputs, name="l2i_forward")
        out = self._forward.predict_on_batch(np.asarray(mel, dtype=np.float32))
        return {k: np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float64) for k, v in out.items()}

    def classify(self, signals):
        """``f``'s probabilities [shape=(B, C)] for audio clips [shape=(B, n)] (faithfulness, Eq. 7)."""
        mels = np.stack([features_from_signal(np.asarray(y, dtype=np.float32), self.mel_params) for y in signals])
        return np.asarray(self.classifier.predict_on_batch(mels), dtype=np.float64)


def _find_interpreter(model_dir):
    model_dir = Path(model_dir)
    if (model_dir / "interpreter.keras").is_file():
        return model_dir
    if not model_dir.is_dir():
        raise ParameterError(f"--model {model_dir}: no such folder")
    found = sorted(p.parent for p in model_dir.glob("*/interpreter.keras"))
    if len(found) == 1:
        return found[0]
    for preferred in ("posthoc_att", "bydesign_att"):
        if model_dir / preferred in found:
            return model_dir / preferred
    names = [p.name for p in found]
    raise ParameterError(f"--model {model_dir}: holds no interpreter.keras" + (f" but several runs {names}; "
                         "name one" if names else " (train one with experiments/l2i/train_interpreter.py)"))


def _location(path):
    """:func:`audioruns.runs.locate` of an L2I system folder (``.../l2i/<dataset>/fold<N>/seed<S>/<system>``).

    None for any other path (another family, or no system folder).
    """
    location = locate(path)
    if location is None or location["family"] != "l2i" or location["system"] is None:
        return None
    return location


def load_run(model_dir, dataset=None):
    """Load a trained run folder as an :class:`L2IRun`.

    Parameters
    ----------
    model_dir : str or Path
        A ``<mode>_<theta>`` folder holding ``interpreter.keras``, or its
        ``seed<S>`` parent (then the only run in it, else ``posthoc_att``).
    dataset : str, optional
        Default: the ``dataset`` of the run's ``results.json``, else the folder name
        after ``l2i/`` in the path.

    Returns
    -------
    L2IRun

    Raises
    ------
    audiodata.errors.ParameterError
        No such folder, no (or no single) ``interpreter.keras`` in it, a dataset that cannot be
        told, or an interpreter whose number of classes differs from the dataset's.
    """
    path = _find_interpreter(model_dir)
    results = read_results(path)
    location = _location(path)
    if dataset is None:
        dataset = results.get("dataset")
    if dataset is None:
        if location is None:
            raise ParameterError(f"{path}: cannot tell the dataset (no results.json, not under l2i/<dataset>/); "
                                 "pass it explicitly")
        dataset = location["dataset"]
    fold = location["fold"] if location is not None else results.get("fold")
    interpreter = load_model_file(path / "interpreter.keras", compile=False)
    classes = dataset_classes(dataset)
    if len(classes) != interpreter.n_classes:
        raise ParameterError(f"{path}: the interpreter has {interpreter.n_classes} classes, {dataset} has "
                             f"{len(classes)}")
    config = "esc50" if dataset == "esc10" else dataset
    mel_params, logmag_params = load_feature_params(config, "mel"), load_feature_params(config, "logmag")
    W = np.asarray(keras.ops.convert_to_numpy(interpreter.get_layer("nmf_reconstruction").dictionary),
                   dtype=np.float64)
    return L2IRun(path=path, dataset=dataset, fold=None if fold is None else int(fold), results=results,
                  classes=classes, interpreter=interpreter, classifier=interpreter.classifier, W=W,
                  theta=np.asarray(interpreter.theta_weights, np.float64), mel_params=mel_params,
                  logmag_params=logmag_params)


def class_index(run, name):
    """Index of class ``name`` (exact, case-insensitive, or an integer index) or :class:`ParameterError`.

    Parameters
    ----------
    run : L2IRun
        Anything with ``classes`` and ``dataset``.
    name : str or int, optional

    Returns
    -------
    int or None
        None when ``name`` is None.

    Raises
    ------
    audiodata.errors.ParameterError
        ``name`` is no class of ``run``.
    """
    if name is None:
        return None
    text = str(name).strip()
    lowered = [c.lower() for c in run.classes]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    if text.isdigit() and int(text) < len(run.classes):
        return int(text)
    raise ParameterError(f"unknown class {name!r} for {run.dataset}; valid names: {', '.join(run.classes)}")


# --------------------------------------------------------------------------- one clip
def load_clip(path, sr=44100, duration=5.0, *, start=0.0, peak_normalize=False, max_duration=None, header=None):
    """Any audio file as one mono clip of ``duration`` seconds at ``sr`` Hz.

    Only the window ``[start, start + duration)`` of the file (WAV, FLAC, OGG) is
    decoded (:func:`audiodata.io.load_audio` with ``offset``), mixed down to mono by
    averaging the channels, resampled to ``sr`` and zero-padded at the end when the
    file is shorter. Longer files: pick
    the window with ``start``. Then, with ``peak_normalize``, the window is divided
    by its peak exactly as the training clips were
    (:func:`audiodata.features.extract.peak_normalize`; pass the run's
    ``logmag_params.get("peak_normalize")``).

    Parameters
    ----------
    path : str or Path
    sr : int
    duration : float
        Seconds (the dataset clip length: :attr:`L2IRun.duration`).
    start : float >= 0
        Start of the window, in seconds.
    peak_normalize : {False, None, True, 'abs', 'max'}
        The ``peak_normalize`` key of the run's feature sets (L2I datasets: ``'max'``).
    max_duration : float, optional
        Keyword only. Refuse a file longer than this many seconds
        (:class:`audiodata.io.AudioTooLongError`): from its header, before a sample is
        decoded, or, when the header does not give the length, while decoding, stopped at the
        limit. Bounds the time and memory one file can take (a compressed file of silence can
        decode to hours of audio). Default: no limit.
    header : audiodata.io.AudioInfo, optional
        Keyword only. The file's header when the caller has read it already
        (:func:`audiodata.io.audio_info`, e.g. to report a truncated WAV); read here otherwise.

    Returns
    -------
    y : np.ndarray [shape=(round(sr * duration),)], float32
    info : dict
        ``original_sr``, ``channels``, ``seconds`` (length of the file from its header; None when
        the header does not give it, e.g. a streamed FLAC), ``start``.

    Raises
    ------
    AudioFileError
        The file is missing, empty, not audio, holds NaN/Inf, or ends before ``start``.
    audiodata.io.AudioTooLongError
        Longer than ``max_duration`` (a subclass of :class:`AudioFileError`).
    """
    if not float(start) >= 0:
        raise ParameterError(f"start must be >= 0 seconds, got {start!r}")
    if header is None:
        header = audio_info(path)
    if header.seconds is not None and float(start) >= header.seconds:
        raise AudioFileError(path, f"lasts {header.seconds:.2f} s; nothing to analyse from start={start} s")
    # Only the window is decoded (the header is read first): the same samples as decoding the whole
    # file, resampling and cutting, without decoding hours of audio for a 5-second clip.
    y, _ = load_audio(path, sr=sr, mono=True, offset=float(start), duration=duration, max_duration=max_duration)
    info = {"original_sr": int(header.samplerate), "channels": int(header.channels), "seconds": header.seconds,
            "start": float(start)}
    return _peak_normalize(y, peak_normalize), info


@dataclass
class Explanation:
    """The interpretation of one clip for one class (Sec. III-E), ready to be written (Algorithm 1)."""

    run: L2IRun
    y: np.ndarray
    X: np.ndarray
    phase: np.ndarray
    H: np.ndarray
    f: np.ndarray
    g: np.ndarray
    c: int
    relevance: np.ndarray
    components: np.ndarray
    tau: float

    @property
    def predicted(self):
        """Classes predicted by ``f``: argmax (multi-class) or probability > 0.5 (multi-label)."""
        if self.run.multilabel:
            return [int(j) for j in np.flatnonzero(self.f > 0.5)]
        return [int(np.argmax(self.f))]

    def summary(self):
        """A JSON-ready dict: predictions, interpreted class, relevant components with their relevance."""
        names = self.run.classes
        top = np.argsort(-self.f)[:5]
        return {
            "predicted": [names[j] for j in self.predicted],
            "top5_classifier": {names[j]: float(self.f[j]) for j in top},
            "interpreter_probability": {names[j]: float(self.g[j]) for j in top},
            "class": names[self.c],
            "class_probability": float(self.f[self.c]),
            "tau": self.tau,
            "components": [int(k) for k in self.components],
            "relevance": {int(k): float(self.relevance[k]) for k in self.components},
        }

    def write(self, folder, title=None):
        """Write ``interpretation.wav``, ``component_<k>.wav``, ``input.wav``, ``interpretation.png`` and
        ``interpretation.json`` to ``folder``; returns the paths (:func:`l2i.interpretation.write_interpretation`)."""
        folder = Path(folder)
        paths = write_interpretation(folder, self.X, self.phase, self.run.W, self.H, self.components,
                                     stft=self.run.stft, relevance=self.relevance, tau=self.tau, title=title,
                                     length=self.y.size)
        paths["input"] = write_audio(folder / "input.wav", self.y, self.run.sr)
        paths["summary"] = folder / "interpretation.json"
        paths["summary"].write_text(json.dumps(self.summary(), indent=2))
        return paths


def explain_signal(run, y, c=None, *, tau=0.1):
    """Predict and explain one clip already at ``run.sr`` and of ``run.duration`` seconds.

    Parameters
    ----------
    run : L2IRun
    y : np.ndarray [shape=(n,)]
    c : int, optional
        Class to interpret; default the class predicted by ``f`` (the most probable one).
    tau : float in [0, 1)

    Returns
    -------
    Explanation
    """
    tau = check_tau(tau)
    mel, X, phase = run.features(np.asarray(y, dtype=np.float32))
    out = run.predict(mel[None])
    f, g = out["f"][0], out["g"][0]
    c = int(np.argmax(f)) if c is None else int(c)
    r = relevance(out["z"], run.theta, np.array([c]))[0]
    return Explanation(run=run, y=np.asarray(y, np.float32), X=X, phase=phase, H=out["H"][0], f=f, g=g, c=c,
                       relevance=r, components=relevant_components(r, tau), tau=tau)


def interpret_file(run, path, class_name=None, *, tau=0.1, start=0.0, output=None):
    """:func:`load_clip` + :func:`explain_signal` (+ :meth:`Explanation.write` when ``output`` is given).

    Parameters
    ----------
    run : L2IRun
    path : str or Path
        Any audio file (:func:`load_clip`).
    class_name : str or int, optional
        Class to interpret (:func:`class_index`); default the class predicted by ``f``.
    tau : float in [0, 1)
    start : float
        Start of the clip in the file, in seconds.
    output : str or Path, optional
        Folder to write the explanation to.

    Returns
    -------
    explanation : Explanation
    info : dict
        :func:`load_clip`'s ``info``, plus ``paths`` when written.
    """
    tau = check_tau(tau)
    c = class_index(run, class_name)
    y, info = load_clip(path, run.sr, run.duration, start=start,
                        peak_normalize=run.logmag_params.get("peak_normalize"))
    explanation = explain_signal(run, y, c, tau=tau)
    if output is not None:
        title = f"{Path(path).name}: {run.classes[explanation.c]} (tau = {tau:g})"
        info["paths"] = explanation.write(output, title=title)
    return explanation, info


# --------------------------------------------------------------------------- evaluation
def test_split(dataset, fold=1, data_dir=None):
    """The test clips of ``fold``: DataFrame (``clip_id``, ``path``), targets (NaN = not annotated), classes.

    Parameters
    ----------
    dataset : str
    fold : int
    data_dir : str or Path, optional

    Returns
    -------
    test : pandas.DataFrame
        The test clips (``clip_id``, ``path``, ...), index ``0 .. n-1``.
    targets : np.ndarray [shape=(n, C)]
        One-hot or multi-hot float64 targets (NaN: not annotated).
    classes : tuple of str
    """
    ds = get_dataset(dataset, data_dir=data_dir)
    test = split_fold(ds, fold, validation=False)["test"].reset_index(drop=True)
    return test, fold_targets(ds, test, dtype=np.float64), tuple(ds.classes)


def _corrupt(y, corruption, index, seed, partner_audio):
    if corruption == "noise":
        return add_white_noise(y, snr=0.0, seed=[seed, index])
    if corruption == "mix":
        return mix(y, partner_audio(index), ratio=0.0)
    return y


def task_scores(run, labels, probabilities, prefix=""):
    """The dataset's classification metric of ``probabilities`` against 0/1 ``labels`` (NaN = unknown).

    ESC: ``accuracy``; SONYC-UST: ``macro_auprc``, ``micro_auprc`` (every class, Table I / VIII);
    OpenMIC-2018: ``weighted_f1`` on the annotated labels (threshold 0.5). ``run``: anything with
    ``dataset``, ``classes``, ``multilabel`` (:func:`l2i.metrics.task_scores`).

    Parameters
    ----------
    run : L2IRun
    labels : np.ndarray [shape=(n, C)]
    probabilities : np.ndarray [shape=(n, C)]
    prefix : str
        Prefix of the keys.

    Returns
    -------
    dict
        Metric name (with ``prefix``) -> float.
    """
    return metrics.task_scores(run.dataset, run.classes, run.multilabel, labels, probabilities, prefix=prefix)


def fidelity_scores(run, f, g):
    """Fidelity of ``g`` to ``f`` (Sec. IV-C, Table IV), :func:`l2i.metrics.fidelity_scores`: top-1/top-5
    (fractions, multi-class); the authors' macro/micro AUPRC and max-F1 over 11 thresholds plus ours
    (``*_ap``, average precision) (SONYC-UST); weighted F1 (OpenMIC-2018).

    Parameters
    ----------
    run : L2IRun
        Anything with ``dataset``, ``classes``, ``multilabel``.
    f : np.ndarray [shape=(n, C)]
        Classifier output.
    g : np.ndarray [shape=(n, C)]
        Interpreter output.

    Returns
    -------
    dict
        Metric name -> float.
    """
    return metrics.fidelity_scores(run.dataset, run.classes, run.multilabel, f, g)


def _fidelity_loss(run, f, g):
    """``L_FID`` on the test set: cross-entropy of ``g`` against ``f`` (Eq. 1 or 2), batch mean
    (:func:`l2i.losses.crossentropy`)."""
    f, g = np.asarray(f, dtype=np.float64), np.asarray(g, dtype=np.float64)
    return float(crossentropy(f, g, run.multilabel))


def _interpreted_classes(run, f):
    """Classes interpreted for one clip: argmax (multi-class), ``f(x)_c > 0.5`` minus the ignored classes
    (multi-label)."""
    if not run.multilabel:
        return [int(np.argmax(f))]
    return [int(j) for j in np.flatnonzero(f > 0.5) if int(j) not in run.ignored]


@dataclass
class _Interpretation:
    """One (clip, interpreted class) pair of pass 1."""

    clip: int
    c: int
    r: np.ndarray
    H: np.ndarray


def _predict_split(run, clip, n, batch_size, progress):
    """Pass 1: ``f``, ``g`` [shape=(n, C)], test ``L_NMF`` (mean per bin) and the interpretations."""
    f_all, g_all, pairs, nmf_sum, n_bins = [], [], [], 0.0, 0
    for lo in range(0, n, batch_size):
        feats = [run.features(clip(i)) for i in range(lo, min(n, lo + batch_size))]
        out = run.predict(np.stack([m for m, _, _ in feats]))
        for b, (_, X, _) in enumerate(feats):
            reconstruction = (run.W @ out["H"][b]).T
            nmf_sum += float(nmf_reconstruction_loss(X[None], reconstruction[None], reduction="sum"))
            n_bins += X.size
            H = np.asarray(out["H"][b], dtype=np.float32)
            for c in _interpreted_classes(run, out["f"][b]):
                r = relevance(out["z"][b:b + 1], run.theta, np.array([c]))[0]
                pairs.append(_Interpretation(lo + b, c, r, H))
        f_all.append(out["f"])
        g_all.append(out["g"])
        if progress:
            print(f"pass 1: {min(n, lo + batch_size)}/{n} clips", flush=True)
    return np.concatenate(f_all), np.concatenate(g_all), nmf_sum / max(n_bins, 1), pairs


def _random_sizes(run, pairs, taus):
    """Random Baseline sizes ``{tau: {class: n}}``: the mean ``|L_{c,x}|``, per class for multi-label data."""
    classes = np.array([p.c for p in pairs], dtype=int)
    sizes = {}
    for t in taus:
        n_removed = np.array([relevant_components(p.r, t).size for p in pairs])
        if run.multilabel:
            sizes[t] = metrics.random_baseline_size(n_removed, classes)
        else:
            size = metrics.random_baseline_size(n_removed)
            sizes[t] = {int(c): size for c in np.unique(classes)}
    return sizes


def _clip_faithfulness(run, y, clip_pairs, taus, n_random, rng):
    """Pass 2 for one clip: ``FF_x`` of L2I and of the Random Baseline for each pair and ``tau``, one batch."""
    _, X, phase = run.features(y)
    requests, sizes = [], []
    for p in clip_pairs:  # all pairs of a clip share H, so removals depend on the component set only
        for t in taus:
            relevant = relevant_components(p.r, t)
            drawn = metrics.random_baseline_components(run.n_components, n_random[t][p.c], relevant, seed=rng)
            requests += [(p.c, relevant), (p.c, drawn)]
            sizes.append((p.c, t, relevant.size, drawn.size))
    drops = metrics.removal_drops(run.classify, X, phase, run.W, clip_pairs[0].H, requests, stft=run.stft, x=y)
    return [(c, t, drops[2 * i], n_rel, drops[2 * i + 1], n_rand) for i, (c, t, n_rel, n_rand) in enumerate(sizes)]


def _check_evaluation(corruption, taus):
    """``taus`` as a list of checked floats, or :class:`ParameterError` for them or for ``corruption``."""
    if corruption not in CORRUPTIONS:
        raise ParameterError(f"corruption must be one of {CORRUPTIONS}, got {corruption!r}")
    taus = [check_tau(t) for t in taus]
    if not taus:
        raise ParameterError("give at least one tau")
    return taus


def _clip_loader(run, paths, label_keys, corruption, seed):
    """``clip(i)``: test clip ``i`` as the network sees it (Sec. V-B: corrupted if asked), read from its file.

    Every call reads the file again (pass 1 and pass 2 each read a clip once): clips are not kept in
    memory. The corruption is a function of ``(seed, i)`` only, so both passes see the same signal.
    ``paths`` and ``label_keys`` cover the whole split: mixing partners are drawn from all of it.
    """
    peak = run.logmag_params.get("peak_normalize")

    def audio(i):
        return load_clip(paths[i], run.sr, run.duration, peak_normalize=peak)[0]

    def partner(i):
        return audio(mixing_partner(label_keys, i, seed=[seed, i]))

    def clip(i):
        return _corrupt(audio(i), corruption, i, seed, partner if corruption == "mix" else None)

    return clip


def _pairs_by_clip(pairs):
    """The interpretations of pass 1 grouped by clip: ``[(clip index, [pairs])]``, sorted by clip."""
    by_clip = {}
    for p in pairs:
        by_clip.setdefault(p.clip, []).append(p)
    return sorted(by_clip.items())


def _faithfulness_rows(run, clip, clip_ids, pairs, taus, n_random, seed, progress):
    """Pass 2: one row per (clip, interpreted class, tau) with ``FF_x`` of L2I and of the Random Baseline.

    The Random Baseline's draws come from one generator seeded with ``seed``, advanced clip by clip
    in the order of the clips.
    """
    rng = np.random.default_rng(seed)
    grouped = _pairs_by_clip(pairs)
    rows = []
    for done, (i, clip_pairs) in enumerate(grouped):
        for c, t, ff, n_rel, ff_random, n_rand in _clip_faithfulness(run, clip(i), clip_pairs, taus, n_random, rng):
            rows.append({"clip_id": clip_ids[i], "class": run.classes[c], "class_index": c, "tau": t, "ff": float(ff),
                         "n_removed": int(n_rel), "ff_random": float(ff_random), "n_random": int(n_rand)})
        if progress and (done + 1) % 10 == 0:
            print(f"pass 2: {done + 1}/{len(grouped)} clips", flush=True)
    return rows


def _relevance_arrays(run, pairs, clip_ids):
    """The relevances of every interpretation for Fig. 5: ``r`` (n_pairs, K), ``class_index``, ``clip_id``,
    ``classes``."""
    return {"r": np.array([p.r for p in pairs]).reshape(len(pairs), run.n_components),
            "class_index": np.array([p.c for p in pairs], dtype=int),
            "clip_id": np.array([clip_ids[p.clip] for p in pairs]),
            "classes": np.array(run.classes)}


def evaluate_run(run, fold=1, *, data_dir=None, taus=DEFAULT_TAUS, corruption="none", seed=0, max_clips=None,
                 batch_size=16, progress=False):
    """Fidelity, accuracy, losses and faithfulness of a trained run on the test split (Sec. IV-C, V-A, V-B).

    Pass 1 computes, for every test clip (corrupted if asked), ``f(x)``, ``g(x)``,
    ``H``, the relevances for the interpreted classes and ``|L_{c,x}|`` per ``tau``.
    Pass 2 removes ``L_{c,x}`` (Eq. 7) and, for the Random Baseline, as many random
    non-relevant components as ``L_{c,x}`` holds on average, and classifies every
    signal of a clip in one batch.

    Parameters
    ----------
    run : L2IRun
    fold : int
    data_dir : str or Path, optional
    taus : sequence of float in [0, 1)
    corruption : {'none', 'noise', 'mix'}
        Sec. V-B: white noise at 0 dB SNR, or a 0 dB mixture with a test clip of another
        class (drawn with ``seed``); the system itself is unchanged.
    seed : int
        Seeds the noise, the mixing partners and the Random Baseline.
    max_clips : int, optional
        Evaluate only the first ``max_clips`` test clips (quick checks).
    batch_size : int
        Clips per forward pass in pass 1.
    progress : bool
        Print the number of clips done in each pass (every 10 clips).

    Returns
    -------
    results : dict
        JSON-ready scores (see ``experiments/l2i/README.md``).
    rows : list of dict
        One row per (clip, interpreted class, tau): ``clip_id``, ``class``, ``tau``, ``ff``,
        ``n_removed``, ``ff_random``, ``n_random``.
    relevances : dict of np.ndarray
        ``r`` (n_pairs, K), ``class_index`` (n_pairs,), ``clip_id`` (n_pairs,), for Fig. 5.

    Raises
    ------
    audiodata.errors.ParameterError
        An unknown ``corruption``, a ``tau`` outside ``[0, 1)``, or run classes that differ from
        the dataset's.
    """
    taus = _check_evaluation(corruption, taus)
    start = time.perf_counter()
    clips, labels, classes = test_split(run.dataset, fold, data_dir)
    if tuple(classes) != tuple(run.classes):
        raise ParameterError(f"the run's classes differ from those of {run.dataset} in {data_dir}")
    label_keys = np.array([",".join(map(str, np.flatnonzero(np.nan_to_num(t) > 0))) for t in labels])
    clip = _clip_loader(run, clips["path"].tolist(), label_keys, corruption, seed)
    if max_clips is not None:
        clips, labels = clips.iloc[:int(max_clips)], labels[:int(max_clips)]
    clip_ids = [str(c) for c in clips["clip_id"]]

    f_all, g_all, nmf_loss, pairs = _predict_split(run, clip, len(clip_ids), batch_size, progress)
    rows = _faithfulness_rows(run, clip, clip_ids, pairs, taus, _random_sizes(run, pairs, taus), seed, progress)

    results = _summarise(run, taus, rows, f_all, g_all, labels)
    results.update({
        "dataset": run.dataset, "fold": int(fold), "corruption": corruption, "seed": int(seed),
        "n_clips": len(clip_ids), "n_interpretations": len(pairs), "n_components": run.n_components,
        "mode": run.results.get("mode"), "theta": run.results.get("theta"), "model": str(run.path),
        "test_nmf_loss": nmf_loss, "test_fidelity_loss": _fidelity_loss(run, f_all, g_all),
        "seconds": time.perf_counter() - start,
    })
    return results, rows, _relevance_arrays(run, pairs, clip_ids)


def _summarise(run, taus, rows, f, g, labels):
    """The JSON-ready scores of :func:`evaluate_run`: fidelity, task scores, ``FF_median`` (overall and per
    class, L2I and Random Baseline) and the mean numbers of removed components, per ``tau``."""
    def medians(items, key):
        overall = metrics.ff_median(np.array([r[key] for r in items], dtype=np.float64))
        per_class = metrics.ff_median(np.array([r[key] for r in items], dtype=np.float64),
                              classes=np.array([r["class_index"] for r in items], dtype=int)) if items else {}
        return overall, {run.classes[c]: value for c, value in per_class.items()}

    by_tau = {t: [r for r in rows if r["tau"] == t] for t in taus}
    ff = {t: medians(by_tau[t], "ff") for t in taus}
    ff_random = {t: medians(by_tau[t], "ff_random") for t in taus}
    return {
        "taus": list(taus),
        "fidelity": fidelity_scores(run, f, g),
        "classifier": task_scores(run, labels, f),
        "interpreter": task_scores(run, labels, g),
        "ff_median": [ff[t][0] for t in taus],
        "ff_median_random": [ff_random[t][0] for t in taus],
        "n_removed_mean": [float(np.mean([r["n_removed"] for r in by_tau[t]])) if by_tau[t] else 0.0 for t in taus],
        "n_random_mean": [float(np.mean([r["n_random"] for r in by_tau[t]])) if by_tau[t] else 0.0 for t in taus],
        "ff_median_per_class": {str(t): ff[t][1] for t in taus},
        "ff_median_random_per_class": {str(t): ff_random[t][1] for t in taus},
    }


# --------------------------------------------------------------------------- reading results back
def find_results(results_dir):
    """Every ``results.json`` below ``results_dir``, with what produced it.

    Parameters
    ----------
    results_dir : str or Path

    Returns
    -------
    list of dict
        ``{"path", "kind", "dataset", "fold", "seed", "system", "base", "corruption", "results", "training",
        "identity", "differences"}``: ``system`` is the run folder's name (``posthoc_att``,
        ``posthoc_att-B3-1f0c9a2e``, ...), ``base`` the part before the first ``-`` (``posthoc_att``);
        ``kind`` is ``"classifier"``, ``"dictionary"``, ``"interpreter"`` (training of a
        ``<mode>_<theta>`` folder), ``"baseline"`` (a ``baseline_<name>`` folder of
        ``train_baseline.py``) or ``"evaluation"`` (``evaluation_<corruption>/``,
        with ``training`` the results of its run folder, or {}). ``identity`` is the run's identity
        (:mod:`l2i.runs`; an evaluation has its run's), ``differences`` the keys where it differs from the
        main configuration (``[]``: a main run; None: unknown, e.g. baselines).
    """
    found = []
    for path in sorted(Path(results_dir).rglob("results.json")):
        match = _RUN_PATTERN.search(path.resolve().as_posix())
        try:
            results = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if match is None:
            continue
        system = match["system"]
        base = system.split("-")[0]
        entry = {"path": path, "dataset": match["dataset"], "fold": int(match["fold"]), "seed": int(match["seed"]),
                 "system": system, "base": base, "corruption": None, "results": results, "training": {}}
        if base in ("classifier", "dictionary"):
            entry["kind"] = base if path.parent.name == system else "other"
        elif path.parent.name.startswith("evaluation_"):
            entry.update(kind="evaluation", corruption=path.parent.name[len("evaluation_"):])
            entry["training"] = read_results(path.parent.parent)
        elif path.parent.name == system:
            entry["kind"] = "baseline" if system.startswith("baseline_") else "interpreter"
        else:
            entry["kind"] = "other"
        identity = None
        if entry["kind"] in ("classifier", "dictionary", "interpreter", "evaluation"):
            kind = "interpreter" if entry["kind"] == "evaluation" else entry["kind"]
            stored = entry["training"] if entry["kind"] == "evaluation" else results
            identity = (read_identity(path.parent.parent if entry["kind"] == "evaluation" else path.parent)
                        or identity_from_results(stored or results, entry["dataset"], kind, system))
        entry["identity"] = identity
        entry["differences"] = differences(identity, entry["dataset"])
        found.append(entry)
    return found


def evaluation_folder(output, run, corruption="none", fold=None):
    """``<output>/l2i/<dataset>/fold<N>/seed<S>/<mode>_<theta>/evaluation_<corruption>/`` (created).

    Parameters
    ----------
    output : str or Path
        Root of the runs.
    run : L2IRun
    corruption : str
    fold : int, optional
        Default: the run's fold, else 1.

    Returns
    -------
    folder : Path
    """
    location = _location(run.path)
    fold = int(fold if fold is not None else (run.fold if run.fold is not None else 1))
    seed = int(location["seed"]) if location else int(run.results.get("seed", 0))
    system = location["system"] if location else run.path.name
    folder = Path(output) / "l2i" / run.dataset / f"fold{fold}" / f"seed{seed}" / system / f"evaluation_{corruption}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
