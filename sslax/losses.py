"""Self-supervised losses as pure functions of arrays.

Every function here takes plain (possibly sharded, global) `jax.Array`s, holds no state and
reads no config. Under `jax.jit` a global array sharded over the batch axis is still one
logical array, so a loss that mixes examples (InfoNCE's negatives) sees the whole global batch
on every device count; XLA inserts the collectives.

Shape suffixes: N = examples per view, D = embedding width.
"""
import jax
import jax.numpy as jnp
import optax

# Finite stand-in for -inf on masked logits: exp() of it is exactly 0 in float32/float64, yet
# unlike -inf it never produces `-inf - -inf = nan` inside softmax or its gradient.
_MASKED_LOGIT = -1e9
# Floor on the squared norm before normalising, so an all-zero embedding gives a zero vector
# (and a finite gradient) instead of 0/0.
_MIN_SQUARED_NORM = 1e-24


def _compute_dtype(dtype: jnp.dtype) -> jnp.dtype:
  """float32 for low-precision inputs (bf16/f16 logits lose the softmax), float64 kept."""
  return jnp.promote_types(dtype, jnp.float32)


def l2_normalize(x_NxD: jax.Array, axis: int = -1) -> jax.Array:
  """Scales rows to unit L2 norm; zero rows stay zero. Same shape as the input."""
  squared_norm_Nx1 = jnp.sum(jnp.square(x_NxD), axis=axis, keepdims=True)
  return x_NxD * jax.lax.rsqrt(jnp.maximum(squared_norm_Nx1, _MIN_SQUARED_NORM))


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
  dtype = _compute_dtype(jnp.result_type(z_a_NxD, z_b_NxD))
  z_2NxD = l2_normalize(jnp.concatenate([z_a_NxD, z_b_NxD], axis=0).astype(dtype))
  # HIGHEST keeps float32 matmuls exact on accelerators whose default is bf16 passes (TPU).
  sim_2Nx2N = jnp.matmul(z_2NxD, z_2NxD.T, precision=jax.lax.Precision.HIGHEST)
  logits_2Nx2N = sim_2Nx2N / jnp.asarray(temperature, dtype)
  logits_2Nx2N = jnp.where(jnp.eye(2 * n, dtype=bool), jnp.asarray(_MASKED_LOGIT, dtype),
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
  devices = 1
  for axis in axes:
    devices *= mesh.shape[axis]
  if z_a_NxD.ndim != 2 or z_a_NxD.shape != z_b_NxD.shape or n_global % devices:
    raise ValueError(
        f'chunked InfoNCE needs two [N, D] views with N divisible by the {devices} devices of '
        f'mesh axes {axes}; got {z_a_NxD.shape} and {z_b_NxD.shape}.')
  dtype = _compute_dtype(jnp.result_type(z_a_NxD, z_b_NxD))
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
    logits_2nx2N = jnp.where(is_self_2nx2N, jnp.asarray(_MASKED_LOGIT, dtype), logits_2nx2N)
    xent_2n = optax.softmax_cross_entropy_with_integer_labels(logits_2nx2N, positive_2n)
    hits_2n = (jnp.argmax(logits_2nx2N, axis=-1) == positive_2n).astype(jnp.float32)
    return (jax.lax.psum(jnp.sum(xent_2n), axes) / (2 * n_global),
            jax.lax.psum(jnp.sum(hits_2n), axes) / (2 * n_global))

  replicated = jax.sharding.PartitionSpec()
  return jax.shard_map(per_device, mesh=mesh, in_specs=(spec, spec),
                       out_specs=(replicated, replicated))(z_a_NxD, z_b_NxD)


def _devices_along(mesh: jax.sharding.Mesh, axes: tuple[str, ...]) -> int:
  devices = 1
  for axis in axes:
    devices *= mesh.shape[axis]
  return devices


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
                         jnp.asarray(_MASKED_LOGIT, logits_nxN.dtype))
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
  dtype = _compute_dtype(jnp.result_type(q_NxD, k_NxD))
  n_global = q_NxD.shape[0]

  def per_device(q_nxD, k_nxD):
    q_nxD, k_nxD = l2_normalize(q_nxD.astype(dtype)), l2_normalize(k_nxD.astype(dtype))
    xent, _, _ = _chunked_row_xent(q_nxD, k_nxD, jnp.ones(q_nxD.shape[0], dtype), temperature,
                                   axes)
    return 2.0 * temperature * xent / n_global

  spec = jax.sharding.PartitionSpec(axes)
  return jax.shard_map(per_device, mesh=mesh, in_specs=(spec, spec),
                       out_specs=jax.sharding.PartitionSpec())(q_NxD, k_NxD)


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


