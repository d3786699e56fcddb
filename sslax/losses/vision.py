"""The vision zoo's non-contrastive and distillation losses (BYOL, MoCo v3, VICReg, Barlow
Twins, DINO) and MAE's per-patch target normalisation."""
import jax
import jax.numpy as jnp
import optax

from sslax.losses.numerics import l2_normalize, loss_dtype


def normalized_mse(p_NxD: jax.Array, z_NxD: jax.Array) -> jax.Array:
  """BYOL's regression loss (Grill et al. 2020, "Bootstrap Your Own Latent", eq. 2):
  ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z), averaged over the N rows.

  Args:
    p_NxD: online predictions, [N, D].
    z_NxD: target projections, [N, D] (the caller stops their gradient).

  Returns:
    Scalar in [0, 4], float32 (float64 for float64 inputs).
  """
  dtype = loss_dtype(jnp.result_type(p_NxD, z_NxD))
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
  dtype = loss_dtype(jnp.result_type(q_NxD, k_NxD))
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
  dtype = loss_dtype(jnp.result_type(z_a_NxD, z_b_NxD))
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
  dtype = loss_dtype(jnp.result_type(z_a_NxD, z_b_NxD))
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
  dtype = loss_dtype(jnp.result_type(student_SxNxK, teacher_TxNxK))
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
