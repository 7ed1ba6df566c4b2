"""UrbanSound8K (Salamon et al., 2014): 8,732 urban sound slices of at most 4 s in 10 folds."""
from .base import FoldDataset

CLASSES = ("air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling", "engine_idling",
           "gun_shot", "jackhammer", "siren", "street_music")


class UrbanSound8K(FoldDataset):
    """UrbanSound8K in its official layout (``metadata/UrbanSound8K.csv``, ``audio/fold{1..10}/``).

    Labels are ``classID`` (0-9, :data:`CLASSES`). ``split(fold=k)``: test fold ``k``,
    validation fold ``k + 1``, train on the other eight (APNet Section 4.2.1).
    """

    name = "urbansound8k"
    folder = "UrbanSound8K"
    marker = "metadata/UrbanSound8K.csv"
    classes = CLASSES
    n_folds = 10
    layout = "UrbanSound8K/metadata/UrbanSound8K.csv and UrbanSound8K/audio/fold1..fold10/*.wav"
    OFFICIAL_CLIPS = 8732
    OFFICIAL_SOURCE = "Salamon et al. 2014; the 8,732 rows of the official metadata/UrbanSound8K.csv"

    def _load_clips(self):
        meta = self._read_csv(self.marker)
        self._require_columns(meta, ["slice_file_name", "fold", "classID", "class"], self.marker)
        meta["relpath"] = "fold" + meta["fold"].astype(str) + "/" + meta["slice_file_name"]
        meta = self._attach_paths(meta, "relpath", "audio", self.root / self.marker)
        meta["clip_id"] = meta["relpath"].str.rsplit(".", n=1).str[0]
        meta["label"] = meta["classID"].astype(int)
        return meta[["clip_id", "path", "label", "fold", "fsID", "salience"]]
