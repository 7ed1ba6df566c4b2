"""One entry point for the three baselines of Table 3 of the APNet paper."""
from apnet.baselines.att_crnn import att_crnn
from apnet.baselines.openl3_mlp import openl3_mlp
from apnet.baselines.sb_cnn import sb_cnn

#: Builders by name, in the order of Table 3.
BASELINES = {"sb_cnn": sb_cnn, "att_crnn": att_crnn, "openl3_mlp": openl3_mlp}


def build_baseline(name, /, input_shape, n_classes, **kwargs):
    """Build one of APNet's baselines (Table 3 of Zinemanas et al., 2021) by name.

    Args:
        name: ``"sb_cnn"`` (:func:`~apnet.baselines.sb_cnn`), ``"att_crnn"``
            (:func:`~apnet.baselines.att_crnn`) or ``"openl3_mlp"``
            (:func:`~apnet.baselines.openl3_mlp`).
        input_shape: ``(T, F)`` log-mel input (time first, scaled by the
            caller) for ``sb_cnn`` and ``att_crnn``; ``(512,)`` embeddings for
            ``openl3_mlp`` (compute them with
            :func:`~apnet.baselines.openl3_audio_embedding`).
        n_classes: int >= 2, size of the softmax output.
        **kwargs: further arguments of the builder (``name=`` among them
            sets the model's name: ``name`` itself is positional-only).

    Returns:
        An uncompiled functional ``keras.Model`` whose output is a softmax
        over ``n_classes``.

    Raises:
        ValueError: ``name`` is not one of the three, or a builder rejects
            an argument.

    Example:

    >>> from apnet.baselines import build_baseline
    >>> model = build_baseline("sb_cnn", (63, 80), n_classes=35)  # Speech Commands
    >>> model.output_shape
    (None, 35)

    References:
        - Zinemanas et al., "An Interpretable Deep Learning Model for
          Automatic Sound Classification", Electronics 2021, Section 4.3,
          Tables 1 and 3.
    """
    if name not in BASELINES:
        raise ValueError(f"build_baseline: name must be one of {tuple(BASELINES)}; received name={name!r}")
    return BASELINES[name](input_shape=input_shape, n_classes=n_classes, **kwargs)
