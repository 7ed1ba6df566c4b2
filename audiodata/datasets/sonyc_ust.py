"""SONYC Urban Sound Tagging v2 (Cartwright et al., 2020): 10-s urban recordings, 8 coarse labels, multi-label."""
import warnings

import numpy as np
import pandas as pd

from ..errors import ParameterError
from .base import MissingAudioWarning, SubsetDataset

CLASSES = ("engine", "machinery-impact", "non-machinery-impact", "powered-saw", "alert-signal", "music",
           "human-voice", "dog")
_COLUMNS = tuple(f"{i}_{c}_presence" for i, c in enumerate(CLASSES, start=1))
_SPLITS = {"train": "train", "validate": "validation", "test": "test"}


def coarse_targets(annotations, vote="minority"):
    """Turn annotator votes into one coarse multi-hot target per clip (DCASE 2020 Task 5 rule).

    Where the SONYC team's verified annotation (``annotator_id == 0``) exists it is used as is;
    otherwise the crowdsourced votes (``annotator_id > 0``) are combined: ``'minority'`` (the
    challenge baseline) marks a class present if at least one annotator did, ``'majority'`` if
    more than half did. Individual SONYC-team annotations (``annotator_id < 0``) only feed the
    verified one and are not used on their own; a ``-1`` presence means "not annotated".

    Parameters
    ----------
    annotations : pd.DataFrame
        Rows of ``annotations.csv``.
    vote : {'minority', 'majority'}

    Returns
    -------
    pd.DataFrame
        Index ``audio_filename``; one float column per coarse class (0/1).
    """
    if vote not in ("minority", "majority"):
        raise ParameterError(f"vote must be 'minority' or 'majority', got {vote!r}")
    votes = annotations[["audio_filename", "annotator_id", *_COLUMNS]].copy()
    votes[list(_COLUMNS)] = votes[list(_COLUMNS)].clip(lower=0)
    verified = votes[votes["annotator_id"] == 0].groupby("audio_filename")[list(_COLUMNS)].max()
    crowd = votes[votes["annotator_id"] > 0].groupby("audio_filename")[list(_COLUMNS)]
    crowd = (crowd.max() if vote == "minority" else (crowd.mean() > 0.5).astype(float))
    crowd = crowd.drop(index=verified.index, errors="ignore")
    result = pd.concat([verified, crowd]).astype(np.float32)
    result.columns = list(CLASSES)
    return result


class SONYCUST(SubsetDataset):
    """SONYC-UST v2 in its official layout (``annotations.csv``, ``dcase-ust-taxonomy.yaml``, ``audio/``).

    Multi-label over the 8 coarse classes (:data:`CLASSES`, L2I Section IV-A); targets follow
    :func:`coarse_targets`; the ``split`` column gives train / validate / test. Only clips that
    have annotation rows are listed (others cannot be trained or evaluated on).
    """

    name = "sonyc_ust"
    folder = "SONYC-UST"
    marker = "annotations.csv"
    classes = CLASSES
    multilabel = True
    layout = "SONYC-UST/annotations.csv, SONYC-UST/dcase-ust-taxonomy.yaml and SONYC-UST/audio/*.wav"
    OFFICIAL_CLIPS = 18510
    OFFICIAL_SOURCE = ("Cartwright et al. 2020, SONYC-UST v2.3, Zenodo 3966543: 13,538 train, 4,308 validate, "
                       "664 test recordings")

    def __init__(self, data_dir=None, strict=False, vote="minority"):
        self.vote = vote
        super().__init__(data_dir, strict=strict)

    def _load_clips(self):
        ann = self._read_csv(self.marker)
        self._require_columns(ann, ["split", "audio_filename", "annotator_id", *_COLUMNS], self.marker)
        targets = coarse_targets(ann, self.vote)
        unusable = sorted(set(ann["audio_filename"]) - set(targets.index))
        if unusable:
            warnings.warn(f"sonyc_ust: {len(unusable)} clips of {self.root / self.marker} have neither a verified "
                          f"(annotator_id 0) nor a crowdsourced annotation and are skipped (first: {unusable[0]})",
                          MissingAudioWarning, stacklevel=3)
        first = ann.drop_duplicates("audio_filename").set_index("audio_filename")
        clips = pd.DataFrame({"audio_filename": targets.index})
        clips["split"] = clips["audio_filename"].map(first["split"]).map(_SPLITS)
        clips["sensor_id"] = clips["audio_filename"].map(first["sensor_id"]) if "sensor_id" in first else -1
        clips = self._attach_paths(clips, "audio_filename", "audio", self.root / self.marker)
        clips["clip_id"] = clips["audio_filename"].str.rsplit(".", n=1).str[0]
        self._targets = targets.loc[clips["audio_filename"]].to_numpy(dtype=np.float32)
        return clips[["clip_id", "path", "split", "sensor_id"]]

    def targets(self, clips=None):
        clips = self.clips if clips is None else clips
        return self._targets[clips.index.to_numpy()]
