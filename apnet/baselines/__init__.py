"""The baselines APNet is compared with (Zinemanas et al., Electronics 2021, Section 4.3, Table 3).

SB-CNN (Salamon & Bello, 2017), Att-CRNN (de Andrade et al., 2018) and an MLP on
OpenL3 embeddings (Cramer et al., 2019), as functional Keras models on a
``(T, F)`` log-mel input. See docs/apnet_baselines.md.
"""
from apnet.baselines.att_crnn import att_crnn
from apnet.baselines.attention_pooling import AttentionPooling
from apnet.baselines.build_baseline import BASELINES, build_baseline
from apnet.baselines.load_openl3_weights import load_openl3_weights
from apnet.baselines.openl3_audio_embedding import OPENL3_MEL256_INPUT_SHAPE, openl3_audio_embedding
from apnet.baselines.openl3_mlp import openl3_mlp
from apnet.baselines.sb_cnn import sb_cnn

__all__ = [
    "BASELINES",
    "OPENL3_MEL256_INPUT_SHAPE",
    "AttentionPooling",
    "att_crnn",
    "build_baseline",
    "load_openl3_weights",
    "openl3_audio_embedding",
    "openl3_mlp",
    "sb_cnn",
]
