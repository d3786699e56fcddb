"""text: and tsv: sources, the byte tokenizer and the pipeline's record transform."""
import json
import os

import ml_collections
import numpy as np
import pytest

from sslax.data import pipeline
from sslax.data import sources
from sslax.data import tokenizers
from sslax.data.builders import text as text_builder
from tests.conftest import shared_data


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def _byte_transform(seq_len=48):
  return pipeline.record_transform(ml_collections.ConfigDict({'tokenizer': 'byte',
                                                              'seq_len': seq_len}))


@pytest.mark.parametrize('text', ['', 'hello', 'héllo wörld ✓ 🙂\n\ttabs', '\x00\xff'])
def test_byte_tokenizer_round_trip(text):
  tok = tokenizers.ByteTokenizer()
  ids = tok.encode(text)
  assert ids.dtype == np.int32 and (ids >= tok.NUM_SPECIAL).all() and (ids < tok.vocab_size).all()
  assert tok.decode(ids) == text
  fixed = tok.fixed_length(text, 40)
  assert fixed.shape == (40,) and tok.decode(fixed) == text  # PAD is dropped on decode


def test_text_folder_splits_chunks_and_labels(tmp_path, data_dir):
  lines = [f'line {i} of file {{}}: ' + 'x' * (i % 50) + '\n' for i in range(200)]
  for name in ('a', 'b'):
    (tmp_path / f'{name}.txt').write_text(''.join(l.format(name) for l in lines))
  (tmp_path / 'ignored.md').write_text('not a .txt file')
  source = f'text:{tmp_path}'
  info = sources.info(source, data_dir=data_dir)
  assert info.num_classes == 2
  train = sources.open_split(source, 'train', data_dir=data_dir)
  test = sources.open_split(source, 'test', data_dir=data_dir)
  texts = {s: [r['text'].item().decode() for r in split] for s, split in
           (('train', train), ('test', test))}
  for s in texts:
    assert all(len(t.encode()) <= text_builder.CHUNK_BYTES for t in texts[s])
  # Concatenated, train then test is each file exactly; test is each file's last ~10%.
  for label, name in enumerate('ab'):
    whole = ''.join(l.format(name) for l in lines)
    tr = ''.join(t for t, r in zip(texts['train'], train) if r['label'] == label)
    te = ''.join(t for t, r in zip(texts['test'], test) if r['label'] == label)
    assert tr + te == whole
    assert 0.08 < len(te) / len(whole) < 0.12
  batch = pipeline.Records(source, 'train', data_dir=data_dir, in_memory=True,
                           transform=_byte_transform()).take(np.arange(3))
  assert batch['tokens'].shape == (3, 48) and batch['tokens'].dtype == np.int32
  assert tokenizers.ByteTokenizer().decode(batch['tokens'][0]) == texts['train'][0][:48]


def test_text_single_file_glob_and_utf8(tmp_path, data_dir):
  (tmp_path / 'one.py').write_text('ünïcödé = 1\n' * 300)
  info = sources.info(f'text:{tmp_path}/*.py', data_dir=data_dir)
  assert info.num_classes is None and info.split_sizes['test'] > 0
  with pytest.raises(ValueError, match=r'holds text, but config.data.tokenizer is not set'):
    pipeline.first_record(f'text:{tmp_path}/*.py', 'train', data_dir=data_dir)


@pytest.mark.parametrize('content, match', [
    (b'', r'bad.txt is empty'),
    (b'ok\n\xff\xfe broken\n', r'bad.txt is not UTF-8 text \(byte 3, line 2'),
])
def test_text_errors_name_the_file(tmp_path, data_dir, content, match):
  (tmp_path / 'bad.txt').write_bytes(content)
  with pytest.raises(ValueError, match=match):
    sources.open_split(f'text:{tmp_path}/bad.txt', 'train', data_dir=data_dir)


def test_tsv_split_pattern_classes_and_regression(tmp_path, data_dir):
  for split, n in (('train', 10), ('dev', 4)):
    (tmp_path / f'c_{split}.tsv').write_text(
        'sentence\tlabel\n' + ''.join(f'sentence {i}\t{i % 3}\n' for i in range(n)))
  info = sources.info(f'tsv:{tmp_path}/c_{{split}}.tsv', data_dir=data_dir)
  assert info.num_classes == 3 and info.split_sizes == {'train': 10, 'dev': 4}
  batch = pipeline.Records(f'tsv:{tmp_path}/c_{{split}}.tsv', 'dev', data_dir=data_dir,
                           in_memory=True, transform=_byte_transform(16)).take(np.arange(4))
  np.testing.assert_array_equal(batch['label'], [0, 1, 2, 0])
  assert tokenizers.ByteTokenizer().decode(batch['tokens'][1]) == 'sentence 1'

  (tmp_path / 'reg.tsv').write_text('label\tsentence\n0.5\tgood\n-1\tbad\n')
  assert sources.info(f'tsv:{tmp_path}/reg.tsv', data_dir=data_dir).num_classes is None
  record = pipeline.first_record(f'tsv:{tmp_path}/reg.tsv', 'train', data_dir=data_dir,
                                 transform=_byte_transform(8))
  assert record['label'].dtype == np.float32 and record['label'] == 0.5


@pytest.mark.parametrize('content, match', [
    ('text\tlabel\nhi\t1\n', r'bad.tsv:1: the header .*sentence<TAB>label'),
    ('sentence\tlabel\nhi\t1\nyo\tpositive\n', r'bad.tsv:3: label .positive. is not a number'),
    ('sentence\tlabel\nhi 1\n', r'bad.tsv:2: 1 tab-separated fields'),
])
def test_tsv_errors_name_file_and_line(tmp_path, data_dir, content, match):
  (tmp_path / 'bad.tsv').write_text(content)
  with pytest.raises(ValueError, match=match):
    sources.open_split(f'tsv:{tmp_path}/bad.tsv', 'train', data_dir=data_dir)


def test_missing_text_paths_name_the_key(tmp_path):
  with pytest.raises(FileNotFoundError, match=r'data.source=.text:.*nowhere.* names no file'):
    sources.check(f'text:{tmp_path}/nowhere', key='data.source')
  with pytest.raises(FileNotFoundError, match=r'eval.source=.tsv:.*names no .tsv file'):
    sources.check(f'tsv:{tmp_path}', key='eval.source')


def test_tsv_real_sst2_folder(data_dir):
  root = shared_data('sst2')
  info = sources.info(f'tsv:{root}', data_dir=data_dir)
  assert info.num_classes == 2
  assert info.split_sizes == {'train': 60614, 'dev': 6735, 'test': 872}
