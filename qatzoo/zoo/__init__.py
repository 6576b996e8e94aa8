"""The model zoo: an index of published int8 models, publishing, verified downloads.

from qatzoo import zoo
interpreter = zoo.load("mnist_cnn_int8")          # a ready LiteRT interpreter, hash-verified
path = zoo.fetch("attention_int8@1")              # or just the verified file
"""

from qatzoo.zoo.download import fetch, load
from qatzoo.zoo.index import ZooError

__all__ = ["ZooError", "fetch", "load"]
