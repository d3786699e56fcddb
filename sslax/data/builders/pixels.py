"""Image file probing and decoding for folder builds, in worker processes where worth it.

Kept apart from the builders and free of TFDS/JAX imports on purpose: worker processes are
started with 'spawn' (fork is unsafe once JAX's threads run) and import only this module, so
starting them costs a fraction of a second instead of a TFDS import each.
"""
from __future__ import annotations

import collections
import concurrent.futures
import io
import logging
import multiprocessing
import os
from typing import Callable, Iterator, Sequence

import numpy as np
import PIL.Image
import simplejpeg

from sslax import errors

# Below this many files, starting worker processes costs more than it saves.
MIN_FILES_FOR_WORKERS = 4096
# On 2 cores (shared with other jobs) a 1-worker pool built CIFAR-10 slower than decoding
# inline (27-34 s vs 23-25 s), so workers start only where there are cores to spare.
MIN_CPUS_FOR_WORKERS = 4
_CHUNK = 512
_GREY_MODES = frozenset({'1', 'L', 'LA'})
_NOT_8_BIT = frozenset({'I', 'F', 'I;16', 'I;16L', 'I;16B', 'I;16N'})
# PIL raises these for files it cannot identify, truncated data and absurd sizes.
_PIL_ERRORS = (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError)


def probe(path: str) -> tuple[int, int, bool]:
  """(height, width, is_colour) from the file header alone (no pixel decoding)."""
  try:
    with PIL.Image.open(path) as image:
      width, height = image.size
      mode = image.mode
  except _PIL_ERRORS as e:
    raise errors.DataError(f'cannot read image {path}: {e}') from None
  if mode in _NOT_8_BIT:
    raise errors.DataError(
        f'{path} has mode {mode!r} (16-bit or float); sslax stores 8-bit pixels, '
        'so convert the folder to 8-bit PNG/JPEG.')
  return height, width, mode not in _GREY_MODES


def decode(path: str, shape: tuple[int, int, int]) -> np.ndarray:
  """uint8 [H,W,C] pixels of `path`; C=3 converts grey (and palette, CMYK, alpha) to RGB."""
  try:
    with PIL.Image.open(path) as image:
      pixels = np.asarray(image.convert('RGB' if shape[2] == 3 else 'L'), dtype=np.uint8)
  except _PIL_ERRORS as e:
    raise errors.DataError(f'cannot decode image {path}: {e}') from None
  if pixels.ndim == 2:
    pixels = pixels[..., None]
  if pixels.shape != tuple(shape):
    raise errors.DataError(f'{path} decodes to {pixels.shape}; the folder\'s images are {shape}.')
  return pixels


def verify(path: str) -> tuple[int, int, bool]:
  """`probe`, plus a decode of all the data, so truncated and corrupt files fail at build
  time with their name rather than in a training step. JPEGs are decoded at 1/8 DCT scale
  (every entropy-coded byte is still read, at a fraction of a full decode's cost) with
  libjpeg's warnings ("premature end of data") as errors."""
  height, width, colour = probe(path)
  try:
    with open(path, 'rb') as f:
      data = f.read()
    if data[:2] == b'\xff\xd8' and _plain_jpeg(path):
      simplejpeg.decode_jpeg(data, colorspace='GRAY', min_height=1, min_width=1,
                             min_factor=8, strict=True)
    else:
      with PIL.Image.open(path) as image:
        image.load()
  except (*_PIL_ERRORS, ValueError) as e:
    raise ValueError(f'cannot decode image {path}: {e}') from None
  return height, width, colour


def verify_chunk(paths: Sequence[str]) -> list[tuple[int, int, bool] | str]:
  """`verify` of each path, or the error message of a file that fails it."""
  out = []
  for path in paths:
    try:
      out.append(verify(path))
    except ValueError as e:
      out.append(str(e))
  return out


def _plain_jpeg(path: str) -> bool:
  """A JPEG libjpeg-turbo decodes to RGB/grey directly (not CMYK/YCCK, which it cannot)."""
  with PIL.Image.open(path) as image:
    return image.format == 'JPEG' and image.mode in ('L', 'RGB')


def encoded(path: str) -> tuple[bytes, int, int]:
  """(encoded bytes, height, width) as stored: the file's own bytes for JPEG (RGB or grey)
  and PNG; anything else (CMYK JPEGs, other formats under an image name) re-encoded once,
  as JPEG at quality 95 if it was a JPEG, else as lossless PNG."""
  with open(path, 'rb') as f:
    data = f.read()
  with PIL.Image.open(io.BytesIO(data)) as image:
    width, height = image.size
    if (image.format == 'JPEG' and image.mode in ('L', 'RGB')) or image.format == 'PNG':
      return data, height, width
    was_jpeg = image.format == 'JPEG'
    converted = image.convert('L' if image.mode in _GREY_MODES else 'RGB')
  out = io.BytesIO()
  if was_jpeg:
    converted.save(out, format='JPEG', quality=95)
  else:
    converted.save(out, format='PNG')
  return out.getvalue(), height, width


def encoded_chunk(paths: Sequence[str]) -> list[tuple[bytes, int, int]]:
  return [encoded(p) for p in paths]


def decode_chunk(paths: Sequence[str], shape: tuple[int, int, int]) -> list[np.ndarray]:
  return [decode(p, shape) for p in paths]


def chunked_map(fn: Callable[..., list], paths: Sequence[str], *args) -> Iterator:
  """Yields fn's items over chunks of `paths`, in order; in worker processes for many paths.

  Meant for a consumer that is busy itself (the TFDS writer spends ~100 us per example in
  Python): cpu_count - 1 workers decode while this process writes. At most a few chunks
  are in flight, which bounds memory when the writer is the slower side. Workers are
  'spawn'ed, so a script that builds a large folder needs an `if __name__ == '__main__':`
  guard; without one the workers die on start and this falls back to decoding in the calling
  process, with a warning.
  """
  chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
  cpus = os.cpu_count() or 1
  # Every core but the writer's: an ImageNet build on a 96-core host uses all of them.
  workers = max(1, cpus - 1)
  done = 0
  if len(paths) >= MIN_FILES_FOR_WORKERS and cpus >= MIN_CPUS_FOR_WORKERS:
    try:
      context = multiprocessing.get_context('spawn')
      with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        in_flight = collections.deque()
        for chunk in chunks:
          in_flight.append(pool.submit(fn, chunk, *args))
          if len(in_flight) > 2 * workers + 1:
            yield from in_flight.popleft().result()
            done += 1
        while in_flight:
          yield from in_flight.popleft().result()
          done += 1
      return
    except concurrent.futures.process.BrokenProcessPool as e:
      logging.warning('sslax: image decoding workers failed (%s); is the script missing an '
                      '`if __name__ == "__main__":` guard? Decoding in this process instead.', e)
  for chunk in chunks[done:]:
    yield from fn(chunk, *args)