# ---- Token prediction (masked and next-token language modelling). ---------------------------


def masked_token_xent(logits_xV: jax.Array, targets_x: jax.Array,
                      weights_x: jax.Array) -> jax.Array:
  """Masked-LM loss (Devlin et al. 2019, "BERT", section 3.1): mean cross-entropy over the
  predicted positions of the whole (global) batch.

  Any leading shape works: dense [B, L, V] logits with a [B, L] mask, or logits gathered at
  P chosen positions, [B, P, V] with [B, P] weights. Positions of weight 0 contribute
  neither value nor gradient. The mean is over the global number of weighted positions, so
  examples with more masked tokens count more (as in BERT), independent of sharding.

  Args:
    logits_xV: [..., V] logits.
    targets_x: [...] int target ids.
    weights_x: [...] 1 where a position is predicted, 0 elsewhere (bool or float).

  Returns:
    Scalar float32; 0 when nothing is weighted.
  """
  xent_x = optax.softmax_cross_entropy_with_integer_labels(
      logits_xV.astype(_compute_dtype(logits_xV.dtype)), targets_x)
  weights_x = weights_x.astype(xent_x.dtype)
  return jnp.sum(xent_x * weights_x) / jnp.maximum(jnp.sum(weights_x), 1.0)


def next_token_xent(logits_BxLxV: jax.Array, tokens_BxL: jax.Array,
                    valid_BxL: jax.Array) -> jax.Array:
  """Causal LM loss (Radford et al. 2018/2019, GPT): logits at position t predict token t+1;
  mean over the global batch's valid targets.

  Args:
    logits_BxLxV: [B, L, V] logits of a causal model run on `tokens_BxL`.
    tokens_BxL: [B, L] int token ids.
    valid_BxL: [B, L] true for real (non-PAD) tokens; target t+1 counts when it is valid.

  Returns:
    Scalar float32.
  """
  return masked_token_xent(logits_BxLxV[:, :-1], tokens_BxL[:, 1:], valid_BxL[:, 1:])


def token_accuracy(logits_xV: jax.Array, targets_x: jax.Array, weights_x: jax.Array) -> jax.Array:
  """Weighted fraction of positions whose argmax logit is the target (a training metric)."""
  weights_x = weights_x.astype(jnp.float32)
  hits_x = (jnp.argmax(logits_xV, axis=-1) == targets_x).astype(jnp.float32)
  return jnp.sum(hits_x * weights_x) / jnp.maximum(jnp.sum(weights_x), 1.0)


# ---- Non-contrastive and distillation losses (vision method zoo). ---------------------------


def normalized_mse(p_NxD: jax.Array, z_NxD: jax.Array) -> jax.Array:
  """BYOL's regression loss (Grill et al. 2020, "Bootstrap Your Own Latent", eq. 2):
  ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z), averaged over the N rows.

  Args:
    p_NxD: online predictions, [N, D].
    z_NxD: target projections, [N, D] (the caller stops their gradient).

  Returns:
    Scalar in [0, 4], float32 (float64 for float64 inputs).
  """
  dtype = _compute_dtype(jnp.result_type(p_NxD, z_NxD))
  cos_N = jnp.sum(l2_normalize(p_NxD.astype(dtype)) * l2_normalize(z_NxD.astype(dtype)), axis=-1)
  return jnp.mean(2.0 - 2.0 * cos_N)


def moco_v3_loss(q_NxD: jax.Array, k_NxD: jax.Array, *, temperature: float) -> jax.Array:
  """One direction of MoCo v3's InfoNCE (Chen, Xie, He 2021, "An Empirical Study of Training
  Self-Supervised Vision Transformers", Algorithm 1): query n's positive is key n, the other
  N - 1 keys of the global batch are its negatives; scaled by 2 * temperature as in the paper.

  Args:
    q_NxD: queries (online predictor outputs), [N, D].
    k_NxD: keys (momentum-encoder projections of the other view), [N, D].
    temperature: tau > 0.

  Returns:
    Scalar, float32 (float64 for float64 inputs). The symmetric loss is
    moco_v3_loss(q1, k2) + moco_v3_loss(q2, k1).
  """
  dtype = _compute_dtype(jnp.result_type(q_NxD, k_NxD))
  q_NxD, k_NxD = l2_normalize(q_NxD.astype(dtype)), l2_normalize(k_NxD.astype(dtype))
  logits_NxN = jnp.matmul(q_NxD, k_NxD.T, precision=jax.lax.Precision.HIGHEST) / temperature
  labels_N = jnp.arange(q_NxD.shape[0], dtype=jnp.int32)
  xent = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits_NxN, labels_N))
  return 2.0 * temperature * xent


