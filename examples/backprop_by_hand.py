"""One training step of a tiny network, worked by hand next to tinynet.

    python examples/backprop_by_hand.py

The network is the MNIST model in miniature: 2 inputs, 3 hidden ReLU units and
2 softmax outputs (784-512-512-10 there), trained on a batch of N = 2 samples
with categorical crossentropy and RMSprop. Every number is fixed, so you can
follow them with pencil and paper. Then a convolution and a max-pool, the
convnet's new layers, on one 5x5 image, computed with plain loops.

Each quantity is computed twice: once "by hand", with the formula written out
in plain NumPy, and once by tinynet's own code (the same functions ``fit``
runs). The script prints both side by side, labelled, and stops with exit
status 1 if any pair differs. docs/backprop.md derives each formula and
quotes this output.
"""
import argparse
import sys

import numpy as np

from tinynet import backend
from tinynet.layers import Conv2D, Dense, MaxPooling2D, Softmax
from tinynet.losses import CategoricalCrossentropy, MeanSquaredError, SoftmaxCrossentropy
from tinynet.models import Sequential
from tinynet.optimizers import SGD, RMSprop, rmsprop

# --help shows this file's docstring; the script takes no arguments, and refuses any (exit status 2)
argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
np.set_printoptions(precision=6, suppress=True, floatmode="fixed")

# --- the numbers -------------------------------------------------------------
x = np.array([[0.5, -1.0],  # sample 1: two input features
              [1.0, 2.0]])  # sample 2
y = np.array([[1.0, 0.0],  # sample 1 is class 0 (one-hot)
              [0.0, 1.0]])  # sample 2 is class 1
W1 = np.array([[0.2, -0.4, 0.6],  # (2 inputs, 3 units)
               [0.3, 0.5, -0.1]])
b1 = np.array([0.1, -0.1, 0.0])  # (3,)
W2 = np.array([[0.7, -0.3],  # (3 units, 2 outputs)
               [-0.5, 0.4],
               [0.2, 0.8]])
b2 = np.array([0.0, 0.1])  # (2,)
N = len(x)  # the batch size

mismatches = []


def show(label, by_hand, by_tinynet, where):
    """Print one quantity as computed by hand, and check that tinynet's value agrees."""
    by_tinynet = backend.to_numpy(by_tinynet)
    agrees = by_tinynet.shape == np.shape(by_hand) and np.allclose(by_hand, by_tinynet, rtol=1e-12, atol=1e-15)
    shape = str(np.shape(by_hand)) if np.ndim(by_hand) else "scalar"
    print(f"{label:<34} {shape:<7} tinynet: {where:<34} {'agrees' if agrees else 'DIFFERS'}")
    print("    " + np.array2string(np.asarray(by_hand), prefix="    "))
    if not agrees:
        print("    tinynet gives:\n    " + np.array2string(by_tinynet, prefix="    "))
        mismatches.append(label)


def heading(text):
    print(f"\n{text}\n{'-' * len(text)}")


def float64(a):
    """A float64 copy on the backend: float64, so that tinynet agrees with NumPy to the last digits."""
    return backend.to_device(a, dtype="float64")


def tiny_model(optimizer):
    """The 2-3-2 model with the fixed weights above, in float64 so it agrees to the last digit."""
    model = Sequential([Dense(3, activation="relu", input_shape=(2,)), Dense(2, activation="softmax")])
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    for layer, (W, b) in zip(model.layers, [(W1, b1), (W2, b2)]):
        layer.params["kernel"], layer.params["bias"] = float64(W), float64(b)
    return model


model = tiny_model(RMSprop())
dense1, dense2 = model.layers
xd, yd = float64(x), float64(y)

heading("1. Forward pass")
z1 = x @ W1 + b1
show("z1 = x @ W1 + b1", z1, dense1.forward_linear(xd), "Dense.forward_linear")
a1 = np.maximum(z1, 0)
show("a1 = relu(z1) = max(z1, 0)", a1, dense1.activation.forward(float64(z1)), "ReLU.forward")
z2 = a1 @ W2 + b2
show("z2 = a1 @ W2 + b2  (the logits)", z2, dense2.forward_linear(float64(a1)), "Dense.forward_linear")
p = np.exp(z2) / np.exp(z2).sum(axis=1, keepdims=True)
show("p = softmax(z2)", p, dense2.activation.forward(float64(z2)), "Softmax.forward")
show("the whole forward pass: p", p, model.forward(xd), "Sequential.forward")

