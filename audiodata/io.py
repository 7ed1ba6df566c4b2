"""Audio input/output: load any supported file as float32 mono at a chosen rate, write WAV.

Every problem with a file (missing, empty, truncated, not audio, NaN/Inf samples, longer than
a caller's limit) is raised as :class:`audiodata.errors.AudioFileError` naming the file. A file
that decodes but holds fewer samples than its header says (a WAV cut short) is read as far as
it goes, with an :class:`AudioFileWarning` naming the file and both lengths.

The header is read before any sample (:func:`audio_info`), so a caller can refuse a file by its
length before decoding it (``max_duration``), and :func:`load_audio` with ``duration`` decodes
only the window it returns: a small compressed file that decodes to hours of audio (a
"decompression bomb", e.g. a 2 MB FLAC of silence lasting 4 hours) never reaches memory whole.
"""
import math
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from .errors import AudioFileError, AudioFileWarning, ParameterError  # noqa: F401  (AudioFileWarning: re-exported)

#: File endings the loaders accept for the same clip (official datasets ship WAV; FLAC/OGG copies are common).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


#: Ways to make a mono signal: average the channels, or keep the first (left) one as DCASE-models,
#: the library the APNet authors extracted their features with, does (``audio[:, 0]``).
MONO_MODES = ("mean", "first")

#: Resamplers: soxr (librosa's default since 0.10) and resampy's ``kaiser_best``, librosa's default up
#: to 0.9 and so the resampler of the APNet authors' features (librosa 0.7.1 through DCASE-models).
RESAMPLERS = ("soxr_hq", "kaiser_best")

#: libsndfile's frame count of a file whose header does not give its length (e.g. a FLAC
#: stream with ``total_samples = 0``): such files are counted while decoding instead.
_UNKNOWN_FRAMES = 2**62
#: Frames decoded at a time when counting a file of unknown length against ``max_duration``.
_BLOCK = 2**16
#: Extra seconds decoded past a ``duration`` window when resampling, so that the window's last
#: samples are exactly those of resampling the whole file (the resamplers' filters reach less
#: than 0.1 s ahead; checked bit for bit on the test clips for soxr_hq and kaiser_best).
_RESAMPLE_MARGIN = 1.0
#: WAV sample formats whose frames all have the same size (``block_align`` bytes), so that the ``data``
#: chunk's size gives the frame count; compressed ones (IMA ADPCM, GSM...) are left to libsndfile.
_FIXED_SIZE_SUBTYPES = ("PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW")
_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, EOFError)


