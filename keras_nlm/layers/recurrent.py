import contextlib

import keras
from keras import ops

from keras_nlm.layers.direct import direct_call
from keras_nlm.layers.dropout import LockedDropout, draw_seed, seeded_dropout
from keras_nlm.precision import autocast
from keras_nlm.validation import check_choice, check_positive_int, check_rate


def _fusable(layer, mask):
    """Whether PyTorch's fused kernel computes what Keras's loop of cells would."""
    cell = layer.cell
    return (
        keras.backend.backend() == "torch"
        and layer.use_cudnn in ("auto", True)
        and not (cell.dropout or cell.recurrent_dropout or layer.unroll)
        and cell.use_bias
        and cell.activation in (keras.activations.tanh, ops.tanh)
        and cell.recurrent_activation in (keras.activations.sigmoid, ops.sigmoid)
        and getattr(cell, "reset_after", True)
        and _keeps_every_step(mask)
    )


def _keeps_every_step(mask):
    """A mask that keeps every step changes nothing (a padded batch does)."""
    if mask is None:
        return True
    mask = keras.tree.flatten(mask)[0]
    # Shape inference (Keras building a loaded model) runs on PyTorch's "meta"
    # tensors, which hold no values: Keras's loop gives the shapes.
    if str(getattr(mask, "device", "")) == "meta":
        return False
    import torch

    # Exporting (ONNX, `torch.export`) records one path for every input: the
    # masked loop, right for any mask, not the branch the sample input took;
    # `torch.compile` too, as reading the mask's values breaks its graph.
    if _torch_compiling() or torch.jit.is_tracing():
        return False
    return bool(ops.all(mask))


def _torch_fused_rnn(layer, sequences, initial_state, kernel, recurrent_kernel, biases):
    """Runs `torch.lstm` / `torch.gru` (one layer, batch first) with Keras's
    `kernel` and `recurrent_kernel` (gates in PyTorch's order) and `biases`,
    PyTorch's `(b_ih, b_hh)`; returns what Keras's `inner_loop` does:
    `(last_output, outputs, states)`."""
    import torch

    # PyTorch's weights are Keras's transposed: (gates, inputs). Under a mixed
    # policy the kernel runs in 16 bits (as Keras's loop of autocast cells
    # does), the float32 weights cast once per call.
    dtype = layer.compute_dtype
    weights = [ops.transpose(kernel), ops.transpose(recurrent_kernel), *biases]
    weights = [ops.cast(w, dtype) for w in weights]
    sequences = ops.cast(sequences, dtype)
    if layer.go_backwards:
        sequences = ops.flip(sequences, axis=1)
    # PyTorch's states are (layers, batch, h); Keras's are (batch, h).
    states = [ops.cast(s, dtype)[None] for s in initial_state]
    run = torch.lstm if len(states) == 2 else torch.gru
    outputs, *states = run(
        sequences,
        tuple(states) if len(states) == 2 else states[0],
        weights,
        True,  # has_biases
        1,  # num_layers
        0.0,  # dropout
        # Training keeps what the backward pass needs; a trace (an export)
        # runs twice, with and without autograd, and must record one graph.
        torch.is_grad_enabled() and not torch.jit.is_tracing(),  # train
        False,  # bidirectional
        True,  # batch_first
    )
    return outputs[:, -1], outputs, [s[0] for s in states]


@contextlib.contextmanager
def _recurrent_kernel_as(cell, recurrent_kernel):
    """Keras's cells read `self.recurrent_kernel` in `call`, and Keras's LSTM
    and GRU hand it to the backend's fused kernels (TensorFlow's cuDNN):
    within this context it is the tensor `recurrent_kernel`, as Keras's RNN
    keeps one call's dropout masks on its cell. The variable itself is left
    alone and put back on exit."""
    variable = cell.recurrent_kernel
    # `object.__setattr__`: a tensor for one call, not a tracked attribute.
    object.__setattr__(cell, "recurrent_kernel", recurrent_kernel)
    try:
        yield
    finally:
        object.__setattr__(cell, "recurrent_kernel", variable)


def _torch_compiling():
    """Whether `torch.compile` (`jit_compile=True` on PyTorch) traces this
    call: Dynamo unrolls the loop either way, and the projected one took
    longer to compile (a padded bidirectional tagger's test: 83 s with
    Keras's loop of cells, 113 s)."""
    if keras.backend.backend() != "torch":
        return False
    import torch

    return torch.compiler.is_compiling()