heading("2. Loss: categorical crossentropy, mean over the batch")
loss = -np.sum(y * np.log(p)) / N
show("L = -sum(y * log p) / N", loss, model.test_step(xd, yd)[0], "Sequential.test_step")
show("the same L from the probabilities", loss, CategoricalCrossentropy().forward(yd, float64(p)),
     "CategoricalCrossentropy.forward")

heading("3. Backward pass")
from_logits = SoftmaxCrossentropy()
from_logits.forward(yd, float64(z2))
dz2 = (p - y) / N
show("dL/dz2 = (p - y) / N", dz2, from_logits.backward(), "SoftmaxCrossentropy.backward")
probabilities = CategoricalCrossentropy()
probabilities.forward(yd, float64(p))
dp = probabilities.backward()  # dL/dp, then through the softmax: the long way round
softmax = Softmax()
softmax.forward(float64(z2))
show("  same, via dL/dp and the softmax", dz2, softmax.backward(dp), "Softmax.backward")
da1_tinynet = dense2.backward_linear(float64(dz2))  # fills dense2.grads, returns dL/da1
dW2 = a1.T @ dz2
show("dL/dW2 = a1.T @ dz2", dW2, dense2.grads["kernel"], "Dense.backward_linear")
db2 = dz2.sum(axis=0)
show("dL/db2 = sum of dz2 over the batch", db2, dense2.grads["bias"], "Dense.backward_linear")
da1 = dz2 @ W2.T
show("dL/da1 = dz2 @ W2.T", da1, da1_tinynet, "Dense.backward_linear")
dz1 = np.where(z1 > 0, da1, 0.0)
show("dL/dz1 = da1 where z1 > 0, else 0", dz1, dense1.activation.backward(float64(da1)), "ReLU.backward")
dense1.backward_linear(float64(dz1))  # the first layer returns None: nothing needs dL/dx of the data
dW1 = x.T @ dz1
show("dL/dW1 = x.T @ dz1", dW1, dense1.grads["kernel"], "Dense.backward_linear")
db1 = dz1.sum(axis=0)
show("dL/db1 = sum of dz1 over the batch", db1, dense1.grads["bias"], "Dense.backward_linear")

model.train_step(xd, yd)  # one step of fit: forward, loss, backward (these gradients), then the update
for label, grad, layer, key in [("dW2", dW2, dense2, "kernel"), ("db2", db2, dense2, "bias"),
                                ("dW1", dW1, dense1, "kernel"), ("db1", db1, dense1, "bias")]:
    show(f"{label} again, in one call", grad, layer.grads[key], "Sequential.train_step")

heading("4. Update: RMSprop (lr = 0.001, rho = 0.9, eps = 1e-7), the first step (train_step's, above)")
lr, rho, eps = 0.001, 0.9, 1e-7
for label, w, g, layer, key in [("W1", W1, dW1, dense1, "kernel"), ("b1", b1, db1, dense1, "bias"),
                                ("W2", W2, dW2, dense2, "kernel"), ("b2", b2, db2, dense2, "bias")]:
    v = rho * 0.0 + (1 - rho) * g**2  # v starts at 0
    w_new = w - lr * g / np.sqrt(v + eps)
    show(f"{label} change: -lr * g / sqrt(v + eps)", w_new - w, layer.params[key] - float64(w),
         "RMSprop.apply")
w_reference, v_reference = float64(W1), float64(np.zeros_like(W1))
rmsprop.update_step(w_reference, float64(dW1), v_reference, lr, rho, eps)  # the array operations apply's compiled loop equals
show("W1 change, by the array operations", W1 - lr * dW1 / np.sqrt((1 - rho) * dW1**2 + eps) - W1,
     w_reference - float64(W1), "rmsprop.update_step")

heading("5. The other loss and optimizer: mean squared error and SGD")
mse = MeanSquaredError()  # as if the network did regression: its outputs z2, no softmax, against y
show("MSE = mean((z2 - y)**2)", np.mean((z2 - y) ** 2), mse.forward(yd, float64(z2)),
     "MeanSquaredError.forward")
D = y.shape[1]  # values per sample
show("dMSE/dz2 = 2 * (z2 - y) / (N * D)", 2 * (z2 - y) / (N * D), mse.backward(), "MeanSquaredError.backward")
sgd = SGD(learning_rate=0.1, momentum=0.9)
w_tinynet, v = float64(W1), np.zeros_like(W1)
for step in (1, 2):  # two steps with the same gradient dW1, so that the momentum shows
    v = 0.9 * v - 0.1 * dW1  # the velocity: v = momentum * v - lr * g
    before = backend.to_numpy(w_tinynet)
    sgd.apply([float64(dW1)], [w_tinynet])
    show(f"SGD step {step}: W1 change = v", v, w_tinynet - float64(before), "SGD.apply")

