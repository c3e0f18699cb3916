"""Small, ready-to-use datasets for trying tinynet out.

    from tinynet.datasets import mnist
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
"""

from tinynet.datasets import mnist
