"""Fit a line y_hat = m*x + b to ten points: by hand, by gradient descent, and with tinynet.

    python examples/line_fit.py                  # plots go to ./line_fit_out
    python examples/line_fit.py --out plots

The notebook's bonus exercise: ten points, a line starting at m = -2, b = 40,
and the mean squared error

    L(m, b) = sum((y - (m*x + b))**2) / len(x)

to make as small as possible. "How did you find the best line? Can you make a
program to follow your strategy?" Five answers, each a step that prints what it
does:

1. the starting line and its loss;
2. a person's strategy as a program: nudge m or b whichever way lowers the loss,
   and nudge more finely when no nudge helps (a coordinate search);
3. gradient descent, with the two derivatives dL/dm and dL/db worked out by hand;
4. the same gradient descent done by tinynet: a Dense(1) layer *is* m*x + b,
   'mse' is L, and backpropagation finds dL/dm and dL/db on its own;
5. the exact answer, from the closed form of least squares, to check all three.

Three plots are written as PNG files: the points and the lines, the loss over
(m, b) as a contour map with the paths taken, and the loss at every step.
"""
import argparse
import importlib.util
import os
from pathlib import Path

import matplotlib.colors
import matplotlib.ticker
import numpy as np

import tinynet
from tinynet.layers import Dense
from tinynet.models import Sequential
from tinynet.optimizers import SGD
from tinynet.plot.figure import finish, new_figure  # a figure with no window, and writing it to a file

X = np.arange(10.0)  # 0, 1, ..., 9
Y = np.array([10, 20, 25, 30, 40, 45, 40, 50, 60, 55], dtype=float)
START = (-2.0, 40.0)  # the notebook's first guess: m = -2, b = 40
LEARNING_RATE = 0.03  # above about 0.034 gradient descent on this data diverges (see step 3)
STEPS = 1000
PRINT_AT = {1, 2, 3, 5, 10, 20, 50, 100, 200, 500}  # which moves and steps to print (and the last)


def loss(m, b):
    """The notebook's loss: the mean squared error of the line y_hat = m*x + b."""
    y_hat = m * X + b
    return float(np.sum((Y - y_hat) ** 2) / len(X))  # L = sum((y - y_hat)**2) / N


def gradient(m, b):
    """dL/dm and dL/db, by the chain rule on L = 1/N sum (y - m*x - b)**2."""
    error = Y - (m * X + b)  # e = y - y_hat
    dL_dm = -2 * np.sum(X * error) / len(X)  # dL/dm = -2/N sum(x * e)
    dL_db = -2 * np.sum(error) / len(X)  # dL/db = -2/N sum(e)
    return float(dL_dm), float(dL_db)


# --- 2. a person's strategy ---------------------------------------------------------------------
def coordinate_search(m, b, step=1.0, smallest=1e-7):
    """Try m + step, m - step, b + step, b - step; take the one that lowers the loss most.

    When none lowers it, the best line is within about a step: halve the step and
    go on, until the step is smaller than ``smallest``. Returns the path [(m, b), ...]
    (one entry per move, the start first), the loss at each, and how many times the
    loss was computed.
    """
    path, losses, evaluations = [(m, b)], [loss(m, b)], 1
    while step >= smallest:
        nudges = [(m + step, b), (m - step, b), (m, b + step), (m, b - step)]
        nudged = [loss(*nudge) for nudge in nudges]
        evaluations += len(nudges)
        best = int(np.argmin(nudged))
        if nudged[best] < losses[-1]:
            m, b = nudges[best]
            path.append((m, b))
            losses.append(nudged[best])
        else:
            step /= 2  # no nudge helps: nudge more finely
    return path, losses, evaluations


# --- 3. gradient descent by hand ----------------------------------------------------------------
def gradient_descent(m, b, learning_rate=LEARNING_RATE, steps=STEPS):
    """``steps`` steps of m -= lr * dL/dm, b -= lr * dL/db. Returns the path and the loss at each point."""
    path, losses = [(m, b)], [loss(m, b)]
    for _ in range(steps):
        dL_dm, dL_db = gradient(m, b)
        m = m - learning_rate * dL_dm  # m = m - lr * dL/dm
        b = b - learning_rate * dL_db  # b = b - lr * dL/db
        path.append((m, b))
        losses.append(loss(m, b))
    return path, losses