heading("6. A convolution and a max-pool, by loops (one 5x5 image, one channel, one 2x2 filter)")
X = np.array([[1.0, 2.0, 0.0, 1.0, 3.0],  # the image, (N, H, W, C) = (1, 5, 5, 1): shown as its 5x5 plane
              [0.0, 1.0, 3.0, 2.0, 1.0],
              [2.0, 1.0, 0.0, 1.0, 0.0],
              [1.0, 0.0, 2.0, 3.0, 1.0],
              [0.0, 2.0, 1.0, 0.0, 2.0]])
K = np.array([[1.0, -1.0],  # the kernel of the one filter: Conv2D's kernel has shape (2, 2, 1, 1)
              [0.5, 2.0]])
bK = 0.1  # its bias
conv = Conv2D(1, kernel_size=2)  # 'valid', strides 1: (1, 5, 5, 1) -> (1, 4, 4, 1)
conv.build((None, 5, 5, 1))
conv.params["kernel"], conv.params["bias"] = float64(K.reshape(2, 2, 1, 1)), float64([bK])
pool = MaxPooling2D(2)  # 2x2 windows, strides 2: (1, 4, 4, 1) -> (1, 2, 2, 1)
pool.build((None, 4, 4, 1))


def plane(a):
    """The one image's one channel of a (1, H, W, 1) array: (H, W)."""
    return a[0, :, :, 0]


zc = np.zeros((4, 4))
for i in range(4):
    for j in range(4):
        zc[i, j] = np.sum(X[i:i + 2, j:j + 2] * K) + bK  # the window at (i, j), weighted by K, plus b
zc_tinynet = conv.forward_linear(float64(X.reshape(1, 5, 5, 1)))
show("zc[i,j] = sum(window * K) + b", zc, plane(zc_tinynet), "Conv2D.forward_linear")
cols = np.array([X[i:i + 2, j:j + 2].ravel() for i in range(4) for j in range(4)])
show("  cols: window (i,j) in row 4i+j", cols, conv.cols, "Conv2D.forward_linear")
show("  zc = cols @ K.ravel() + b", (cols @ K.ravel() + bK).reshape(4, 4), plane(zc_tinynet),
     "Conv2D.forward_linear")
pc = np.zeros((2, 2))
for i in range(2):
    for j in range(2):
        pc[i, j] = np.max(zc[2 * i:2 * i + 2, 2 * j:2 * j + 2])  # the largest of window (i, j)
show("pc[i,j] = max of window (i,j)", pc, plane(pool.forward(zc_tinynet)), "MaxPooling2D.forward")

dpc = np.array([[1.0, -2.0],  # dL/dpc, from the layers above (any numbers will do)
                [0.5, 3.0]])
dzc = np.zeros((4, 4))
for i in range(2):
    for j in range(2):
        window = zc[2 * i:2 * i + 2, 2 * j:2 * j + 2]
        a, b = np.unravel_index(np.argmax(window), (2, 2))  # its maximum; on a tie (two 5.1, two 6.1) the first
        dzc[2 * i + a, 2 * j + b] = dpc[i, j]  # the max alone moved pc: dL/dzc there = dpc, 0 elsewhere
show("dL/dzc = dpc at each window's max", dzc, plane(pool.backward(float64(dpc.reshape(1, 2, 2, 1)))),
     "MaxPooling2D.backward")
dK, dX = np.zeros((2, 2)), np.zeros((5, 5))
for i in range(4):
    for j in range(4):
        dK += dzc[i, j] * X[i:i + 2, j:j + 2]  # zc[i,j] = sum(window * K) + b: dzc[i,j] * window for K...
        dX[i:i + 2, j:j + 2] += dzc[i, j] * K  # ...and dzc[i,j] * K for the window (windows overlap: add)
dX_tinynet = conv.backward_linear(float64(dzc.reshape(1, 4, 4, 1)))
show("dL/dK = sum of dzc[i,j] * window", dK, conv.grads["kernel"][:, :, 0, 0], "Conv2D.backward_linear")
show("  dK = cols.T @ dzc, as a matrix", (cols.T @ dzc.ravel()).reshape(2, 2), conv.grads["kernel"][:, :, 0, 0],
     "Conv2D.backward_linear")
show("dL/db = sum of dzc", np.array([dzc.sum()]), conv.grads["bias"], "Conv2D.backward_linear")
show("dL/dx: dzc[i,j] * K onto window", dX, plane(dX_tinynet), "Conv2D.backward_linear")

print()
if mismatches:
    print(f"{len(mismatches)} values differ: {', '.join(mismatches)}")
    sys.exit(1)
print("Every value computed by hand agrees with tinynet's.")
