"""Crafted audio files and a memory probe shared by the decompression-bomb tests (audio I/O and the web app)."""
import tracemalloc

import numpy as np
import soundfile as sf


def silence_flac(path, seconds, sr=44100, unknown_length=False):
    """A FLAC of digital silence, ``seconds`` long: an hour is ~0.5 MB (635 MB as float32 samples).

    ``unknown_length``: STREAMINFO's total-samples field set to 0, as a streaming encoder may
    write it, so that only decoding can tell the length.
    """
    block = np.zeros(sr * 60, np.int16)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, format="FLAC", subtype="PCM_16") as out:
        for start in range(0, int(seconds * sr), len(block)):
            out.write(block[:min(len(block), int(seconds * sr) - start)])
    if unknown_length:
        data = bytearray(path.read_bytes())
        assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first: bytes 18-25 end with total samples
        fields = int.from_bytes(data[18:26], "big") & ~(2**36 - 1)
        data[18:26] = fields.to_bytes(8, "big")
        path.write_bytes(bytes(data))
    return path


def traced_peak(function, catch=False):
    """Peak bytes traced (NumPy buffers included, every thread) while ``function()`` runs, and its result.

    ``catch``: an exception raised by ``function`` is returned as the result instead of propagating.
    """
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            result = function()
        except Exception as err:  # noqa: BLE001
            if not catch:
                raise
            result = err
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()
