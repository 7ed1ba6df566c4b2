"""ESC-50 (Piczak, 2015): 2,000 5-s environmental clips, 50 classes, 5 folds; ESC-10 is a 10-class subset."""
from ..errors import DatasetNotFoundError
from .base import FoldDataset

#: The 50 ESC-50 categories, index = official ``target``.
CLASSES = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind", "pouring_water",
    "toilet_flush", "thunderstorm", "crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps",
    "laughing", "brushing_teeth", "snoring", "drinking_sipping", "door_wood_knock", "mouse_click",
    "keyboard_typing", "door_wood_creaks", "can_opening", "washing_machine", "vacuum_cleaner", "clock_alarm",
    "clock_tick", "glass_breaking", "helicopter", "chainsaw", "siren", "car_horn", "engine", "train",
    "church_bells", "airplane", "fireworks", "hand_saw",
)
#: Official targets of the ESC-10 subset.
ESC10_TARGETS = (0, 1, 10, 11, 12, 20, 21, 38, 40, 41)


class ESC50(FoldDataset):
    """ESC-50 in its official layout (``meta/esc50.csv``, ``audio/*.wav``).

    Parameters
    ----------
    esc10 : bool
        Keep only the ESC-10 rows (``esc10 == True``); labels become 0-9 in the order of
        :data:`ESC10_TARGETS`.

    ``split(fold=k)`` tests on fold ``k`` and trains on the four others (L2I uses the 1,600
    training clips of each fold); pass ``validation=True`` to hold out fold ``k + 1`` for model
    selection (APNet-style training).
    """

    name = "esc50"
    folder = "ESC-50"
    marker = "meta/esc50.csv"
    n_folds = 5
    default_validation = False
    layout = "ESC-50/meta/esc50.csv and ESC-50/audio/{fold}-{src}-{take}-{target}.wav"
    OFFICIAL_CLIPS = 2000
    OFFICIAL_SOURCE = "Piczak 2015: 50 classes x 40 clips; ESC-10: 10 classes x 40 clips"
    OFFICIAL_CLIPS_ESC10 = 400

    def __init__(self, data_dir=None, strict=False, esc10=False):
        self.esc10 = bool(esc10)
        self.classes = tuple(CLASSES[t] for t in ESC10_TARGETS) if self.esc10 else CLASSES
        super().__init__(data_dir, strict=strict)

    @property
    def official_clips(self):
        """2,000 clips for ESC-50, 400 for its ESC-10 subset."""
        return self.OFFICIAL_CLIPS_ESC10 if self.esc10 else self.OFFICIAL_CLIPS

    @property
    def config_name(self):
        return "esc50"

    @property
    def cache_name(self):
        return "esc10" if self.esc10 else "esc50"

    def _load_clips(self):
        meta = self._read_csv(self.marker)
        self._require_columns(meta, ["filename", "fold", "target", "category", "esc10"], self.marker)
        wrong = meta[meta["category"] != meta["target"].map(lambda t: CLASSES[t] if 0 <= t < 50 else None)]
        if len(wrong):
            raise DatasetNotFoundError(f"esc50: {self.root / self.marker} row {wrong.iloc[0]['filename']} has "
                                       f"target {wrong.iloc[0]['target']} but category {wrong.iloc[0]['category']!r}")
        if self.esc10:
            meta = meta[meta["esc10"].astype(str).str.lower() == "true"]
            meta = meta.assign(label=meta["target"].map({t: i for i, t in enumerate(ESC10_TARGETS)}))
        else:
            meta = meta.assign(label=meta["target"])
        meta = self._attach_paths(meta, "filename", "audio", self.root / self.marker)
        meta["clip_id"] = meta["filename"].str.rsplit(".", n=1).str[0]
        return meta[["clip_id", "path", "label", "fold", "target", "src_file", "take"]]
