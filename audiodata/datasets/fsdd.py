"""Free Spoken Digit Dataset (Jackson et al.): 3,000 recordings of digits 0-9 by 6 speakers, 8 kHz."""
import re
import warnings

import pandas as pd

from ..errors import DatasetNotFoundError
from .base import FoldDataset, MissingAudioWarning

_NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z]+)_(?P<index>\d+)$")


class FSDD(FoldDataset):
    """FSDD in its official layout ``fsdd/recordings/{digit}_{speaker}_{index}.wav``.

    Folds are the speakers in alphabetical order (george=1, jackson=2, lucas=3, nicolas=4,
    theo=5, yweweler=6 in the official release): ``split(fold=k)`` tests on speaker ``k``,
    validates on speaker ``k + 1`` and trains on the others, so no speaker is in two splits.
    Files whose names do not follow the pattern are skipped with a warning naming them.
    """

    name = "fsdd"
    folder = "fsdd"
    marker = "recordings"
    classes = tuple(str(d) for d in range(10))
    layout = "fsdd/recordings/{digit}_{speaker}_{index}.wav"
    OFFICIAL_CLIPS = 3000
    OFFICIAL_SOURCE = "release v1.0.10: 6 speakers x 10 digits x 50 recordings"

    def _load_clips(self):
        rows, odd = [], []
        for rel, path in sorted(self._audio_index("recordings").items()):
            match = _NAME.match(rel)
            if match is None:
                odd.append(path)
                continue
            rows.append({"clip_id": rel, "path": path, "label": int(match["digit"]),
                         "speaker": match["speaker"], "index": int(match["index"])})
        if odd:
            warnings.warn(f"fsdd: {len(odd)} files do not match {{digit}}_{{speaker}}_{{index}} and are skipped "
                          f"(first: {odd[0]})", MissingAudioWarning, stacklevel=3)
        if not rows:
            raise DatasetNotFoundError(f"fsdd: no recordings in {self.root / 'recordings'}. {self.download_hint()}")
        clips = pd.DataFrame(rows)
        self.speakers = sorted(clips["speaker"].unique())
        self.n_folds = len(self.speakers)
        clips["fold"] = clips["speaker"].map({s: i + 1 for i, s in enumerate(self.speakers)})
        return clips
