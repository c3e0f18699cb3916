"""Models, where a Keras user finds them: ``tinynet.models.Sequential``, ``load_model``."""
from tinynet.models.sequential import Sequential
from tinynet.models.saving import load_model, save_model

__all__ = ["Sequential", "load_model", "save_model"]