def _covariance(z_NxD: jax.Array) -> jax.Array:
  """Unbiased covariance over the batch axis, [D, D]."""
  centred_NxD = z_NxD - jnp.mean(z_NxD, axis=0)
  return jnp.matmul(centred_NxD.T, centred_NxD,
                    precision=jax.lax.Precision.HIGHEST) / (z_NxD.shape[0] - 1)


def _off_diagonal_square_sum(c_DxD: jax.Array) -> jax.Array:
  return jnp.sum(jnp.square(c_DxD)) - jnp.sum(jnp.square(jnp.diagonal(c_DxD)))


def vicreg_loss(z_a_NxD: jax.Array, z_b_NxD: jax.Array, *, invariance_weight: float = 25.0,
                variance_weight: float = 25.0, covariance_weight: float = 1.0,
                eps: float = 1e-4) -> tuple[jax.Array, dict[str, jax.Array]]:
  """VICReg (Bardes, Ponce, LeCun 2022, "VICReg: Variance-Invariance-Covariance Regularization
  for Self-Supervised Learning", eq. 6):
    lambda * s(Z, Z') + mu * [v(Z) + v(Z')] + nu * [c(Z) + c(Z')],
  s = mean squared distance, v = mean_d relu(1 - sqrt(Var_d + eps)) (unbiased variance over
  the batch), c = sum of squared off-diagonal covariances / D. The variance and covariance
  terms are statistics of the batch: pass global arrays so they span every device's rows.

  Args:
    z_a_NxD, z_b_NxD: the two views' expander outputs, [N, D], N >= 2.

  Returns:
    (scalar loss, {'invariance', 'variance', 'covariance'} unweighted terms, each summed over
    both views where the paper does).
  """
  dtype = _compute_dtype(jnp.result_type(z_a_NxD, z_b_NxD))
  z_a_NxD, z_b_NxD = z_a_NxD.astype(dtype), z_b_NxD.astype(dtype)
  d = z_a_NxD.shape[1]
  invariance = jnp.mean(jnp.square(z_a_NxD - z_b_NxD))
  variance = covariance = jnp.zeros((), dtype)
  for z_NxD in (z_a_NxD, z_b_NxD):
    std_D = jnp.sqrt(jnp.var(z_NxD, axis=0, ddof=1) + eps)
    variance += jnp.mean(jax.nn.relu(1.0 - std_D))
    covariance += _off_diagonal_square_sum(_covariance(z_NxD)) / d
  value = (invariance_weight * invariance + variance_weight * variance
           + covariance_weight * covariance)
  return value, {'invariance': invariance, 'variance': variance, 'covariance': covariance}


def barlow_twins_loss(z_a_NxD: jax.Array, z_b_NxD: jax.Array, *, off_diagonal_weight: float,
                      eps: float = 1e-5) -> jax.Array:
  """Barlow Twins (Zbontar et al. 2021, "Barlow Twins: Self-Supervised Learning via Redundancy
  Reduction", eq. 1): with each feature standardised over the batch (biased variance, as the
  paper's BatchNorm without affine), C = z_a^T z_b / N and
    L = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2.
  Pass global arrays: C is a statistic of the whole batch.

  Args:
    z_a_NxD, z_b_NxD: the two views' projector outputs, [N, D].
    off_diagonal_weight: lambda (the paper uses 5e-3 for D = 8192).
    eps: added to the variance before the square root.

  Returns:
    Scalar, float32 (float64 for float64 inputs).
  """
  dtype = _compute_dtype(jnp.result_type(z_a_NxD, z_b_NxD))
  def standardise(z_NxD):
    z_NxD = z_NxD.astype(dtype)
    return (z_NxD - jnp.mean(z_NxD, axis=0)) / jnp.sqrt(jnp.var(z_NxD, axis=0) + eps)
  c_DxD = jnp.matmul(standardise(z_a_NxD).T, standardise(z_b_NxD),
                     precision=jax.lax.Precision.HIGHEST) / z_a_NxD.shape[0]
  on_diagonal = jnp.sum(jnp.square(1.0 - jnp.diagonal(c_DxD)))
  return on_diagonal + off_diagonal_weight * _off_diagonal_square_sum(c_DxD)


