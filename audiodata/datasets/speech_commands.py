"""Google Speech Commands (Warden, 2018): 1-s utterances of short words, 16 kHz; v0.02 (35 words) and v0.01 (30)."""
import warnings

import pandas as pd

from ..errors import DatasetNotFoundError, ParameterError
from .base import MissingAudioWarning, SubsetDataset

WORDS_V2 = ("backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
            "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
            "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero")
_V2_ONLY = ("backward", "follow", "forward", "learn", "visual")
WORDS_V1 = tuple(w for w in WORDS_V2 if w not in _V2_ONLY)


class SpeechCommands(SubsetDataset):
    """Speech Commands in its official layout: ``<word>/<hash>_nohash_<n>.wav`` plus the split lists.

    Parameters
    ----------
    version : {'auto', 2, 1}
        ``2``: the 35 words of v0.02 (APNet Section 4.2.3); ``1``: the 30 words of v0.01;
        ``'auto'``: v0.02 if any of its five new word folders exists, else v0.01.

    Files listed in ``validation_list.txt`` are validation, those in ``testing_list.txt`` test,
    every other clip of a word folder is train (``_background_noise_`` is not a class).
    """

    name = "speech_commands"
    folder = "speech_commands"
    alt_folders = ("speech_commands_v0.01",)  # where the downloader puts v0.01 beside v0.02
    marker = "testing_list.txt"
    layout = "speech_commands/<word>/<hash>_nohash_<n>.wav with validation_list.txt and testing_list.txt"
    #: Utterances of the word folders (``_background_noise_`` excluded) of each release.
    OFFICIAL_CLIPS_BY_VERSION = {2: 105829, 1: 64727}
    OFFICIAL_CLIPS = OFFICIAL_CLIPS_BY_VERSION[2]
    OFFICIAL_SOURCE = "Warden 2018 (arXiv:1804.03209): 105,829 utterances in v0.02, 64,727 in v0.01"

    def __init__(self, data_dir=None, strict=False, version="auto"):
        if version not in ("auto", 1, 2):
            raise ParameterError(f"speech_commands: version must be 'auto', 1 or 2, got {version!r}")
        self.version = version
        if version == 1:  # v0.01 downloaded beside v0.02 lives in its own folder: look there first
            self.folder, self.alt_folders = "speech_commands_v0.01", ("speech_commands",)
        super().__init__(data_dir, strict=strict)

    def download_hint(self):
        from ..download import download_instructions  # here: audiodata.download imports audiodata.datasets

        return download_instructions("speech_commands_v1" if self.version == 1 else "speech_commands")

    @property
    def official_clips(self):
        """105,829 utterances for v0.02, 64,727 for v0.01."""
        return self.OFFICIAL_CLIPS_BY_VERSION.get(self.version, self.OFFICIAL_CLIPS)

    @property
    def cache_name(self):
        return f"speech_commands_v{self.version}"

    def _load_clips(self):
        if self.version == "auto":
            self.version = 2 if any((self.root / w).is_dir() for w in _V2_ONLY) else 1
        self.classes = WORDS_V2 if self.version == 2 else WORDS_V1
        index = self._audio_index()
        rows = [{"clip_id": rel, "path": path, "word": rel.split("/")[0]}
                for rel, path in sorted(index.items()) if rel.split("/")[0] in self.classes]
        if not rows:
            raise DatasetNotFoundError(f"speech_commands: no word folders with audio in {self.root}. "
                                       f"{self.download_hint()}")
        clips = pd.DataFrame(rows)
        missing_words = sorted(set(self.classes) - set(clips["word"]))
        if missing_words:
            warnings.warn(f"speech_commands v{self.version}: no audio for {missing_words} in {self.root}",
                          MissingAudioWarning, stacklevel=3)
        clips["label"] = clips["word"].map({w: i for i, w in enumerate(self.classes)})
        clips["speaker"] = clips["clip_id"].str.split("/").str[1].str.split("_nohash_").str[0]
        clips["split"] = "train"
        for name, listing in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
            listed = self._read_list(listing)
            listed = listed[listed.str.split("/").str[0].isin(self.classes)]
            table = self._attach_paths(pd.DataFrame({"rel": listed}), "rel", "", self.root / listing)
            ids = set(table["rel"].str.rsplit(".", n=1).str[0])
            clips.loc[clips["clip_id"].isin(ids), "split"] = name
        return clips[["clip_id", "path", "label", "split", "speaker"]]

    def _read_list(self, listing):
        path = self.root / listing
        if not path.is_file():
            raise DatasetNotFoundError(f"speech_commands: {path} is missing. {self.download_hint()}")
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        return pd.Series(lines, dtype=str)
