"""Training and scoring the L2I baselines on one dataset fold (Sec. IV-C, Tables IV and VIII).

:func:`train_baseline` is what ``experiments/l2i/train_baseline.py`` runs. It reads the
fold with :func:`l2i.training.load_fold` (the same cached log-mel and log-magnitude
features as L2I), trains one baseline with the hyperparameters of the ``baselines:``
section of the dataset's config, and scores it on the test split with the functions
``evaluate.py`` uses for L2I (:func:`l2i.metrics.fidelity_scores`,
:func:`l2i.metrics.task_scores`), so that the numbers of Tables IV and VIII are
computed the same way for every system:

* **post-hoc** (:data:`BASELINES` ``"posthoc"``, Table IV): ``flint`` (FLINT on the
  hidden layers of the trained, frozen ``f``) and ``vibi`` (VIBI, ``f`` a black box
  whose outputs on the training clips are the targets). Scored by their fidelity to
  ``f`` (``results["fidelity"]``), and by their own classification score
  (``results["interpreter"]``);
* **by design** (Table VIII): ``flint_bydesign`` (FLINT trained jointly with a new
  ``f``), ``nmf`` (:class:`l2i.baselines.NMFClassifier`) and ``tdl_nmf``
  (:class:`l2i.baselines.TDLNMFClassifier`). Scored by the classification score of
  the interpretable model (``results["interpreter"]``, the paper's "classification
  performance of the interpreter"); ``flint_bydesign`` also reports its ``f`` and the
  fidelity of ``g`` to it.

Resuming. The Keras baselines (``flint``, ``vibi``, ``flint_bydesign``) and ``tdl_nmf``'s
joint training are fitted by :func:`l2i.training.fit_resumable` (``backup/``, ``history.csv``):
a re-run continues from the last completed epoch and ends with the weights of an
uninterrupted run (``tdl_nmf`` also keeps its ``W_0``, standardisation and initial read-out
in ``tdl_nmf_init.npz``); a NaN/Inf loss stops them with
:class:`audioruns.errors.TrainingDivergedError`. Model files are written atomically
(:func:`audioruns.checkpoints.save_model_atomic`). ``nmf``'s dictionary NMF
saves ``W``, ``H`` and its iteration to ``nmf_dictionary_checkpoint.npz`` every
``checkpoint_every`` iterations (default 10) and a re-run continues from there; the
encoding and the logistic regression (minutes) are redone.

Memory. Both NMF baselines read the clips from the memory-mapped feature caches, never
all at once: ``tdl_nmf`` trains and predicts on batches of ``batch_size`` rows; the
sparse NMF of the dictionaries reads memory-mapped views of the clips block by block
(``sqrt_mel`` is first written, batch by batch, to a memory-mapped ``scratch/`` file,
deleted at the end). What stays in memory is the NMF activations ``H``
[shape=(K, total frames)]: 4 K bytes per frame, 1.4 GB for an ESC-50 training fold at
K = 512, about 13 GB for OpenMIC-2018's training set.
"""
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from audioruns.checkpoints import load_model_file, save_model_atomic
from audioruns.distribute import check_batch_size, data_parallel, predict
from audiodata.errors import ParameterError
from l2i import metrics
from l2i.baselines.flint import FLINT
from l2i.baselines.nmf_classifier import NMFClassifier
from l2i.baselines.tdl_nmf_classifier import TDLNMFClassifier
from l2i.baselines.vibi import VIBI
from l2i.pipeline import find_results
from l2i.training import L2IBatches, _fresh_classifier, _seconds, fit_resumable, load_fold

__all__ = ["BASELINES", "MODEL_FILES", "NMF_FEATURES", "SWEEP_METRICS", "nmf_clips", "nmf_source", "score_predictions",
           "select_sweep", "sqrt_mel", "sweep_system", "train_baseline"]

#: Baseline name -> setting: ``"posthoc"`` (needs the trained classifier f, Table IV) or ``"bydesign"`` (Table VIII).
BASELINES = {"flint": "posthoc", "vibi": "posthoc", "flint_bydesign": "bydesign", "nmf": "bydesign",
             "tdl_nmf": "bydesign"}
#: The model file written in ``baseline_<name>/`` (``nmf.npz``: W, standardisation and linear read-out).
MODEL_FILES = {"flint": "flint.keras", "vibi": "vibi.keras", "flint_bydesign": "flint.keras", "nmf": "nmf.npz",
               "tdl_nmf": "tdl_nmf.keras"}
