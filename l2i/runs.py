"""Run identity of L2I: what changes a run's numbers, the folder it lives in, and which runs fill a table cell.

Every run folder written by ``experiments/l2i/{train_classifier,learn_dictionary,train_interpreter}.py``
holds ``identity.json`` (also copied into its ``results.json`` as ``identity``): a small dict of
everything that changes its numbers, training budgets (epochs, NMF iterations, tolerance) and the seed
(already in the path ``seed<S>``) excepted.

* classifier: the ``classifier`` section of the config (architecture, dropout, pooling, learning rate,
  batch size);
* dictionary: its construction (Sec. IV-A3: all training clips for ESC, noise then per class for SONYC-UST,
  per class for OpenMIC-2018), the feature (``logmag``), ``K`` and the ``dictionary`` section (sparsity
  ``l1``, ``n_per_class``, ...);
* interpreter: ``mode`` (posthoc / bydesign / bydesign_nopred), ``theta`` (att / max), the ``interpreter``
  section (hidden layers, Psi and attention widths), the loss weights (alpha, beta; gamma by design),
  learning rate, batch size, and the identities of its dictionary and classifier; with a checkpoint selected
  on a validation split (``validation_fraction``, ``train_interpreter.py --validation-fraction``) also that
  fraction (absent: the last epoch is kept, as in the main configuration).

The *main* configuration of a dataset is the one of its config file ``l2i/configs/<dataset>.yaml``
(shipped with the package, :func:`config_path`; the paper's settings). Runs of the main configuration keep
the plain folder names (``classifier``, ``dictionary``, ``<mode>_<theta>``); any other gets
``<name>-<tag>-<hash>``, a short readable tag of what differs from the main configuration and the first
8 hex digits of the SHA-1 of its identity, e.g.
``posthoc_att-B3-<hash>`` or ``dictionary-K50-<hash>``, so runs never overwrite each other.
(The classifier keeps the folder ``classifier``; a classifier of another configuration is refused there.)

:func:`differences` lists what separates a run from the main configuration; ``tables.py`` and the
notebooks take Tables I, IV, V and VIII from main runs only, Table VI from runs that differ in
``interpreter.hidden_layers`` only, Table VII in the loss weights only, Fig. 6 in ``K`` only (:data:`AXES`).
"""
import copy
import functools

import yaml

from audiodata.errors import ParameterError
from audioruns.cli import shipped_config
# identity.json and its hash are the run layer's, shared with APNet; re-exported here (``__all__``)
from audioruns.runs import identity_hash, plain, read_identity, write_identity

__all__ = [
    "AXES",
    "DATASETS",
    "HIDDEN_LAYER_ALIASES",
    "classifier_identity",
    "classifier_layers",
    "canonical_layers",
    "config_path",
    "default_config",
    "dictionary_folder",
    "dictionary_identity",
    "differences",
    "identity_from_results",
    "identity_hash",
    "interpreter_folder",
    "interpreter_identity",
    "layers_label",
    "main_identity",
    "read_identity",
    "run_name",
    "select",
    "write_identity",
]

#: Named hidden-layer choices of ``interpreter.hidden_layers`` besides the classifier's layer names
#: (``block1`` ... ``block6``): ``input`` is f's input, the standardised log-mel with a channel axis
#: (its layer ``add_channel``), Table VI's "Input" row.
HIDDEN_LAYER_ALIASES = {"input": "add_channel"}
#: Config keys that set a training budget, not the configuration (left out of identities).
BUDGET_KEYS = frozenset({"epochs", "n_iter", "tol", "seed", "verbose", "patience"})
#: Keys (dotted, as :func:`differences` gives them) an ablation may change: Table VI, Table VII, Fig. 6.
AXES = {
    "layers": frozenset({"interpreter.hidden_layers"}),
    "weights": frozenset({"weights.alpha", "weights.beta", "weights.gamma"}),
    "K": frozenset({"dictionary.K", "dictionary.n_components", "dictionary.n_per_class"}),
}
#: Dictionary constructions of Sec. IV-A3.
CONSTRUCTIONS = {"esc50": "all_clips", "esc10": "all_clips", "sonyc_ust": "noise_then_per_class",
                 "openmic": "per_class"}
