"""ReLU, the rectified linear unit: y = max(x, 0)."""
from tinynet import backend
from tinynet.layers.layer import Layer


class ReLU(Layer):
    def forward(self, x, training=False):
        self.x = x
        return backend.xp().maximum(x, 0.0)  # y = max(x, 0)

    def backward(self, dy):
        xp = backend.xp()
        # dL/dx = dL/dy * (x > 0)   (the slope of max(x, 0) is 1 where x > 0, else 0)
        return dy * xp.astype(self.x > 0, dy.dtype)
