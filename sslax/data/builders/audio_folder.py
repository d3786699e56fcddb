"""`folder:DIR` of WAV files, `DIR/<split>/<class>/*.wav`, as a TFDS data set.

`folder:` names an image folder or an audio folder; which one is decided by the files in it
(`is_audio`): a tree whose class folders hold `.wav` files is audio. Class names, sorted,
become label ids, as for images. Every recording is decoded once, at build time
(`waveforms.decode_wav`: 8/16-bit PCM, channels averaged to mono), and stored as float32
samples of variable length at the file's own rate, with that rate, so resampling and clip
length stay training choices (`config.data.sample_rate`, `config.data.clip_seconds`).

When every file name has the form `<label>_<speaker>_<take>.wav` (the Free Spoken Digit
Dataset's, and a common one for speech corpora), the middle part is also stored as a
`speaker` ClassLabel, a second downstream task.

A file that cannot be decoded fails the build with its name (`bad_files='error'`), or is left
out and counted in a logged warning (`bad_files='skip'`, `config.data.bad_files`); the two
are built into separate directories so a skipping build never stands in for a strict one.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from sslax.data import waveforms
from sslax.data.builders import class_folders
from sslax.data.builders import image_folder
from sslax.data.builders import local

AUDIO_EXTENSIONS = ('.wav',)
_SPEAKER_NAME = re.compile(r'^[^_]+_([^_]+)_[^_]+$')


def is_audio(root: str) -> bool:
  """True when the first class folder holding any file under `root` holds a .wav file."""
  root = os.path.abspath(os.path.expanduser(root))
  if not os.path.isdir(root):
    return False
  for split in class_folders.visible_dirs(root):
    for name in class_folders.visible_dirs(os.path.join(root, split)):
      class_dir = os.path.join(root, split, name)
      if class_folders.files(class_dir, AUDIO_EXTENSIONS):
        return True
      if class_folders.files(class_dir, image_folder.IMAGE_EXTENSIONS):
        return False
  return False


def fingerprint(root: str) -> str:
  return class_folders.fingerprint(root, AUDIO_EXTENSIONS)


def speaker_of(path: str) -> str | None:
  match = _SPEAKER_NAME.match(os.path.splitext(os.path.basename(path))[0])
  return match.group(1) if match else None


def make_config(root: str, bad_files: str) -> local.PathConfig:
  """Lists the folder and decodes every file (errors or skips up front); labels, speakers."""
  class_folders.check_bad_files(bad_files)
  root = os.path.abspath(os.path.expanduser(root))
  layout = class_folders.list_files(root, AUDIO_EXTENSIONS)
  reference = 'train' if 'train' in layout else next(iter(layout))
  class_names = tuple(sorted(layout[reference]))
  all_paths = [p for classes in layout.values() for files in classes.values() for p in files]
  speakers = [speaker_of(p) for p in all_paths]
  speaker_names = tuple(sorted(set(speakers))) if None not in speakers else None
  items, skipped = {}, []
  for split, classes in layout.items():
    rows = []
    for name in sorted(classes):
      for path in classes[name]:
        try:
          audio, rate = waveforms.decode_wav(path)
        except ValueError as e:
          if bad_files == 'error':
            raise
          skipped.append((path, str(e)))
          continue
        speaker = speaker_names.index(speaker_of(path)) if speaker_names else None
        rows.append((audio, rate, class_names.index(name), speaker,
                     os.path.relpath(path, root)))
    items[split] = rows
  if skipped:
    logging.warning('sslax: skipped %d undecodable WAV file(s) under %s '
                    "(config.data.bad_files='skip'); first: %s", len(skipped), root,
                    skipped[0][1])
  return local.PathConfig(
      name=class_folders.config_name(root, bad_files),
      description=f'Audio folder {root}',
      path=root,
      num_classes=len(class_names),
      class_names=class_names,
      payload={'items': items, 'speakers': speaker_names, 'skipped': len(skipped)},
  )


class SslaxAudioFolder(local.LocalBuilder):
  """Decoded mono waveforms of a class-per-folder tree of WAV files; one config per path."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'float32 mono samples [T] at the file rate, sample_rate, '
                            'ClassLabel from sorted class folders, speaker from file names.',
                   '1.1.0': 'file: the path under the folder, so errors can name the file.'}

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    features = {
        'audio': tfds.features.Tensor(shape=(None,), dtype=np.float32,
                                      encoding=tfds.features.Encoding.BYTES),
        'sample_rate': tfds.features.Tensor(shape=(), dtype=np.int32),
        'label': tfds.features.ClassLabel(names=list(config.class_names)),
        'file': tfds.features.Text(),   # split/class/name.wav: what errors name
    }
    if config.payload.get('speakers'):
      features['speaker'] = tfds.features.ClassLabel(names=list(config.payload['speakers']))
    return self.dataset_info_from_configs(
        description=config.description,
        features=tfds.features.FeaturesDict(features),
        # Stored order = sorted (class, file name), so an index names a file reproducibly.
        disable_shuffling=True,
    )

  def _generate_examples(self, rows) -> Iterator:
    for i, (audio, rate, label, speaker, path) in enumerate(rows):
      example = {'audio': audio, 'sample_rate': np.int32(rate), 'label': label, 'file': path}
      if speaker is not None:
        example['speaker'] = speaker
      yield i, example


def prepare(root: str, data_dir: str | None, bad_files: str = 'error') -> tfds.core.DatasetBuilder:
  """Builds (once per version of the folder) and returns a read-only builder for `folder:root`."""
  class_folders.check_bad_files(bad_files)
  return local.build_path(SslaxAudioFolder, root, data_dir, fingerprint=fingerprint,
                          make_config=lambda path: make_config(path, bad_files),
                          config=class_folders.config_name(root, bad_files))