class _ProjectedLoop(keras.layers.RNN):
    """Keras's loop over time steps, with the input's product taken for every
    step at once.

    Keras's LSTM and GRU cells compute `x_t W + h_{t-1} R + b` inside the
    loop, two small products a step. `x_t W + b` depends on no state, so one
    `(batch·time, d) × (d, gates·h)` product before the loop gives it for
    every step, and the loop keeps only `h_{t-1} R`, as cuDNN's and
    PyTorch's fused kernels do. Two LSTM layers forward and backward
    (`benchmarks/README.md`): a padded batch on PyTorch 1.3-1.5x faster,
    JAX and TensorFlow 1.05x on the medium configuration's shapes.
    Keras's LSTM and GRU first try the backend's fused kernel (cuDNN) and
    otherwise call their `RNN`'s loop: placed between them in the class
    order, this loop replaces only that one. Subclasses give one step's
    gates from its projected input in `_projected_step`.
    """

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if (
            (cell.dropout or cell.recurrent_dropout)
            and training
            or not cell.use_bias
            or not getattr(cell, "reset_after", True)
            or _torch_compiling()
        ):
            return super().inner_loop(sequences, initial_state, mask, training)
        # Read as the cell would: under a mixed policy in the compute dtype;
        # a weight-dropped `recurrent_kernel` is a tensor (`_WeightDropped`).
        kernel, recurrent_kernel, bias = (
            ops.cast(w, self.compute_dtype)
            for w in (cell.kernel, cell.recurrent_kernel, cell.bias)
        )
        input_bias, recurrent_bias = self._biases(bias)
        projected = ops.add(ops.matmul(sequences, kernel), input_bias)

        copy_states = self.stateful and keras.backend.backend() == "torch"

        def step(inputs, states):
            # As Keras's loop: a stateful layer assigns its state variables
            # in place after the call, which would break PyTorch's autograd.
            if copy_states:
                states = [ops.copy(s) for s in states]
            return self._projected_step(
                inputs, states, recurrent_kernel, recurrent_bias
            )

        # Keras's own loop, as its `RNN` calls it (masks, `go_backwards`,
        # `unroll`); it has no public name.
        return keras.src.backend.rnn(
            step,
            projected,
            initial_state if keras.tree.is_nested(initial_state) else [initial_state],
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=sequences.shape[1],
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences,
        )


class _WeightDropped:
    """What our LSTM and GRU share: weight drop and PyTorch's fused kernels.

    Weight drop (Wan et al. 2013's DropConnect on the hidden-to-hidden
    weights, as in Merity et al. 2017's AWD-LSTM) masks the recurrent kernel
    `R` once per call in training, one mask for the whole batch and every
    time step:

        R' = M ⊙ R / (1 − p),   M ~ Bernoulli(1 − p)^(h × gates·h)

    the input kernel and the biases untouched. `R'` is a tensor computed in
    the call (the variable `R` is never changed) and both paths read it: the
    fused kernel takes it as its weight and Keras's loop of cells reads it
    as the cell's `recurrent_kernel` (`_recurrent_kernel_as`).
    Subclasses convert the weights for PyTorch in `_torch_weights`.
    """

    def __init__(self, units, weight_dropout=0.0, **kwargs):
        super().__init__(units, **kwargs)
        self.weight_dropout = check_rate(weight_dropout, "weight_dropout")
        # Without weight drop the layer holds what Keras's does.
        if self.weight_dropout:
            self.weight_dropout_seed_generator = keras.random.SeedGenerator(draw_seed())

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        dropped = training and self.weight_dropout
        recurrent_kernel = cell.recurrent_kernel.value
        if dropped:
            recurrent_kernel = keras.random.dropout(
                recurrent_kernel,
                self.weight_dropout,
                seed=self.weight_dropout_seed_generator,
            )
        if _fusable(self, mask):
            return _torch_fused_rnn(
                self,
                sequences,
                initial_state,
                *self._torch_weights(
                    cell.kernel.value, recurrent_kernel, cell.bias.value
                ),
            )
        if not dropped:
            return super().inner_loop(sequences, initial_state, mask, training)
        with _recurrent_kernel_as(cell, recurrent_kernel):
            return super().inner_loop(sequences, initial_state, mask, training)

    def get_config(self):
        config = super().get_config()
        config["weight_dropout"] = self.weight_dropout
        return config


