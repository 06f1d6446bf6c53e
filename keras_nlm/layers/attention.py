import keras
from keras import ops

from keras_nlm.validation import check_choice, check_positive_int

SCORES = ("bahdanau", "luong")


@keras.saving.register_keras_serializable(package="keras_nlm")
class EncoderDecoderAttention(keras.layers.Layer):
    """Attention of each decoder state over every encoder state.

    For a decoder state `s` and encoder states `h₁ … hₛ`:

        eᵢ = score(s, hᵢ)                 bahdanau: vᵀ tanh(W₁ s + W₂ hᵢ)
                                          luong:    sᵀ Wₐ hᵢ
        αᵢ = softmax(e)ᵢ                  (padding of the source masked out)
        c  = Σᵢ αᵢ hᵢ                     the context vector
        h̃  = tanh(W_c [c; s])             what the output layer reads

    Both scores are used as in Luong et al. (2015): the decoder's top-layer
    output attends, so training stays parallel over time. Bahdanau et al.
    (2014) also feed `c` into the next recurrent step; that variant is not
    built here. Keras's `AdditiveAttention` and `Attention` compute the scores.

    Args:
        score: `"bahdanau"` (additive) or `"luong"` (multiplicative, "general").
        hidden_dim: size of the projections and of `h̃`; with `"luong"` also
            the size of the decoder states.

    Call arguments:
        decoder_states: `(batch, t, any)`, the queries `s`.
        encoder_states: `(batch, s, any)`, the values `h`.
        source_mask: `(batch, s)` booleans, `False` at source padding.
        return_attention_scores: also return `α`, `(batch, t, s)`.

    Example:
    >>> attention = EncoderDecoderAttention("luong", hidden_dim=16)
    >>> attention(np.zeros((2, 5, 16)), np.zeros((2, 7, 32))).shape
    (2, 5, 16)
    """

    def __init__(self, score="luong", hidden_dim=128, **kwargs):
        super().__init__(**kwargs)
        self.score = check_choice(score, "score", SCORES)
        self.hidden_dim = check_positive_int(hidden_dim, "hidden_dim")
        self.key_projection = keras.layers.Dense(hidden_dim, use_bias=False, name="W2")
        if score == "bahdanau":
            self.query_projection = keras.layers.Dense(
                hidden_dim, use_bias=False, name="W1"
            )
            self.attention = keras.layers.AdditiveAttention(use_scale=True, name="v")
        else:
            self.query_projection = None
            self.attention = keras.layers.Attention(name="dot")
        self.combine = keras.layers.Dense(hidden_dim, activation="tanh", name="Wc")
        self.supports_masking = True  # the decoder's padding mask passes through

    def build(self, decoder_states_shape, encoder_states_shape, source_mask_shape=None):
        if self.score == "luong" and decoder_states_shape[-1] != self.hidden_dim:
            raise ValueError(
                f"`attention='luong'` compares decoder states of size "
                f"{decoder_states_shape[-1]} with keys of hidden_dim="
                f"{self.hidden_dim}; the two must be equal."
            )
        self.key_projection.build(encoder_states_shape)
        query_shape = tuple(decoder_states_shape[:-1]) + (self.hidden_dim,)
        if self.query_projection is not None:
            self.query_projection.build(decoder_states_shape)
        self.attention.build([query_shape, encoder_states_shape, query_shape])
        context_dim = encoder_states_shape[-1] + decoder_states_shape[-1]
        self.combine.build(tuple(decoder_states_shape[:-1]) + (context_dim,))
        self.built = True

    def call(
        self,
        decoder_states,
        encoder_states,
        source_mask=None,
        return_attention_scores=False,
    ):
        keys = self.key_projection(encoder_states)
        queries = decoder_states
        if self.query_projection is not None:
            queries = self.query_projection(decoder_states)
        context, scores = self.attention(
            [queries, encoder_states, keys],
            mask=[None, source_mask],
            return_attention_scores=True,
        )
        attended = self.combine(ops.concatenate([context, decoder_states], axis=-1))
        return (attended, scores) if return_attention_scores else attended

    def get_config(self):
        config = super().get_config()
        config.update({"score": self.score, "hidden_dim": self.hidden_dim})
        return config
