"""Tests for model.summary(): the table Keras 3 prints, character for character."""
import os
import shutil

import numpy as np
import pytest

from tinynet.layers import Dense, ReLU, Softmax
from tinynet.models import Sequential
from tinynet.models.summary import MIN_LINE_LENGTH, column_widths, print_summary, readable_size

# Printed by Keras 3.15.1 for the MNIST model below (line_length 88, its default).
KERAS_88 = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┓
┃ Layer (type)                         ┃ Output Shape                ┃         Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━┩
│ dense (Dense)                        │ (None, 512)                 │         401,920 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ dense_1 (Dense)                      │ (None, 512)                 │         262,656 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ dense_2 (Dense)                      │ (None, 10)                  │           5,130 │
└──────────────────────────────────────┴─────────────────────────────┴─────────────────┘
 Total params: 669,706 (2.55 MB)
 Trainable params: 669,706 (2.55 MB)
 Non-trainable params: 0 (0.00 B)
"""

# The same at line_length 76 (what Keras prints on an 80-column terminal): cells 33/24/15 wide.
KERAS_76 = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ dense (Dense)                   │ (None, 512)            │       401,920 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 512)            │       262,656 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_2 (Dense)                 │ (None, 10)             │         5,130 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 669,706 (2.55 MB)
 Trainable params: 669,706 (2.55 MB)
 Non-trainable params: 0 (0.00 B)
"""


def mnist_model():
    return Sequential([Dense(512, activation="relu", input_shape=(784,)), Dense(512, activation="relu"),
                       Dense(10, activation="softmax")])


def summary(model, line_length):
    printed = []
    model.summary(print_fn=printed.append, line_length=line_length)
    assert len(printed) == 1  # print_fn receives the whole text once
    return printed[0]


def test_keras_text_at_88_columns():
    assert summary(mnist_model(), 88) == KERAS_88


def test_keras_text_at_76_columns():
    text = summary(mnist_model(), 76)
    assert "│ dense (Dense)                   │ (None, 512)            │       401,920 │" in text
    assert text == KERAS_76


def test_every_table_line_has_the_line_length():
    for line_length in (76, 88):
        table = summary(mnist_model(), line_length).splitlines()[1:10]
        assert {len(line) for line in table} == {line_length}


@pytest.mark.host_only("text layout only: no arrays")
def test_column_widths():
    assert column_widths(88) == [38, 29, 17]
    assert column_widths(76) == [33, 24, 15]


def test_after_training_keras_adds_the_optimizer_state():
    model = mnist_model()
    model.compile(loss="categorical_crossentropy")
    model.train_on_batch(np.zeros((2, 784), "float32"), np.eye(10)[:2])
    lines = summary(model, 88).splitlines()
    assert lines[:10] == KERAS_88.splitlines()[:10]
    assert lines[10:] == [
        " Total params: 1,339,414 (5.11 MB)",
        " Trainable params: 669,706 (2.55 MB)",
        " Non-trainable params: 0 (0.00 B)",
        " Optimizer params: 669,708 (2.55 MB)",  # one RMSprop v per weight + iterations + learning rate
    ]


def test_a_frozen_layers_weights_are_non_trainable_params():
    model = mnist_model()
    model.layers[0].trainable = False  # as Keras users freeze a layer
    lines = summary(model, 88).splitlines()
    assert lines[:10] == KERAS_88.splitlines()[:10]  # each layer's Param # is all its weights, frozen or not
    assert lines[10:] == [  # as Keras 3 prints it (keras/src/utils/summary_utils.py)
        " Total params: 669,706 (2.55 MB)",
        " Trainable params: 267,786 (1.02 MB)",
        " Non-trainable params: 401,920 (1.53 MB)",
    ]


def test_compiled_but_untrained_model_has_no_optimizer_line():
    model = mnist_model()
    model.compile(loss="categorical_crossentropy")
    assert summary(model, 88) == KERAS_88


def test_layers_without_parameters():
    model = Sequential([Dense(3, input_shape=(4,)), ReLU(), Softmax()])
    lines = summary(model, 88).splitlines()
    assert lines[4] == "│ dense (Dense)                        │ (None, 3)                   │              15 │"
    assert lines[6] == "│ re_lu (ReLU)                         │ (None, 3)                   │               0 │"
    assert lines[8] == "│ softmax (Softmax)                    │ (None, 3)                   │               0 │"
    assert lines[10:] == [" Total params: 15 (60.00 B)", " Trainable params: 15 (60.00 B)",
                          " Non-trainable params: 0 (0.00 B)"]


