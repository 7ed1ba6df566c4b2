"""The 2-D maps of the latent space shown on the explore page.

The training instances' latent vectors ``Z_i = f(X_i)`` (Eq. 1, flattened) and the prototypes
``P_j`` live in the same space; :class:`LatentMaps` draws both in 2-D:

* ``"pca"`` -- principal components of the instances' latents; the prototypes are projected
  with the instances' components (one fit per encoder);
* ``"tsne"`` -- t-SNE of the instances and prototypes together (after a PCA to 50
  dimensions), seeded, on one thread.

The latents depend on the encoder only, so they are computed once per ``encoder_id`` of
:class:`~audioapp.versions.Version` and dropped when no version on the stack uses that
encoder any more.
"""
import keras
import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from apnet.inspection import encoder_model, prototype_weights
from audiodata.errors import ParameterError

from audioapp.loading import FeatureRows
from audioapp.versions import n_prototypes

#: Projections of the latent space offered by :meth:`LatentMaps.projection`.
PROJECTIONS = ("pca", "tsne")
#: Instances encoded per batch when computing the map's latents.
_ENCODE_BATCH = 256


class LatentMaps:
    """Latents of the map instances and their 2-D projections, cached per encoder.

    Parameters
    ----------
    features : FeatureArray
        The fold's unscaled features.
    rows : np.ndarray
        Rows of the map instances (:func:`audioapp.loading.map_sample`).
    ids, labels : sequence
        Their clip ids and classes.
    scaler : fitted scaler of the run
    seed : int
        Seed of the PCA and t-SNE.
    """

    def __init__(self, features, rows, ids, labels, scaler, seed):
        self.instances = FeatureRows(features, rows)
        self.ids, self.labels, self.scaler, self.seed = ids, labels, scaler, seed
        self._latents, self._pca_fits = {}, {}

    def latent_matrix(self, version, alive=()):
        """Flattened latents ``(N, T' F' C)`` of the map instances under ``version``'s encoder.

        ``alive``: the encoder ids still on the stack; cached latents of the others are dropped.
        """
        key = version.encoder_id
        if key not in self._latents:
            encoder = encoder_model(version.model)
            x = self.instances
            out = []
            for start in range(0, len(x), _ENCODE_BATCH):
                batch = self.scaler.transform(x[start:start + _ENCODE_BATCH])
                out.append(keras.ops.convert_to_numpy(encoder.predict_on_batch(batch)[0]).reshape(len(batch), -1))
            self._latents[key] = np.concatenate(out).astype(np.float32)
            for stale in [k for k in self._latents if k not in alive and k != key]:
                del self._latents[stale]
        return self._latents[key]

    def projection(self, method, version, decoded, classes, alive=()):
        """2-D coordinates of the map instances and of the prototypes of ``version``.

        Parameters
        ----------
        method : {"pca", "tsne"}
        version : audioapp.versions.Version
        decoded : dict
            :func:`apnet.inspection.decode_prototypes` of the version (classes of the prototypes).
        classes : sequence of str
        alive : set of int
            Encoder ids still on the stack.

        Returns
        -------
        dict with ``method``, ``version``, ``instances`` (list of ``{"id", "label", "x", "y"}``),
        ``prototypes`` (list of ``{"index", "class", "w_class", "origin", "x", "y"}``),
        ``classes``, and ``explained_variance`` (PCA) or ``perplexity`` (t-SNE).
        """
        check_method(method)
        latents = self.latent_matrix(version, alive)
        protos = prototype_weights(version.model).reshape(n_prototypes(version.model), -1).astype(np.float32)
        if method == "pca":
            xy_i, xy_p, extra = self._pca(version.encoder_id, latents, protos)
        else:
            xy_i, xy_p, extra = tsne(latents, protos, self.seed)
        return {
            "method": method,
            "version": version.id,
            "classes": list(classes),
            "instances": [{"id": cid, "label": int(lab), "x": round(float(a), 5), "y": round(float(b), 5)}
                          for cid, lab, (a, b) in zip(self.ids, self.labels, xy_i)],
            "prototypes": [{"index": j, "class": int(decoded["classes"][j]),
                            "w_class": int(decoded["w_classes"][j]), "origin": version.origins[j],
                            "x": round(float(a), 5), "y": round(float(b), 5)}
                           for j, (a, b) in enumerate(xy_p)],
            **extra,
        }

    def _pca(self, encoder_id, latents, protos):
        if encoder_id not in self._pca_fits:
            self._pca_fits[encoder_id] = PCA(n_components=2, random_state=self.seed).fit(latents)
        pca = self._pca_fits[encoder_id]
        return pca.transform(latents), pca.transform(protos), {
            "explained_variance": [round(float(r), 4) for r in pca.explained_variance_ratio_]}


def check_method(method):
    """``method`` when it is one of :data:`PROJECTIONS`, else :class:`ParameterError`."""
    if method not in PROJECTIONS:
        raise ParameterError(f"projection must be one of {PROJECTIONS}; received {method!r}")
    return method


def tsne(latents, protos, seed):
    """t-SNE of instances and prototypes together: ``(xy_instances, xy_prototypes, {"perplexity"})``.

    On one thread: its OpenMP loops slow down 10-fold or more when the cores are shared with
    TensorFlow (a retrain) or other jobs, and one thread takes a few seconds for the map's size.
    """
    both = np.concatenate([latents, protos]).astype(np.float64)
    n_dims = min(50, both.shape[0] - 1, both.shape[1])
    perplexity = float(min(30.0, max(2.0, (len(both) - 1) / 3.0)))
    with threadpool_limits(limits=1):
        reduced = PCA(n_components=n_dims, random_state=seed).fit_transform(both)
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)
    return xy[:len(latents)], xy[len(latents):], {"perplexity": perplexity}
