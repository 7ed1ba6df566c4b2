"""L2I (Parekh et al., 2024): NMF-based interpretation of audio classifiers, post-hoc and by design."""
from l2i import layers
from l2i.classifier import KumarCNN, load_pretrained_weights
from l2i.interpreter import L2IInterpreter, build_interpreter
from l2i.losses import nmf_reconstruction_loss
from l2i.nmf import learn_dictionary, load_dictionary, nmf_activations, save_dictionary
from l2i.trainer import L2ITrainer

__all__ = [
    "KumarCNN",
    "L2IInterpreter",
    "L2ITrainer",
    "build_interpreter",
    "layers",
    "learn_dictionary",
    "load_dictionary",
    "load_pretrained_weights",
    "nmf_activations",
    "nmf_reconstruction_loss",
    "save_dictionary",
]