_N_CLASSES = {"sonyc_ust": 8, "openmic": 20}
#: Keys of a dictionary's stored parameters (W.json) that are not part of its configuration.
_NOT_DICTIONARY = frozenset({"dataset", "fold", "seed", "shape", "dtype", "identity", "kind", "construction",
                             "feature", "K"})
_SHORT = {"n_components": "K", "l1": "mu", "alpha": "a", "beta": "b", "gamma": "g", "psi_channels": "psi",
          "attention_units": "att", "learning_rate": "lr", "batch_size": "bs", "n_per_class": "Kc",
          "n_noise": "Kn", "n_clips_per_class": "nc", "include_noise": "noise", "validation_fraction": "val"}
#: Datasets of L2I (each has a shipped config; ESC-10 uses esc50's).
DATASETS = ("esc50", "esc10", "sonyc_ust", "openmic")


# --------------------------------------------------------------------------- helpers
def _section(section):
    return plain({k: v for k, v in (section or {}).items() if k not in BUDGET_KEYS})


def _config_name(dataset):
    return "esc50" if dataset == "esc10" else dataset


def config_path(dataset):
    """Path of the shipped config of ``dataset`` (``l2i/configs/<dataset>.yaml``; ESC-10 uses esc50's).

    Raises :class:`~audiodata.errors.ParameterError`, naming the datasets that have one, when there is none.
    """
    return shipped_config("l2i", _config_name(dataset))


@functools.lru_cache(maxsize=None)
def _default_config(dataset):
    return yaml.safe_load(config_path(dataset).read_text())


def default_config(dataset):
    """The main configuration of ``dataset`` (a copy of ``l2i/configs/<dataset>.yaml``)."""
    return copy.deepcopy(_default_config(dataset))


# --------------------------------------------------------------------------- hidden layers
def canonical_layers(layers):
    """Hidden-layer names as the identity stores them (``add_channel`` -> ``input``)."""
    inverse = {v: k for k, v in HIDDEN_LAYER_ALIASES.items()}
    return [inverse.get(str(name), str(name)) for name in layers]


def classifier_layers(layers):
    """Hidden-layer names as layers of f (``input`` -> ``add_channel``)."""
    return [HIDDEN_LAYER_ALIASES.get(str(name), str(name)) for name in layers]


def layers_label(layers):
    """``B4+B5+B6`` for ``[block4, block5, block6]``; ``Input`` for ``[input]`` (Table VI's row names)."""
    names = []
    for name in canonical_layers(layers):
        names.append("B" + name[len("block"):] if name.startswith("block") else
                     "Input" if name == "input" else name)
    return "+".join(names)


# --------------------------------------------------------------------------- identities
def classifier_identity(section):
    """Identity of a classifier trained with the config section ``classifier`` (budget keys left out)."""
    return {"kind": "classifier", **_section(section)}


def _n_components(dataset, section):
    if dataset in ("esc50", "esc10"):
        return int(section["n_components"])
    if dataset == "sonyc_ust":
        extra = int(section.get("n_noise", 0)) if section.get("include_noise", False) else 0
        return _N_CLASSES[dataset] * int(section["n_per_class"]) + extra
    if dataset in _N_CLASSES:
        return _N_CLASSES[dataset] * int(section["n_per_class"])
    raise ParameterError(f"unknown dataset {dataset!r}")


def dictionary_identity(dataset, section):
    """Identity of a dictionary learned with the config section ``dictionary``: its construction
    (Sec. IV-A3, from ``dataset``), the feature, ``K`` and every key of the section but the budget
    (``n_iter``, ``tol``): ``n_components`` (ESC), ``n_noise``, ``n_per_class``, ``n_clips_per_class``,
    ``include_noise`` (SONYC-UST, OpenMIC-2018), the sparsity (``l1`` / ``sparsity``), ...
    """
    if dataset not in CONSTRUCTIONS:
        raise ParameterError(f"unknown dataset {dataset!r}; choose one of {sorted(CONSTRUCTIONS)}")
    section = {k: v for k, v in dict(section).items() if k not in _NOT_DICTIONARY}
    return {"kind": "dictionary", "construction": CONSTRUCTIONS[dataset], "feature": "logmag",
            "K": _n_components(dataset, section), **_section(section)}


