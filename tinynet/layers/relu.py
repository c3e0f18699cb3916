"""ReLU, the rectified linear unit: y = max(x, 0)."""
from tinynet import backend
from tinynet.layers.layer import Layer


class ReLU(Layer):
    def forward(self, x):
        self.x = x
        return backend.xp().maximum(x, 0.0)  # y = max(x, 0)

    def backward(self, dy):
        # dL/dx = dL/dy where x > 0, else 0   (the slope of max(x, 0) is 1 or 0)
        return backend.xp().where(self.x > 0, dy, 0.0)
