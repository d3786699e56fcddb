"""Moving-digit clips (Srivastava et al. 2015, "Unsupervised Learning of Video Representations
using LSTMs": Moving MNIST) generated on device from a batch of real digit images.

Each digit starts at a uniformly random integer position on a blank canvas and moves with a
random direction at a fixed speed, bouncing off the walls; its path is rounded to whole
pixels, so every frame is the unaltered source digit pasted at some offset. Example n of a
(global) batch draws from fold_in(key, n): the same key and digits give the same clips on any
device count, and the digit's label stays the clip's label.

Shape suffixes: B = batch, T = frames, H/W = digit, S = canvas side.
"""
import jax
import jax.numpy as jnp

from sslax import errors

Array = jax.Array


def _bounce(x: Array, room: int) -> Array:
  """Position on [0, room] of a point moving freely to x, reflected at both walls."""
  if room == 0:
    return jnp.zeros_like(x)
  m = jnp.mod(x, 2 * room)
  return room - jnp.abs(m - room)


def trajectory(key: Array, *, num_frames: int, room: int, speed: float) -> Array:
  """[T, 2] integer (row, col) offsets in [0, room]: start uniform, direction uniform."""
  start_key, angle_key = jax.random.split(key)
  start_2 = jax.random.uniform(start_key, (2,), maxval=room)
  angle = jax.random.uniform(angle_key, (), maxval=2 * jnp.pi)
  velocity_2 = speed * jnp.stack([jnp.sin(angle), jnp.cos(angle)])
  free_Tx2 = start_2 + jnp.arange(num_frames)[:, None] * velocity_2
  return jnp.round(_bounce(free_Tx2, room)).astype(jnp.int32)


def moving_digit(key: Array, digit_HxW: Array, *, num_frames: int, canvas: int,
                 speed: float) -> Array:
  """One clip [T, S, S] float32 in [0, 1] of `digit_HxW` (uint8 or [0, 1] floats)."""
  h, w = digit_HxW.shape
  if canvas < max(h, w):
    raise errors.ConfigError(f'canvas {canvas} is smaller than the {h}x{w} digits; raise '
                             'config.video.canvas.')
  digit = digit_HxW.astype(jnp.float32)
  if digit_HxW.dtype == jnp.uint8:
    digit = digit / 255.0
  offsets_Tx2 = trajectory(key, num_frames=num_frames, room=canvas - max(h, w), speed=speed)
  blank = jnp.zeros((canvas, canvas), jnp.float32)
  return jax.vmap(lambda o: jax.lax.dynamic_update_slice(blank, digit, (o[0], o[1])))(offsets_Tx2)


def moving_digits(key: Array, digits_BxHxW: Array, *, num_frames: int, canvas: int,
                  speed: float) -> Array:
  """Clips [B, T, S, S] of a batch of digits, example n from fold_in(key, n)."""
  keys_B = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(digits_BxHxW.shape[0]))
  return jax.vmap(lambda k, d: moving_digit(k, d, num_frames=num_frames, canvas=canvas,
                                            speed=speed))(keys_B, digits_BxHxW)