# --- 4. the same with tinynet -------------------------------------------------------------------
def line_model(m, b, learning_rate=LEARNING_RATE):
    """Dense(1) on one input computes x @ kernel + bias: the line, with m = kernel, b = bias."""
    model = Sequential([Dense(1, input_shape=(1,))])
    model.compile(optimizer=SGD(learning_rate=learning_rate), loss="mse")
    model.set_weights([np.array([[m]], "float32"), np.array([b], "float32")])
    return model


def tinynet_gradient(m, b):
    """dL/dm and dL/db at (m, b) as tinynet's backward pass finds them."""
    model = line_model(m, b)
    x, y = tinynet.backend.to_device(X[:, None]), tinynet.backend.to_device(Y[:, None])
    model.train_step(x, y)  # forward, loss, backward (fills the layer's grads), then an update we ignore
    grads = model.layers[0].grads
    return float(tinynet.backend.to_numpy(grads["kernel"])[0, 0]), float(tinynet.backend.to_numpy(grads["bias"])[0])


def fit_with_tinynet(m, b, learning_rate=LEARNING_RATE, steps=STEPS):
    """Train the one-unit model with SGD on all ten points at once: one step per epoch.

    Returns the fitted (m, b) and the loss at each of the steps + 1 points (as
    ``gradient_descent`` does; tinynet computes in float32, as Keras does).
    """
    model = line_model(m, b, learning_rate)
    history = model.fit(X[:, None], Y, batch_size=len(X), epochs=steps, shuffle=False, verbose=0)
    kernel, bias = model.get_weights()  # kernel (1, 1) is m, bias (1,) is b
    # fit records each step's loss before its update; the loss after the last one comes from evaluate
    losses = history.history["loss"] + [model.evaluate(X[:, None], Y, verbose=0)]
    return (float(kernel[0, 0]), float(bias[0])), losses


# --- 5. the exact answer ------------------------------------------------------------------------
def least_squares():
    """The (m, b) that make dL/dm = dL/db = 0: m = sum((x - x_mean)(y - y_mean)) / sum((x - x_mean)**2),
    b = y_mean - m * x_mean."""
    dx, dy = X - X.mean(), Y - Y.mean()
    m = np.sum(dx * dy) / np.sum(dx * dx)
    return float(m), float(Y.mean() - m * X.mean())


def same_to_3_decimals(fit, exact):
    return all(f"{a:.3f}" == f"{e:.3f}" and abs(a - e) < 5e-4 for a, e in zip(fit, exact))


# --- the plots ----------------------------------------------------------------------------------
COLORS = {"coordinate search": "tab:orange", "gradient descent": "tab:blue", "tinynet (SGD + mse)": "tab:green"}


def plot_fit(path, fitted):
    fig = new_figure(7, 5)
    ax = fig.add_subplot()
    xs = np.array([-0.5, 9.5])
    m0, b0 = START
    m, b = fitted
    ax.vlines(X, Y, m * X + b, color="0.6", lw=1, label="errors y - y_hat of the fitted line", zorder=1)
    ax.plot(xs, m0 * xs + b0, "--", color="tab:red",
            label=f"start: y_hat = {m0:g} x + {b0:g}   (loss {loss(m0, b0):.1f})")
    ax.plot(xs, m * xs + b, color="tab:green", lw=2,
            label=f"fitted by tinynet: y_hat = {m:.3f} x + {b:.3f}   (loss {loss(m, b):.2f})")
    ax.scatter(X, Y, color="black", zorder=3, label="the ten points")
    ax.set(xlabel="x", ylabel="y", title="The points, the starting line and the fitted line",
           xlim=(-0.5, 9.5), ylim=(0, 70))
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)
    finish(fig, path, dpi=120)


