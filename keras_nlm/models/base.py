import keras

from keras_nlm.validation import guard_step


class Model(keras.Model):
    """What every keras-nlm model shares.

    - `compile()` defaults to what the course trains with: the cross-entropy
      of the logits against the next word (or tag, or class), padding ignored
      where the model has padding, and Adam.
    - A token id out of range raises the same `ValueError` on every backend,
      also from inside the compiled steps of `fit`, `evaluate` and `predict`.
    """

    # Label id that the default loss ignores (padding), or None.
    ignored_label = None

    def compile(self, optimizer="adam", loss="auto", **kwargs):
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=self.ignored_label
            )
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def compile_from_config(self, config):
        # Keras skips restoring the compile state of models that override
        # `compile()`; ours only fills in defaults, so restore it as Keras would.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def check_inputs(self, inputs):
        """Raises `ValueError` for inputs of the wrong structure, rank or ids.

        Returns the inputs to compute with (see `check_token_ids`). `call()`
        runs it first; on JAX it also runs on each batch of `fit`, `evaluate`
        and `predict` before the batch enters the compiled step.
        """
        raise NotImplementedError

    def make_train_function(self, force=False):
        super().make_train_function(force)
        self.train_function = guard_step(
            self.train_function, self.check_inputs, self._variable_restorer("train")
        )
        return self.train_function

    def make_test_function(self, force=False):
        super().make_test_function(force)
        self.test_function = guard_step(
            self.test_function, self.check_inputs, self._variable_restorer("test")
        )
        return self.test_function

    def make_predict_function(self, force=False):
        super().make_predict_function(force)
        self.predict_function = guard_step(
            self.predict_function, self.check_inputs, self._variable_restorer("predict")
        )
        return self.predict_function

    def _variable_restorer(self, step):
        def restore(state):
            # The JAX step's state: (trainable, non-trainable, [optimizer,]
            # [metrics]) variable values, in the trainer's order.
            groups = [self.trainable_variables, self.non_trainable_variables]
            if step == "train":
                groups.append(self.optimizer.variables)
            if step in ("train", "test"):
                groups.append(self.metrics_variables)
            for variables, values in zip(groups, state):
                for variable, value in zip(variables, values):
                    variable.assign(value)

        return restore

    def get_config(self):
        # Subclasses add their constructor arguments; weights go in the .keras file.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }
