"""Custom Keras layers of APNet (Zinemanas et al., Electronics 2021)."""
from apnet.layers.leaky_relu import LeakyReLU
from apnet.layers.masked_max_pooling_2d import MaskedMaxPooling2D
from apnet.layers.masked_upsampling import MaskedUpsampling
from apnet.layers.prototype_layer import PrototypeLayer
from apnet.layers.similarity import Similarity
from apnet.layers.weighted_sum import WeightedSum

__all__ = ["LeakyReLU", "MaskedMaxPooling2D", "MaskedUpsampling", "PrototypeLayer", "Similarity", "WeightedSum"]