def plot_loss_surface(path, paths, exact):
    ms, bs = np.linspace(-3.5, 8.5, 241), np.linspace(-2, 46, 241)
    M, B = np.meshgrid(ms, bs)
    L = np.mean((Y[None, None, :] - (M[..., None] * X + B[..., None])) ** 2, axis=-1)  # the loss at every (m, b)
    fig = new_figure(8, 6)
    ax = fig.add_subplot()
    levels = [15, 16, 20, 30, 50, 100, 200, 400, 800, 1600, 3200]  # lines of equal loss, closer near the bottom
    contours = ax.contour(M, B, L, levels=levels, cmap="viridis", norm=matplotlib.colors.LogNorm(), linewidths=1)
    ax.clabel(contours, fmt="loss %g", fontsize=8)
    for name, points in paths.items():
        points = np.array(points)
        ax.plot(points[:, 0], points[:, 1], ".-", color=COLORS[name], ms=3, lw=1.2,
                label=f"{name}: {len(points) - 1} {'moves' if name == 'coordinate search' else 'steps'}")
    ax.plot(*START, "o", color="tab:red", ms=8, label=f"start (m = {START[0]:g}, b = {START[1]:g})")
    ax.plot(*exact, "*", color="black", ms=14, label=f"least squares (m = {exact[0]:.3f}, b = {exact[1]:.3f})")
    ax.set(xlabel="slope m", ylabel="intercept b",
           title="The loss over (m, b), and the paths to its lowest point")
    ax.legend(loc="upper right", fontsize=9)
    finish(fig, path, dpi=120)


def plot_losses(path, curves, best):
    fig = new_figure(12, 4.5)
    left, right = fig.subplots(1, 2)
    for name, losses in curves.items():
        losses = np.array(losses)
        tinynet_curve = name.startswith("tinynet")  # drawn dotted over gradient descent's, which it follows
        style = dict(color=COLORS[name], lw=3 if tinynet_curve else 1.5, ls=":" if tinynet_curve else "-", label=name)
        left.plot(np.arange(len(losses)), losses, **style)
        # Below about 10 roundings of the loss, loss - best is rounding noise: stop the curve there.
        noise = 10 * np.finfo("float32" if tinynet_curve else "float64").eps * best
        excess = losses - best
        shown = np.argmax(excess < noise) if (excess < noise).any() else len(excess)
        right.plot(np.arange(shown), excess[:shown], **style)
        if tinynet_curve:
            right.annotate("tinynet computes in float32:\nbelow here its loss is rounding", (shown, excess[shown - 1]),
                           xytext=(shown + 40, excess[shown - 1] * 30), fontsize=9, color=COLORS[name],
                           arrowprops=dict(arrowstyle="->", color=COLORS[name]))
    left.axhline(best, color="black", ls="--", lw=1, label=f"lowest possible loss ({best:.3f})")
    left.set(yscale="log", xlim=(0, 300), yticks=[15, 20, 30, 50, 100, 200, 300, 500],
             xlabel="step (for coordinate search: a move)", ylabel="loss",
             title="The loss at each step (the first 300)")
    left.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    left.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    right.set(yscale="log", xlabel="step (for coordinate search: a move)", ylabel="loss - lowest possible loss",
              title="How far the loss is above the lowest possible")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=9)
    finish(fig, path, dpi=120)


# --- the steps ----------------------------------------------------------------------------------
def print_progress(label, index, last, m, b, value):
    if index in PRINT_AT or index == last:
        print(f"   {label} {index:4d}: m = {m:9.5f}, b = {b:9.5f}, loss = {value:10.5f}")


