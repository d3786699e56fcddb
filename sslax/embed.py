"""Features of any inputs from a trained encoder:

  python -m sslax.embed --workdir W --input INPUT --out features.npz [--split S] [--step N]

W is a sslax.main workdir or a sslax.export directory. INPUT is a data source
(`folder:DIR`, `npz:PATH`, `text:PATH`, `tsv:PATH`, `builtin:digits`, `tfds:NAME`; split
`--split`, default 'train'; records are read in their stored order, labels kept when the
source has them) or a plain directory of files, unlabelled, read in sorted path order: images
(.jpg/.jpeg/.png/.bmp/.gif/.webp, any size) for an image encoder, .wav for an audio encoder.

`--out` ending in .npz gets `features` float32 [N, D], `ids` (the file's path relative to
INPUT, or the record's index in the split) and `labels` when there are any. Any other
`--out` is a directory of `features-00000.npy`, ... shards of `--shard_size` rows plus
`ids.txt` and `labels.npy`, for inputs too large to hold in memory: at most one shard of
inputs and features is in memory at a time.
"""
from __future__ import annotations

from collections.abc import Iterator
import os
from typing import Any

from absl import flags
import numpy as np
from PIL import Image
import tqdm

from sslax import cli
from sslax import encoder as encoder_lib
from sslax import errors
from sslax import storage
from sslax.data import fetch
from sslax.data import readers
from sslax.data import sources
from sslax.data import waveforms

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp')
AUDIO_EXTENSIONS = ('.wav',)


def list_files(root: str, extensions: tuple[str, ...]) -> list[str]:
  """Paths relative to `root` of its files with `extensions`, recursively, sorted."""
  found = []
  for dirpath, _, names in os.walk(root):
    found += [os.path.relpath(os.path.join(dirpath, n), root) for n in names
              if n.lower().endswith(extensions)]
  return sorted(found)


def _read_file(path: str, modality: str) -> Any:
  if modality == 'audio':
    return waveforms.decode_wav(path)
  try:
    with Image.open(path) as image:
      image = image.convert('L' if image.mode in ('L', 'I', 'I;16', '1') else 'RGB')
      return np.asarray(image)
  except OSError as e:
    raise errors.ConfigError(f'{path}: not a readable image ({e}).') from e


def file_chunks(encoder, root: str, chunk: int) -> Iterator[tuple[dict[str, np.ndarray],
                                                                  list[str], None]]:
  """(model inputs, ids, labels=None) of a plain directory, `chunk` files at a time."""
  extensions = AUDIO_EXTENSIONS if encoder.modality == 'audio' else IMAGE_EXTENSIONS
  if encoder.modality not in ('image', 'audio'):
    raise errors.ConfigError(
        f'--input={root!r} is a plain directory, which sslax.embed reads as image or audio '
        f'files; this encoder is a {encoder.modality} encoder: pass a text:/tsv: source.')
  files = list_files(root, extensions)
  if not files:
    raise errors.DataNotFoundError(f'--input={root!r} holds no {"/".join(extensions)} files.')
  for start in range(0, len(files), chunk):
    names = files[start:start + chunk]
    items = [_read_file(os.path.join(root, n), encoder.modality) for n in names]
    if encoder.modality == 'audio':
      batch = {k: np.concatenate([encoder.prepare([w], sample_rate=r)[k] for w, r in items])
               for k in encoder.input_spec}
    else:
      batch = encoder.prepare(items)
    yield batch, names, None


def source_chunks(encoder, source: str, split: str, data_dir: str | None,
                  chunk: int) -> Iterator[tuple[dict[str, np.ndarray], list[str], Any]]:
  """(model inputs, ids, labels or None) of a data source's split, `chunk` records at a time."""
  # Variable-size images arrive as eval views (shorter side -> data.image_size, centre).
  records = readers.Records(source, split, data_dir=data_dir, in_memory=False,
                            transform=fetch.record_transform(encoder.config.data),
                            image_size=int(encoder.config.data.get('image_size', 0)))
  for start in range(0, len(records), chunk):
    idx = np.arange(start, min(start + chunk, len(records)))
    rows = records.take(idx)
    missing = sorted(set(encoder.input_spec) - set(rows))
    if missing:
      raise errors.ConfigError(
          f'--input={source!r} has {sorted(rows)}, but this {encoder.modality} encoder takes '
          f'{sorted(encoder.input_spec)}.')
    if encoder.modality == 'image' and 'image' in rows:
      batch = encoder.prepare(list(rows['image']))
    else:
      batch = encoder.prepare({k: rows[k] for k in encoder.input_spec})
    ids = [str(int(i)) for i in idx]
    yield batch, ids, rows.get('label')