#: Spectrograms the NMF baselines factorise (Sec. IV-C): the log-magnitude ``log(1 + |STFT|)`` of the
#: ``logmag`` cache, or the square root of the power mel spectrogram recovered from the ``mel`` cache.
NMF_FEATURES = ("logmag", "sqrt_mel")

_FLINT_ARGS = ("n_attributes", "hidden_layers", "psi_channels", "psi_units", "decoder_channels", "beta", "gamma",
               "delta", "eta")
_VIBI_ARGS = ("k", "chunk_size", "beta", "temperature", "explainer_filters", "approximator_filters")
_NMF_ARGS = ("n_components", "l1", "n_iter_dictionary", "n_iter_activations", "tol", "C", "max_iter")
_TDL_ARGS = ("n_components", "l1", "n_iter", "n_iter_dictionary", "epochs", "learning_rate", "C")


def _split(data, split):
    """Rows of ``split`` in increasing order (so batches read in order) and their targets."""
    rows = np.asarray(data.rows[split])
    order = np.argsort(rows, kind="stable")
    return rows[order], data.targets[split][order]


def _inputs(data, rows, batch_size):
    return L2IBatches(data.mel, None, rows, None, batch_size, targets="none")


def _kwargs(section, names):
    kwargs = {k: section[k] for k in names if k in section}
    for key in ("hidden_layers", "chunk_size"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return kwargs


def score_predictions(dataset, classes, multilabel, labels, f=None, g=None):
    """The scores of a baseline's results.json, named as ``evaluate.py`` names L2I's (what ``tables.py`` reads).

    Parameters
    ----------
    dataset, classes, multilabel, labels
        As in :func:`l2i.metrics.task_scores` (``labels``: the test targets).
    f, g : np.ndarray [shape=(N, C)], optional
        Probabilities of the classifier f and of the baseline.

    Returns
    -------
    dict
        ``"interpreter"`` (of ``g``) and ``"classifier"`` (of ``f``): :func:`l2i.metrics.task_scores`;
        ``"fidelity"`` (of ``g`` to ``f``, when both are given): :func:`l2i.metrics.fidelity_scores`.
    """
    task = (dataset, tuple(classes), bool(multilabel))
    scores = {}
    if g is not None:
        scores["interpreter"] = metrics.task_scores(*task, labels, g)
    if f is not None:
        scores["classifier"] = metrics.task_scores(*task, labels, f)
    if f is not None and g is not None:
        scores["fidelity"] = metrics.fidelity_scores(*task, np.asarray(f, np.float64), np.asarray(g, np.float64))
    return scores


def _train_flint(section, mode, data, run_dir, classifier, batch_size, seed, verbose):
    model = FLINT(classifier, mode=mode, multilabel=data.multilabel, name="flint", **_kwargs(section, _FLINT_ARGS))
    model.compile(optimizer=keras.optimizers.Adam(float(section["learning_rate"])))
    rows, labels = _split(data, "train")
    if mode == "bydesign":
        train = L2IBatches(data.mel, None, rows, labels, batch_size, targets="classifier", shuffle=True, seed=seed)
    else:  # f frozen: fit(x) without targets
        train = L2IBatches(data.mel, None, rows, None, batch_size, targets="none", shuffle=True, seed=seed)
    history, epochs_run = fit_resumable(model, train, run_dir, int(section["epochs"]), verbose=verbose)
    save_model_atomic(model, run_dir / MODEL_FILES["flint"])
    out = predict(model, _inputs(data, _split(data, "test")[0], batch_size))
    shared = {id(w) for w in classifier.weights}
    sizes = {"n_params": int(model.count_params()),
             "n_params_interpreter": int(sum(np.prod(w.shape) for w in model.weights if id(w) not in shared))}
    return out["classifier"], out["interpreter"], history, epochs_run, sizes


def _train_vibi(section, data, run_dir, classifier, batch_size, seed, verbose):
    rows, _ = _split(data, "train")
    teacher = predict(classifier, _inputs(data, rows, batch_size))
    model = VIBI((int(data.mel.shape[1]), int(data.mel.shape[2])), len(data.classes), multilabel=data.multilabel,
                 input_mean=getattr(classifier, "input_mean", None), input_std=getattr(classifier, "input_std", None),
                 seed=seed, name="vibi", **_kwargs(section, _VIBI_ARGS))
    model.compile(optimizer=keras.optimizers.Adam(float(section["learning_rate"])))
    train = L2IBatches(data.mel, None, rows, teacher, batch_size, targets="classifier", shuffle=True, seed=seed)
    history, epochs_run = fit_resumable(model, train, run_dir, int(section["epochs"]), verbose=verbose)
    save_model_atomic(model, run_dir / MODEL_FILES["vibi"])
    test = _inputs(data, _split(data, "test")[0], batch_size)
    g = predict(model, test)["approximation"]
    f = predict(classifier, test)
    n_params = int(model.count_params())
    return f, g, history, epochs_run, {"n_params": n_params, "n_params_interpreter": n_params}


def sqrt_mel(batch, params=None):
    """``sqrt(max(exp(logmel) - amin, 0))``: the square root of the power mel from a ``log(S + amin)`` batch."""
    params = params or {}
    if params.get("log", "log") != "log":
        raise ParameterError(f"sqrt_mel needs the mel cache stored as log(S + amin); it is log={params.get('log')!r}")
    amin = float(params.get("amin", 1e-10))  # audiodata's default amin when the config sets none
    return np.sqrt(np.maximum(np.exp(np.asarray(batch, np.float64)) - amin, 0.0)).astype(np.float32)


def nmf_source(data, feature="logmag"):
    """``(array of rows, transform)`` the NMF baselines read ``feature`` from.

    ``"logmag"``: the memory-mapped log-magnitude cache, as is. ``"sqrt_mel"``: the
    memory-mapped log-mel cache and :func:`sqrt_mel` applied to each batch read.
    """
    if feature not in NMF_FEATURES:
        raise ParameterError(f"feature must be one of {NMF_FEATURES}; got {feature!r}")
    if feature == "logmag":
        return data.logmag.data, None
    params = dict(getattr(data.mel, "params", {}) or {})
    sqrt_mel(np.zeros((1, 1, 1), np.float32), params)  # checks the cache's log
    return data.mel.data, lambda batch: sqrt_mel(batch, params)


def nmf_clips(data, rows, feature="logmag", scratch=None, batch_size=64):
    """Time-first non-negative spectrograms ``(T, F)`` of ``rows`` for the NMF baselines, never all in memory.

    ``"logmag"``: views of the memory-mapped log-magnitude cache (read when used).
    ``"sqrt_mel"``: :func:`sqrt_mel` of the mel cache, written ``batch_size`` clips at a time to
    ``scratch/sqrt_mel_<n>.npy`` (a memory-mapped file; in memory when ``scratch`` is None).
    """
    array, transform = nmf_source(data, feature)
    rows = np.asarray(rows)
    if transform is None:
        return [array[r] for r in rows]
    shape = (len(rows),) + tuple(array.shape[1:])
    if scratch is None:
        out = np.empty(shape, np.float32)
    else:
        Path(scratch).mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(Path(scratch) / f"sqrt_mel_{len(rows)}.npy", mode="w+", dtype=np.float32,
                                        shape=shape)
    for start in range(0, len(rows), batch_size):
        out[start:start + batch_size] = transform(array[rows[start:start + batch_size]])
    return [out[i] for i in range(len(rows))]


def _train_nmf(name, section, data, run_dir, batch_size, seed, verbose):
    feature = section.get("feature", "logmag")
    rows, labels = _split(data, "train")
    test_rows, _ = _split(data, "test")
    start = time.perf_counter()
    scratch = run_dir / "scratch"
    if name == "nmf":
        model = NMFClassifier(multilabel=data.multilabel, seed=seed, **_kwargs(section, _NMF_ARGS))
        model.fit(nmf_clips(data, rows, feature, scratch, batch_size), labels, n_classes=len(data.classes),
                  run_dir=run_dir, checkpoint_every=int(section.get("checkpoint_every", 10)))
        seconds = time.perf_counter() - start
        g = model.predict_proba(nmf_clips(data, test_rows, feature, scratch, batch_size))
        np.savez(run_dir / MODEL_FILES["nmf"], dictionary=model.dictionary_, mean=model.mean_, scale=model.scale_,
                 kernel=model.kernel_, bias=model.bias_)
        n_params = int(model.dictionary_.size + model.kernel_.size + model.bias_.size)
        epochs, epochs_run = model.dictionary_iterations_, model.dictionary_iterations_this_run_
    else:
        kwargs = dict(_kwargs(section, _TDL_ARGS), batch_size=batch_size)
        model = TDLNMFClassifier(multilabel=data.multilabel, seed=seed, verbose=verbose, **kwargs)
        array, transform = nmf_source(data, feature)
        model.fit(array, labels, n_classes=len(data.classes), rows=rows, transform=transform, run_dir=run_dir)
        seconds = time.perf_counter() - start
        g = model.predict_proba(array, rows=test_rows, transform=transform)
        save_model_atomic(model.model_, run_dir / MODEL_FILES["tdl_nmf"])
        n_params = int(model.model_.count_params())
        epochs, epochs_run = len(model.history_.get("loss", [])), int(model.epochs_this_run_)
    shutil.rmtree(scratch, ignore_errors=True)
    extra = {"feature": feature, "n_components": int(model.dictionary_.shape[1]), "n_params": n_params,
             "n_params_interpreter": n_params, "seconds": seconds, "epochs": int(epochs),
             "epochs_this_run": int(epochs_run)}
    return g, extra


#: The score a sweep selects on, per dataset (the metric of Table VIII: ``results["interpreter"][metric]``).
SWEEP_METRICS = {"esc50": "accuracy", "esc10": "accuracy", "sonyc_ust": "macro_auprc", "openmic": "weighted_f1"}


def sweep_system(name, n_components, feature):
    """The run folder of one sweep combination: ``baseline_<name>_k<K>_<feature>``."""
    return f"{BASELINE_PREFIX}{name}_k{int(n_components)}_{feature}"


BASELINE_PREFIX = "baseline_"


def select_sweep(results_dir, name, dataset):
    """The best ``(K, feature)`` of a sweep of ``name`` on ``dataset``, over every fold and seed found.

    Reads the ``results.json`` of the ``baseline_<name>_k<K>_<feature>`` folders (their
    ``sweep`` field) below ``results_dir``. Rule (reproducible, no free choice): keep the
    combinations run on every ``(fold, seed)`` that any combination was run on; pick the
    highest mean of ``interpreter[SWEEP_METRICS[dataset]]`` over those runs; ties go to the
    smaller ``K``, then to the feature first in :data:`NMF_FEATURES`. Like the paper, the
    selection is on the test scores (there is no validation split in Table VIII's protocol).

    Returns
    -------
    dict or None
        None when no sweep run exists. Else ``baseline``, ``dataset``, ``metric``, ``rule``,
        ``runs`` (the ``[fold, seed]`` pairs), ``selected`` and ``candidates`` (each
        ``{"system", "n_components", "feature", "mean", "std", "n_runs", "values", "complete"}``,
        the candidates best first).
    """
    metric = SWEEP_METRICS[dataset]
    groups = {}
    for entry in find_results(results_dir):
        sweep = entry["results"].get("sweep") or {}
        if entry["kind"] != "baseline" or entry["dataset"] != dataset or sweep.get("baseline") != name:
            continue
        value = (entry["results"].get("interpreter") or {}).get(metric)
        if value is None or not np.isfinite(value):
            continue
        key = (int(sweep["n_components"]), str(sweep["feature"]))
        groups.setdefault(key, {})[(entry["fold"], entry["seed"])] = float(value)
    if not groups:
        return None
    runs = sorted(set().union(*groups.values()))
    order = {f: i for i, f in enumerate(NMF_FEATURES)}
    candidates = []
    for (k, feature), values in groups.items():
        v = [values[r] for r in sorted(values)]
        candidates.append({"system": sweep_system(name, k, feature), "n_components": k, "feature": feature,
                           "mean": float(np.mean(v)), "std": float(np.std(v)), "n_runs": len(v),
                           "values": {f"fold{f}_seed{s}": values[(f, s)] for f, s in sorted(values)},
                           "complete": set(values) == set(runs)})
    candidates.sort(key=lambda c: (not c["complete"], -c["mean"], c["n_components"], order.get(c["feature"], 99)))
    return {"baseline": name, "dataset": dataset, "metric": f"interpreter.{metric}", "runs": [list(r) for r in runs],
            "rule": "complete combinations only; highest mean; ties: smaller K, then feature order "
                    f"{list(NMF_FEATURES)}",
            "selected": candidates[0] if candidates[0]["complete"] else None, "candidates": candidates}


def train_baseline(config, name, dataset, fold, run_dir, classifier_path=None, data_dir=None, cache_dir=None,
                   verbose=2, progress=False, *, distribute=False):
    """Train baseline ``name`` on one fold and score it on the test split.

    Parameters
    ----------
    config : dict
        A whole dataset config (``seed``, ``batch_size``, ``classifier`` for
        ``flint_bydesign``'s new f, and ``baselines: {<name>: {...}}``, see
        ``l2i/configs/*.yaml``).
    name : one of :data:`BASELINES`
    dataset, fold : str, int
    run_dir : str or Path
        ``<output>/l2i/<dataset>/fold<N>/seed<S>/baseline_<name>`` (created).
    classifier_path : str or Path
        The trained ``classifier.keras`` (``flint``, ``vibi``; ignored otherwise).
    data_dir, cache_dir : passed to :func:`l2i.training.load_fold`.
    verbose : int
        Keras ``fit`` verbosity.
    progress : bool
        Passed to :func:`l2i.training.load_fold`: split sizes, the small-dataset warning and a
        feature extraction progress bar on stderr (the command line).
    distribute : bool
        ``flint``, ``flint_bydesign``, ``vibi``: load or build f and the baseline, fit and predict
        data-parallel over every visible device (:func:`audioruns.distribute.data_parallel`; the batch
        size must be a multiple of the device count). No effect on ``nmf`` and ``tdl_nmf`` (not Keras).

    Returns
    -------
    results : dict
        ``baseline``, ``setting``; ``fidelity`` (``top1``/``top5``, ``macro_auprc``/``micro_auprc``/``max_f1``
        or ``weighted_f1``, as in ``evaluate.py``) for the post-hoc baselines and ``flint_bydesign``;
        ``interpreter`` (the baseline's own classification score: ``accuracy``, ``macro_auprc``/``micro_auprc``
        or ``weighted_f1``); ``classifier`` (the same for f, where there is one); ``n_params``,
        ``n_params_interpreter``, ``epochs``, ``epochs_this_run``, ``seconds`` (training), ``n_train``,
        ``n_test``, ``model_file``, ``distribution`` (:meth:`audioruns.distribute.DeviceInfo.as_dict`).
    """
    if name not in BASELINES:
        raise ParameterError(f"baseline must be one of {sorted(BASELINES)}; got {name!r}")
    section = (config.get("baselines") or {}).get(name)
    if not isinstance(section, dict):
        raise ParameterError(f"the config has no baselines.{name} section")
    if BASELINES[name] == "posthoc" and classifier_path is None:
        raise ParameterError(f"{name} is post-hoc: it needs `classifier_path` (train it with train_classifier.py)")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed = int(config["seed"])
    keras.utils.set_random_seed(seed)
    data = load_fold(dataset, fold, data_dir=data_dir, cache_dir=cache_dir, progress=progress)
    batch_size = int(section.get("batch_size", config["batch_size"]))
    _, test_labels = _split(data, "test")

    keras_model = name not in ("nmf", "tdl_nmf")
    with data_parallel(distribute and keras_model) as devices:
        if distribute and keras_model:
            check_batch_size(batch_size, devices.n_devices)
        if not keras_model:
            g, results = _train_nmf(name, section, data, run_dir, batch_size, seed, verbose)
            results.update(score_predictions(dataset, data.classes, data.multilabel, test_labels, g=g))
        else:
            if name == "flint_bydesign":
                classifier = _fresh_classifier(config, data)
                f, g, history, epochs_run, sizes = _train_flint(section, "bydesign", data, run_dir, classifier,
                                                                batch_size, seed, verbose)
            elif name == "flint":
                classifier = load_model_file(classifier_path, compile=False)
                f, g, history, epochs_run, sizes = _train_flint(section, "posthoc", data, run_dir, classifier,
                                                                batch_size, seed, verbose)
            else:
                classifier = load_model_file(classifier_path, compile=False)
                f, g, history, epochs_run, sizes = _train_vibi(section, data, run_dir, classifier, batch_size,
                                                               seed, verbose)
            results = dict(sizes, epochs=len(history), epochs_this_run=int(epochs_run), seconds=_seconds(history),
                           final_train_loss=history[-1]["loss"] if history else None)
            results.update(score_predictions(dataset, data.classes, data.multilabel, test_labels, f=f, g=g))
    results["distribution"] = devices.as_dict()
    results.update({"baseline": name, "setting": BASELINES[name], "model_file": MODEL_FILES[name],
                    "n_train": int(len(data.rows["train"])), "n_test": int(len(data.rows["test"]))})
    return results
