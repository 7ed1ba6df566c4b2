"""Medley-solos-DB (Lostanlen & Cella, 2016): 21,571 3-s solo clips of 8 instruments."""
from ..errors import DatasetNotFoundError
from .base import SubsetDataset

CLASSES = ("clarinet", "distorted electric guitar", "female singer", "flute", "piano", "tenor saxophone",
           "trumpet", "violin")
_SUBSETS = {"training": "train", "validation": "validation", "test": "test"}


class MedleySolosDB(SubsetDataset):
    """Medley-solos-DB in the mirdata layout (``annotation/Medley-solos-DB_metadata.csv``, ``audio/``).

    Audio files are ``Medley-solos-DB_{subset}-{instrument_id}_{uuid4}.wav``; labels are
    ``instrument_id`` (0-7, :data:`CLASSES`); the official ``subset`` column gives the
    training / validation / test partition (APNet Section 4.2.2). The metadata's fourth column
    is called ``song_id`` in some copies and ``track_id`` in others: both are accepted.
    """

    name = "medley_solos_db"
    folder = "MedleySolosDB"
    marker = "annotation/Medley-solos-DB_metadata.csv"
    classes = CLASSES
    layout = "MedleySolosDB/annotation/Medley-solos-DB_metadata.csv and MedleySolosDB/audio/*.wav"
    OFFICIAL_CLIPS = 21571
    OFFICIAL_SOURCE = ("Lostanlen & Cella 2016, Zenodo 3464194; the official metadata: 5,841 training, "
                       "3,494 validation, 12,236 test")

    def _load_clips(self):
        meta = self._read_csv(self.marker, dtype={"track_id": str, "song_id": str})
        self._require_columns(meta, ["subset", "instrument_id", "uuid4"], self.marker)
        meta = meta.rename(columns={"song_id": "track_id"})
        unknown = set(meta["subset"]) - set(_SUBSETS)
        if unknown:
            raise DatasetNotFoundError(f"medley_solos_db: {self.root / self.marker} has unknown subsets "
                                       f"{sorted(unknown)}; expected {sorted(_SUBSETS)}")
        meta["clip_id"] = ("Medley-solos-DB_" + meta["subset"] + "-" + meta["instrument_id"].astype(str)
                           + "_" + meta["uuid4"])
        meta = self._attach_paths(meta, "clip_id", "audio", self.root / self.marker)
        meta["label"] = meta["instrument_id"].astype(int)
        meta["split"] = meta["subset"].map(_SUBSETS)
        return meta[["clip_id", "path", "label", "split", "track_id"]]
