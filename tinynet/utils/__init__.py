"""Helpers a Keras user finds under ``keras.utils``, and ``digits`` for pictures of new digits."""
from tinynet.utils import digits
from tinynet.utils.progbar import Progbar
from tinynet.utils.random import set_random_seed
from tinynet.utils.to_categorical import to_categorical

__all__ = ["Progbar", "digits", "set_random_seed", "to_categorical"]