@keras.saving.register_keras_serializable(package="keras_nlm")
class LSTM(_WeightDropped, keras.layers.LSTM, _ProjectedLoop):
    """`keras.layers.LSTM`, run by PyTorch's fused LSTM on CPU too, with weight drop.

    Keras's PyTorch backend uses the fused kernel on CUDA only and otherwise
    loops over time steps in Python. The weights keep Keras's layout (and
    checkpoints their format: weight files are keyed by the class name,
    hence `LSTM`); they are converted in each call, which autograd follows.

    Args:
        units: `h`, the state size.
        weight_dropout: `p`, weight drop's rate on the recurrent kernel
            (see `_WeightDropped`), in [0, 1); 0 turns it off.
        **kwargs: other `keras.layers.LSTM` arguments.

    Example:
    >>> lstm = LSTM(32, weight_dropout=0.5, return_sequences=True)
    >>> lstm(np.zeros((4, 10, 8)), training=True).shape
    (4, 10, 32)
    """

    def _biases(self, bias):
        return bias, None

    def _projected_step(self, x, states, recurrent_kernel, _):
        # x = x_t W + b, projected before the loop (`_ProjectedLoop`).
        h, c = states
        gates = ops.add(x, ops.matmul(h, recurrent_kernel))
        i, f, g, o = ops.split(gates, 4, axis=-1)
        sigmoid, tanh = self.recurrent_activation, self.activation
        c = sigmoid(f) * c + sigmoid(i) * tanh(g)
        h = sigmoid(o) * tanh(c)
        return h, [h, c]

    def _torch_weights(self, kernel, recurrent_kernel, bias):
        # Keras's gates (i, f, c, o) are PyTorch's (i, f, g, o), in the same
        # order; Keras's one bias serves as b_ih, with b_hh = 0.
        return kernel, recurrent_kernel, (bias, ops.zeros_like(bias))


@keras.saving.register_keras_serializable(package="keras_nlm")
class GRU(_WeightDropped, keras.layers.GRU, _ProjectedLoop):
    """`keras.layers.GRU` (`reset_after=True`), run by PyTorch's fused GRU on
    CPU too, with weight drop; see `LSTM`.

    Args:
        units: `h`, the state size.
        weight_dropout: `p`, weight drop's rate on the recurrent kernel, in
            [0, 1); 0 turns it off.
        **kwargs: other `keras.layers.GRU` arguments.

    Example:
    >>> gru = GRU(32, weight_dropout=0.5, return_sequences=True)
    >>> gru(np.zeros((4, 10, 8)), training=True).shape
    (4, 10, 32)
    """

    def _biases(self, bias):
        # `reset_after=True`: the input's bias, then the recurrent one.
        return bias[0], bias[1]

    def _projected_step(self, x, states, recurrent_kernel, recurrent_bias):
        # x = x_t W + b, projected before the loop (`_ProjectedLoop`).
        h = states[0]
        x_z, x_r, x_h = ops.split(x, 3, axis=-1)
        inner = ops.add(ops.matmul(h, recurrent_kernel), recurrent_bias)
        h_z, h_r, h_h = ops.split(inner, 3, axis=-1)
        sigmoid, tanh = self.recurrent_activation, self.activation
        z = sigmoid(x_z + h_z)
        r = sigmoid(x_r + h_r)
        h = z * h + (1 - z) * tanh(x_h + r * h_h)
        return h, [h]

    def _torch_weights(self, kernel, recurrent_kernel, bias):
        # Keras orders the gates (z, r, h), PyTorch (r, z, n): same equations,
        # h' = z h + (1 - z) tanh(x W_h + b_h + r (h U_h + b'_h)). The bias
        # rows are the input bias and the recurrent bias.
        def r_z_h(w):
            z, r, h = ops.split(w, 3, axis=-1)
            return ops.concatenate([r, z, h], axis=-1)

        bias = r_z_h(bias)
        return r_z_h(kernel), r_z_h(recurrent_kernel), (bias[0], bias[1])


# The course's three recurrent cells, as Keras implements them (fused kernels
# where available). `state_count` is how many state tensors one direction
# carries.
CELLS = {
    "simple": (keras.layers.SimpleRNN, 1),
    "lstm": (LSTM, 2),
    "gru": (GRU, 1),
}


