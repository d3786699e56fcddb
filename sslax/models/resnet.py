"""ResNet encoders (He et al. 2016) with CIFAR and ImageNet stems.

BatchNorm normalises over the leading axis of whatever array it is given; under
`jax.jit` on a batch sharded across devices that axis is the *global* batch, so
the statistics are global (SimCLR's "global BN") without any cross-device code.
"""
from collections.abc import Sequence
import functools

from typing import Any

import flax.linen as nn
from flax.linen import dtypes
import jax
import jax.numpy as jnp

from sslax import errors

# config.model.conv_impl: how convolutions are computed (same parameters, same numerics).
#   'xla':    lax.conv_general_dilated; XLA's CPU backend hands it to YNNPACK, and computes
#             the weight gradient as a convolution whose window is the whole feature map.
#   'im2col': the k*k shifted (strided) slices of the padded input side by side, then one
#             matmul with the [k*k*C_in, C_out] kernel. Forward, input and weight gradients
#             are then all plain GEMMs (the weight gradient is cols^T @ dy) plus slicing,
#             which XLA's CPU matmul path runs faster on small feature maps with many
#             channels (measured in experiments/benchmarks/conv_impl.py); it costs k*k
#             times the input's memory for the columns.
#   'wgrad_gemm': XLA's convolution forward and input gradient (YNNPACK on CPU), and the
#             weight gradient as k*k GEMMs, one per kernel offset: dW[i, j] = (shifted,
#             strided slice of the padded input)^T @ dy (`conv_wgrad_gemm`). XLA's own weight
#             gradient (a convolution whose window is the whole feature map) took 6x the
#             forward's time on the 32x32x64 layer on CPU; the GEMMs 2.3x (conv_impl.py).
#             Outputs of at most TINY_MAX_PIXELS positions (2x2, 1x1) take the 'im2col' path
#             instead: XLA's CPU convolution ran at ~1 GFLOP/s there (a 3x3 convolution of
#             128 maps of 2x2x512, forward + gradients: 6.0 s vs 0.11 s as im2col; 4x4x256 ->
#             2x2x512, stride 2: 0.86 s vs 0.05 s), which made the DINO ResNet-18 step, whose
#             16x16 local crops reach 2x2 in the last stage, 5x lightly's time. At 4x4 outputs
#             im2col measured 0.73-0.94x and above that 0.9-1.7x, so the rule stops at 2x2.
#   'auto' (default): 'wgrad_gemm' on the CPU backend, 'xla' on GPU and TPU (where XLA's
#             convolutions are cuDNN's / the TPU's own; no measurement here says to replace
#             them). On the 2-core CPU the whole SimCLR ResNet-18 step took 0.78x / 0.72x /
#             0.56x of 'xla''s time at batch 16 / 32 / 64 ('im2col': 0.89x / 0.61x / 0.56x),
#             with the forward pass unchanged, at 1.13x 'xla''s peak memory (699 vs 618 MiB at
#             batch 32, XLA's buffer assignment; see _conv_wgrad_gemm_bwd).
CONV_IMPLS = ('auto', 'xla', 'im2col', 'wgrad_gemm')
TINY_MAX_PIXELS = 2 * 2