def write(encoder, chunks, out: str, *, progress: bool = True) -> int:
  """Embeds every chunk and writes `out` (.npz, or a directory of shards); returns N."""
  features, ids, labels = [], [], []
  # `out` may be gs://: files are written through epath (np.save/savez into file objects).
  shard_dir = None if out.endswith('.npz') else storage.path(out)
  if shard_dir:
    shard_dir.mkdir(parents=True, exist_ok=True)
  bar = tqdm.tqdm(unit='example', desc='embed', disable=not progress)
  for i, (batch, chunk_ids, chunk_labels) in enumerate(chunks):
    feats = encoder.embed_prepared(batch)
    bar.update(len(feats))
    ids += chunk_ids
    if chunk_labels is not None:
      labels.append(np.asarray(chunk_labels))
    if shard_dir:
      _save_npy(shard_dir / f'features-{i:05d}.npy', feats)
    else:
      features.append(feats)
  bar.close()
  if not ids:
    raise errors.ConfigError('The input holds no examples.')
  extra = {'labels': np.concatenate(labels)} if labels else {}
  if shard_dir:
    (shard_dir / 'ids.txt').write_text('\n'.join(ids) + '\n')
    if extra:
      _save_npy(shard_dir / 'labels.npy', extra['labels'])
  else:
    path = storage.path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open('wb') as f:
      np.savez(f, features=np.concatenate(features), ids=np.array(ids), **extra)
  return len(ids)


def _save_npy(path, array: np.ndarray) -> None:
  with path.open('wb') as f:
    np.save(f, array)


def run(workdir: str, input_: str, out: str, *, split: str = 'train', step: int | None = None,
        data_dir: str | None = None, shard_size: int = 4096, progress: bool = True) -> int:
  """Loads the encoder of `workdir`, embeds `input_` into `out`; returns the example count."""
  encoder = encoder_lib.load(workdir, step=step)
  if ':' in input_ and input_.split(':', 1)[0] in sources.SCHEMES:
    sources.check(input_, key='--input')
    chunks = source_chunks(encoder, input_, split, data_dir or encoder.config.data.data_dir
                           or None, shard_size)
  elif os.path.isdir(input_):
    chunks = file_chunks(encoder, input_, shard_size)
  else:
    raise errors.DataNotFoundError(
        f'--input={input_!r} is neither a data source ({", ".join(sources.FORMS)}) nor a '
        'directory of files.')
  return write(encoder, chunks, out, progress=progress)


def main(argv: list[str]) -> None:
  cli.start(argv)
  f = flags.FLAGS
  n = run(f.workdir, f.input, f.out, split=f.split, step=f.step, data_dir=f.data_dir,
          shard_size=f.shard_size)
  print(f'Wrote the features of {n} examples to {f.out}.')


def define_flags(argv: list[str]) -> None:
  """The command's flags: defined when it runs, not on import (sslax.export, imported beside
  it in one process, has a --workdir too)."""
  del argv
  flags.DEFINE_string('workdir', None, 'A sslax.main workdir or a sslax.export directory.')
  flags.DEFINE_string('input', None, 'A data source (folder:/npz:/text:/tsv:/builtin:/tfds:) '
                      'or a directory of image or WAV files.')
  flags.DEFINE_string('out', None, 'features.npz, or a directory for .npy shards.')
  flags.DEFINE_string('split', 'train', 'Split of a data source.')
  flags.DEFINE_integer('step', None, 'Checkpoint step; default: the latest.')
  flags.DEFINE_string('data_dir', None, 'Where data sources are built; default: the run\'s '
                      'config.data.data_dir.')
  flags.DEFINE_integer('shard_size', 4096, 'Examples read, embedded and written per shard.')
  flags.mark_flags_as_required(['workdir', 'input', 'out'])


def command() -> None:
  """`python -m sslax.embed` and the `sslax-embed` script."""
  cli.run(main, define_flags=define_flags)


if __name__ == '__main__':
  command()
