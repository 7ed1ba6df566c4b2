"""OpenMIC-2018 (Humphrey et al., 2018): 20,000 10-s clips, 20 instruments, weak partial labels."""
import json

import numpy as np
import pandas as pd

from ..errors import DatasetNotFoundError
from .base import SubsetDataset

_PARTITIONS = (("partitions/split01_train.csv", "partitions/split01_test.csv"),
               ("partitions/train01.txt", "partitions/test01.txt"))
LABELS_FILE = "openmic-2018-aggregated-labels.csv"


class OpenMIC2018(SubsetDataset):
    """OpenMIC-2018 in its official layout (``class-map.json``, ``audio/<3 digits>/<key>.ogg``, partitions).

    Multi-label over 20 instruments with *weak, partial* labels: a clip is annotated for only a
    few instruments. :meth:`targets` gives ``relevance >= 0.5`` as positive and :meth:`label_mask`
    says which (clip, instrument) pairs were annotated, from ``openmic-2018-aggregated-labels.csv``
    (only masked labels count in losses and metrics, L2I Section IV). The official train/test
    partition (``partitions/split01_{train,test}.csv``, or ``train01.txt``/``test01.txt``) is used;
    there is no official validation set (``split()['validation']`` is empty).
    Features can be extracted without the labels file; asking for targets without it is an error.
    """

    name = "openmic"
    folder = "openmic-2018"
    marker = "class-map.json"
    multilabel = True
    layout = "openmic-2018/class-map.json, openmic-2018/partitions/split01_{train,test}.csv, openmic-2018/audio/"
    OFFICIAL_CLIPS = 20000
    OFFICIAL_SOURCE = ("Humphrey et al. 2018, Zenodo 1432913; L2I Sec. IV-A3; partitions split01: "
                       "14,915 train + 5,085 test")

    def _load_clips(self):
        class_map = json.loads((self.root / self.marker).read_text())
        self.classes = tuple(sorted(class_map, key=class_map.get))
        for train_file, test_file in _PARTITIONS:
            if (self.root / train_file).is_file():
                break
        else:
            raise DatasetNotFoundError(f"openmic: no partition files in {self.root / 'partitions'} "
                                       f"(expected {_PARTITIONS[0][0]}). {self.download_hint()}")
        parts = [self._read_csv(f, header=None, names=["sample_key"], dtype=str).assign(split=s)
                 for f, s in ((train_file, "train"), (test_file, "test"))]
        clips = pd.concat(parts, ignore_index=True)
        clips["rel"] = clips["sample_key"].str[:3] + "/" + clips["sample_key"]
        clips = self._attach_paths(clips, "rel", "audio", self.root / train_file)
        clips["clip_id"] = clips["sample_key"]
        return clips[["clip_id", "path", "split"]]

    def _labels(self):
        if not hasattr(self, "_y"):
            path = self.root / LABELS_FILE
            if not path.is_file():
                raise DatasetNotFoundError(f"openmic: labels file {path} is missing (needed for targets; feature "
                                           f"extraction works without it). {self.download_hint()}")
            labels = self._read_csv(LABELS_FILE, dtype={"sample_key": str})
            self._require_columns(labels, ["sample_key", "instrument", "relevance"], LABELS_FILE)
            rows = pd.Series(np.arange(len(self.clips)), index=self.clips["clip_id"])
            cols = {c: i for i, c in enumerate(self.classes)}
            labels = labels[labels["sample_key"].isin(rows.index) & labels["instrument"].isin(cols)]
            r, c = rows[labels["sample_key"]].to_numpy(), labels["instrument"].map(cols).to_numpy()
            self._y = np.zeros((len(self.clips), len(self.classes)), dtype=np.float32)
            self._mask = np.zeros_like(self._y, dtype=bool)
            self._y[r, c] = (labels["relevance"].to_numpy() >= 0.5).astype(np.float32)
            self._mask[r, c] = True
        return self._y, self._mask

    def targets(self, clips=None):
        clips = self.clips if clips is None else clips
        return self._labels()[0][clips.index.to_numpy()]

    def label_mask(self, clips=None):
        clips = self.clips if clips is None else clips
        return self._labels()[1][clips.index.to_numpy()]