def _same_padding(size: int, k: int, stride: int) -> tuple[int, int]:
  """TensorFlow/flax 'SAME' padding (low, high) of one spatial axis."""
  out = -(-size // stride)
  total = max((out - 1) * stride + k - size, 0)
  return total // 2, total - total // 2


def _conv(x, kernel, strides, padding):
  return jax.lax.conv_general_dilated(x, kernel, strides, padding,
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_wgrad_gemm(x_BxHxWxC: jax.Array, kernel_KhxKwxCxO: jax.Array,
                    strides: tuple[int, int], padding: tuple[tuple[int, int], ...]) -> jax.Array:
  """lax.conv_general_dilated (NHWC, HWIO) whose weight gradient is computed by GEMMs."""
  return _conv(x_BxHxWxC, kernel_KhxKwxCxO, strides, padding)


def _conv_wgrad_gemm_fwd(x, kernel, strides, padding):
  return _conv(x, kernel, strides, padding), (x, kernel)


def _conv_wgrad_gemm_bwd(strides, padding, residuals, dy_BxHoxWoxO):
  x, kernel = residuals
  # The input gradient stays XLA's (a transposed convolution, fast on YNNPACK).
  _, input_vjp = jax.vjp(lambda x_: _conv(x_, kernel, strides, padding), x)
  (dx,) = input_vjp(dy_BxHoxWoxO)
  kh, kw, c, o = kernel.shape
  (sh, sw), (_, ho, wo, _) = strides, dy_BxHoxWoxO.shape
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  dy_NxO = dy_BxHoxWoxO.reshape(-1, o)
  window = (xp.shape[0], (ho - 1) * sh + 1, (wo - 1) * sw + 1, c)

  def offset_gemm(carry, ij):
    # One [N, C]^T @ [N, O] GEMM for kernel offset (i, j) (N = B*Ho*Wo), accumulated in
    # float32. A scan, not a Python loop: unrolled, XLA computed all k*k shifted slices of
    # the input before their GEMMs (and could hoist them into the forward pass), which made
    # the SimCLR ResNet-18 step peak at 1514 MiB against XLA convolutions' 618 at batch 32;
    # in a scan one slice is live at a time: 699 MiB, and no slower (measured, see
    # docs/performance.md).
    i, j = ij // kw, ij % kw
    x_NxC = jax.lax.dynamic_slice(xp, (0, i, j, 0), window)[:, ::sh, ::sw, :].reshape(-1, c)
    return carry, jax.lax.dot_general(x_NxC, dy_NxO, (((0,), (0,)), ((), ())),
                                      preferred_element_type=jnp.float32)

  _, dw_KxCxO = jax.lax.scan(offset_gemm, None, jnp.arange(kh * kw))
  return dx, dw_KxCxO.reshape(kh, kw, c, o).astype(kernel.dtype)


conv_wgrad_gemm.defvjp(_conv_wgrad_gemm_fwd, _conv_wgrad_gemm_bwd)


class Conv(nn.Module):
  """nn.Conv(features, kernel_size, strides, padding='SAME', use_bias=False) computed another
  way: im2col + one matmul ('im2col'), or with GEMM weight gradients ('wgrad_gemm';
  see CONV_IMPLS). Its parameter is nn.Conv's ('kernel',
  [kh, kw, C_in, C_out]) and its class name is nn.Conv's, so flax auto-names it Conv_0,
  Conv_1, ... as it does nn.Conv: the two are interchangeable on the same checkpoint."""
  features: int
  kernel_size: tuple[int, int]
  strides: int | tuple[int, int] = 1
  use_bias: bool = False
  dtype: Any = jnp.float32
  impl: str = 'im2col'   # or 'wgrad_gemm'

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    if self.use_bias:
      raise ValueError('The im2col Conv has no bias (the ResNet convolutions have none).')
    kh, kw = self.kernel_size
    sh, sw = (self.strides, self.strides) if isinstance(self.strides, int) else self.strides
    c = x_BxHxWxC.shape[-1]
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (kh, kw, c, self.features))
    x, kernel = dtypes.promote_dtype(x_BxHxWxC, kernel, dtype=self.dtype)
    _, h, w, _ = x.shape
    (pt, pb), (pl, pr) = _same_padding(h, kh, sh), _same_padding(w, kw, sw)
    ho, wo = -(-h // sh), -(-w // sw)
    if self.impl == 'wgrad_gemm' and ho * wo > TINY_MAX_PIXELS:
      return conv_wgrad_gemm(x, kernel, (sh, sw), ((pt, pb), (pl, pr)))
    x = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    cols = [x[:, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw, :]
            for i in range(kh) for j in range(kw)]
    cols_BxHoxWoxK = cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)
    return jnp.dot(cols_BxHoxWoxK, kernel.reshape(kh * kw * c, self.features))


def resolve(conv_impl: str) -> str:
  """The implementation 'auto' stands for on the default backend; others unchanged."""
  if conv_impl == 'auto':
    return 'wgrad_gemm' if jax.default_backend() == 'cpu' else 'xla'
  return conv_impl


def _conv_cls(conv_impl: str):
  conv_impl = resolve(conv_impl)
  if conv_impl == 'xla':
    return nn.Conv
  if conv_impl in ('im2col', 'wgrad_gemm'):
    return functools.partial(Conv, impl=conv_impl)
  raise errors.ConfigError(f'config.model.conv_impl={conv_impl!r} is unknown; choose one of '
                           f'{CONV_IMPLS}.')


def _norm(kind: str, train: bool, zero_init: bool = False, dtype: Any = jnp.float32) -> nn.Module:
  # Flax norms compute their statistics in float32 even for bfloat16 `dtype` inputs.
  scale_init = nn.initializers.zeros if zero_init else nn.initializers.ones
  if kind == 'batch':
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        scale_init=scale_init, dtype=dtype)
  if kind == 'group':
    return nn.GroupNorm(num_groups=None, group_size=8, scale_init=scale_init, dtype=dtype)
  raise errors.ConfigError(f"config.model.norm={kind!r} is unknown; choose 'batch' or 'group'.")