def interpreter_identity(config, mode, theta, dictionary, classifier):
    """Identity of an interpreter run: mode, theta, interpreter section, loss weights, its dictionary and f.

    ``dictionary`` and ``classifier`` are their identities (:func:`dictionary_identity`,
    :func:`classifier_identity`, or what the files' ``identity.json`` hold). ``config["validation_fraction"]``
    (checkpoint selected on a validation split carved from the training clips) adds the key
    ``validation_fraction`` when set (not None nor 0), so such a run is not the main configuration.
    """
    hyper = config["posthoc" if mode == "posthoc" else "bydesign"]
    weights = {"alpha": float(hyper["alpha"]), "beta": float(hyper["beta"])}
    if mode == "bydesign":  # NoPred has no fidelity term; post-hoc has no gamma
        weights["gamma"] = float(hyper.get("gamma", 1.0))
    interpreter = _section(config.get("interpreter", {}))
    interpreter["hidden_layers"] = canonical_layers(interpreter.get("hidden_layers", ["block4", "block5", "block6"]))
    identity = {"kind": "interpreter", "mode": mode, "theta": theta, "interpreter": interpreter, "weights": weights,
                "learning_rate": float(config["learning_rate"]), "batch_size": int(config["batch_size"]),
                "dictionary": plain(dictionary), "classifier": plain(classifier)}
    if config.get("validation_fraction"):
        identity["validation_fraction"] = float(config["validation_fraction"])
    return identity


def main_identity(dataset, kind="interpreter", mode="posthoc", theta="att"):
    """Identity of the main configuration (the config file's) for ``kind`` in ``dataset``."""
    config = _default_config(dataset)
    if kind == "classifier":
        return classifier_identity(config["classifier"])
    if kind == "dictionary":
        return dictionary_identity(dataset, config["dictionary"])
    return interpreter_identity(config, mode, theta, dictionary_identity(dataset, config["dictionary"]),
                                classifier_identity(config["classifier"]))


def _flatten(value, prefix=""):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


def differences(identity, dataset):
    """Sorted dotted keys where ``identity`` differs from the main configuration of ``dataset``
    (``[]``: a main run); None when the dataset has no config or the identity is unknown."""
    if not identity or dataset not in CONSTRUCTIONS:
        return None
    kind = identity.get("kind", "interpreter")
    if kind == "interpreter":
        main = main_identity(dataset, "interpreter", identity.get("mode"), identity.get("theta"))
    else:
        main = main_identity(dataset, kind)
    ours, theirs = _flatten(plain(identity)), _flatten(main)
    return sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))


def _tag(identity, dataset, diffs):
    parts = []
    flat = _flatten(plain(identity))
    if "interpreter.hidden_layers" in diffs:
        parts.append(layers_label(identity["interpreter"]["hidden_layers"]))
    for key in diffs:
        head, _, leaf = key.rpartition(".")
        k_key = f"{head}.K" if head else "K"
        if key == "interpreter.hidden_layers" or (leaf in ("n_components", "n_per_class") and k_key in diffs):
            continue
        if head == "classifier" or (not head and leaf == "classifier"):
            if "f" not in parts:
                parts.append("f")
            continue
        value = flat.get(key)
        text = "".join(str(v) for v in value) if isinstance(value, list) else str(value)
        short = _SHORT.get(leaf, leaf)
        parts.append(short + text)
    tag = "_".join(parts) or "other"
    tag = "".join(c if c.isalnum() or c in "+._" else "" for c in tag.replace("-", "m"))
    return tag[:40].rstrip("_") or "other"


