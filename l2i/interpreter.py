"""The L2I interpreter: Psi (hidden maps -> H), Theta (H -> prediction) and the NMF decoder W H."""
import keras
import numpy as np

from audiodata.cli import positive_int, require
from l2i.layers import AttentionPooling, ClassSpecificDense, GatedAttention, NMFReconstruction

__all__ = ["L2IInterpreter", "build_interpreter", "THETAS"]

#: Pooling of Theta: attention (L2I w/ Theta_ATT) or max over time (L2I w/ Theta_MAX), Sec. IV-C.
THETAS = ("att", "max")
#: Gate of the gated attention: the authors' ReLU (``explainer_v4``) or Ilse et al.'s sigmoid.
_GATES = ("relu", "sigmoid")


@keras.saving.register_keras_serializable(package="l2i")
class L2IInterpreter(keras.Model):
    """L2I's interpreter ``g = Theta o Psi o f_I`` with its NMF decoder, as one functional model.

    The model shares the layers (and weights) of ``classifier`` up to its hidden
    layers, then adds:

    **Psi** (Sec. III-D): each hidden map ``(T_i, F_i, C_i)`` (time first) goes
    through a 3x3 convolution + ReLU and is resized (bilinear, anti-aliased) to a
    common grid: the time resolution of the first (finest) map and the frequency
    resolution of the last (coarsest) one, ``(53, 4)`` for B4-B6 of a 431 x 128
    input. The maps are concatenated, then convolved (3x3 + ReLU), stretched in time
    (x2), convolved again, collapsed in frequency (a ``(1, F)`` valid convolution +
    ReLU), resized in time to ``T`` frames, and two 1-D convolutions (kernel 5) map
    the channels to ``K`` components, the last with a ReLU: ``H`` in
    ``R_+^{K x T}``, output ``(batch, K, T)``.

    **Theta** (Sec. III-D): ``theta="att"`` -- gated attention over time
    (:class:`l2i.layers.GatedAttention`: ``tanh(V h_t) * gate(U h_t)``, the gate a
    ReLU as in the authors' ``explainer_v4``, or Ilse et al.'s sigmoid; one vector,
    or one per class when ``class_specific_attention`` -- the paper's OpenMIC-2018
    setting; ESC-50 and SONYC-UST use one vector). With ``attention_dropout`` the
    attention branch reads ``dropout(H)`` (the authors: 0.4 on ESC-50) while the
    pooling ``z = H a`` (:class:`l2i.layers.AttentionPooling`) uses ``H`` itself;
    ``theta="max"`` -- ``z = max_t H`` (Theta_MAX). Then a linear layer without bias
    and a softmax (multi-class) or sigmoid (multi-label).

    **Decoder** (Eq. 3): ``X_hat = W H`` with the fixed dictionary ``W`` (F x K),
    :class:`l2i.layers.NMFReconstruction`, shape ``(batch, F, T)`` -- the transpose
    of the time-first log-magnitude features.

    Outputs, in order: ``[prediction (batch, C), X_hat (batch, F, T), H (batch, K, T)]``.

    Layer names the interpretation code reads with ``get_layer``:

    * ``"interpreter_prediction"`` -- Theta's probabilities (output 0);
    * ``"nmf_reconstruction"`` -- ``X_hat = W H`` (output 1); its weight
      ``dictionary`` is ``W`` (F, K);
    * ``"nmf_activations"`` -- ``H`` (output 2);
    * ``"theta_pool"`` -- pooled activations ``z``: ``(batch, K)``, or
      ``(batch, C, K)`` with class-specific attention (``z[:, c]`` for class c);
    * ``"theta_attention"`` -- attention weights ``a`` ``(batch, T, heads)``
      (``theta="att"`` only);
    * ``"theta_linear"`` -- logits ``(batch, C)``; its ``kernel`` is ``theta^w``
      with shape ``(K, C)`` (no bias), so the relevance of Sec. III-E is
      ``r[k] = z[k] * kernel[k, c] / max_l |z[l] * kernel[l, c]|``
      (with ``z[c, k]`` for class-specific attention);
    * the classifier's layers (``"block4"`` ...) under their own names.

    Args:
        classifier: a functional Keras model (e.g. :class:`l2i.classifier.KumarCNN`)
            with the layers named in ``hidden_layers``; its layers are shared.
        dictionary: array ``(F, K)``, the pre-learned NMF dictionary ``W``.
        n_classes: int, number of classes ``C`` (default: the classifier's output size).
        theta: ``"att"`` or ``"max"``.
        multilabel: bool, sigmoid output instead of softmax (default: the classifier's).
        n_frames: int, number of frames ``T`` of ``H`` and of the log-magnitude target
            (default: the classifier's input length).
        hidden_layers: names of the classifier layers read by Psi (``f_I``).
        psi_channels: int, channels of Psi's convolutions (256).
        attention_units: int, hidden size of the attention (256).
        class_specific_attention: bool, one attention vector per class (default
            False: one vector, as the paper's Theta and the authors' ESC-50 and
            SONYC-UST models; the configs set True for OpenMIC-2018 only).
        gate_activation: activation of the gate branch of the attention, ``"relu"``
            (default, the authors' ``explainer_v4``) or ``"sigmoid"`` (Ilse et al.).
        attention_dropout: float in [0, 1), dropout on ``H`` before the attention
            branch only (default 0; the authors use 0.4 on ESC-50, none on SONYC-UST).
        **kwargs: ``name``, ``trainable``.

    Example:

    >>> import numpy as np
    >>> from l2i.classifier import KumarCNN
    >>> f = KumarCNN(n_classes=3, n_frames=128, filters=(4, 4, 8, 8, 16, 16), head_filters=16)
    >>> W = np.abs(np.random.default_rng(0).normal(size=(513, 6))).astype("float32")
    >>> g = L2IInterpreter(f, W, psi_channels=16, attention_units=8)
    >>> [tuple(o.shape) for o in g.outputs]
    [(None, 3), (None, 513, 128), (None, 6, 128)]

    References:
        Parekh et al., IEEE/ACM TASLP 2024: Fig. 1, Sec. III-B (H_I(x) = Psi o f_I(x),
        Eq. 1-3), Sec. III-D (designs of Psi and Theta), Sec. III-E (relevance),
        Sec. IV-B4 (B4-B6 as hidden layers), Sec. IV-C (Theta_MAX).
    """

    def __init__(
        self,
        classifier,
        dictionary,
        n_classes=None,
        theta="att",
        multilabel=None,
        n_frames=None,
        hidden_layers=("block4", "block5", "block6"),
        psi_channels=256,
        attention_units=256,
        class_specific_attention=False,
        gate_activation="relu",
        attention_dropout=0.0,
        **kwargs,
    ):
        if not isinstance(classifier, keras.Model) or not hasattr(classifier, "inputs") or not classifier.inputs:
            raise ValueError(f"`classifier` must be a functional Keras model; received {classifier!r}")
        if theta not in THETAS:
            raise ValueError(f"`theta` must be one of {THETAS}; received theta={theta!r}")
        hidden_layers = tuple(hidden_layers)
        if not hidden_layers:
            raise ValueError("`hidden_layers` must name at least one classifier layer")
        names = {layer.name for layer in classifier.layers}
        missing = [n for n in hidden_layers if n not in names]
        if missing:
            raise ValueError(f"`hidden_layers` {missing} are not layers of the classifier {classifier.name!r}")
        dictionary = np.asarray(dictionary, dtype="float32")
        if dictionary.ndim != 2:
            raise ValueError(f"`dictionary` must be a 2-D array (F, K); received shape {dictionary.shape}")
        n_components = int(dictionary.shape[1])
        if n_classes is None:
            n_classes = int(classifier.outputs[0].shape[-1])
        require(positive_int, n_classes, "n_classes", strict=True)
        if multilabel is None:
            multilabel = bool(getattr(classifier, "multilabel", False))
        if n_frames is None:
            n_frames = classifier.inputs[0].shape[1]
            if n_frames is None:
                raise ValueError("the classifier takes any number of frames; give `n_frames` (T of the target)")
        require(positive_int, n_frames, "n_frames", strict=True)
        require(positive_int, psi_channels, "psi_channels", strict=True)
        require(positive_int, attention_units, "attention_units", strict=True)
        class_specific_attention = bool(class_specific_attention)
        if class_specific_attention and theta != "att":
            raise ValueError("`class_specific_attention` needs theta='att'")
        if gate_activation not in _GATES:
            raise ValueError(f"`gate_activation` must be one of {_GATES}; received {gate_activation!r}")
        if isinstance(attention_dropout, bool) or not 0.0 <= float(attention_dropout) < 1.0:
            raise ValueError(f"`attention_dropout` must be in [0, 1); received {attention_dropout!r}")
        attention_dropout = float(attention_dropout)

        # ---------------------------------------------------------------- Psi
        inputs = classifier.inputs[0]
        hidden = [classifier.get_layer(n).output for n in hidden_layers]
        for name, tensor in zip(hidden_layers, hidden):
            if len(tensor.shape) != 4 or tensor.shape[2] is None:
                raise ValueError(f"hidden layer {name!r} must give (batch, T, F, C) maps; got {tensor.shape}")
        grid_time = max(t.shape[1] if t.shape[1] is not None else n_frames // 8 for t in hidden)
        grid_freq = min(t.shape[2] for t in hidden)
        branch_channels = max(1, psi_channels // 2)
        branches = []
        for name, tensor in zip(hidden_layers, hidden):
            x = keras.layers.Conv2D(branch_channels, 3, padding="same", activation="relu",
                                    name=f"psi_{name}_conv")(tensor)
            x = keras.layers.Resizing(grid_time, grid_freq, interpolation="bilinear", antialias=True,
                                      name=f"psi_{name}_resize")(x)
            branches.append(x)
        x = branches[0] if len(branches) == 1 else keras.layers.Concatenate(axis=-1, name="psi_concat")(branches)
        x = keras.layers.Conv2D(psi_channels, 3, padding="same", activation="relu", name="psi_conv1")(x)
        x = keras.layers.UpSampling2D((2, 1), interpolation="bilinear", name="psi_upsample_time")(x)
        x = keras.layers.Conv2D(psi_channels, 3, padding="same", activation="relu", name="psi_conv2")(x)
        x = keras.layers.Conv2D(psi_channels, (1, grid_freq), padding="valid", activation="relu",
                                name="psi_collapse_frequency")(x)
        x = keras.layers.Resizing(n_frames, 1, interpolation="bilinear", name="psi_resize_time")(x)
        x = keras.layers.Reshape((n_frames, psi_channels), name="psi_squeeze_frequency")(x)
        x = keras.layers.Conv1D(n_components, 5, padding="same", activation="relu", name="psi_components1")(x)
        x = keras.layers.Conv1D(n_components, 5, padding="same", activation="relu", name="psi_components2")(x)
        activations = keras.layers.Permute((2, 1), name="nmf_activations")(x)

        # ---------------------------------------------------------------- Theta
        if theta == "att":
            heads = n_classes if class_specific_attention else 1
            attention_input = activations
            if attention_dropout > 0:
                attention_input = keras.layers.Dropout(attention_dropout, name="theta_dropout")(activations)
            attention = GatedAttention(units=attention_units, n_heads=heads, gate_activation=gate_activation,
                                       name="theta_attention")(attention_input)
            pooled = AttentionPooling(name="theta_pool")([activations, attention])
        else:
            pooled = keras.layers.GlobalMaxPooling1D(data_format="channels_first", name="theta_pool")(activations)
        if class_specific_attention:
            logits = ClassSpecificDense(use_bias=False, name="theta_linear")(pooled)
        else:
            logits = keras.layers.Dense(n_classes, use_bias=False, name="theta_linear")(pooled)
        prediction = keras.layers.Activation("sigmoid" if multilabel else "softmax",
                                             name="interpreter_prediction")(logits)

        # ---------------------------------------------------------------- decoder W H
        reconstruction = NMFReconstruction(dictionary, name="nmf_reconstruction")(activations)

        super().__init__(inputs=inputs, outputs=[prediction, reconstruction, activations], **kwargs)

        self.classifier = classifier
        self.dictionary_value = dictionary
        self.n_components = n_components
        self.n_classes = int(n_classes)
        self.theta = theta
        self.multilabel = bool(multilabel)
        self.n_frames = int(n_frames)
        self.hidden_layers = hidden_layers
        self.psi_channels = int(psi_channels)
        self.attention_units = int(attention_units)
        self.class_specific_attention = bool(class_specific_attention)
        self.gate_activation = gate_activation
        self.attention_dropout = attention_dropout

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "dictionary": self.dictionary_value.tolist(),
            "n_classes": self.n_classes,
            "theta": self.theta,
            "multilabel": self.multilabel,
            "n_frames": self.n_frames,
            "hidden_layers": list(self.hidden_layers),
            "psi_channels": self.psi_channels,
            "attention_units": self.attention_units,
            "class_specific_attention": self.class_specific_attention,
            "gate_activation": self.gate_activation,
            "attention_dropout": self.attention_dropout,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        # Interpreters saved before these options existed: sigmoid gate, no dropout, and
        # class-specific attention whenever multi-label with theta="att" (the old default).
        config.setdefault("gate_activation", "sigmoid")
        config.setdefault("attention_dropout", 0.0)
        if config.get("class_specific_attention") is None:
            config["class_specific_attention"] = bool(config.get("multilabel")) and config.get("theta") == "att"
        return cls(**config)

    @property
    def theta_weights(self):
        """``theta^w`` of Sec. III-E as NumPy, shape ``(K, C)``: the kernel of ``"theta_linear"``."""
        return keras.ops.convert_to_numpy(self.get_layer("theta_linear").kernel)

    def explanation_model(self):
        """Sub-model ``x -> dict`` with ``prediction``, ``logits``, ``H``, ``z`` (and ``attention``).

        Everything Sec. III-E needs in one forward pass: ``z`` from ``"theta_pool"``
        and the logits of ``"theta_linear"``; combine ``z`` with :attr:`theta_weights`.
        """
        outputs = {
            "prediction": self.get_layer("interpreter_prediction").output,
            "logits": self.get_layer("theta_linear").output,
            "H": self.get_layer("nmf_activations").output,
            "z": self.get_layer("theta_pool").output,
        }
        if self.theta == "att":
            outputs["attention"] = self.get_layer("theta_attention").output
        return keras.Model(self.inputs[0], outputs, name=f"{self.name}_explanation")


def build_interpreter(classifier, dictionary, n_classes=None, theta="att", multilabel=False, **kwargs):
    """Build an :class:`L2IInterpreter` on ``classifier`` with dictionary ``W`` (F x K).

    Args:
        classifier: functional model with layers ``"block4"``, ``"block5"``, ``"block6"``
            (:class:`l2i.classifier.KumarCNN`).
        dictionary: array ``(F, K)``.
        n_classes: int (default: the classifier's output size).
        theta: ``"att"`` (Theta_ATT) or ``"max"`` (Theta_MAX).
        multilabel: bool, sigmoid outputs (class-specific attention: pass
            ``class_specific_attention=True``).
        **kwargs: other :class:`L2IInterpreter` arguments.

    Returns:
        L2IInterpreter with outputs ``[prediction, X_hat, H]``.

    Example:

    >>> import numpy as np
    >>> from l2i.classifier import KumarCNN
    >>> f = KumarCNN(n_classes=2, n_frames=128, filters=(2, 2, 4, 4, 8, 8), head_filters=8)
    >>> g = build_interpreter(f, np.ones((513, 4), "float32"), theta="max", psi_channels=8)
    >>> tuple(g.get_layer("theta_linear").kernel.shape)
    (4, 2)
    """
    return L2IInterpreter(classifier, dictionary, n_classes=n_classes, theta=theta, multilabel=multilabel, **kwargs)