class BasicBlock(nn.Module):
  width: int
  stride: int
  norm: str
  zero_init: bool = False
  dtype: Any = jnp.float32   # compute dtype; parameters stay float32
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x_BxHxWxC: jnp.ndarray, train: bool) -> jnp.ndarray:
    conv = functools.partial(_conv_cls(self.conv_impl), use_bias=False, dtype=self.dtype)
    y = conv(self.width, (3, 3), self.stride)(x_BxHxWxC)
    norm = functools.partial(_norm, self.norm, train, dtype=self.dtype)
    y = nn.relu(norm()(y))
    y = conv(self.width, (3, 3))(y)
    y = _norm(self.norm, train, zero_init=self.zero_init, dtype=self.dtype)(y)
    shortcut = x_BxHxWxC
    if shortcut.shape != y.shape:
      shortcut = norm()(conv(self.width, (1, 1), self.stride)(shortcut))
    return nn.relu(y + shortcut)


class BottleneckBlock(nn.Module):
  width: int
  stride: int
  norm: str
  zero_init: bool = False
  expansion: int = 4
  dtype: Any = jnp.float32
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x_BxHxWxC: jnp.ndarray, train: bool) -> jnp.ndarray:
    conv = functools.partial(_conv_cls(self.conv_impl), use_bias=False, dtype=self.dtype)
    norm = functools.partial(_norm, self.norm, train, dtype=self.dtype)
    y = nn.relu(norm()(conv(self.width, (1, 1))(x_BxHxWxC)))
    y = nn.relu(norm()(conv(self.width, (3, 3), self.stride)(y)))
    y = _norm(self.norm, train, zero_init=self.zero_init, dtype=self.dtype)(
        conv(self.width * self.expansion, (1, 1))(y))
    shortcut = x_BxHxWxC
    if shortcut.shape != y.shape:
      shortcut = norm()(
          conv(self.width * self.expansion, (1, 1), self.stride)(shortcut))
    return nn.relu(y + shortcut)


class ResNet(nn.Module):
  """Returns globally average-pooled features [B, D] (D = last stage's output width).

  stem='cifar': one 3x3 conv, no pooling (small images, SimCLR's CIFAR variant);
  stem='imagenet': 7x7/2 conv + 3x3/2 max-pool.
  zero_init_residual: the last norm scale of each block starts at 0, so every block
  starts as the identity (Goyal et al. 2017; SimCLR's TF code). It speeds large-batch
  training but makes the random-init baseline a near-identity network, so it is off
  by default (as in torchvision).
  """
  widths: Sequence[int] = (64, 128, 256, 512)
  blocks: Sequence[int] = (2, 2, 2, 2)
  block: str = 'basic'
  stem: str = 'cifar'
  stem_width: int = 64
  norm: str = 'batch'
  zero_init_residual: bool = False
  dtype: Any = jnp.float32   # compute dtype (config.model.dtype); parameters stay float32
  conv_impl: str = 'auto'    # config.model.conv_impl, see CONV_IMPLS

  @nn.compact
  def __call__(self, x_BxHxWxC: jnp.ndarray, train: bool,
               return_stages: bool = False) -> jnp.ndarray | list[jnp.ndarray]:
    """Pooled features [B, D]; with `return_stages`, each stage's output map [B, h, w, C]
    instead (strides 1, 2, 4, ... after the stem), for the dense heads (models/dense.py)."""
    if len(self.widths) != len(self.blocks):
      raise errors.ConfigError(f'config.model.widths {tuple(self.widths)} and config.model.blocks '
                               f'{tuple(self.blocks)} must have the same length (one per stage).')
    block_cls = {'basic': BasicBlock, 'bottleneck': BottleneckBlock}.get(self.block)
    if block_cls is None:
      raise errors.ConfigError(
          f"config.model.block={self.block!r}; choose 'basic' or 'bottleneck'.")
    x = x_BxHxWxC
    stem_conv = functools.partial(_conv_cls(self.conv_impl), use_bias=False, dtype=self.dtype,
                                  name='stem_conv')
    if self.stem == 'cifar':
      x = stem_conv(self.stem_width, (3, 3))(x)
      x = nn.relu(_norm(self.norm, train, dtype=self.dtype)(x))
    elif self.stem == 'imagenet':
      x = stem_conv(self.stem_width, (7, 7), 2)(x)
      x = nn.relu(_norm(self.norm, train, dtype=self.dtype)(x))
      x = nn.max_pool(x, (3, 3), (2, 2), padding='SAME')
    else:
      raise errors.ConfigError(f"config.model.stem={self.stem!r}; choose 'cifar' or 'imagenet'.")
    stages = []
    for stage, (width, n) in enumerate(zip(self.widths, self.blocks)):
      for i in range(n):
        stride = 2 if stage > 0 and i == 0 else 1
        x = block_cls(width, stride, self.norm, self.zero_init_residual, dtype=self.dtype,
                      conv_impl=self.conv_impl, name=f'stage{stage}_block{i}')(x, train)
      stages.append(x)
    if return_stages:
      return stages
    return jnp.mean(x, axis=(1, 2))
