import inspect
import os

import keras
from keras.src.trainers.data_adapters import get_data_adapter

from keras_nlm import distribution
from keras_nlm.losses import SparseCategoricalCrossentropy
from keras_nlm.validation import (
    CheckedData,
    as_arrays,
    check_token_ids,
    guard_step,
    holds_arrays,
    is_text,
    pipeline_errors,
    refuse_ragged,
)


class Model(keras.Model):
    """What every keras-nlm model shares.

    - `compile()` defaults to what the course trains with: the cross-entropy
      of the logits against the next word (or tag, or class), padding ignored
      where the model has padding, and Adam.
    - A token id out of range, or ids that are not integers, raise the same
      `ValueError` on every backend, checked on the host before any compiled
      step: in eager calls, and on every batch that `fit`, `evaluate` and
      `predict` read (arrays, `PyDataset`s, generators, `tf.data`); so do the
      labels of the default (sparse cross-entropy) loss, checked against
      `label_size`. The compiled steps hold no host callback, so
      `jit_compile=True` (XLA on TensorFlow) and `export` work.
    - Numpy and nested-list inputs are checked before the backend converts
      them, so that no backend wraps or truncates an id first; an empty batch
      is refused by `__call__`, `fit`, `evaluate` and `predict` alike.
    - `model.save("m.keras")` keeps the attached tokenizers (`model.tokenizer`,
      or `source_tokenizer` / `target_tokenizer`) in the file, and
      `keras.saving.load_model("m.keras")` attaches them again, on any backend
      (see `save_assets`).
    """

    # What the model computes, in the course's notation: each part appears
    # in the class's docstring (a test checks), and model cards and the tour
    # print it; `PAPERS` cites where it comes from.
    EQUATION = ()
    PAPERS = ""
    # Label id that the default loss ignores (padding), or None.
    ignored_label = None
    # The attributes a preset's tokenizers are attached as.
    tokenizer_roles = ("tokenizer",)
    # The argument that bounds the labels of the default (sparse
    # cross-entropy) loss: they are ids in `[0, label_size)`.
    label_size_argument = "vocabulary_size"

    @classmethod
    def from_preset(cls, preset):
        """Loads a preset (a zoo name or a directory) with its tokenizers
        attached (`model.tokenizer`, or `source_tokenizer` / `target_tokenizer`).
        """
        from keras_nlm.presets import load_preset

        model = load_preset(preset)
        if not isinstance(model, cls):
            raise ValueError(
                f"Preset {str(preset)!r} holds a {type(model).__name__}, not a "
                f"{cls.__name__}; load it with `{type(model).__name__}.from_preset` "
                "or `keras_nlm.presets.load_preset`."
            )
        return model

    def save_to_preset(self, directory, metadata=None):
        """Saves the model and its attached tokenizers as a preset directory."""
        from keras_nlm.presets import save_preset

        missing = [r for r in self.tokenizer_roles if getattr(self, r, None) is None]
        if missing:
            raise ValueError(
                f"Attach the model's tokenizers before saving a preset: "
                f"{', '.join(f'`model.{r}`' for r in missing)} is not set."
            )
        tokenizers = {r: getattr(self, r) for r in self.tokenizer_roles}
        save_preset(self, directory, tokenizers, metadata)

    def save_assets(self, dir_path):
        """Keras's hook for the assets of a `.keras` file: writes the attached
        tokenizers there, as a preset holds them.

        Keras's `saving_lib` calls it on the model itself (and on every
        layer that has it) when it writes a `.keras` file, with the root of
        the file's `assets/` folder, never for `.weights.h5` files. Each
        tokenizer goes in `keras_nlm.tokenizers/<role>/`: `config.json`, its
        class and settings, and `assets/`, its vocabulary. A model without
        tokenizers writes nothing, and its file is as before.
        """
        from keras_nlm.presets import save_tokenizer, vocabulary_mismatch

        for role in self.tokenizer_roles:
            tokenizer = getattr(self, role, None)
            if tokenizer is None:
                continue
            # The file would not load: a tokenizer's ids must be the model's.
            problem = vocabulary_mismatch(self, role, tokenizer)
            if problem:
                raise ValueError(f"Cannot save this model: {problem}")
            folder = os.path.join(dir_path, TOKENIZERS_FOLDER, role)
            os.makedirs(folder, exist_ok=True)
            save_tokenizer(
                tokenizer,
                os.path.join(folder, "config.json"),
                os.path.join(folder, "assets"),
            )

    def load_assets(self, dir_path):
        """Keras's hook for the assets of a `.keras` file: attaches the
        tokenizers `save_assets` wrote.

        `keras.saving.load_model` calls it after loading the weights, when
        the file holds any asset (a folder saved with `zipped=False` always
        does, maybe empty); a file without tokenizers, one written before
        they were saved included, leaves the model without them. Tokenizer
        configs are checked as a preset's are (only keras-nlm tokenizers),
        and each vocabulary must have the model's size.
        """
        from keras_nlm.presets import load_tokenizer, vocabulary_mismatch

        folder = os.path.join(dir_path or "", TOKENIZERS_FOLDER)
        if not dir_path or not os.path.isdir(folder):
            return
        unknown = sorted(set(os.listdir(folder)) - set(self.tokenizer_roles))
        if unknown:
            raise ValueError(
                f"Refusing the tokenizers of this file: {', '.join(unknown)} "
                f"is not a tokenizer role of a {type(self).__name__} "
                f"({', '.join(self.tokenizer_roles)})."
            )
        for role in self.tokenizer_roles:
            path = os.path.join(folder, role)
            if not os.path.isdir(path):
                continue
            tokenizer = load_tokenizer(
                os.path.join(path, "config.json"), os.path.join(path, "assets")
            )
            problem = vocabulary_mismatch(self, role, tokenizer)
            if problem:
                raise ValueError(f"Refusing the tokenizers of this file: {problem}")
            setattr(self, role, tokenizer)

    @property
    def label_size(self):
        return getattr(self, self.label_size_argument)

    def __call__(self, *args, **kwargs):
        if args:
            refuse_ragged(args[0], "inputs")
        if args and holds_arrays(args[0]):
            inputs = as_arrays(args[0])
            self.check_inputs(inputs)  # before a backend converts the values
            args = (inputs, *args[1:])
        # A training forward goes through PyTorch's DistributedDataParallel
        # (see `train_step`), which calls the model back: once, not again.
        forward = self.__dict__.pop("_keras_nlm_forward", None)
        if forward is not None:
            try:
                return forward(*args, **kwargs)
            finally:
                self.__dict__["_keras_nlm_forward"] = forward
        built = self.built
        try:
            return super().__call__(*args, **kwargs)
        except Exception:
            # A subclassed model has no `build()`: Keras builds it by tracing
            # `call`, and if the trace fails (a bad `initial_state`) it marks
            # the model built anyway, its layers not. Code that trusts
            # `built` (the generation loop, JAX's `fit`) would then fail.
            self.built = built
            raise

    def _checked_data(self, x, y=None, shuffle=False, class_weight=None):
        """`fit` / `evaluate` / `predict` data, checked before any step runs:
        in-memory arrays at once, datasets batch by batch as they are read
        (`CheckedData`). Returns what to pass to Keras."""
        refuse_ragged(x, "x")
        if holds_arrays(x):
            self._check_batch(x, y)
            return x
        if x is None or isinstance(x, CheckedData) or y is not None:
            return x  # Keras refuses `y` beside a dataset, with its own message
        adapter = get_data_adapter(x, shuffle=shuffle, class_weight=class_weight)
        return CheckedData(adapter, self._check_batch)

    def _check_batch(self, x, y=None):
        """Checks one batch (or all in-memory data): arrays and nested lists
        as they are, before a backend converts them; tensors as they come."""
        refuse_ragged(x, "x")
        x = as_arrays(x) if holds_arrays(x) else x
        self.check_inputs(x)
        if y is not None and self._checks_labels():
            y = as_arrays(y, "y") if holds_arrays(y) else y
            self._check_label_shape(x, y)
            check_token_ids(y, self.label_size, "y", self.label_size_argument)

    def label_shape(self, inputs):
        """The shape the default loss's labels of `inputs` must have: one
        label per vector of logits. Here, one per input token; models with
        one prediction per sequence or window override it."""
        return tuple(inputs.shape)

    def _check_label_shape(self, x, y):
        # A mismatch would fail inside the compiled step, in each backend's
        # words (and on TensorFlow leave `fit` unable to run again).
        expected = self.label_shape(x)
        if not hasattr(y, "shape"):
            raise ValueError(
                f"`y` must be an array of label ids of shape {expected}; got "
                f"{type(y).__name__}."
            )
        shape = tuple(y.shape)
        if shape[len(expected) :] == (1,):  # Keras squeezes a trailing 1
            shape = shape[:-1]
        if len(shape) != len(expected) or any(
            None not in (a, b) and a != b for a, b in zip(shape, expected)
        ):
            raise ValueError(
                f"`y` must hold one label per vector of logits of the inputs, "
                f"shape {expected}; got shape {tuple(y.shape)}."
            )

    def _checks_labels(self):
        loss = getattr(self, "loss", None)
        return isinstance(loss, keras.losses.SparseCategoricalCrossentropy) or (
            isinstance(loss, str) and loss == "sparse_categorical_crossentropy"
        )

    def fit(self, *args, **kwargs):
        data = _KERAS_FIT.bind(self, *args, **kwargs).arguments
        data.pop("self")
        x, shuffle = data.get("x"), data.get("shuffle", True)
        class_weight = data.pop("class_weight", None)
        data["x"] = self._checked_data(x, data.get("y"), shuffle, class_weight)
        if holds_arrays(x):  # checked whole; Keras batches them
            if keras.backend.backend() == "tensorflow" and not data.get(
                "validation_split"
            ):
                # Keras's pipeline for arrays, handed to `fit` as an adapter
                # so that its `tf.data` runs without autotuning (`CheckedData`).
                data["x"] = CheckedData(
                    get_data_adapter(
                        x,
                        data.pop("y", None),
                        data.pop("sample_weight", None),
                        data.pop("batch_size", None),
                        data.get("steps_per_epoch"),
                        shuffle,
                        class_weight,
                    )
                )
            else:
                data["class_weight"] = class_weight
        data["callbacks"] = _with_step_callbacks(data.get("callbacks"))
        validation = data.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) >= 2:
            self._checked_data(validation[0], validation[1])
        elif validation is not None:
            data["validation_data"] = self._checked_data(validation)
        with pipeline_errors():
            return super().fit(**data)

    def evaluate(self, x=None, y=None, *args, callbacks=None, **kwargs):
        x = self._checked_data(x, y)
        callbacks = _with_step_callbacks(callbacks)
        with pipeline_errors():
            return super().evaluate(x, y, *args, callbacks=callbacks, **kwargs)

    def predict(self, x, *args, callbacks=None, **kwargs):
        x = self._checked_data(x)
        callbacks = _with_step_callbacks(callbacks)
        with pipeline_errors():
            return super().predict(x, *args, callbacks=callbacks, **kwargs)

    def train_on_batch(self, x, y=None, *args, **kwargs):
        self._check_batch(x, y)
        return super().train_on_batch(x, y, *args, **kwargs)

    def test_on_batch(self, x, y=None, *args, **kwargs):
        self._check_batch(x, y)
        return super().test_on_batch(x, y, *args, **kwargs)

    def predict_on_batch(self, x):
        self._check_batch(x)
        return super().predict_on_batch(x)

    def compile(self, optimizer="adam", loss="auto", **kwargs):
        if loss == "auto":
            loss = SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=self.ignored_label
            )
        super().compile(optimizer=optimizer, loss=loss, **kwargs)
        if keras.backend.backend() == "tensorflow":
            distribution.clip_after_summing(self.optimizer)

    def compile_from_config(self, config):
        # Keras skips restoring the compile state of models that override
        # `compile()`; ours only fills in defaults, so restore it as Keras would.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def check_inputs(self, inputs):
        """Raises `ValueError` for inputs of the wrong structure, rank or ids.

        Returns the inputs to compute with. `call()` runs it first (the id
        checks only on concrete values); `fit`, `evaluate` and `predict` run
        it on each batch before the batch enters a compiled step.
        """
        raise NotImplementedError

    def train_step(self, *args):  # JAX's takes the state too
        # On PyTorch with several processes (`keras_nlm.distribution`), the
        # forward goes through `DistributedDataParallel`, whose hooks then
        # average the processes' gradients during Keras's `backward`.
        wrapper = distribution.distributed_wrapper(self)
        if wrapper is None:
            return super().train_step(*args)
        self.__dict__["_keras_nlm_forward"] = wrapper
        try:
            return super().train_step(*args)
        finally:
            del self.__dict__["_keras_nlm_forward"]

    def _get_metrics_result_or_logs(self, logs):
        # Keras's hook for the logs of an epoch and of an evaluation: with
        # several PyTorch processes, each first holds the sums over all.
        distribution.sum_over_processes(self.metrics_variables)
        return super()._get_metrics_result_or_logs(logs)

    def _guard(self, step, kind):
        return guard_step(step, self._variable_restorer(kind), self.steps_per_execution)

    def make_train_function(self, force=False):
        super().make_train_function(force)
        self.train_function = self._guard(self.train_function, "train")
        return self.train_function

    def make_test_function(self, force=False):
        super().make_test_function(force)
        self.test_function = self._guard(self.test_function, "test")
        return self.test_function

    def make_predict_function(self, force=False):
        super().make_predict_function(force)
        self.predict_function = self._guard(self.predict_function, "predict")
        return self.predict_function

    def serving_signature(self):
        """The inputs of an exported model's `serve` endpoint: int32 token
        ids of any batch and length (Keras would guess float inputs)."""
        return [token_ids_spec()]

    def serving_endpoints(self):
        """Endpoints a TF SavedModel export adds beside `serve`, by name:
        `(function, input_signature, polymorphic_shapes)`, the last for JAX's
        export (None: Keras's, which names each unknown length apart).
        Recurrent models add the steps that carry their state in and out,
        for generation from the export."""
        return {}

    def export(
        self,
        filepath,
        format="tf_saved_model",
        verbose=None,
        input_signature=None,
        **kwargs,
    ):
        """Keras's `export`, its `serve` endpoint taking `serving_signature()`
        by default; a TF SavedModel also gets `serving_endpoints()`.

        Example:
        >>> model.export("exported/rnn_lm")
        >>> serving = tf.saved_model.load("exported/rnn_lm")  # TensorFlow only
        >>> logits = serving.serve(tf.constant([[12, 7, 99]]))
        """
        if input_signature is None:
            input_signature = self.serving_signature()
        endpoints = self.serving_endpoints()
        if format != "tf_saved_model" or not endpoints:
            return super().export(
                filepath,
                format=format,
                verbose=verbose,
                input_signature=input_signature,
                **kwargs,
            )
        archive = keras.export.ExportArchive()
        archive.track_and_add_endpoint("serve", self, input_signature, **kwargs)
        for name, (function, signature, shapes) in endpoints.items():
            options = dict(kwargs)
            if shapes and keras.backend.backend() == "jax":
                options["jax2tf_kwargs"] = {
                    **options.get("jax2tf_kwargs", {}),
                    "polymorphic_shapes": shapes,
                }
            archive.add_endpoint(name, function, signature, **options)
        archive.write_out(filepath, verbose=True if verbose is None else verbose)

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

    def tokenizer_for(self, role):
        """The attached tokenizer of `role` (`"tokenizer"`, ...), or a
        `ValueError` saying how to attach one."""
        tokenizer = getattr(self, role, None)
        if tokenizer is None:
            raise ValueError(
                f"Text needs the model's `{role}`: load the model with "
                "`from_preset` (or from a `.keras` file saved with it attached), "
                f"set `model.{role}`, or pass token-id lists."
            )
        return tokenizer

    def get_config(self):
        # Subclasses add their constructor arguments; weights go in the .keras file.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }


