"""What the explore page shows of one clip or one prototype of a model version (JSON-ready).

* :func:`instance_summary` -- class, prediction and closest prototypes (Eq. 4 distances) of a clip;
* :func:`prototype_summary` -- decoded class, row of ``W`` and nearest training instance of a prototype;
* :func:`prototype_index` -- a prototype index from a request, checked against a version.
"""
import keras
import numpy as np

from apnet.inspection import fully_connected_weights

from audioapp.errors import existing_index
from audioapp.versions import n_prototypes

#: Closest prototypes listed for an instance.
N_CLOSEST = 3


def instance_summary(model, x, clip_id, info, classes, version_id):
    """Class, prediction and closest prototypes of one clip.

    Parameters
    ----------
    model : keras.Model
        The APNet of the version.
    x : np.ndarray [shape=(1, T, F)]
        The clip's scaled features.
    clip_id : str
    info : dict
        The clip's entry of :func:`audioapp.loading.clip_table`.
    classes : sequence of str
    version_id : int
    """
    probs, _, distances = model.predict_on_batch(x)
    probs = keras.ops.convert_to_numpy(probs)[0]
    d = keras.ops.convert_to_numpy(distances)[0].sum(axis=-1)
    closest = np.argsort(d, kind="stable")[:N_CLOSEST]
    predicted = int(np.argmax(probs))
    return {
        "clip_id": str(clip_id),
        "split": info["split"],
        "label": info["label"],
        "class_name": classes[info["label"]],
        "predicted": predicted,
        "predicted_name": classes[predicted],
        "probabilities": [round(float(p), 5) for p in probs],
        "closest_prototypes": [{"index": int(j), "distance": float(d[j])} for j in closest],
        "convertible": info["split"] == "train",
        "version": version_id,
    }


def prototype_summary(version, index, decoded, classes, nearest_clip_id):
    """Decoded class, row of ``W`` and nearest training instance of prototype ``index`` of ``version``.

    ``nearest_clip_id``: function from a position in the training split to its clip id.
    """
    w_row = fully_connected_weights(version.model)[:, index]
    nearest = int(decoded["nearest"][index])
    cls, w_cls = int(decoded["classes"][index]), int(decoded["w_classes"][index])
    return {
        "index": index,
        "class": cls,
        "class_name": classes[cls],
        "w_class": w_cls,
        "w_class_name": classes[w_cls],
        "w_row": [round(float(w), 5) for w in w_row],
        "origin": version.origins[index],
        "nearest_clip_id": nearest_clip_id(nearest),
        "nearest_distance": float(decoded["nearest_distance"][index]),
        "version": version.id,
    }


def prototype_index(version, index):
    """``index`` as an int when ``version`` has that prototype, else :class:`NotFound`."""
    n = n_prototypes(version.model)
    return existing_index(index, n, "prototype", f"in version {version.id} ({n} prototypes)")
