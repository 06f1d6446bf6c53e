import keras
from keras import ops

from keras_nlm.layers import EncoderDecoderAttention, RecurrentStack, TokenEmbedding
from keras_nlm.layers.dropout import draw_seed, seeded_dropout
from keras_nlm.models.base import (
    Model,
    token_ids_spec,
)
from keras_nlm.precision import logits_dtype, to_float32
from keras_nlm.validation import (
    check_choice,
    check_positive_int,
    check_rate,
    check_token_tensor,
    checked_upstream,
    is_text,
)


@keras.saving.register_keras_serializable(package="keras_nlm")
class Seq2Seq(Model):
    """The encoder-decoder (Sutskever et al. 2014; Cho et al. 2014).

    Encoder: input sequence → fixed-size state. Decoder: state + output
    sequence → output sequence.

        s_enc = Encoder(E_src(x₁ … xₛ))             final state of each layer
        hₜ    = Decoder(E_tgt(yₜ₋₁), hₜ₋₁), h₀ = s_enc
        zₜ    = softmax(U hₜ)        (U h̃ₜ with attention, see
                                      `EncoderDecoderAttention`)

    Training feeds the target sequence shifted right (starting with the start
    delimiter) and predicts it unshifted (teacher forcing). To use it, encode
    the source, feed the start delimiter and decode one token at a time until
    the end delimiter (`encode` and `decode` expose both halves).

    With `teacher_forcing_ratio < 1`, training is scheduled sampling with a
    fixed probability (Bengio et al. 2015): at each step t > 0 each row is
    fed the gold yₜ₋₁ with probability `teacher_forcing_ratio`, else the
    model's own greedy choice, the argmax of its logits at step t − 1
    (padding never chosen, as in `translate`). The coin is flipped per row
    and step; pytorch-seq2seq's `teacher_forcing_ratio` flips one per step
    for the whole batch. Padding stays padding. The decoder then runs one
    step at a time through `decode` (the argmax passes no gradient; the
    logits do); at 1.0 training takes the whole-sequence path, fused
    kernels included. Inference (`training=False`: `evaluate`, `predict`,
    `translate`) is unchanged.

    Id 0 is padding in both vocabularies: it is masked in the encoder, the
    decoder, the attention and (with `compile()`'s default loss) the loss.

    Args:
        source_vocabulary_size: size of the source vocabulary.
        target_vocabulary_size: size of the target vocabulary.
        cell: `"simple"`, `"lstm"` or `"gru"`.
        num_layers: layers in the encoder and in the decoder; layer `l` of the
            encoder initialises layer `l` of the decoder.
        hidden_dim: `h`, the state size of each layer.
        embedding_dim: `d`, for both embeddings.
        bidirectional_encoder: BRNN encoder layers; their forward and backward
            final states are joined by `tanh(W [h→; h←])` into the decoder's.
        attention: `None`, `"bahdanau"` or `"luong"`.
        reverse_source: read the source backwards (Sutskever et al.'s trick).
        dropout: dropout on embeddings, between layers and before the output.
        teacher_forcing_ratio: the probability, in [0, 1], that a training
            step is fed the gold previous token rather than the model's own
            prediction; 1 is teacher forcing, 0 free running.

    Example:
    >>> model = Seq2Seq(8000, 6000, cell="gru", attention="bahdanau")
    >>> model.compile()
    >>> model.fit({"source": src, "target": tgt_in}, tgt_out)
    """

    EQUATION = (
        "s_enc = Encoder(E_src(x₁ … xₛ))",
        "hₜ = Decoder(E_tgt(yₜ₋₁), hₜ₋₁), h₀ = s_enc",
        "zₜ = softmax(U hₜ)",
    )
    PAPERS = (
        "Sutskever et al. 2014, Cho et al. 2014; attention: Bahdanau et al. "
        "2015, Luong et al. 2015"
    )
    ignored_label = 0
    tokenizer_roles = ("source_tokenizer", "target_tokenizer")
    label_size_argument = "target_vocabulary_size"

    def __init__(
        self,
        source_vocabulary_size,
        target_vocabulary_size,
        cell="lstm",
        num_layers=2,
        hidden_dim=256,
        embedding_dim=256,
        bidirectional_encoder=False,
        attention=None,
        reverse_source=False,
        dropout=0.0,
        teacher_forcing_ratio=1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cell, self.num_layers, self.hidden_dim = cell, num_layers, hidden_dim
        self.source_vocabulary_size = check_positive_int(
            source_vocabulary_size, "source_vocabulary_size"
        )
        self.target_vocabulary_size = check_positive_int(
            target_vocabulary_size, "target_vocabulary_size"
        )
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.attention = check_choice(
            attention, "attention", (None, "bahdanau", "luong")
        )
        self.bidirectional_encoder = bidirectional_encoder
        self.reverse_source = reverse_source
        self.dropout = check_rate(dropout, "dropout")
        self.teacher_forcing_ratio = check_rate(
            teacher_forcing_ratio, "teacher_forcing_ratio", closed=True
        )
        # Only the sampling model holds a seed generator, so that teacher
        # forcing's variables (and saved presets) are as before.
        if self.teacher_forcing_ratio < 1.0:
            self.teacher_forcing_seed_generator = keras.random.SeedGenerator(
                draw_seed()
            )

        self.E_source = TokenEmbedding(
            source_vocabulary_size,
            embedding_dim,
            mask_zero=True,
            check_ids=False,
            name="E_source",
        )
        self.E_target = TokenEmbedding(
            target_vocabulary_size,
            embedding_dim,
            mask_zero=True,
            check_ids=False,
            name="E_target",
        )
        self.encoder = RecurrentStack(
            cell,
            hidden_dim,
            num_layers,
            bidirectional=bidirectional_encoder,
            dropout=dropout,
            name="encoder",
        )
        self.decoder = RecurrentStack(
            cell, hidden_dim, num_layers, dropout=dropout, name="decoder"
        )
        # One bridge per decoder state tensor: tanh(W [h→; h←]).
        self.bridges = (
            [
                keras.layers.Dense(hidden_dim, activation="tanh", name=f"bridge_{i}")
                for i in range(num_layers * self.decoder.state_count)
            ]
            if bidirectional_encoder
            else []
        )
        self.attention_layer = (
            EncoderDecoderAttention(attention, hidden_dim, name="attention")
            if attention
            else None
        )
        self.dropout_layer = seeded_dropout(self.dropout)
        self.U = keras.layers.Dense(target_vocabulary_size, name="U")

    def encode(self, source, training=None):
        """Source ids `(batch, s)` → `(encoder_outputs, state, source_mask)`.

        `state` is the fixed-size summary: one list of tensors per decoder layer.
        """
        source = self._check_source(source)
        if self.reverse_source:
            source = ops.flip(source, axis=1)
        source_mask = ops.not_equal(source, 0)
        a = self.dropout_layer(self.E_source(source), training=training)
        outputs, states = self.encoder(
            a, mask=source_mask, training=training, return_state=True
        )
        if self.bidirectional_encoder:
            half = self.decoder.state_count
            states = [
                [
                    self.bridges[layer * half + i](
                        ops.concatenate([forward, backward], axis=-1)
                    )
                    for i, (forward, backward) in enumerate(
                        zip(layer_states[:half], layer_states[half:])
                    )
                ]
                for layer, layer_states in enumerate(states)
            ]
        return outputs, states, source_mask

    def decode(
        self,
        target,
        encoder_outputs,
        state,
        source_mask,
        training=None,
        return_state=False,
        return_attention_scores=False,
    ):
        """Target ids so far `(batch, t)` → logits `(batch, t, target_vocabulary_size)`.

        Returns `(logits, state)` with `return_state=True`, and the attention
        weights `(batch, t, s)` last with `return_attention_scores=True`.
        """
        target = self._check_target(target)
        target_mask = ops.not_equal(target, 0)
        b = self.dropout_layer(self.E_target(target), training=training)
        h, state = self.decoder(
            b,
            initial_state=state,
            mask=target_mask,
            training=training,
            return_state=True,
        )
        scores = None
        if self.attention_layer is not None:
            h, scores = self.attention_layer(
                h, encoder_outputs, source_mask, return_attention_scores=True
            )
        # Under a mixed policy, float32 logits for the loss and the samplers.
        logits = to_float32(self.U(self.dropout_layer(h, training=training)))
        outputs = (logits,)
        if return_state:
            outputs += (state,)
        if return_attention_scores:
            outputs += (scores,)
        return outputs if len(outputs) > 1 else logits

    def translate(
        self, sources, max_length=50, start_id=None, end_id=None, sampler="greedy"
    ):
        """Decodes sources; see `keras_nlm.generation.translate`.

        `sources` are source token-id lists, or text (a string or a list of
        strings) when the model has its `source_tokenizer` and
        `target_tokenizer` (presets attach them); text gives text back, and
        the delimiters default to the target tokenizer's.

        Example:
        >>> model = Seq2Seq.from_preset("runs/multi30k")
        >>> model.translate("ein mann fährt fahrrad .", sampler=BeamSampler(4))
        """
        from keras_nlm.generation import translate

        text = is_text(sources)
        if text or start_id is None or end_id is None:
            target = self.tokenizer_for("target_tokenizer")
            start_id = target.start_id if start_id is None else start_id
            end_id = target.end_id if end_id is None else end_id
        if not text:
            return translate(self, sources, max_length, start_id, end_id, sampler)
        texts = [sources] if isinstance(sources, str) else list(sources)
        ids = self.tokenizer_for("source_tokenizer").tokenize(texts)
        outputs = translate(self, ids, max_length, start_id, end_id, sampler)
        outputs = [target.detokenize(row) for row in outputs]
        return outputs[0] if isinstance(sources, str) else outputs

    def _check_source(self, source):
        return check_token_tensor(
            source, self.source_vocabulary_size, "source", ("batch", "source_time")
        )

    def _check_target(self, target):
        return check_token_tensor(
            target, self.target_vocabulary_size, "target", ("batch", "target_time")
        )

    def _check_structure(self, inputs):
        if not isinstance(inputs, dict) or set(inputs) != {"source", "target"}:
            raise ValueError(
                "`inputs` must be a dict with keys 'source' and 'target' "
                "(the target shifted right, starting with the start delimiter); "
                f"got {type(inputs).__name__}"
                + (f" with keys {sorted(inputs)}" if isinstance(inputs, dict) else "")
                + "."
            )

    def check_inputs(self, inputs):
        self._check_structure(inputs)
        source = self._check_source(inputs["source"])
        target = self._check_target(inputs["target"])
        batch = source.shape[0], target.shape[0]
        if None not in batch and batch[0] != batch[1]:
            raise ValueError(
                "`source` and `target` must have one row per pair; got "
                f"{batch[0]} and {batch[1]} rows."
            )
        return {"source": source, "target": target}

    def label_shape(self, inputs):
        return tuple(inputs["target"].shape)  # the target, shifted left

    def serving_signature(self):
        return [{"source": token_ids_spec(), "target": token_ids_spec()}]

    def serving_endpoints(self):
        # Translation from an export: `outputs, mask, *state = encode(source)`
        # once, then `logits, *state = decode(target, outputs, state, mask)`
        # step by step, the state going back in with the next token. States
        # are flat (layer by layer, h then c): signatures take flat tensors.
        structure = self.decoder.state_specs()

        def encode(source):
            outputs, state, mask = self.encode(source)
            return [outputs, mask, *keras.tree.flatten(state)]

        def decode(target, encoder_outputs, state, source_mask):
            state = keras.tree.pack_sequence_as(structure, state)
            logits, state = self.decode(
                target, encoder_outputs, state, source_mask, return_state=True
            )
            return [logits, *keras.tree.flatten(state)]

        width = self.hidden_dim * (2 if self.bidirectional_encoder else 1)
        outputs = keras.InputSpec(shape=(None, None, width), dtype=self.compute_dtype)
        mask = keras.InputSpec(shape=(None, None), dtype="bool")
        states = keras.tree.flatten(structure)
        # For JAX: the encoder's outputs and the mask share the source length.
        shapes = [
            "(batch, t)",
            f"(batch, s, {width})",
            [f"(batch, {self.hidden_dim})"] * len(states),
            "(batch, s)",
        ]
        return {
            "encode": (encode, [token_ids_spec()], None),
            "decode": (decode, [token_ids_spec(), outputs, states, mask], shapes),
        }

    def call(self, inputs, training=None):
        self._check_structure(inputs)  # encode and decode check the ids
        encoder_outputs, state, source_mask = self.encode(inputs["source"], training)
        if training and self.teacher_forcing_ratio < 1.0:
            return self._scheduled_sampling(
                inputs["target"], encoder_outputs, state, source_mask
            )
        return self.decode(
            inputs["target"], encoder_outputs, state, source_mask, training=training
        )

    def _scheduled_sampling(self, target, encoder_outputs, state, source_mask):
        """Training logits `(batch, t, target_vocabulary_size)`, each step fed
        the gold previous token or, with probability `1 −
        teacher_forcing_ratio`, the model's greedy choice one step back."""
        target = self._check_target(target)
        # All the coins at once, outside the loop: one draw from the seed
        # generator, which then stays out of the loop's body.
        use_gold = ops.logical_or(
            keras.random.uniform(
                ops.shape(target), seed=self.teacher_forcing_seed_generator
            )
            < self.teacher_forcing_ratio,
            ops.equal(target, 0),  # padding stays padding
        )
        use_gold = ops.logical_or(use_gold, ops.arange(ops.shape(target)[1]) == 0)

        def step(t, previous, state):
            token = ops.where(use_gold[:, t], target[:, t], previous)
            logits, state = self.decode(
                token[:, None],
                encoder_outputs,
                state,
                source_mask,
                training=True,
                return_state=True,
            )
            # Fed back, padding would be masked and stall the decoder's
            # state: it is never chosen (as in `translate`).
            previous = ops.argmax(logits[:, 0, 1:], axis=-1) + 1
            return logits, ops.cast(previous, target.dtype), state

        # The tokens are the model's own or the checked target's.
        with checked_upstream():
            if target.shape[1] is not None:
                # Unrolled (one traced step per position): in a JAX loop the
                # layers' dropout could not advance their seed generators.
                logits, previous = [], target[:, 0]
                for t in range(target.shape[1]):
                    step_logits, previous, state = step(t, previous, state)
                    logits.append(step_logits)
                return ops.concatenate(logits, axis=1)
            return self._sampling_loop(step, target, state)

    def _sampling_loop(self, step, target, state):
        """`step` over a target of unknown length (a TensorFlow graph fed
        batches of varying width), in a symbolic loop."""
        batch, length = ops.shape(target)[0], ops.shape(target)[1]
        # Time-major, so that each step writes one row (`scatter_update` has
        # a gradient in TensorFlow; `slice_update` has none).
        logits = ops.zeros(
            (length, batch, self.target_vocabulary_size),
            logits_dtype(self.compute_dtype),  # `decode`'s, float32 if mixed
        )

        def body(t, previous, state, logits):
            step_logits, previous, state = step(t, previous, state)
            update = ops.transpose(step_logits, (1, 0, 2))
            logits = ops.scatter_update(logits, ops.reshape(t, (1, 1)), update)
            return t + 1, previous, state, logits

        *_, logits = ops.while_loop(
            lambda t, *_: t < length, body, (0, target[:, 0], state, logits)
        )
        return ops.transpose(logits, (1, 0, 2))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "source_vocabulary_size": self.source_vocabulary_size,
                "target_vocabulary_size": self.target_vocabulary_size,
                "cell": self.cell,
                "num_layers": self.num_layers,
                "hidden_dim": self.hidden_dim,
                "embedding_dim": self.embedding_dim,
                "bidirectional_encoder": self.bidirectional_encoder,
                "attention": self.attention,
                "reverse_source": self.reverse_source,
                "dropout": self.dropout,
                "teacher_forcing_ratio": self.teacher_forcing_ratio,
            }
        )
        return config
