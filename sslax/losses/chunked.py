"""The contrastive losses under `jax.shard_map`: each device holds only its own anchors' rows of
logits ([n, N] or [2n, 2N]) against the all-gathered candidates of the global batch, instead of the
whole [N, N]. Each equals its plain form in `contrastive.py`, `vision.py` or `frames.py`, value and
gradients, on any mesh.
"""
import jax
import jax.numpy as jnp
import optax

from sslax.losses.numerics import MASKED_LOGIT, l2_normalize, loss_dtype


def _devices_along(mesh: jax.sharding.Mesh, axes: tuple[str, ...]) -> int:
  """How many devices the batch is split over: the product of the mesh `axes` sizes."""
  devices = 1
  for axis in axes:
    devices *= mesh.shape[axis]
  return devices


def info_nce_chunked(z_a_NxD: jax.Array, z_b_NxD: jax.Array, *, temperature: float,
                     mesh: jax.sharding.Mesh,
                     axes: tuple[str, ...] = ('data', 'fsdp')) -> jax.Array:
  """`info_nce` (same value and gradients) without the [2N, 2N] similarity matrix on any device.

  Under `jax.shard_map` over the batch `axes`, each device normalises its own n = N / devices
  rows of both views, all-gathers the [N, D] embeddings of each view (O(N D) memory) and
  computes only its 2n anchors' rows of logits against all 2N columns: [2n, 2N] per device
  instead of [2N, 2N]. The per-device sums of the cross-entropy are psum-ed. Gradients flow
  back through the all-gather (a reduce-scatter), so every device's negatives still count.

  Args:
    z_a_NxD: first-view embeddings, [N, D], N divisible by the size of `axes` in `mesh`.
    z_b_NxD: second-view embeddings, [N, D].
    temperature: softmax temperature tau > 0.
    mesh: the device mesh the batch is sharded over.
    axes: mesh axes the batch (leading) dimension is split over.

  Returns:
    Scalar loss in float32 (float64 for float64 inputs), replicated.
  """
  return nt_xent_chunked(z_a_NxD, z_b_NxD, temperature=temperature, mesh=mesh, axes=axes)[0]


def nt_xent_chunked(z_a_NxD: jax.Array, z_b_NxD: jax.Array, *, temperature: float,
                    mesh: jax.sharding.Mesh, axes: tuple[str, ...] = ('data', 'fsdp')
                    ) -> tuple[jax.Array, jax.Array]:
  """(`info_nce_chunked`, `contrastive_accuracy`) from the same per-device [2n, 2N] logits.

  Raises ValueError if N is not divisible by the devices along `axes`.
  """
  n_global = z_a_NxD.shape[0]
  devices = _devices_along(mesh, axes)
  if z_a_NxD.ndim != 2 or z_a_NxD.shape != z_b_NxD.shape or n_global % devices:
    raise ValueError(
        f'chunked InfoNCE needs two [N, D] views with N divisible by the {devices} devices of '
        f'mesh axes {axes}; got {z_a_NxD.shape} and {z_b_NxD.shape}.')
  dtype = loss_dtype(jnp.result_type(z_a_NxD, z_b_NxD))
  spec = jax.sharding.PartitionSpec(axes)

  def per_device(a_nxD, b_nxD):
    n = a_nxD.shape[0]
    a_nxD, b_nxD = l2_normalize(a_nxD.astype(dtype)), l2_normalize(b_nxD.astype(dtype))
    a_NxD = jax.lax.all_gather(a_nxD, axes, tiled=True)
    b_NxD = jax.lax.all_gather(b_nxD, axes, tiled=True)
    columns_2NxD = jnp.concatenate([a_NxD, b_NxD], axis=0)
    anchors_2nxD = jnp.concatenate([a_nxD, b_nxD], axis=0)
    logits_2nx2N = jnp.matmul(anchors_2nxD, columns_2NxD.T,
                              precision=jax.lax.Precision.HIGHEST) / jnp.asarray(temperature, dtype)
    # Global column of each local anchor (view a rows, then view b rows) and of its positive.
    rows_n = jax.lax.axis_index(axes) * n + jnp.arange(n)
    self_2n = jnp.concatenate([rows_n, rows_n + n_global])
    positive_2n = jnp.concatenate([rows_n + n_global, rows_n])
    is_self_2nx2N = self_2n[:, None] == jnp.arange(2 * n_global)[None, :]
    logits_2nx2N = jnp.where(is_self_2nx2N, jnp.asarray(MASKED_LOGIT, dtype), logits_2nx2N)
    xent_2n = optax.softmax_cross_entropy_with_integer_labels(logits_2nx2N, positive_2n)
    hits_2n = (jnp.argmax(logits_2nx2N, axis=-1) == positive_2n).astype(jnp.float32)
    return (jax.lax.psum(jnp.sum(xent_2n), axes) / (2 * n_global),
            jax.lax.psum(jnp.sum(hits_2n), axes) / (2 * n_global))

  replicated = jax.sharding.PartitionSpec()
  return jax.shard_map(per_device, mesh=mesh, in_specs=(spec, spec),
                       out_specs=(replicated, replicated))(z_a_NxD, z_b_NxD)


