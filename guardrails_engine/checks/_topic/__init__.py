"""Denied topics, by meaning: the ``topic`` check, its embedders and its scoring."""

from .check import TopicCheck
from .embed import Embedder, EmbedderError, EmbedderMissing, default_embedder, embed
from .model import ClassifierMissing, TopicModel

__all__ = [
    "ClassifierMissing",
    "Embedder",
    "EmbedderError",
    "EmbedderMissing",
    "TopicCheck",
    "TopicModel",
    "default_embedder",
    "embed",
]
