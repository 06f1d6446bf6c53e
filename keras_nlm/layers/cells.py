"""The slides' LSTM and GRU, one time step each, gates named as on the slides.

`keras_nlm.layers.recurrent` runs Keras's cells (fused kernels where the
backend has them); these few lines are the equations they must compute, in
Keras's weight layout, so that they can be checked against them (the tests do,
on every backend) and read in a minute. Notebook 05 runs them on a trained
model to look at its gates.

Example:
>>> layer = keras_nlm.layers.recurrent.LSTM(5)
>>> layer.build((None, None, 4))
>>> h, c = lstm_step(a_t, h, c, *layer.cell.weights)
"""

from keras import ops


def lstm_gates(a_t, h_prev, W, R, b):
    """The LSTM's gates at one step, by name (each `(batch, h)`):

        input gate   iₜ = σ(W_i aₜ + R_i hₜ₋₁ + b_i)
        forget gate  fₜ = σ(W_f aₜ + R_f hₜ₋₁ + b_f)
        output gate  oₜ = σ(W_o aₜ + R_o hₜ₋₁ + b_o)
        candidate    c̃ₜ = tanh(W_c aₜ + R_c hₜ₋₁ + b_c)

    `W` `(features, 4h)`, `R` `(h, 4h)` and `b` `(4h,)` hold the blocks in
    Keras's order i, f, c, o (`keras.layers.LSTMCell`'s kernel,
    recurrent_kernel and bias).
    """
    z_input, z_forget, z_candidate, z_output = ops.split(
        ops.matmul(a_t, W) + ops.matmul(h_prev, R) + b, 4, axis=-1
    )
    return {
        "input": ops.sigmoid(z_input),
        "forget": ops.sigmoid(z_forget),
        "output": ops.sigmoid(z_output),
        "candidate": ops.tanh(z_candidate),
    }


def lstm_step(a_t, h_prev, c_prev, W, R, b):
    """One LSTM step: `(hₜ, cₜ)` from the input `aₜ` and the previous state.

        memory  cₜ = fₜ ⊙ cₜ₋₁ + iₜ ⊙ c̃ₜ      keep (f) and write (i)
        hidden  hₜ = oₜ ⊙ tanh(cₜ)            read (o)

    with the gates of `lstm_gates`.
    """
    gates = lstm_gates(a_t, h_prev, W, R, b)
    c = gates["forget"] * c_prev + gates["input"] * gates["candidate"]
    h = gates["output"] * ops.tanh(c)
    return h, c


def gru_step(a_t, h_prev, W, R, b):
    """One GRU step: `hₜ` from the input `aₜ` and `hₜ₋₁` (memory = output).

        update gate  zₜ = σ(W_z aₜ + b_z + R_z hₜ₋₁ + b'_z)
        reset gate   rₜ = σ(W_r aₜ + b_r + R_r hₜ₋₁ + b'_r)
        candidate    h̃ₜ = tanh(W_h aₜ + b_h + rₜ ⊙ (R_h hₜ₋₁ + b'_h))
        hidden       hₜ = zₜ ⊙ hₜ₋₁ + (1 − zₜ) ⊙ h̃ₜ

    `W` `(features, 3h)` and `R` `(h, 3h)` hold the blocks in Keras's order
    z, r, h; `b` `(2, 3h)` the input biases `b` and the recurrent ones `b'`
    (`keras.layers.GRUCell` with `reset_after=True`, as PyTorch's GRU).
    """
    x_update, x_reset, x_candidate = ops.split(ops.matmul(a_t, W) + b[0], 3, -1)
    r_update, r_reset, r_candidate = ops.split(ops.matmul(h_prev, R) + b[1], 3, -1)
    update = ops.sigmoid(x_update + r_update)
    reset = ops.sigmoid(x_reset + r_reset)
    candidate = ops.tanh(x_candidate + reset * r_candidate)
    return update * h_prev + (1 - update) * candidate