def _cli_checks():
    """examples/cli_checks.py, the checks of arguments the examples share (examples/ is no package)."""
    spec = importlib.util.spec_from_file_location("cli_checks", Path(__file__).resolve().parent / "cli_checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="line_fit_out",
                        help="folder for the three PNG plots (default: ./line_fit_out)")
    args = parser.parse_args(argv)
    problem = _cli_checks().folder_problem(args.out)  # now, not after all five steps
    if problem:
        parser.error(f"--out {args.out!r}: {problem}")

    print("1. The notebook's starting line")
    m0, b0 = START
    print(f"   x = {X.astype(int).tolist()}\n   y = {Y.astype(int).tolist()}")
    print(f"   y_hat = {m0:g} x + {b0:g}: loss = sum((y - y_hat)**2) / {len(X)} = {loss(m0, b0):.3f}")

    print("2. A person's strategy: nudge m or b whichever way lowers the loss; when no nudge helps, halve the nudge")
    search_path, search_losses, evaluations = coordinate_search(m0, b0)
    for i in range(1, len(search_path)):
        print_progress("move", i, len(search_path) - 1, *search_path[i], search_losses[i])
    print(f"   {len(search_path) - 1} moves, {evaluations} loss computations")

    print("3. Gradient descent: step against dL/dm = -2/N sum(x (y - y_hat)) and dL/db = -2/N sum(y - y_hat)")
    dm, db = gradient(m0, b0)
    print(f"   at the start: dL/dm = {dm:.3f}, dL/db = {db:.3f}; both negative, so m and b both go up")
    lr = LEARNING_RATE
    print(f"   learning rate {lr}: m -= {lr} * dL/dm, b -= {lr} * dL/db, {STEPS} steps")
    print("   (above about 0.034 the steps would grow instead of shrink: with x up to 9, L is steep along m)")
    descent_path, descent_losses = gradient_descent(m0, b0)
    for i in range(1, len(descent_path)):
        print_progress("step", i, STEPS, *descent_path[i], descent_losses[i])

    print("4. The same with tinynet: Sequential([Dense(1, input_shape=(1,))]), SGD and loss='mse'")
    tm, tb = tinynet_gradient(m0, b0)
    print(f"   its backward pass at the start: dL/dm = {tm:.3f}, dL/db = {tb:.3f} (the kernel's and the bias's grads)")
    (fit_m, fit_b), tinynet_losses = fit_with_tinynet(m0, b0)
    print(f"   fit(x.reshape(10, 1), y, batch_size={len(X)}, epochs={STEPS}, shuffle=False): "
          "one step on all ten points per epoch")
    gap = max(abs(mine - hand) / hand for mine, hand in zip(tinynet_losses, descent_losses))
    print(f"   its loss at each step is step 3's to within {gap:.0e} (relative): float32 rounding")
    print(f"   get_weights(): kernel [[{fit_m:.5f}]] is m, bias [{fit_b:.5f}] is b")

    print("5. The exact answer: least squares, where dL/dm = dL/db = 0")
    exact = least_squares()
    polyfit_b, polyfit_m = np.polynomial.polynomial.polyfit(X, Y, 1)
    print(f"   m = sum((x - x_mean)(y - y_mean)) / sum((x - x_mean)**2) = {exact[0]:.6f}, "
          f"b = y_mean - m x_mean = {exact[1]:.6f}")
    print(f"   (numpy.polynomial.polynomial.polyfit(x, y, 1) gives m = {polyfit_m:.6f}, b = {polyfit_b:.6f})")
    fits = {"coordinate search": search_path[-1], "gradient descent": descent_path[-1],
            "tinynet (SGD + mse)": (fit_m, fit_b)}
    print()
    print(f"   {'method':<24}{'m':>8}{'b':>9}{'loss':>9}   {'|difference| from exact':>23}")
    for name, (m, b) in fits.items():
        difference = max(abs(m - exact[0]), abs(b - exact[1]))
        print(f"   {name:<24}{m:8.3f}{b:9.3f}{loss(m, b):9.3f}   {difference:23.1e}")
    print(f"   {'least squares (exact)':<24}{exact[0]:8.3f}{exact[1]:9.3f}{loss(*exact):9.3f}")
    agree = all(same_to_3_decimals(fit, exact) for fit in fits.values())
    print(f"   {'All three methods agree' if agree else 'NOT all methods agree'} with the exact answer to 3 decimals.")

    os.makedirs(args.out, exist_ok=True)
    files = [os.path.join(args.out, name) for name in ("fit.png", "loss_surface.png", "loss_per_step.png")]
    plot_fit(files[0], (fit_m, fit_b))
    plot_loss_surface(files[1], {"coordinate search": search_path, "gradient descent": descent_path}, exact)
    plot_losses(files[2], {"coordinate search": search_losses, "gradient descent": descent_losses,
                           "tinynet (SGD + mse)": tinynet_losses}, loss(*exact))
    print(f"Plots: {', '.join(files)}")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