_KERAS_FIT = inspect.signature(keras.Model.fit)
# The folder of a `.keras` file's assets that holds the model's tokenizers
# (`Model.save_assets`): a name no attribute can have, so that no layer's
# assets (in folders named by attribute) ever land in it.
TOKENIZERS_FOLDER = "keras_nlm.tokenizers"


def _with_step_callbacks(callbacks):
    # `fit` hands its validation `evaluate` its own `CallbackList`, whole.
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    return [*(callbacks or []), *distribution.step_callbacks()]


def token_ids_spec(length=None):
    """int32 token ids `(batch, length)`, any batch (and any length: None)."""
    return keras.InputSpec(shape=(None, length), dtype="int32")


class LanguageModel(Model):
    """A model of `P(next word | words before)` that can generate text.

    `keras_nlm.generation.generate` drives any language model through three
    hooks (as KerasHub's `CausalLM` has `call_with_cache`), so that a new
    family brings its own way of reading a prompt and stepping one token:

    - `prepare_prompts(buffer, mask, index, start_id)`: the `(batch,
      max_length)` prompt buffer as the model reads it (a window model puts
      `start_id`s before it); returns `(buffer, mask, index, offset)`,
      `offset` the columns to drop from the result.
    - `generation_cache(buffer, index)`: `(index, cache, start)`, where the
      sampling loop starts, its first cache, and `start` (None, or a function
      run inside the compiled loop that turns the cache into another, e.g. a
      prefix into recurrent states).
    - `next_token_logits(buffer, cache, index)`: `(logits, cache)` for the
      token at `index`, from the tokens before it; compiled in the loop.

    Scoring (`keras_nlm.evaluation.token_nll`) and training on a token
    stream (`keras_nlm.training`) call two more:

    - `stream_logits(stream, sequence_length, batch_size)`: for a stream of
      ids, yields `(logits, targets)` chunk by chunk, each token of
      `stream[1:]` predicted from all the tokens before it.
    - `stream_batches(ids, batch_size, sequence_length, start_id, shuffle,
      seed, epoch, variable_length=False)`: the `keras.utils.PyDataset` a
      recipe trains it on (`variable_length`: Merity et al.'s random BPTT
      lengths, for recurrent models).
    """

    def prepare_prompts(self, buffer, mask, index, start_id):
        return buffer, mask, index, 0

    def generation_cache(self, buffer, index):
        raise NotImplementedError

    def next_token_logits(self, buffer, cache, index):
        raise NotImplementedError

    def stream_logits(self, stream, sequence_length, batch_size):
        raise NotImplementedError

    def stream_batches(
        self,
        ids,
        batch_size,
        sequence_length,
        start_id,
        shuffle,
        seed,
        epoch,
        variable_length=False,
    ):
        raise NotImplementedError

    def generate(self, prompts, max_length, sampler="greedy", **kwargs):
        """Continues prompts; see `keras_nlm.generation.generate`.

        `prompts` are token-id lists, or text (a string or a list of strings)
        when the model has a `tokenizer` (presets attach it); text gives text
        back. `max_length` counts the prompt's tokens and the new ones.

        Example:
        >>> model = RNNLM.from_preset("runs/tiny")
        >>> model.generate("the time traveller", max_length=40, sampler="top_k")
        """
        from keras_nlm.generation import generate

        if not is_text(prompts):
            return generate(self, prompts, max_length, sampler, **kwargs)
        tokenizer = self.tokenizer_for("tokenizer")
        texts = [prompts] if isinstance(prompts, str) else list(prompts)
        # A prompt starts where a line does in training: after `<eos>`.
        prefix = []
        if tokenizer.eos_token is not None:
            prefix = [tokenizer.token_to_id(tokenizer.eos_token)]
            kwargs.setdefault("start_id", prefix[0])
        ids = [prefix + tokenizer.tokenize(text) for text in texts]
        outputs = generate(self, ids, max_length + len(prefix), sampler, **kwargs)
        outputs = [tokenizer.detokenize(row[len(prefix) :]) for row in outputs]
        return outputs[0] if isinstance(prompts, str) else outputs
