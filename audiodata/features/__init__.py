"""Feature extraction shared by APNet and L2I: log-mel and log-magnitude spectrograms, cached.

Typical use::

    from audiodata.datasets import get_dataset
    from audiodata.features import extract_features
    ds = get_dataset("fsdd", data_dir="data")
    feats = extract_features(ds, "mel")            # FeatureArray, memory-mapped
    x = feats[feats.rows(ds.split(fold=1)["train"]["clip_id"])]
"""
from .cache import (FeatureArray, FeatureCacheError, cached_features, clean_cache, default_cache_dir, params_key,
                    verify_entry)
from .config import feature_sets, load_feature_params
from .extract import compute_features, feature_shape, features_from_signal
from .normalization import MinMaxScaler, StandardScaler, load_scaler
from .spectrogram import (fix_frames, log_magnitude_spectrogram, log_mel_spectrogram, logmag_to_audio,
                          mel_to_audio)
from .stft import STFTParams


def extract_features(dataset, features="mel", cache_dir=None, n_jobs=-1, progress=True, params=None, identity=None,
                     verify=None):
    """Features of every clip of ``dataset``, computed once and then read from the cache.

    Parameters
    ----------
    dataset : audiodata.datasets.AudioDataset
        A loaded dataset; its ``clips`` table gives the files and the row order.
    features : str
        Name of a feature set in the dataset's config file (``mel``, ``logmag``, ...).
    cache_dir : str or Path, optional
        Cache root (default ``$AUDIO_CACHE_DIR`` or ``~/.cache/audio-interpretability``).
    n_jobs : int
        Worker processes (-1: all cores; 1: serial).
    params : dict, optional
        Feature parameters overriding the config file entirely (for experiments on parameters).
    identity : {'stat', 'content'}, optional
        How the cache recognises an unchanged audio file (default ``$AUDIO_CACHE_IDENTITY`` or
        ``"stat"``): size and mtime, or a hash of the bytes (see :mod:`audiodata.features.cache`).
    verify : bool, optional
        Check the checksum of every cached row when the entry is opened (default True unless
        ``$AUDIO_CACHE_VERIFY=0``); a damaged entry is repaired with a warning.

    Returns
    -------
    FeatureArray
        Row ``i`` holds the features of ``dataset.clips.iloc[i]``. It holds a shared lock on its
        cache entry until ``close()`` (or ``with``, or garbage collection).
    """
    if params is None:
        params = load_feature_params(dataset.config_name, features)
    return cached_features(dataset.cache_name, features, params, dataset.clips, compute_features,
                           cache_dir=cache_dir, n_jobs=n_jobs, progress=progress, identity=identity, verify=verify)


__all__ = [
    "FeatureArray", "FeatureCacheError", "MinMaxScaler", "STFTParams", "StandardScaler", "cached_features",
    "clean_cache", "compute_features", "default_cache_dir",
    "extract_features", "feature_sets", "feature_shape", "features_from_signal", "fix_frames",
    "load_feature_params", "load_scaler", "log_magnitude_spectrogram", "log_mel_spectrogram", "logmag_to_audio",
    "mel_to_audio", "params_key", "verify_entry",
]
