"""Contrastive losses on one logical batch: SimCLR's NT-Xent / InfoNCE and its accuracy.

Under `jax.jit` these see the whole global batch as negatives on any device count, at the cost of
the [2N, 2N] logits; `chunked.py` holds the same loss with [2n, 2N] logits per device.
"""
import jax
import jax.numpy as jnp
import optax

from sslax.losses.numerics import MASKED_LOGIT, l2_normalize, loss_dtype


def nt_xent_logits(z_a_NxD: jax.Array, z_b_NxD: jax.Array, *,
                   temperature: float) -> tuple[jax.Array, jax.Array]:
  """Logits and targets of SimCLR's NT-Xent (Chen et al. 2020, "A Simple Framework for
  Contrastive Learning of Visual Representations", eq. 1).

  The two views are stacked into 2N anchors `[a_0..a_{N-1}, b_0..b_{N-1}]`; row i holds the
  cosine similarity of anchor i to every anchor, divided by `temperature`, with its own
  (self) similarity masked out. Anchor i's positive is the other view of the same example,
  index (i + N) mod 2N.

  Args:
    z_a_NxD: embeddings of the first view, [N, D].
    z_b_NxD: embeddings of the second view, [N, D], row n the same example as z_a_NxD[n].
    temperature: softmax temperature tau > 0.

  Returns:
    logits_2Nx2N: [2N, 2N] in float32 (float64 if the input is float64), diagonal set to a
      large finite negative.
    labels_2N: [2N] int32, the column of each row's positive.
  """
  if z_a_NxD.ndim != 2 or z_a_NxD.shape != z_b_NxD.shape:
    raise ValueError(
        f"z_a_NxD and z_b_NxD must both be [N, D] with equal shapes; got {z_a_NxD.shape} "
        f"and {z_b_NxD.shape}.")
  n = z_a_NxD.shape[0]
  dtype = loss_dtype(jnp.result_type(z_a_NxD, z_b_NxD))
  z_2NxD = l2_normalize(jnp.concatenate([z_a_NxD, z_b_NxD], axis=0).astype(dtype))
  # HIGHEST keeps float32 matmuls exact on accelerators whose default is bf16 passes (TPU).
  sim_2Nx2N = jnp.matmul(z_2NxD, z_2NxD.T, precision=jax.lax.Precision.HIGHEST)
  logits_2Nx2N = sim_2Nx2N / jnp.asarray(temperature, dtype)
  logits_2Nx2N = jnp.where(jnp.eye(2 * n, dtype=bool), jnp.asarray(MASKED_LOGIT, dtype),
                           logits_2Nx2N)
  labels_2N = (jnp.arange(2 * n, dtype=jnp.int32) + n) % (2 * n)
  return logits_2Nx2N, labels_2N


def info_nce(z_a_NxD: jax.Array, z_b_NxD: jax.Array, *, temperature: float) -> jax.Array:
  """SimCLR's NT-Xent / InfoNCE loss (Chen et al. 2020, eq. 1), averaged over 2N anchors.

  For anchor i with positive p(i):
    l_i = -log( exp(s_{i,p(i)} / tau) / sum_{k != i} exp(s_{i,k} / tau) ),
  where s is cosine similarity and the sum runs over the positive and the 2N - 2 negatives.
  Pass global arrays (sharded over N is fine) under `jax.jit` to use every device's
  negatives.

  Args:
    z_a_NxD: first-view embeddings, [N, D].
    z_b_NxD: second-view embeddings, [N, D].
    temperature: softmax temperature tau > 0.

  Returns:
    Scalar loss in float32 (float64 for float64 inputs).
  """
  logits_2Nx2N, labels_2N = nt_xent_logits(z_a_NxD, z_b_NxD, temperature=temperature)
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits_2Nx2N, labels_2N))


def contrastive_accuracy(logits_2Nx2N: jax.Array, labels_2N: jax.Array) -> jax.Array:
  """Fraction of anchors whose most similar other anchor is their positive (a training
  metric; chance is 1 / (2N - 1)).

  Args:
    logits_2Nx2N: [2N, 2N] logits from `nt_xent_logits` (self-similarity masked).
    labels_2N: [2N] integer index of each anchor's positive.

  Returns:
    Scalar float32 in [0, 1].
  """
  return jnp.mean((jnp.argmax(logits_2Nx2N, axis=-1) == labels_2N).astype(jnp.float32))
