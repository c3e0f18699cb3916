"""Conv2D, the 2-D convolution: each filter slides over the image, y = activation(windows(x) . W + b)."""
from tinynet import activations, arguments, backend, initializers
from tinynet.layers import windows
from tinynet.layers.dense import Dense
from tinynet.layers.layer import Layer


class Conv2D(Layer):
    """``filters`` outputs per pixel, each a weighted sum of the kernel_size window around it (all input
    channels) plus a bias. Channels last, as in Keras: inputs (N, H, W, C), outputs (N, Ho, Wo, filters);
    ``kernel`` W has shape (kh, kw, C, filters) and ``bias`` b shape (filters,).

    Computed by im2col (``windows.gather``, whose docstring derives the index arithmetic): the windows become
    the rows of one matrix ``cols``, (N*Ho*Wo, kh*kw*C), and the convolution is one matrix product with W
    seen as (kh*kw*C, filters): a Dense layer applied to every window at once.
    Where PyTorch differs: ``nn.Conv2d`` is channels-first, (N, C, H, W), with weights (filters, C, kh, kw)."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", input_shape=None, name=None,
                 trainable=True):
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        self.filters = arguments.integer(filters, "filters")
        self.kernel_size = windows.pair(kernel_size, "kernel_size")
        self.strides = windows.pair(strides, "strides")
        self.padding = windows.padding_name(padding)
        self.activation = activations.get(activation)  # a layer (ReLU, Softmax) or None
        self.use_bias = arguments.flag(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        if self.input_shape is not None:
            self.compute_output_shape(self.input_shape)  # a wrong shape or a kernel too large: said at once

    def get_config(self):
        """Also filters, kernel_size, strides, padding, activation and bias (weights come from the file)."""
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias}

    def compute_output_shape(self, input_shape):
        windows.image_shape(input_shape, f"Conv2D {self.name or 'layer'!r}")
        out = windows.output_hw(input_shape[1:3], self.kernel_size, self.strides, self.padding,
                                f"Conv2D {self.name or 'layer'!r}", "kernel_size")
        return (input_shape[0], *out, self.filters)

    def build(self, input_shape):
        self.output_shape = self.compute_output_shape(input_shape)  # checks the shape before allocating
        (kh, kw), channels = self.kernel_size, input_shape[-1]
        self.params["kernel"] = backend.to_device(self.kernel_initializer((kh, kw, channels, self.filters)))
        if self.use_bias:
            self.params["bias"] = backend.to_device(self.bias_initializer((self.filters,)))
        if self.activation is not None:
            activations.check_fits(self.activation, self.output_shape)  # no weights, keeps the shape
        (h, w), (ho, wo) = input_shape[1:3], self.output_shape[1:3]
        self.pad_rows = windows.pads(h, kh, self.strides[0], ho)  # (top, bottom): zero for 'valid'
        self.pad_cols = windows.pads(w, kw, self.strides[1], wo)  # (left, right)
        super().build(input_shape)

    forward = Dense.forward  # y = activation(z), z = forward_linear(x): Dense's, word for word
    backward = Dense.backward  # dL/dz back through the activation, then backward_linear

    def forward_linear(self, x):
        """The convolution alone: z = im2col(x) @ W + b, as (N, Ho, Wo, filters)."""
        xp = backend.xp()
        n, (ho, wo) = x.shape[0], self.output_shape[1:3]
        x = windows.pad(x, self.pad_rows, self.pad_cols)  # (N, Hp, Wp, C), zeros around for 'same'
        self.padded_shape = x.shape
        patches = windows.gather(x, self.kernel_size, self.strides, (ho, wo))  # (N, Ho, Wo, kh*kw, C)
        self.cols = xp.reshape(patches, (n * ho * wo, -1))  # one row per window   (N*Ho*Wo, kh*kw*C)
        kernel = xp.reshape(self.params["kernel"], (-1, self.filters))  # W as a matrix  (kh*kw*C, filters)
        bias = self.params["bias"] if self.use_bias else None
        z = backend.matmul(self.cols, kernel, bias)  # z = cols W + b   (N*Ho*Wo, filters), b on every row
        return xp.reshape(z, (n, ho, wo, self.filters))

    def backward_linear(self, dz):
        """From dL/dz (N, Ho, Wo, filters), fill dL/dW and dL/db and return dL/dx (None for a first layer)."""
        xp = backend.xp()
        n, ho, wo, _ = dz.shape
        dz = xp.reshape(dz, (n * ho * wo, self.filters))  # one row per window   (N*Ho*Wo, filters)
        kernel_shape = self.params["kernel"].shape
        dw = backend.matmul(self.cols.T, dz)  # dL/dW = cols.T @ dz  (kh*kw*C, filters)
        self.grads["kernel"] = xp.reshape(dw, kernel_shape)  # as the kernel  (kh, kw, C, filters)
        if self.use_bias:
            self.grads["bias"] = xp.sum(dz, axis=0)  # dL/db = sum of dz over all windows   (filters,)
        if not self.needs_input_gradient:
            return None  # the model's first layer: dL/dx of the data is never used, so skip col2im
        kernel = xp.reshape(self.params["kernel"], (-1, self.filters))
        d_cols = backend.matmul(dz, kernel.T)  # dL/dcols = dz @ W.T    (N*Ho*Wo, kh*kw*C)
        d_windows = xp.reshape(d_cols, (n, ho, wo, -1, kernel_shape[2]))  # (N, Ho, Wo, kh*kw, C)
        dx = windows.scatter(d_windows, self.padded_shape, self.kernel_size, self.strides)  # dL/dx = col2im(dcols)
        return windows.unpad(dx, self.pad_rows, self.pad_cols)  # the padding's gradient is dropped  (N, H, W, C)
