"""FLINT (Parekh et al., NeurIPS 2021): attribute-dictionary interpreter on the hidden layers of f."""
import math

import keras
from keras import ops

from audiodata.cli import non_negative_float, positive_int, require
from l2i.baselines._common import crossentropy, softmax_entropy
from l2i.trainer import InterpreterModel

__all__ = ["FLINT", "FLINT_MODES"]

#: ``"posthoc"``: f frozen, only the interpreter is trained; ``"bydesign"``: f and g jointly (Table VIII).
FLINT_MODES = ("posthoc", "bydesign")


@keras.saving.register_keras_serializable(package="l2i")
class FLINT(InterpreterModel):
    """FLINT's interpreter ``g = h o Phi`` with its decoder ``d``, on the hidden layers of a classifier ``f``.

    * **Attribute dictionary** ``Phi(x) = Psi(f_I(x))`` in ``R_+^J``: each hidden map
      ``(T_i, F_i, C_i)`` of ``f`` (``hidden_layers``) goes through a 3x3 convolution +
      ReLU and a global max pooling; the pooled vectors are concatenated and two dense
      layers (the last with ReLU, ``J = n_attributes`` units) give ``Phi(x)``
      (output ``"attributes"``).
    * **Interpretable function** ``h``: a linear layer without bias + softmax (sigmoid
      for multi-label): ``g(x) = h(Phi(x))`` (output ``"interpreter"``); its kernel
      ``(J, C)`` gives FLINT's relevance ``r_j = Phi_j(x) w_{j,c} / max_i |Phi_i(x) w_{i,c}|``.
    * **Decoder** ``d``: a dense layer onto a coarse ``(T/8, F/8)`` grid, three
      (2x upsampling + 3x3 convolution + ReLU) stages and a last 3x3 convolution,
      cropped to the input's ``(T, F)`` (output ``"reconstruction"``).
    * ``f(x)`` itself is output ``"classifier"`` (the fidelity target).

    Loss (:meth:`loss_terms`), FLINT's ``L_pred + beta L_of + gamma L_if + delta L_cd``:

    * ``L_of`` (output fidelity): cross-entropy of ``g(x)`` to ``f(x)`` (held constant);
    * ``L_if`` (input fidelity): mean squared error of ``d(Phi(x))`` to the input, per
      bin (after the classifier's ``"input_normalization"`` layer when it has one);
    * ``L_cd`` (conciseness and diversity): ``-E(mean_batch Phi(x)) + mean_x E(Phi(x))
      + eta * mean_x ||Phi(x)||_1``, where ``E(v)`` is the entropy of ``softmax(v)``;
    * ``L_pred`` (``mode="bydesign"`` only): cross-entropy of ``f(x)`` to the labels.

    In ``"posthoc"`` mode ``f`` is frozen (its layers non-trainable, batch norms in
    inference mode) and ``fit(x)`` needs no targets; in ``"bydesign"`` mode ``f`` is
    trained too and ``fit(x, labels)``. Logged terms: ``fidelity_loss``,
    ``reconstruction_loss``, ``conciseness_diversity_loss``, ``classification_loss``.
    Fidelity (Table IV) compares ``predict(x)["interpreter"]`` with ``f``'s output
    (:func:`l2i.metrics.top_k_fidelity`).

    Args:
        classifier: a functional Keras model (e.g. :class:`l2i.classifier.KumarCNN`) with
            a known input length and the layers ``hidden_layers``; its layers are shared.
        n_attributes: int, ``J``.
        mode: one of :data:`FLINT_MODES`.
        hidden_layers: names of the classifier layers read by ``Psi`` (``f_I``).
        psi_channels: int, channels of the per-layer convolutions.
        psi_units: int, units of the hidden dense layer of ``Psi``.
        decoder_channels: int, channels of the decoder convolutions.
        beta, gamma, delta: float >= 0, weights of ``L_of``, ``L_if``, ``L_cd``.
        eta: float >= 0, weight of the l1 norm inside ``L_cd`` (with 1.0 the attributes of
            our smoke runs all died -- ReLU output 0 -- within a few epochs; FLINT tunes it).
        multilabel: bool (default: the classifier's ``multilabel`` attribute, else False).
        **kwargs: ``name``, ``trainable``.

    Example:

    >>> import numpy as np
    >>> from l2i.classifier import KumarCNN
    >>> f = KumarCNN(n_classes=3, n_frames=128, filters=(2, 2, 2, 4, 4, 4), head_filters=4)
    >>> g = FLINT(f, n_attributes=5, psi_channels=4, psi_units=8, decoder_channels=4)
    >>> out = g.predict(np.zeros((2, 128, 128), "float32"), verbose=0)
    >>> out["interpreter"].shape, out["attributes"].shape, out["reconstruction"].shape
    ((2, 3), (2, 5), (2, 128, 128))

    References:
        Parekh, Mozharovskyi, d'Alché-Buc, "A framework to learn with interpretation",
        NeurIPS 2021: Sec. 3 (interpreter ``g = h o Psi o f_I``, relevance),
        Sec. 3.3 (losses ``L_of``, ``L_if``, ``L_cd``, entropy of a real vector), and
        the supplementary post-hoc variant; Parekh et al., IEEE/ACM TASLP 2024,
        Sec. IV-C, Tables IV (post-hoc fidelity) and VIII (by design).
    """

    LOSS_TERMS = ("fidelity", "reconstruction", "conciseness_diversity", "classification")

    def __init__(self, classifier, n_attributes=64, mode="posthoc", hidden_layers=("block4", "block5", "block6"),
                 psi_channels=64, psi_units=256, decoder_channels=32, beta=0.5, gamma=0.8, delta=0.2, eta=0.01,
                 multilabel=None, **kwargs):
        if not isinstance(classifier, keras.Model) or not getattr(classifier, "inputs", None):
            raise ValueError(f"`classifier` must be a functional Keras model; received {classifier!r}")
        if mode not in FLINT_MODES:
            raise ValueError(f"`mode` must be one of {FLINT_MODES}; received mode={mode!r}")
        hidden_layers = tuple(hidden_layers)
        names = {layer.name for layer in classifier.layers}
        missing = [n for n in hidden_layers if n not in names]
        if not hidden_layers or missing:
            raise ValueError(f"`hidden_layers` must name layers of {classifier.name!r}; missing {missing}")
        require(positive_int, n_attributes, "n_attributes", strict=True)
        require(positive_int, psi_channels, "psi_channels", strict=True)
        require(positive_int, psi_units, "psi_units", strict=True)
        require(positive_int, decoder_channels, "decoder_channels", strict=True)
        for name, value in (("beta", beta), ("gamma", gamma), ("delta", delta), ("eta", eta)):
            require(non_negative_float, value, name)
        inputs = classifier.inputs[0]
        if len(inputs.shape) != 3 or inputs.shape[1] is None or inputs.shape[2] is None:
            raise ValueError(f"the classifier input must be (batch, T, F) with known T and F; got {inputs.shape}")
        if multilabel is None:
            multilabel = bool(getattr(classifier, "multilabel", False))
        if mode == "posthoc":
            classifier.trainable = False
        n_frames, n_bands = int(inputs.shape[1]), int(inputs.shape[2])
        n_classes = int(classifier.outputs[0].shape[-1])

        # Psi: hidden maps -> attributes Phi(x).
        pooled = []
        for name in hidden_layers:
            h = classifier.get_layer(name).output
            h = keras.layers.Conv2D(psi_channels, 3, padding="same", activation="relu", name=f"psi_{name}_conv")(h)
            pooled.append(keras.layers.GlobalMaxPooling2D(name=f"psi_{name}_pool")(h))
        h = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="psi_concat")(pooled)
        h = keras.layers.Dense(psi_units, activation="relu", name="psi_dense")(h)
        attributes = keras.layers.Dense(n_attributes, activation="relu", name="attributes")(h)
        # h: linear + softmax / sigmoid.
        logits = keras.layers.Dense(n_classes, use_bias=False, name="h_linear")(attributes)
        interpreter = keras.layers.Activation("sigmoid" if multilabel else "softmax", name="interpreter")(logits)
        # Decoder d: Phi(x) -> input.
        grid = (math.ceil(n_frames / 8), math.ceil(n_bands / 8))
        d = keras.layers.Dense(grid[0] * grid[1] * decoder_channels, activation="relu",
                               name="decoder_dense")(attributes)
        d = keras.layers.Reshape((*grid, decoder_channels), name="decoder_reshape")(d)
        for i in range(1, 4):
            d = keras.layers.UpSampling2D(2, name=f"decoder_upsample{i}")(d)
            d = keras.layers.Conv2D(decoder_channels, 3, padding="same", activation="relu", name=f"decoder_conv{i}")(d)
        d = keras.layers.Conv2D(1, 3, padding="same", name="decoder_output_conv")(d)
        d = keras.layers.Cropping2D(((0, 8 * grid[0] - n_frames), (0, 8 * grid[1] - n_bands)), name="decoder_crop")(d)
        reconstruction = keras.layers.Reshape((n_frames, n_bands), name="reconstruction")(d)
        super().__init__(inputs=inputs, outputs={"interpreter": interpreter, "reconstruction": reconstruction,
                                                 "attributes": attributes, "classifier": classifier.outputs[0]},
                         **kwargs)

        self.classifier = classifier
        self.n_attributes = int(n_attributes)
        self.mode = mode
        self.hidden_layers = hidden_layers
        self.psi_channels = int(psi_channels)
        self.psi_units = int(psi_units)
        self.decoder_channels = int(decoder_channels)
        self.beta, self.gamma, self.delta, self.eta = float(beta), float(gamma), float(delta), float(eta)
        self.multilabel = bool(multilabel)
        self.n_classes = n_classes

    def reconstruction_target(self, x):
        """The decoder's target: ``x`` after the classifier's ``"input_normalization"`` layer, if it has one."""
        names = {layer.name for layer in self.classifier.layers}
        if "input_normalization" in names:
            return self.classifier.get_layer("input_normalization")(x)
        return ops.convert_to_tensor(x)

    def loss_terms(self, y, y_pred, *, x=None):
        """The terms ``{"fidelity", "reconstruction", "conciseness_diversity", "classification"}`` and the total."""
        g, f_out, phi = y_pred["interpreter"], y_pred["classifier"], y_pred["attributes"]
        fidelity = crossentropy(ops.stop_gradient(f_out), g, self.multilabel)
        target = ops.cast(self.reconstruction_target(x), y_pred["reconstruction"].dtype)
        reconstruction = ops.mean(ops.square(y_pred["reconstruction"] - target))
        conciseness = ops.mean(softmax_entropy(phi))
        diversity = softmax_entropy(ops.mean(phi, axis=0))
        sparsity = ops.mean(ops.sum(ops.abs(phi), axis=-1))
        cd = conciseness - diversity + self.eta * sparsity
        if self.mode == "bydesign":
            classification = crossentropy(y, f_out, self.multilabel)
        else:
            classification = ops.zeros((), dtype=fidelity.dtype)
        total = classification + self.beta * fidelity + self.gamma * reconstruction + self.delta * cd
        return {"fidelity": fidelity, "reconstruction": reconstruction, "conciseness_diversity": cd,
                "classification": classification}, total

    def constructor_config(self):
        return {
            "classifier": self.classifier,
            "n_attributes": self.n_attributes,
            "mode": self.mode,
            "hidden_layers": list(self.hidden_layers),
            "psi_channels": self.psi_channels,
            "psi_units": self.psi_units,
            "decoder_channels": self.decoder_channels,
            "beta": self.beta,
            "gamma": self.gamma,
            "delta": self.delta,
            "eta": self.eta,
            "multilabel": self.multilabel,
        }