class AudioTooLongError(AudioFileError):
    """An audio file longer than the ``max_duration`` a caller accepts (:func:`load_audio`).

    Attributes
    ----------
    path : str
    seconds : float or None
        Its length from the header, or None when the header does not give it (decoding
        stopped at the limit).
    max_duration : float
    """

    def __init__(self, path, reason, seconds=None, max_duration=None):
        self.seconds, self.max_duration = seconds, max_duration
        super().__init__(path, reason)

    def __reduce__(self):
        return type(self), (self.path, self.reason, self.seconds, self.max_duration)


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says (:func:`audio_info`); no sample is decoded.

    Attributes
    ----------
    path : str
    frames : int or None
        Frames libsndfile can read (for a WAV, limited to the bytes present); None when the
        header does not give the length (a streamed FLAC), so only decoding can tell.
    samplerate, channels : int
    format, subtype : str
        libsndfile's names (``"WAV"``, ``"PCM_16"``, ``"FLAC"``, ``"VORBIS"``...).
    header_frames : int or None
        Frames the header claims (a WAV's ``data`` chunk size); differs from ``frames`` for a
        file cut short. None when unknown.
    """

    path: str
    frames: object
    samplerate: int
    channels: int
    format: str
    subtype: str
    header_frames: object

    @property
    def seconds(self):
        """Length in seconds, or None when the header does not say."""
        return None if self.frames is None else self.frames / self.samplerate

    @property
    def truncated(self):
        """True when the header claims more frames than the file holds."""
        return self.frames is not None and self.header_frames is not None and self.header_frames > self.frames


def _check_file(path):
    if not path.is_file():
        raise AudioFileError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioFileError(path, "file is empty (0 bytes)")


def _wav_header_frames(path):
    """Frames announced by a RIFF/WAVE file's ``data`` chunk, or None (not a WAV, no size, unparsable).

    libsndfile silently clips the ``data`` chunk to the bytes present, so a cut WAV
    looks complete to it: only the header tells what is missing.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = None
            for _ in range(64):  # a WAV has a handful of chunks before "data"
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return None
                tag, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if tag == b"fmt ":
                    fmt = handle.read(min(size, 16))
                    if len(fmt) < 14:
                        return None
                    block_align = struct.unpack("<H", fmt[12:14])[0]
                    handle.seek(size - len(fmt) + (size & 1), 1)
                elif tag == b"data":
                    if not block_align or size in (0, 0xFFFFFFFF):  # streaming writers leave 0 or -1
                        return None
                    return size // block_align
                else:
                    handle.seek(size + (size & 1), 1)
    except OSError:
        return None
    return None


def _info_of(handle, path):
    frames = None if handle.frames >= _UNKNOWN_FRAMES else int(handle.frames)
    header = _wav_header_frames(path) if handle.format == "WAV" and handle.subtype in _FIXED_SIZE_SUBTYPES else None
    if header is None:
        header = frames
    return AudioInfo(str(path), frames, int(handle.samplerate), int(handle.channels), handle.format,
                     handle.subtype, header)


def audio_info(path):
    """Length, rate and channels of an audio file from its header, without decoding a sample.

    Returns
    -------
    AudioInfo
        ``frames``, ``samplerate``, ``channels``, ``seconds`` (None when the header does not
        say), ``header_frames`` and ``truncated`` (a WAV shorter than its header claims).

    Raises
    ------
    AudioFileError
        The file is missing, empty or not audio.
    """
    path = Path(path)
    _check_file(path)
    try:
        with sf.SoundFile(str(path)) as handle:
            return _info_of(handle, path)
    except _DECODE_ERRORS as err:
        raise AudioFileError(path, f"cannot be decoded as audio (truncated, corrupt or not audio: {err})") from None


def _too_long(path, seconds, max_duration, counted=False):
    if counted:  # the header does not give the length: counted while decoding, stopped at the limit
        return AudioTooLongError(path, f"lasts more than {max_duration:g} s (the limit; its header does not give "
                                       f"its length, decoding stopped after {seconds:.1f} s)", None, max_duration)
    return AudioTooLongError(path, f"lasts {seconds:.1f} s according to its header, over the limit of "
                                   f"{max_duration:g} s; refused without decoding it", seconds, max_duration)


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ParameterError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def load_audio(path, sr=None, mono=True, duration=None, res_type="soxr_hq", offset=0.0, max_duration=None):
    """Load an audio file as float32, optionally mixed down to mono and resampled.

    The header is read first (:func:`audio_info`); only the samples returned are decoded:
    with ``duration``, the window ``[offset, offset + duration)`` (plus 1 s when
    resampling, so that the result equals resampling the whole file and cutting it).

    Parameters
    ----------
    path : str or Path
        Audio file (any format libsndfile reads: WAV of any sample format, FLAC, OGG).
    sr : int or None
        Target sample rate; None keeps the file's rate.
    mono : bool or {'mean', 'first'}
        ``True`` or ``'mean'``: mix all channels down to one by averaging them; ``'first'``: keep
        the first (left) channel only (DCASE-models); ``False``: keep every channel.
    duration : float or None
        If given, zero-pad or cut the signal to exactly this many seconds (at the output rate),
        decoding no more of the file than that.
    res_type : {'soxr_hq', 'kaiser_best'}
        Resampler used when ``sr`` differs from the file's rate (see :data:`RESAMPLERS`).
    offset : float >= 0
        Seconds of the file skipped before the signal starts (default 0).
    max_duration : float or None
        Refuse a file longer than this many seconds, before decoding it when its header
        gives the length; a file whose header does not (a streamed FLAC) is counted while
        decoding, block by block, and refused as soon as it passes the limit.

    Returns
    -------
    y : np.ndarray [shape=(n,) or (channels, n)], float32
    sr : int

    Raises
    ------
    AudioFileError
        The file is missing, empty, not decodable, has no samples (at ``offset``) or holds
        NaN/Inf; :class:`AudioTooLongError` (a subclass) when it lasts longer than ``max_duration``.

    Warns
    -----
    AudioFileWarning
        The file holds fewer frames than its header says (a truncated WAV): what is there is
        returned, and the warning names the file and both lengths.
    """
    path = Path(path)
    if mono not in (True, False) + MONO_MODES:
        raise ParameterError(f"mono must be True, False or one of {MONO_MODES}, got {mono!r}")
    if duration is not None:
        duration = _positive(duration, "duration")
    if max_duration is not None:
        max_duration = _positive(max_duration, "max_duration")
    if isinstance(offset, bool) or not isinstance(offset, (int, float, np.integer, np.floating)) \
            or not math.isfinite(offset) or offset < 0:
        raise ParameterError(f"offset must be a number of seconds >= 0, got {offset!r}")
    _check_file(path)
    try:
        with sf.SoundFile(str(path)) as handle:
            info = _info_of(handle, path)
            data = _read(handle, info, path, sr, duration, float(offset), max_duration)
    except AudioFileError:
        raise
    except _DECODE_ERRORS as err:
        raise AudioFileError(path, f"cannot be decoded as audio (truncated, corrupt or not audio: {err})") from None
    file_sr = info.samplerate
    if data.shape[0] == 0:
        where = f" at offset {offset:g} s (it lasts {info.seconds:.2f} s)" if offset and info.seconds else ""
        raise AudioFileError(path, f"contains no audio samples{where}")
    bad = ~np.isfinite(data)
    if bad.any():
        raise AudioFileError(path, f"contains {int(bad.sum())} NaN or Inf samples")
    if mono is False:
        y = data.T
    else:
        y = data[:, 0] if mono == "first" else data.mean(axis=1)
    y = np.ascontiguousarray(y, dtype=np.float32)
    del data
    if sr is not None and int(sr) != file_sr:
        y = resample(y, file_sr, int(sr), res_type=res_type)
        file_sr = int(sr)
    if duration is not None:
        y = fix_duration(y, file_sr, duration)
    return y, file_sr


def _read_block(handle, channels):
    """Up to :data:`_BLOCK` frames from the current position of a file whose length is unknown.

    Calls libsndfile's ``sf_readf_float`` directly: ``SoundFile.read`` asks libsndfile for the
    position before and after every read, which fails ("Internal psf_fseek() failed") on a
    FLAC stream without a length once the first block is read.
    """
    from soundfile import _error_check, _ffi, _snd  # private names: imported where the one function needs them

    out = np.empty((_BLOCK, channels), np.float32)
    n = _snd.sf_readf_float(handle._file, _ffi.cast("float *", out.__array_interface__["data"][0]), _BLOCK)
    _error_check(_snd.sf_error(handle._file))
    return out[:n]


def _read(handle, info, path, sr, duration, offset, max_duration):
    """Decode the frames :func:`load_audio` needs from an open file, enforcing ``max_duration``."""
    rate = info.samplerate
    if max_duration is not None and info.frames is not None and info.frames > max_duration * rate:
        raise _too_long(path, info.seconds, max_duration)
    if info.truncated:
        warnings.warn(AudioFileWarning(
            path, f"truncated: its header announces {info.header_frames} frames ({info.header_frames / rate:.3f} s) "
                  f"but the file holds {info.frames} ({info.frames / rate:.3f} s); decoding what is there"),
            stacklevel=3)
    start = int(round(offset * rate))
    if start and info.frames is not None and start >= info.frames:
        raise AudioFileError(path, f"lasts {info.seconds:.2f} s; nothing to read from offset {offset:g} s")
    wanted = None  # frames to return (None: up to the end)
    if duration is not None:
        margin = int(math.ceil(_RESAMPLE_MARGIN * rate)) if sr is not None and int(sr) != rate else 0
        wanted = int(math.ceil(duration * rate)) + margin
    if info.frames is not None:
        if start:
            handle.seek(start)
        data = handle.read(-1 if wanted is None else wanted, dtype="float32", always_2d=True)
    else:  # length unknown (no seeking either): decode block by block, keep the window, stop past max_duration
        limit = None if max_duration is None else int(math.floor(max_duration * rate))
        kept, n_kept, total = [], 0, 0
        while True:
            block = _read_block(handle, info.channels)
            if block.shape[0] == 0:
                break
            first, total = total, total + block.shape[0]
            if limit is not None and total > limit:
                raise _too_long(path, total / rate, max_duration, counted=True)
            piece = block[max(0, start - first):]
            if wanted is not None:
                piece = piece[:wanted - n_kept]
            if piece.shape[0]:
                kept.append(piece)
                n_kept += piece.shape[0]
            if wanted is not None and n_kept >= wanted and limit is None:
                break
        data = np.concatenate(kept) if kept else np.zeros((0, info.channels), np.float32)
    if info.frames is not None and not info.truncated:
        expected = info.frames - start if wanted is None else min(wanted, info.frames - start)
        if data.shape[0] < expected:
            warnings.warn(AudioFileWarning(
                path, f"decoded {data.shape[0]} frames where its header announces {expected} "
                      f"(from {start} of {info.frames}); the file is truncated or damaged"), stacklevel=3)
    return data


def resample(y, orig_sr, target_sr, res_type="soxr_hq"):
    """Resample the last axis of ``y`` from ``orig_sr`` to ``target_sr`` with librosa.

    ``res_type`` is one of :data:`RESAMPLERS`: ``'soxr_hq'`` (soxr, high quality) or
    ``'kaiser_best'`` (resampy, the resampler of librosa <= 0.9 and of the APNet authors' features).
    """
    if orig_sr <= 0 or target_sr <= 0:
        raise ParameterError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if res_type not in RESAMPLERS:
        raise ParameterError(f"res_type must be one of {RESAMPLERS}, got {res_type!r}")
    return librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr, res_type=res_type).astype(np.float32)


def fix_duration(y, sr, duration):
    """Zero-pad (at the end) or cut the last axis of ``y`` to ``round(duration * sr)`` samples."""
    if duration <= 0:
        raise ParameterError(f"duration must be positive, got {duration}")
    return fix_length(y, int(round(duration * sr)))


def fix_length(y, n):
    """Zero-pad (at the end) or cut the last axis of ``y`` to exactly ``n`` samples."""
    if n <= 0:
        raise ParameterError(f"length must be a positive number of samples, got {n}")
    if y.shape[-1] >= n:
        return y[..., :n]
    pad = [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])]
    return np.pad(y, pad)


def write_audio(path, y, sr, subtype="PCM_16"):
    """Write a (n,) or (channels, n) float signal to a WAV file, clipping to [-1, 1].

    The folder is created if needed. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        raise ParameterError(f"refusing to write {path}: the signal holds NaN or Inf values")
    data = np.clip(y.T if y.ndim == 2 else y, -1.0, 1.0)
    sf.write(str(path), data, int(sr), subtype=subtype)
    return path