def test_model_name_is_printed():
    model = Sequential([Dense(2, input_shape=(3,))], name="my_model")
    assert summary(model, 88).startswith('Model: "my_model"\n')


def test_count_params():
    assert mnist_model().count_params() == 669706  # 784*512+512 + 512*512+512 + 512*10+10


def test_prints_by_default(capsys):
    mnist_model().summary(line_length=88)
    assert capsys.readouterr().out == KERAS_88


@pytest.mark.parametrize("columns, expected", [(80, KERAS_76), (200, KERAS_88)])
def test_default_width_follows_the_terminal(monkeypatch, columns, expected):
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *args: os.terminal_size((columns, 24)))
    printed = []
    mnist_model().summary(print_fn=printed.append)
    assert printed == [expected]  # 88 columns, or the terminal's width less 4


@pytest.mark.host_only("an unbuilt model: no arrays")
def test_unbuilt_model_is_a_clear_error():
    model = Sequential([Dense(512, activation="relu"), Dense(10)])
    with pytest.raises(ValueError, match=r"input_shape, e\.g\. Dense\(512, input_shape=\(784,\)\)"):
        model.summary()
    with pytest.raises(ValueError, match="built"):
        model.count_params()


@pytest.mark.parametrize("n_bytes, text", [(0, "0.00 B"), (60, "60.00 B"), (1023, "1023.00 B"),
                                           (1024, "1.00 KB"), (2678824, "2.55 MB"), (5357656, "5.11 MB"),
                                           (3 * 1024**3, "3.00 GB")])
@pytest.mark.host_only("text formatting only: no arrays")
def test_readable_size(n_bytes, text):
    assert readable_size(n_bytes) == text


def test_the_narrowest_table_keras_draws():
    assert MIN_LINE_LENGTH == 16  # Keras: every column at least 4 wide, else "Insufficient console width"
    assert column_widths(16) == [6, 3, 3]  # one character (or "…") left in each cell
    lines = summary(mnist_model(), 16).splitlines()
    assert {len(line) for line in lines[1:10]} == {16}
    assert lines[4] == "│ den… │ … │ … │"


@pytest.mark.parametrize("line_length, error", [(-1, ValueError), (0, ValueError), (15, ValueError),
                                                ("80", TypeError), (80.0, TypeError), (True, TypeError)])
@pytest.mark.host_only("the arguments are checked before any array is read")
def test_bad_line_length_is_a_clear_error(line_length, error):
    model = Sequential([Dense(2, input_shape=(3,))])
    with pytest.raises(error, match=r"line_length must be an integer of at least 16, got"):
        model.summary(line_length=line_length)


@pytest.mark.parametrize("columns", [1, 10, 19])
@pytest.mark.host_only("text layout only")
def test_a_very_narrow_terminal_gets_the_narrowest_table(monkeypatch, columns):
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *args: os.terminal_size((columns, 24)))
    printed = []
    Sequential([Dense(2, input_shape=(3,))]).summary(print_fn=printed.append)
    assert len(printed[0].splitlines()[1]) == 16


@pytest.mark.host_only("print_fn is checked before any array is read")
def test_print_fn_that_is_not_a_function_is_a_clear_error():
    model = Sequential([Dense(2, input_shape=(3,))])
    with pytest.raises(TypeError, match=r"print_fn must be a function .* got 'stdout'"):
        print_summary(model, print_fn="stdout")


def test_print_summary_prints_or_hands_the_text_over(capsys):
    printed = []
    print_summary(mnist_model(), print_fn=printed.append, line_length=88)
    assert printed == [KERAS_88]
    print_summary(mnist_model(), line_length=88)
    assert capsys.readouterr().out == KERAS_88


@pytest.mark.host_only("an error message: no arrays")
def test_summary_refuses_a_print_fn_that_is_not_a_function():
    with pytest.raises(TypeError, match="print_fn must be a function"):
        Sequential([Dense(2, input_shape=(3,))]).summary(print_fn="stdout")
