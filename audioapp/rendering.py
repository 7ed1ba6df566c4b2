"""Server-side rendering for the web pages: spectrograms as PNG (matplotlib Agg) and audio as WAV bytes.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state) and drawn one at a
time under a lock, since the request handlers run in a thread pool.
"""
import io
import threading
from collections import OrderedDict

import numpy as np
import soundfile as sf
from matplotlib.figure import Figure

_DRAW_LOCK = threading.Lock()


def spectrogram_png(S, title=None, vmin=None, vmax=None, label="dB", cmap="magma", size=(4.0, 2.6), dpi=90,
                    ylabel="mel band"):
    """A ``(T, F)`` spectrogram as PNG bytes, time to the right and frequency upwards.

    Parameters
    ----------
    S : np.ndarray [shape=(T, F)]
    title : str, optional
    vmin, vmax : float, optional
        Colour limits (the same for every image of one kind, so they compare).
    label : str
        Colour-bar label.
    ylabel : str
        Label of the frequency axis.

    Returns
    -------
    bytes
    """
    S = np.asarray(S, dtype=np.float32)
    if S.ndim != 2:
        raise ValueError(f"a spectrogram must have shape (T, F); received shape {S.shape}")
    with _DRAW_LOCK:
        fig = Figure(figsize=size, layout="constrained")
        ax = fig.add_subplot()
        image = ax.imshow(S.T, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                          interpolation="nearest")
        fig.colorbar(image, ax=ax, label=label, pad=0.01)
        ax.set_xlabel("frame", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        if title:
            ax.set_title(title, fontsize=9)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def wav_bytes(y, sr, peak=None):
    """A mono signal as 16-bit PCM WAV bytes (clipped to [-1, 1]; peak-normalised when ``peak`` is given)."""
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(y)):
        raise ValueError("refusing to encode a signal holding NaN or Inf values")
    if peak is not None:
        top = float(np.max(np.abs(y))) if y.size else 0.0
        if top > 0:
            y = y * (peak / top)
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(y, -1.0, 1.0), int(sr), format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class LRUCache:
    """A small thread-safe least-recently-used cache of computed bytes or arrays."""

    def __init__(self, size=256):
        self.size = int(size)
        self._items = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, compute):
        """The cached value of ``key``, computing (outside the lock) and storing it when absent."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self):
        with self._lock:
            self._items.clear()
