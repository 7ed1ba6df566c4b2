"""APNet: an interpretable prototype network for sound classification (Zinemanas et al., Electronics 2021).

>>> import apnet
>>> model = apnet.APNet(input_shape=(64, 64), n_classes=10, n_prototypes=20, n_filters=8)  # doctest: +SKIP
>>> apnet.training.compile_apnet(model, alpha=10, beta=5, gamma=5)                        # doctest: +SKIP
"""
from apnet import initializers, layers, losses, training
from apnet.initializers import PrototypeClassKernel, prototype_class_kernel, reference_prototypes_initializer
from apnet.losses import PrototypeLoss, prototype_loss
from apnet.model import APNet, OUTPUT_NAMES

__all__ = ["APNet", "OUTPUT_NAMES", "PrototypeClassKernel", "PrototypeLoss", "initializers", "layers", "losses",
           "prototype_class_kernel", "prototype_loss", "reference_prototypes_initializer", "training"]