def dino_loss(student_SxNxK: jax.Array, teacher_TxNxK: jax.Array, center_K: jax.Array, *,
              student_temperature: float, teacher_temperature: jax.Array | float) -> jax.Array:
  """DINO's cross-view distillation loss (Caron et al. 2021, "Emerging Properties in
  Self-Supervised Vision Transformers", Algorithm 1): the teacher's centred, sharpened
  distribution on global crop t supervises the student's on every other crop s != t.

  Crop order: the first T student crops are the same global crops the teacher saw, so pairs
  with s == t (same view) are skipped; the average is over the remaining pairs and N.

  Args:
    student_SxNxK: student logits for S crops (T global first, then local), [S, N, K].
    teacher_TxNxK: teacher logits for the T global crops, [T, N, K] (gradient stopped by the
      caller).
    center_K: running mean of teacher logits, [K].
    student_temperature: tau_s.
    teacher_temperature: tau_t (sharpening; may be a traced scalar from a warmup schedule).

  Returns:
    Scalar, float32 (float64 for float64 inputs).
  """
  dtype = _compute_dtype(jnp.result_type(student_SxNxK, teacher_TxNxK))
  teacher_TxNxK = jax.nn.softmax(
      (teacher_TxNxK.astype(dtype) - center_K.astype(dtype)) / teacher_temperature, axis=-1)
  log_student_SxNxK = jax.nn.log_softmax(student_SxNxK.astype(dtype) / student_temperature,
                                         axis=-1)
  # xent_TxS[t, s] = mean_n H(teacher_t, student_s).
  xent_TxS = -jnp.einsum('tnk,snk->ts', teacher_TxNxK, log_student_SxNxK,
                         precision=jax.lax.Precision.HIGHEST) / student_SxNxK.shape[1]
  num_teacher, num_student = teacher_TxNxK.shape[0], student_SxNxK.shape[0]
  other_TxS = ~jnp.eye(num_teacher, num_student, dtype=bool)
  return jnp.sum(jnp.where(other_TxS, xent_TxS, 0.0)) / jnp.sum(other_TxS)


def normalize_patches(patches_NxLxP: jax.Array, eps: float = 1e-6) -> jax.Array:
  """MAE's per-patch target normalisation (He et al. 2021, "Masked Autoencoders Are Scalable
  Vision Learners", sec. 4): each patch's pixels to zero mean and unit variance. Same shape."""
  mean_NxLx1 = jnp.mean(patches_NxLxP, axis=-1, keepdims=True)
  var_NxLx1 = jnp.var(patches_NxLxP, axis=-1, keepdims=True)
  return (patches_NxLxP - mean_NxLx1) * jax.lax.rsqrt(var_NxLx1 + eps)


# ---- Frame prediction (audio and video: next-frame and masked-frame objectives). ------------


def masked_mse(pred_xD: jax.Array, target_xD: jax.Array, weights_x: jax.Array) -> jax.Array:
  """Mean squared error over the weighted positions of the whole (global) batch.

  MAE's reconstruction loss (He et al. 2022, "Masked Autoencoders Are Scalable Vision
  Learners", section 3: per-patch pixels [N, L, P] with a [N, L] mask of the hidden patches)
  and masked-frame reconstruction of log-mel frames: only positions hidden from the model
  count.

  Args:
    pred_xD: [..., D] predictions.
    target_xD: [..., D] targets (no gradient flows into them).
    weights_x: [...] 1 where a position counts, 0 elsewhere (bool or float).

  Returns:
    Scalar: the mean over weighted positions and over D; 0 when nothing is weighted.
  """
  dtype = _compute_dtype(jnp.result_type(pred_xD, target_xD))
  err_x = jnp.mean(jnp.square(pred_xD.astype(dtype)
                              - jax.lax.stop_gradient(target_xD).astype(dtype)), axis=-1)
  weights_x = weights_x.astype(dtype)
  return jnp.sum(err_x * weights_x) / jnp.maximum(jnp.sum(weights_x), 1.0)


