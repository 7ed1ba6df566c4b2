"""Decoded prototypes, reconstructions and their audio (APNet, Section 5.1).

* :func:`decode` -- :func:`apnet.inspection.decode_prototypes` of a version over the training
  split: each prototype's decoded spectrogram ``g(P_j)``, nearest training instance and
  class, cached in the version;
* :func:`derive_decoded` -- the same for a version made by a prototype edit, from its
  parent's, without a pass over the training split;
* :func:`prototype_mel`, :func:`reconstruction_mel` -- spectrograms back in feature units;
* :func:`mel_audio` -- their audio (mel inversion + Griffin-Lim).
"""
import keras
import numpy as np

from apnet.figures import prototype_audio
from apnet.inspection import decode_prototypes, fully_connected_weights, reconstruct


def decode(version, train, batch_size, scaler):
    """:func:`apnet.inspection.decode_prototypes` of ``version`` over the training rows ``train`` (cached in it)."""
    if "decoded" not in version.cache:
        version.cache["decoded"] = decode_prototypes(version.model, train, batch_size=batch_size, scaler=scaler)
    return version.cache["decoded"]


def derive_decoded(new, parent, kept=None, added=None, added_x=None, added_position=None):
    """Store in ``new.cache`` the decoded prototypes of ``new`` derived from its parent's.

    A prototype edit leaves the encoder and decoder unchanged, so the kept prototypes keep
    their nearest training instance and decoded spectrogram; a converted instance is its
    own nearest training instance (``D`` = 0 up to rounding), so its decoded spectrogram
    is its reconstruction. Only the classes of the decoded spectrograms, which depend on
    every prototype, are computed again. Nothing is stored when the parent's are not computed.

    Parameters
    ----------
    new, parent : audioapp.versions.Version
    kept : list of int, optional
        Indices of the parent's prototypes that ``new`` keeps (a deletion).
    added : str, optional
        Clip id of the training instance that became ``new``'s last prototype (a conversion).
    added_x : np.ndarray, optional
        That instance's scaled features ``(1, T, F)``.
    added_position : int, optional
        Its position in the training split.
    """
    decoded = parent.cache.get("decoded")
    if decoded is None:
        return
    mel, nearest, distance = decoded["mel"], decoded["nearest"], decoded["nearest_distance"]
    if kept is not None:
        mel, nearest, distance = mel[kept], nearest[kept], distance[kept]
    if added is not None:
        _, reconstruction, distances = new.model.predict_on_batch(added_x)
        reconstruction = keras.ops.convert_to_numpy(reconstruction)
        mel = np.concatenate([mel, reconstruction.astype(mel.dtype)])
        nearest = np.append(nearest, added_position)
        distance = np.append(distance, keras.ops.convert_to_numpy(distances)[0, -1].sum())
    probabilities = keras.ops.convert_to_numpy(new.model.predict_on_batch(mel)[0])
    new.cache["decoded"] = {"mel": mel, "nearest": nearest, "nearest_distance": distance,
                            "probabilities": probabilities, "classes": probabilities.argmax(axis=1),
                            "w_classes": fully_connected_weights(new.model).argmax(axis=0)}


def prototype_mel(decoded, index, scaler):
    """The decoded prototype ``g(P_j)`` unscaled to the feature units ``(T, F)`` (Section 5.1.2)."""
    return scaler.inverse_transform(decoded["mel"][index])


def reconstruction_mel(model, x, scaler):
    """The autoencoder reconstruction ``g(f(X))`` of scaled features ``x`` ``(1, T, F)``, unscaled (Section 5.1.1)."""
    return scaler.inverse_transform(reconstruct(model, x)[0])


def mel_audio(S, feature_params):
    """Audio of an unscaled mel-spectrogram: mel inversion + Griffin-Lim, peak 0.9 (Section 5.1.1)."""
    return prototype_audio(S, None, feature_params)
