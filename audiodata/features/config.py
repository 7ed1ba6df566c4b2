"""Per-dataset feature parameters, read from ``audiodata/configs/<dataset>.yaml``.

The parameters live in those files, not in code; a user can also pass a YAML file of
their own (``load_feature_params(path_or_dataset, name)``).
"""
from pathlib import Path

import yaml

from ..errors import ParameterError
from ..io import MONO_MODES, RESAMPLERS

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

#: Keys every feature set must define, per type (the values may be null where allowed).
REQUIRED_KEYS = {
    "mel": ("sr", "n_fft", "win_length", "hop_length", "n_mels", "fmin", "fmax", "htk", "log", "top_db",
            "duration", "n_frames"),
    "logmag": ("sr", "n_fft", "win_length", "hop_length", "duration", "n_frames"),
}


def config_path(dataset):
    """Path of the YAML file of ``dataset`` (a dataset name, or a path to a YAML file)."""
    candidate = Path(dataset)
    if candidate.suffix in (".yaml", ".yml"):
        return candidate
    return CONFIG_DIR / f"{dataset}.yaml"


def feature_sets(dataset):
    """All feature sets defined for ``dataset``: ``{name: params}``."""
    path = config_path(dataset)
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ParameterError(f"no feature configuration {path} (datasets with one: {known})")
    with open(path) as fh:
        sets = yaml.safe_load(fh) or {}
    for name, params in sets.items():
        _validate(path, name, params)
    return sets


def load_feature_params(dataset, name):
    """Parameters of feature set ``name`` of ``dataset`` as a plain dict (includes ``type``)."""
    sets = feature_sets(dataset)
    if name not in sets:
        raise ParameterError(
            f"feature set {name!r} is not defined in {config_path(dataset)}; defined: {sorted(sets)}")
    return dict(sets[name])


def _validate(path, name, params):
    kind = params.get("type") if isinstance(params, dict) else None
    if kind not in REQUIRED_KEYS:
        raise ParameterError(f"{path}: feature set {name!r} needs 'type' in {sorted(REQUIRED_KEYS)}, got {kind!r}")
    missing = [k for k in REQUIRED_KEYS[kind] if k not in params]
    if missing:
        raise ParameterError(f"{path}: feature set {name!r} lacks {missing}")
    for key in ("sr", "n_fft", "hop_length"):
        if not isinstance(params[key], int) or params[key] <= 0:
            raise ParameterError(f"{path}: {name}.{key} must be a positive integer, got {params[key]!r}")
    if not params["duration"] or params["duration"] <= 0:
        raise ParameterError(f"{path}: {name}.duration must be a positive number of seconds, "
                             f"got {params['duration']!r}")
    # Optional keys (defaults: librosa's centred STFT, channel mean, soxr, round(duration * sr) samples,
    # no peak normalisation).
    checks = {
        "center": (lambda v: isinstance(v, bool), "true or false"),
        "mono": (lambda v: v in MONO_MODES, f"one of {list(MONO_MODES)}"),
        "res_type": (lambda v: v in RESAMPLERS, f"one of {list(RESAMPLERS)}"),
        "n_samples": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0),
                      "a positive integer or null"),
        # L2I: divide each clip by its peak before the STFT, as the authors' data loader does.
        "peak_normalize": (lambda v: v is None or v is True or v is False or v in ("abs", "max"),
                           "true, false, null, 'abs' or 'max'"),
    }
    for key, (ok, expected) in checks.items():
        if key in params and not ok(params[key]):
            raise ParameterError(f"{path}: {name}.{key} must be {expected}, got {params[key]!r}")