@keras.saving.register_keras_serializable(package="keras_nlm")
class RecurrentStack(keras.layers.Layer):
    """`num_layers` recurrent layers, each reading the hidden states of the one below.

    Layer `l` at time `t` updates its state from its input and its own state one
    step back, `h⁽ˡ⁾ₜ = cell(h⁽ˡ⁻¹⁾ₜ, h⁽ˡ⁾ₜ₋₁)` with `h⁽⁰⁾ₜ` the input, where the
    cell is the simple RNN's `tanh(W x + U h + b)`, the LSTM (cell memory with
    input, forget and output gates) or the GRU (update and reset gates, memory =
    output). Training unrolls it in time: backpropagation through time.

    With `bidirectional=True` each layer is the course's BRNN: two hidden layers
    of opposite directions whose outputs are concatenated for the layer above.

    Args:
        cell: `"simple"`, `"lstm"` or `"gru"`.
        hidden_dim: `h`, the state size of each layer (per direction).
        num_layers: how many layers are stacked.
        bidirectional: run each layer forwards and backwards.
        dropout: dropout rate between layers (on non-recurrent connections,
            as in Zaremba et al. 2014), a new mask at every time step.
        hidden_dropout: locked (variational) dropout between layers, one
            mask per sequence (`LockedDropout`; AWD-LSTM's `dropouth`).
        weight_dropout: weight drop on every layer's recurrent kernel, one
            mask per call (`LSTM`; AWD-LSTM's `wdrop`); LSTM and GRU cells.
        return_sequences: return every time step of the top layer (`True`) or
            only its last one.

    Call arguments:
        inputs: `(batch, time, features)`.
        initial_state: `None`, or one list of state tensors per layer, as
            returned with `return_state=True`.
        mask: `(batch, time)` booleans, `False` at padding.
        return_state: also return the final states, one list per layer
            (LSTM: `[h, c]`; GRU and simple: `[h]`; bidirectional: forward
            states then backward ones).

    Example:
    >>> stack = RecurrentStack(cell="lstm", hidden_dim=32, num_layers=2)
    >>> outputs, states = stack(np.zeros((4, 10, 8)), return_state=True)
    >>> outputs.shape, len(states), len(states[0])
    ((4, 10, 32), 2, 2)
    """

    def __init__(
        self,
        cell="lstm",
        hidden_dim=128,
        num_layers=1,
        bidirectional=False,
        dropout=0.0,
        hidden_dropout=0.0,
        weight_dropout=0.0,
        return_sequences=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cell = check_choice(cell, "cell", tuple(CELLS))
        self.hidden_dim = check_positive_int(hidden_dim, "hidden_dim")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        self.bidirectional = bidirectional
        self.dropout = check_rate(dropout, "dropout")
        self.hidden_dropout = check_rate(hidden_dropout, "hidden_dropout")
        self.weight_dropout = check_rate(weight_dropout, "weight_dropout")
        if self.weight_dropout and cell == "simple":
            raise ValueError(
                "`weight_dropout` masks an LSTM's or GRU's recurrent kernel; "
                "use cell='lstm' or cell='gru' (got cell='simple')."
            )
        self.return_sequences = return_sequences
        layer_class, self.state_count = CELLS[cell]
        if bidirectional:
            self.state_count *= 2
        # Only LSTM and GRU take it (checked above).
        weight_drop = {"weight_dropout": self.weight_dropout} if weight_dropout else {}
        self.recurrent_layers = []
        for i in range(num_layers):
            layer = layer_class(
                hidden_dim,
                return_sequences=return_sequences or i < num_layers - 1,
                return_state=True,
                name=f"{cell}_{i}",
                **weight_drop,
            )
            if bidirectional:
                layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{i}")
            self.recurrent_layers.append(layer)
        self.dropout_layer = seeded_dropout(self.dropout)
        self.hidden_dropout_layer = LockedDropout(self.hidden_dropout)
        self.supports_masking = True

    @property
    def output_dim(self):
        return self.hidden_dim * (2 if self.bidirectional else 1)

    def build(self, inputs_shape, initial_state_shape=None):
        shape = tuple(inputs_shape)
        for i, layer in enumerate(self.recurrent_layers):
            layer.build(shape)
            if i < self.num_layers - 1 or self.return_sequences:
                shape = shape[:2] + (self.output_dim,)
        self.built = True

    def call(
        self, inputs, initial_state=None, mask=None, training=None, return_state=False
    ):
        if initial_state is not None:
            self._check_states(initial_state, "initial_state", inputs.shape[0])
        x, states = inputs, []
        for i, layer in enumerate(self.recurrent_layers):
            if i > 0:
                x = direct_call(self.dropout_layer, x, training=training)
                x = direct_call(self.hidden_dropout_layer, x, training=training)
            x, *layer_states = direct_call(
                layer,
                x,
                initial_state=None if initial_state is None else initial_state[i],
                mask=mask,
                training=training,
            )
            states.append(layer_states)
        return (x, states) if return_state else x

    def step(self, inputs, states):
        """One time step at inference, `(batch, features)` → `(h, states)`:
        each layer's Keras cell called directly. Generation takes one step per
        token, eagerly on PyTorch, where Keras's bookkeeping around each
        layer call (masks, structures, shapes) costs more than the step's
        arithmetic; the cell's `call` holds all of the step's math."""
        if self.bidirectional:
            raise ValueError(
                "`step` reads one token at a time, forwards; a bidirectional "
                "stack needs the whole sequence."
            )
        self._check_states(states, "states", inputs.shape[0])
        # Keras's `__call__` would cast the inputs to the compute dtype.
        x, new_states = ops.convert_to_tensor(inputs, self.compute_dtype), []
        for layer, state in zip(self.recurrent_layers, states):
            # Keras's `__call__` would convert numpy states; `call` does not.
            state = [ops.convert_to_tensor(s, self.compute_dtype) for s in state]
            # Under a mixed policy the cells' float32 weights would turn
            # the 16-bit state float32, and the generation loop's carried
            # state would change dtype: read them as `__call__` does.
            with autocast(self):
                x, state = layer.cell.call(x, state, training=False)
            new_states.append(list(state))
        return x, new_states

    def _check_states(self, states, argument, batch_size):
        """Raises unless `states` holds, per layer, `state_count` tensors of
        shape `(batch_size, hidden_dim)`: a state of another batch would
        broadcast against the inputs into a silently wrong result."""
        if len(states) != self.num_layers:
            raise ValueError(
                f"`{argument}` must hold one list of states per layer "
                f"(num_layers={self.num_layers}); got {len(states)}."
            )
        batch = "batch" if batch_size is None else batch_size
        expected = (
            f"{self.state_count} state(s) of shape ({batch}, {self.hidden_dim}) "
            f"(cell={self.cell!r}, bidirectional={self.bidirectional})"
        )
        for i, layer_states in enumerate(states):
            if not isinstance(layer_states, (list, tuple)):
                raise ValueError(
                    f"`{argument}[{i}]` must be a list of {expected}; got "
                    f"{type(layer_states).__name__}."
                )
            for j, state in enumerate(layer_states):
                if not hasattr(state, "shape"):
                    raise ValueError(
                        f"`{argument}[{i}][{j}]` must be a tensor or array, one "
                        f"of {expected}; got {type(state).__name__}."
                    )
            shapes = [tuple(state.shape) for state in layer_states]
            if len(shapes) != self.state_count or any(
                len(shape) != 2
                or shape[1] != self.hidden_dim
                or (None not in (batch_size, shape[0]) and shape[0] != batch_size)
                for shape in shapes
            ):
                raise ValueError(
                    f"`{argument}[{i}]` must hold {expected}; got shapes {shapes}."
                )

    def initial_state(self, batch_size):
        """Zero states, in the structure that `initial_state=` takes."""
        return [
            [ops.zeros((batch_size, self.hidden_dim), self.compute_dtype)]
            * self.state_count
            for _ in range(self.num_layers)
        ]

    def state_specs(self):
        """The states' specs for any batch, in the structure of `initial_state`
        (an exported model's state inputs)."""
        spec = keras.InputSpec(shape=(None, self.hidden_dim), dtype=self.compute_dtype)
        return [[spec] * self.state_count for _ in range(self.num_layers)]

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "cell": self.cell,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "bidirectional": self.bidirectional,
                "dropout": self.dropout,
                "hidden_dropout": self.hidden_dropout,
                "weight_dropout": self.weight_dropout,
                "return_sequences": self.return_sequences,
            }
        )
        return config
