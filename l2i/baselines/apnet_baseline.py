"""APNet as L2I's by-design baseline, with as many prototypes as NMF components."""
from apnet import APNet  # the only import of apnet from l2i (STYLE.md: L2I's APNet baseline)
from audiodata.cli import positive_int, require

__all__ = ["apnet_baseline"]


def apnet_baseline(input_shape, n_classes, n_components, n_filters=32, **kwargs):
    """Build :class:`apnet.APNet` with ``n_prototypes = n_components`` (L2I, Sec. IV-C).

    "For fair comparison, we use the same number of prototypes in their network as our
    number of components": 100 for ESC-50, 80 for SONYC-UST, 300 for OpenMIC-2018
    (Tables II-III). Train it with :func:`apnet.training.compile_apnet` on min-max
    scaled log-mel input (APNet, Sec. 3.2). APNet has a softmax output: it is a
    multi-class model (the paper's multi-label numbers need a sigmoid variant, not
    provided here).

    Parameters
    ----------
    input_shape : pair of int
        ``(T, F)``: frames and mel bands of the input.
    n_classes : int
        Number of classes.
    n_components : int
        ``K`` of the L2I system compared with; becomes APNet's ``n_prototypes``.
    n_filters : int
        Channels of APNet's convolutions.
    **kwargs
        Further :class:`apnet.APNet` arguments (``kernel_size``, ``name``, ...).

    Returns
    -------
    model : apnet.APNet
        Named ``"apnet_baseline"`` unless ``name`` is given.

    Examples
    --------
    >>> model = apnet_baseline((64, 64), n_classes=10, n_components=100, n_filters=8)  # doctest: +SKIP
    >>> model.n_prototypes  # doctest: +SKIP
    100

    References
    ----------
    Zinemanas et al., "An interpretable deep learning model for automatic sound
    classification", Electronics 2021; Parekh et al., IEEE/ACM TASLP 2024, Sec. IV-C
    and Table VIII.
    """
    n_components = require(positive_int, n_components, "n_components", strict=True)
    kwargs.setdefault("name", "apnet_baseline")
    return APNet(input_shape=tuple(input_shape), n_classes=n_classes, n_prototypes=n_components,
                 n_filters=n_filters, **kwargs)
