"""The same decoder-only Transformer LM in plain JAX: the engine Trax runs on, without Trax."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.example_libraries import optimizers

from fwsurvey.kernels.datasets import PAD_ID, split, text_corpus

# %% data


def next_tokens(tokens):
    """Each position's target, the token after it; the last position has none (padding)."""
    return np.pad(tokens[:, 1:], ((0, 0), (0, 1)), constant_values=PAD_ID)


def load_data(spec):
    train_ids, eval_ids = split(text_corpus(), spec["eval_fraction"])
    rng = np.random.default_rng(spec["seed"])
    lengths = spec.get("seq_lens", [spec["seq_len"]])
    buckets = spec.get("buckets") if spec.get("bucketed") else None

    def batches():  # windows of the training text at random offsets, one length per batch
        while True:
            length = int(rng.choice(lengths))
            starts = rng.integers(0, len(train_ids) - length + 1, spec["batch"])
            tokens = np.stack([train_ids[s:s + length] for s in starts])
            if buckets:  # pad up to the bucket's length: one compiled shape per bucket
                padded = min(b for b in buckets if b >= length)
                tokens = np.pad(tokens, ((0, 0), (0, padded - length)), constant_values=PAD_ID)
            yield tokens, next_tokens(tokens)

    n_eval, length = spec["eval_windows"], spec["seq_len"]
    held_out = eval_ids[:n_eval * length].reshape(n_eval, length)
    return {"train": batches(), "eval": (held_out, next_tokens(held_out))}


# %% model


def init_params(key, vocab, d_model, d_ff, n_layers, max_len):
    """The initialisation every implementation of this task shares (spec.toml): Glorot-uniform
    kernels, zero biases, token embeddings uniform with variance 1/d_model, positions starting
    from sinusoids."""
    def dense(key, n_in, n_out):
        bound = np.sqrt(6.0 / (n_in + n_out))
        w = jax.random.uniform(key, (n_in, n_out), minval=-bound, maxval=bound)
        return {"w": w, "b": jnp.zeros(n_out)}

    def sinusoids():
        position = np.arange(max_len)[:, None]
        freq = np.exp(np.arange(0, d_model, 2) * (-np.log(10000.0) / d_model))
        table = np.zeros((max_len, d_model), np.float32)
        table[:, 0::2], table[:, 1::2] = np.sin(position * freq), np.cos(position * freq)
        return jnp.asarray(table)

    def norm():
        return {"scale": jnp.ones(d_model), "bias": jnp.zeros(d_model)}

    keys = iter(jax.random.split(key, 3 + 6 * n_layers))
    blocks = [{"norm1": norm(), "q": dense(next(keys), d_model, d_model),
               "k": dense(next(keys), d_model, d_model), "v": dense(next(keys), d_model, d_model),
               "out": dense(next(keys), d_model, d_model), "norm2": norm(),
               "ff1": dense(next(keys), d_model, d_ff), "ff2": dense(next(keys), d_ff, d_model)}
              for _ in range(n_layers)]
    bound = np.sqrt(3.0 / d_model)
    return {"tokens": jax.random.uniform(next(keys), (vocab, d_model), minval=-bound,
                                         maxval=bound),
            "positions": sinusoids(),
            "blocks": blocks, "norm": norm(), "head": dense(next(keys), d_model, vocab)}


def layer_norm(p, x):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-6) * p["scale"] + p["bias"]


def attention(block, x, n_heads):
    batch, length, d_model = x.shape

    def heads(p):
        return (x @ p["w"] + p["b"]).reshape(batch, length, n_heads, d_model // n_heads)

    # cuDNN's flash attention where JAX runs on a GPU in half precision (the only case it
    # supports); XLA's own attention elsewhere.
    flash = jax.default_backend() == "gpu" and x.dtype in (jnp.bfloat16, jnp.float16)
    out = jax.nn.dot_product_attention(heads(block["q"]), heads(block["k"]),
                                       heads(block["v"]), is_causal=True,
                                       implementation="cudnn" if flash else None)
    out = out.reshape(batch, length, d_model)
    return out @ block["out"]["w"] + block["out"]["b"]


def forward(params, tokens, n_heads):
    x = params["tokens"][tokens] + params["positions"][: tokens.shape[1]]
    for block in params["blocks"]:
        x = x + attention(block, layer_norm(block["norm1"], x), n_heads)
        h = jax.nn.relu(layer_norm(block["norm2"], x) @ block["ff1"]["w"] + block["ff1"]["b"])
        x = x + h @ block["ff2"]["w"] + block["ff2"]["b"]
    x = layer_norm(params["norm"], x)
    return x @ params["head"]["w"] + params["head"]["b"]


def build_model(spec):
    return init_params(jax.random.PRNGKey(spec["seed"]), spec["vocab"], spec["d_model"],
                       spec["d_ff"], spec["n_layers"], spec["max_len"])


# %% training


def loss_fn(params, inputs, targets, n_heads, dtype=jnp.float32):
    params = jax.tree.map(lambda p: p.astype(dtype), params)
    logits = forward(params, inputs, n_heads).astype(jnp.float32)
    logp = jax.nn.log_softmax(logits)
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    mask = (targets != PAD_ID).astype(jnp.float32)
    return (nll * mask).sum() / mask.sum()


def make_trainer(params, data, spec):
    opt = spec["optimizer"]  # jax.example_libraries' adam has no weight decay: 0 in the spec
    opt_init, opt_update, get_params = optimizers.adam(opt["lr"], b1=opt["b1"], b2=opt["b2"],
                                                       eps=opt["eps"])
    dtype = jnp.bfloat16 if spec.get("precision") == "bf16" else jnp.float32

    @jax.jit
    def update(step, opt_state, inputs, targets):
        loss, grads = jax.value_and_grad(loss_fn)(get_params(opt_state), inputs, targets,
                                                  spec["n_heads"], dtype)
        return loss, opt_update(step, grads, opt_state)

    state = {"opt": opt_init(params), "step": 0}

    def train_step():
        inputs, targets = next(data["train"])
        loss, state["opt"] = update(state["step"], state["opt"], inputs, targets)
        state["step"] += 1
        return loss

    train_step.params = lambda: get_params(state["opt"])
    return train_step


# %% evaluation


def evaluate(params, trainer, data, spec):
    inputs, targets = data["eval"]
    return {"eval_loss": float(loss_fn(trainer.params(), inputs, targets, spec["n_heads"]))}