def _chunked_row_xent(anchors_nxD: jax.Array, candidates_nxD: jax.Array,
                      valid_n: jax.Array, temperature: float, axes: tuple[str, ...]):
  """Inside shard_map: this device's n anchors against all N candidates of the global batch
  (all-gathered, O(N D) memory), anchor i's positive the candidate with the same global row.
  Invalid candidates are masked out as columns and invalid anchors weigh 0. -> (sum of
  weighted cross-entropies, sum of weighted hits, sum of weights), each psum-ed."""
  n = anchors_nxD.shape[0]
  candidates_NxD = jax.lax.all_gather(candidates_nxD, axes, tiled=True)
  valid_N = jax.lax.all_gather(valid_n, axes, tiled=True)
  logits_nxN = jnp.matmul(anchors_nxD, candidates_NxD.T,
                          precision=jax.lax.Precision.HIGHEST) / jnp.asarray(
                              temperature, anchors_nxD.dtype)
  logits_nxN = jnp.where(valid_N[None, :] > 0, logits_nxN,
                         jnp.asarray(MASKED_LOGIT, logits_nxN.dtype))
  positive_n = jax.lax.axis_index(axes) * n + jnp.arange(n)
  xent_n = optax.softmax_cross_entropy_with_integer_labels(logits_nxN, positive_n)
  hits_n = (jnp.argmax(logits_nxN, axis=-1) == positive_n).astype(valid_n.dtype)
  return (jax.lax.psum(jnp.sum(xent_n * valid_n), axes),
          jax.lax.psum(jnp.sum(hits_n * valid_n), axes), jax.lax.psum(jnp.sum(valid_n), axes))


def moco_v3_loss_chunked(q_NxD: jax.Array, k_NxD: jax.Array, *, temperature: float,
                         mesh: jax.sharding.Mesh,
                         axes: tuple[str, ...] = ('data', 'fsdp')) -> jax.Array:
  """`moco_v3_loss` (same value and gradients) with [n, N] logits per device, not [N, N].

  Under `jax.shard_map` over the batch `axes`, each device keeps its n = N / devices queries
  and all-gathers the N keys; cross-entropy sums are psum-ed. Gradients reach the keys
  through the all-gather too (MoCo v3 stops them anyway: its keys come from the EMA target).

  Raises ValueError if N is not divisible by the devices along `axes`.
  """
  devices = _devices_along(mesh, axes)
  if q_NxD.ndim != 2 or q_NxD.shape != k_NxD.shape or q_NxD.shape[0] % devices:
    raise ValueError(f'chunked MoCo v3 loss needs [N, D] queries and keys with N divisible by '
                     f'the {devices} devices of mesh axes {axes}; got {q_NxD.shape} and '
                     f'{k_NxD.shape}.')
  dtype = loss_dtype(jnp.result_type(q_NxD, k_NxD))
  n_global = q_NxD.shape[0]

  def per_device(q_nxD, k_nxD):
    q_nxD, k_nxD = l2_normalize(q_nxD.astype(dtype)), l2_normalize(k_nxD.astype(dtype))
    xent, _, _ = _chunked_row_xent(q_nxD, k_nxD, jnp.ones(q_nxD.shape[0], dtype), temperature,
                                   axes)
    return 2.0 * temperature * xent / n_global

  spec = jax.sharding.PartitionSpec(axes)
  return jax.shard_map(per_device, mesh=mesh, in_specs=(spec, spec),
                       out_specs=jax.sharding.PartitionSpec())(q_NxD, k_NxD)


def next_frame_contrastive_chunked(context_BxTxD: jax.Array, future_BxTxD: jax.Array,
                                   mask_BxT: jax.Array, *, temperature: float,
                                   mesh: jax.sharding.Mesh,
                                   axes: tuple[str, ...] = ('data', 'fsdp')
                                   ) -> tuple[jax.Array, jax.Array]:
  """(`next_frame_contrastive`, its accuracy) with [b T, B T] logits per device, not [BT, BT].

  CPC's anchors are (example, time) pairs, so "chunked" splits the anchor rows by example:
  each device keeps the T frames of its b = B / devices examples (bT anchors, the batch
  sharding it already has) and all-gathers the B T future latents and their mask (O(B T D)
  memory); every (time, example) of the global batch stays a candidate, exactly as in the
  plain loss. Sums of cross-entropies, hits and weights are psum-ed.

  Returns:
    (scalar loss, scalar accuracy over real anchors), float32 (float64 for float64 inputs).
  """
  if context_BxTxD.ndim != 3 or context_BxTxD.shape != future_BxTxD.shape:
    raise ValueError(f'context and future must both be [B, T, D]; got {context_BxTxD.shape} '
                     f'and {future_BxTxD.shape}.')
  devices = _devices_along(mesh, axes)
  if context_BxTxD.shape[0] % devices:
    raise ValueError(f'chunked CPC loss needs the batch ({context_BxTxD.shape[0]}) divisible '
                     f'by the {devices} devices of mesh axes {axes}.')
  dtype = loss_dtype(jnp.result_type(context_BxTxD, future_BxTxD))

  def per_device(c_bxTxD, f_bxTxD, m_bxT):
    b, t, d = c_bxTxD.shape
    c_nxD = l2_normalize(c_bxTxD.reshape(b * t, d).astype(dtype))
    f_nxD = l2_normalize(f_bxTxD.reshape(b * t, d).astype(dtype))
    xent, hits, weight = _chunked_row_xent(c_nxD, f_nxD, m_bxT.reshape(b * t).astype(dtype),
                                           temperature, axes)
    weight = jnp.maximum(weight, 1.0)
    return xent / weight, hits / weight

  spec, replicated = jax.sharding.PartitionSpec(axes), jax.sharding.PartitionSpec()
  return jax.shard_map(per_device, mesh=mesh, in_specs=(spec, spec, spec),
                       out_specs=(replicated, replicated))(context_BxTxD, future_BxTxD, mask_BxT)
