"""text: and tsv: sources, the byte tokenizer and the pipeline's record transform."""
import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from sslax import sharding
from sslax.data import fetch
from sslax.data import packing
from sslax.data import readers
from sslax.data import sources
from sslax.data import tokenizers
from sslax.data import train_batches
from sslax.data.builders import text as text_builder
from tests.conftest import shared_data


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def _byte_transform(seq_len=48):
  return fetch.record_transform(ml_collections.ConfigDict({'tokenizer': 'byte',
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
  batch = readers.Records(source, 'train', data_dir=data_dir, in_memory=True,
                          transform=_byte_transform()).take(np.arange(3))
  assert batch['tokens'].shape == (3, 48) and batch['tokens'].dtype == np.int32
  assert tokenizers.ByteTokenizer().decode(batch['tokens'][0]) == texts['train'][0][:48]


def test_text_single_file_glob_and_utf8(tmp_path, data_dir):
  (tmp_path / 'one.py').write_text('ünïcödé = 1\n' * 300)
  info = sources.info(f'text:{tmp_path}/*.py', data_dir=data_dir)
  assert info.num_classes is None and info.split_sizes['test'] > 0
  with pytest.raises(ValueError, match=r'holds text, but config.data.tokenizer is not set'):
    fetch.first_record(f'text:{tmp_path}/*.py', 'train', data_dir=data_dir)


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
  batch = readers.Records(f'tsv:{tmp_path}/c_{{split}}.tsv', 'dev', data_dir=data_dir,
                          in_memory=True, transform=_byte_transform(16)).take(np.arange(4))
  np.testing.assert_array_equal(batch['label'], [0, 1, 2, 0])
  assert tokenizers.ByteTokenizer().decode(batch['tokens'][1]) == 'sentence 1'

  (tmp_path / 'reg.tsv').write_text('label\tsentence\n0.5\tgood\n-1\tbad\n')
  assert sources.info(f'tsv:{tmp_path}/reg.tsv', data_dir=data_dir).num_classes is None
  record = fetch.first_record(f'tsv:{tmp_path}/reg.tsv', 'train', data_dir=data_dir,
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


def test_pack_tokens_joins_records_with_sep_and_cuts_to_length():
  pad, sep = tokenizers.ByteTokenizer.PAD, tokenizers.ByteTokenizer.SEP
  tokens = np.array([[7, 8, 9, pad, pad], [10, pad, pad, pad, pad],
                     [11, 12, pad, pad, pad], [13, 14, 15, 16, 17]], np.int32)
  packed = packing.pack_tokens({'tokens': tokens, 'label': np.arange(4)}, 2)
  assert set(packed) == {'tokens'}   # a record's label does not describe a packed row
  np.testing.assert_array_equal(packed['tokens'], [[7, 8, 9, sep, 10],
                                                   [11, 12, sep, 13, 14]])
  # k = 1 only drops padding it then restores: rows are unchanged.
  np.testing.assert_array_equal(packing.pack_tokens({'tokens': tokens}, 1)['tokens'], tokens)


@pytest.mark.parametrize('k, tokenizer, match', [
    (0, 'byte', r'pack_sequences=0 must be an integer >= 1'),
    (1.5, 'byte', r'pack_sequences=1.5 must be an integer >= 1'),
    (2, '', r'pack_sequences=2 packs token rows, but config.data.tokenizer is not set'),
])
def test_pack_sequences_config_errors(k, tokenizer, match):
  with pytest.raises(ValueError, match=match):
    packing.check_pack(ml_collections.ConfigDict({'pack_sequences': k, 'tokenizer': tokenizer}))


def test_packed_training_batches_follow_the_record_stream_and_resume(tmp_path, data_dir):
  """Step s packs records [s*B*k, (s+1)*B*k) of the shuffled stream, k per row, so resuming
  at a step gives the same rows as running straight through."""
  lines = ''.join(f'w{i} {"x" * (i % 5)}\t{i % 2}\n' for i in range(40))
  (tmp_path / 'train.tsv').write_text('sentence\tlabel\n' + lines)
  config = ml_collections.ConfigDict({
      'seed': 3, 'batch_size': 4,
      'data': {'source': f'tsv:{tmp_path}/train.tsv', 'train_split': 'train',
               'data_dir': data_dir, 'in_memory': True, 'prefetch': 1, 'tokenizer': 'byte',
               'seq_len': 24, 'pack_sequences': 3}})
  mesh = sharding.make_mesh({'data': 1}, jax.devices()[:1])

  def rows(start, n):
    it = train_batches.make_train(config, mesh, start_step=start)
    return [np.asarray(next(it)['tokens']) for _ in range(n)]

  straight = rows(0, 5)
  assert all(r.shape == (4, 24) for r in straight)
  for a, b in zip(straight[2:], rows(2, 3)):
    np.testing.assert_array_equal(a, b)
  # Unpacked, the same seed's stream: batch s of 12 records, packed 3 per row, is step s.
  unpacked = ml_collections.ConfigDict(config.to_dict())
  unpacked.batch_size, unpacked.data.pack_sequences = 12, 1
  records = next(train_batches.make_train(unpacked, mesh, start_step=1))
  np.testing.assert_array_equal(
      packing.pack_tokens({'tokens': np.asarray(records['tokens'])}, 3)['tokens'], straight[1])
  byte = tokenizers.ByteTokenizer()
  sentences = [byte.decode(t) for t in np.asarray(records['tokens'])[:3]]
  assert byte.decode(straight[1][0]) == ''.join(sentences)   # SEP decodes to nothing
  assert np.sum(straight[1][0] == byte.SEP) == 2
