"""Models, where a Keras user finds them: ``tinynet.models.Sequential``."""
from tinynet.models.sequential import Sequential

__all__ = ["Sequential"]