def next_frame_regression(pred_BxTxD: jax.Array, target_BxTxD: jax.Array, mask_BxT: jax.Array,
                          k: int, *, distance: str = 'l1') -> jax.Array:
  """Autoregressive predictive coding (Chung et al. 2019, "An Unsupervised Autoregressive Model
  for Speech Representation Learning", eq. 2): the prediction made at step t is compared with
  the target frame at t + k.

  A pair (t, t + k) counts when both frames are real (mask true); the mean is over the
  global batch's counted pairs and over D, so it does not depend on sharding.

  Args:
    pred_BxTxD: [B, T, D] predictions, made from frames <= t by a causal model.
    target_BxTxD: [B, T, D] target frames (no gradient flows into them).
    mask_BxT: [B, T] true for real frames.
    k: steps ahead, 1 <= k < T.
    distance: 'l1' (APC's choice) or 'l2' (squared error).

  Returns:
    Scalar float32 (float64 for float64 inputs).
  """
  t = pred_BxTxD.shape[1]
  if not 1 <= k < t:
    raise ValueError(f'k={k} steps ahead needs 1 <= k < T={t} frames.')
  if distance not in ('l1', 'l2'):
    raise ValueError(f"distance={distance!r} is unknown; choose 'l1' or 'l2'.")
  dtype = _compute_dtype(jnp.result_type(pred_BxTxD, target_BxTxD))
  diff = (pred_BxTxD[:, :-k].astype(dtype)
          - jax.lax.stop_gradient(target_BxTxD[:, k:]).astype(dtype))
  err_BxT = jnp.mean(jnp.abs(diff) if distance == 'l1' else jnp.square(diff), axis=-1)
  weights_BxT = (mask_BxT[:, :-k] & mask_BxT[:, k:]).astype(dtype)
  return jnp.sum(err_BxT * weights_BxT) / jnp.maximum(jnp.sum(weights_BxT), 1.0)


def next_frame_contrastive_logits(context_BxTxD: jax.Array, future_BxTxD: jax.Array,
                                  mask_BxT: jax.Array, *,
                                  temperature: float) -> tuple[jax.Array, jax.Array]:
  """Logits [B*T, B*T] of `next_frame_contrastive` (masked columns at a large negative) and
  the weights [B*T] of its rows (1 for real anchors)."""
  if context_BxTxD.ndim != 3 or context_BxTxD.shape != future_BxTxD.shape:
    raise ValueError(f'context and future must both be [B, T, D]; got {context_BxTxD.shape} '
                     f'and {future_BxTxD.shape}.')
  b, t, d = context_BxTxD.shape
  dtype = _compute_dtype(jnp.result_type(context_BxTxD, future_BxTxD))
  c_NxD = l2_normalize(context_BxTxD.reshape(b * t, d).astype(dtype))
  f_NxD = l2_normalize(future_BxTxD.reshape(b * t, d).astype(dtype))
  logits_NxN = jnp.matmul(c_NxD, f_NxD.T, precision=jax.lax.Precision.HIGHEST) / jnp.asarray(
      temperature, dtype)
  valid_N = mask_BxT.reshape(b * t)
  logits_NxN = jnp.where(valid_N[None, :], logits_NxN, jnp.asarray(_MASKED_LOGIT, dtype))
  return logits_NxN, valid_N.astype(dtype)


def next_frame_contrastive(context_BxTxD: jax.Array, future_BxTxD: jax.Array,
                           mask_BxT: jax.Array, *, temperature: float) -> jax.Array:
  """Contrastive predictive coding's InfoNCE (van den Oord et al. 2018, "Representation
  Learning with Contrastive Predictive Coding", eq. 4), negatives from the global batch.

  The caller aligns the pairs: `context[b, t]` is the prediction (W_k c_t) and
  `future[b, t]` its true future latent z_{t+k}. Each real anchor (b, t) scores every real
  future (b', t') of the global batch by cosine similarity / temperature (the normalised
  form of wav2vec 2.0, Baevski et al. 2020, which trains more stably than CPC's raw dot
  product); its own future is the positive, all other times of all examples are negatives:
    l_{b,t} = -log softmax_{(b',t') real}(s[(b,t), (b',t')])[(b,t)].
  The mean is over real anchors. Under `jax.jit` on batch-sharded global arrays every
  device's latents are negatives, as on one device.

  Args:
    context_BxTxD: [B, T, D] predictions of the future latents.
    future_BxTxD: [B, T, D] true future latents, aligned with the context.
    mask_BxT: [B, T] true where both the anchor and its future are real frames.
    temperature: softmax temperature tau > 0.

  Returns:
    Scalar float32 (float64 for float64 inputs); 0 when no anchor is real.
  """
  logits_NxN, weights_N = next_frame_contrastive_logits(context_BxTxD, future_BxTxD,
                                                        mask_BxT, temperature=temperature)
  labels_N = jnp.arange(logits_NxN.shape[0])
  xent_N = optax.softmax_cross_entropy_with_integer_labels(logits_NxN, labels_N)
  return jnp.sum(xent_N * weights_N) / jnp.maximum(jnp.sum(weights_N), 1.0)


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
  dtype = _compute_dtype(jnp.result_type(context_BxTxD, future_BxTxD))

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
