"""Merity et al. (2017)'s SGD for AWD-LSTMs, on Keras's optimizer."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_nlm")
class NTASGD(keras.optimizers.SGD):
    """SGD for NT-ASGD and variable-length BPTT (Merity et al. 2017).

    - Averaged SGD from a step chosen during training: after
      `start_averaging()`, the average (Keras's `use_ema` variables, which
      `SwapEMAWeights` validates and `finalize_variable_values` keeps) is the
      plain mean of the weights after every step since. Until then it is the
      weights themselves.
    - A learning rate per step: `scale_steps(scales)` multiplies the learning
      rate of the next `len(scales)` steps by `scales`, after the gradient is
      clipped (variable-length BPTT scales each batch's by its length).

    Args:
        learning_rate: the learning rate (which `scale_steps` scales).
        steps_per_epoch: how many factors `scale_steps` takes, or `None`
            (every step at the learning rate).
        **kwargs: `keras.optimizers.SGD`'s; `use_ema=True` keeps the average.
    """

    def __init__(self, learning_rate=0.01, steps_per_epoch=None, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.steps_per_epoch = steps_per_epoch

    def build(self, variables):
        super().build(variables)
        count = self._iterations.dtype
        if self.use_ema:
            # The step the average starts at; -1: not started.
            self.average_start = self.add_variable(
                (), keras.initializers.Constant(-1), count, name="average_start"
            )
        if self.steps_per_epoch:
            self.step_scales = self.add_variable(
                (self.steps_per_epoch,), "ones", name="step_scales"
            )
            self.first_scaled_step = self.add_variable(
                (), "zeros", count, name="first_scaled_step"
            )

    def start_averaging(self):
        """Averages the weights from the next step on."""
        self.average_start.assign(self._step())

    def scale_steps(self, scales):
        """Multiplies the learning rate of the next `len(scales)` steps."""
        self.step_scales.assign(ops.convert_to_tensor(scales, "float32"))
        self.first_scaled_step.assign(self._step())

    def _step(self):
        # A copy: on JAX, two variables holding one buffer cannot both be
        # donated to the compiled step.
        return ops.copy(self.iterations)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # Here, not in a schedule: the factors live in variables that the
        # compiled step reads (JAX's `fit` reads them at each epoch's start),
        # and the gradients are clipped already, as Merity et al.'s were.
        if self.steps_per_epoch:
            step = ops.clip(
                self.iterations - self.first_scaled_step, 0, self.steps_per_epoch - 1
            )
            learning_rate = learning_rate * ops.take(self.step_scales, step)
        super()._backend_update_step(grads, trainable_variables, learning_rate)

    def _update_model_variables_moving_average(self, trainable_variables):
        # Keras's moving average has a constant momentum. The plain mean of
        # the k + 1 weights since `average_start` is the moving average whose
        # momentum is k / (k + 1) at its k-th step (0 at the first: the
        # weights); before it starts, the momentum is 0.
        k = ops.cast(self.iterations - self.average_start, "float32")
        momentum = ops.where(self.average_start < 0, 0.0, k / (k + 1))
        for variable, average in zip(
            trainable_variables, self._model_variables_moving_average
        ):
            m = ops.cast(momentum, variable.dtype)
            average.assign(m * average + (1 - m) * variable)

    def get_config(self):
        return {**super().get_config(), "steps_per_epoch": self.steps_per_epoch}