def run_name(base, identity, dataset):
    """``base`` for the main configuration, else ``<base>-<tag>-<hash>``."""
    diffs = differences(identity, dataset)
    if diffs is not None and not diffs:
        return base
    return f"{base}-{_tag(identity, dataset, diffs or [])}-{identity_hash(identity)}"


def interpreter_folder(mode, theta, identity, dataset):
    """Folder name of an interpreter run (``posthoc_att`` or ``posthoc_att-B3-1f0c9a2e``)."""
    return run_name(f"{mode}_{theta}", identity, dataset)


def dictionary_folder(dataset, section):
    """Folder name of the dictionary learned with ``section`` (``dictionary`` or ``dictionary-K50-<hash>``)."""
    return run_name("dictionary", dictionary_identity(dataset, section), dataset)


# --------------------------------------------------------------------------- files
def _merged(dataset, config):
    merged = default_config(dataset)
    for key, value in (config or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def identity_from_results(results, dataset, kind, system=None):
    """Identity of a run from its ``results.json``: the stored ``identity``, else rebuilt from the stored
    ``config`` (results written before identities existed; missing keys take the main configuration's values,
    ``K`` the stored ``n_components``). None for other kinds or unknown datasets."""
    if results.get("identity"):
        return plain(results["identity"])
    if dataset not in CONSTRUCTIONS:
        return None
    if kind == "classifier":
        return classifier_identity(_merged(dataset, {"classifier": results.get("config", {})})["classifier"])
    if kind == "dictionary":
        return dictionary_identity(dataset, {**_default_config(dataset)["dictionary"], **results.get("params", {})})
    if kind != "interpreter":
        return None
    config = _merged(dataset, results.get("config"))
    mode, theta = results.get("mode"), results.get("theta")
    if (mode is None or theta is None) and system:
        mode, _, theta = system.split("-")[0].rpartition("_")
    section = dict(config["dictionary"])
    K = results.get("n_components")
    if K is not None and dataset in ("esc50", "esc10"):
        section["n_components"] = int(K)
    dictionary = dictionary_identity(dataset, section)
    if K is not None and dictionary["K"] != int(K):
        dictionary = {"kind": "dictionary", "construction": CONSTRUCTIONS[dataset], "K": int(K)}
    return interpreter_identity(config, mode, theta, dictionary, classifier_identity(config["classifier"]))


# --------------------------------------------------------------------------- picking runs
def select(entries, axis=None, fallback=False):
    """Entries of :func:`l2i.pipeline.find_results` whose configuration is the main one, except for ``axis``.

    Parameters
    ----------
    entries : list of dict
    axis : None or one of :data:`AXES` (``"layers"``, ``"weights"``, ``"K"``)
        None: main runs only (Tables I, IV, V, VIII); else runs differing from the main configuration at most
        in that axis (Tables VI, VII, Fig. 6).
    fallback : bool
        When no entry qualifies, compare with the configuration most entries share instead of the main one
        (the notebooks, on folders holding only small test runs); the returned note says so.

    Returns
    -------
    selected : list of dict
    note : str
        ``"main configuration"`` or what the fallback compared with.
    """
    allowed = AXES[axis] if axis is not None else frozenset()
    chosen = [e for e in entries if e.get("differences") is not None and set(e["differences"]) <= allowed]
    if chosen or not fallback:
        return chosen, "main configuration"
    known = [e for e in entries if e.get("identity")]
    if not known:
        return [], "no run with a known configuration"

    def without_axis(identity):
        flat = _flatten(plain(identity))
        return identity_hash({k: v for k, v in flat.items() if k not in allowed and k not in ("mode", "theta")})

    counts = {}
    for e in known:
        counts[without_axis(e["identity"])] = counts.get(without_axis(e["identity"]), 0) + 1
    reference = max(counts, key=counts.get)
    chosen = [e for e in known if without_axis(e["identity"]) == reference]
    return chosen, f"no run of the main configuration; configuration {reference} shared by {len(chosen)} run(s)"
