"""qa: SQuAD v1.1 EM/F1 on hand-worked cases, windows and offsets round trips for both
tokenizers, bad squad: inputs, and 8-device == 1-device span loss."""
import json

import jax
import numpy as np
import pytest

from sslax import errors
from sslax import methods
from sslax import sharding
from sslax import train
from sslax.data import tokenizers
from sslax.data.builders import squad
from sslax.evaluators import qa
from sslax.evaluators import qa_windows
from sslax.evaluators import squad_metrics

CONTEXT = ('The Black Death reached Europe in 1347. It killed a third of the population. '
           'By the end of 1350 the plague had subsided, but it returned to Lyon and Paris. '
           'Fort Frontenac stood on the north shore of Lake Ontario, near Kingston. ') * 3


def test_em_and_f1_by_hand():
  # Articles, case and punctuation go: EM 1.
  assert squad_metrics.exact_match('The  Eiffel Tower!', 'eiffel tower') == 1.0
  assert squad_metrics.exact_match('an apple', 'apple.') == 1.0
  # 'theory' keeps its 'the': articles are whole words only.
  assert squad_metrics.normalize('The theory, a THEME') == 'theory theme'
  # pred 'fort frontenac lake' vs gold 'fort frontenac': P = 2/3, R = 1, F1 = 0.8.
  assert squad_metrics.f1('Fort Frontenac, Lake', 'Fort Frontenac') == pytest.approx(0.8)
  # Repeated tokens count with multiplicity: pred 'a b b', gold 'b b c' -> common 2, F1 2/3.
  assert squad_metrics.f1('x y y', 'y y z') == pytest.approx(2 / 3)
  assert squad_metrics.f1('the', 'an') == 0.0   # both normalise to nothing
  # Several gold answers: each question takes its best; the set takes the mean.
  scores = squad_metrics.score(['1350', 'Lyon'],
                               [['By the end of 1350', '1350'], ['Paris', 'Lyon and Paris']])
  # q1: EM 1 (second gold), F1 1. q2: EM 0, F1 vs 'lyon and paris' = 2*(1*1/3)/(4/3) = 0.5.
  assert scores['exact_match'] == pytest.approx(0.5)
  assert scores['f1'] == pytest.approx(0.75)


def _question(answer, start=None, qid='q'):
  start = CONTEXT.index(answer) if start is None else start
  return squad.Question(qid, 'Where did the fort stand?', CONTEXT, ((answer, start),))


@pytest.fixture(scope='module')
def spm_tokenizer(tmp_path_factory):
  path = tmp_path_factory.mktemp('spm') / 'spm.model'
  tokenizers.train_sentencepiece(iter([CONTEXT] * 20 + ['ünïcode 日本 words'] * 5), str(path),
                                 400)
  return tokenizers.SentencePieceTokenizer(str(path))


@pytest.mark.parametrize('kind', ['byte', 'sentencepiece'])
def test_windows_map_spans_back_to_characters(kind, spm_tokenizer):
  tokenizer = tokenizers.ByteTokenizer() if kind == 'byte' else spm_tokenizer
  answers = ['Fort Frontenac', 'Lake Ontario', 'By the end of 1350', 'Lyon and Paris']
  # Second and third copies too: those answers sit in later windows only.
  questions = [_question(a, CONTEXT.index(a) + k * (len(CONTEXT) // 3))
               for a in answers for k in range(3)]
  w = qa_windows.make(tokenizer, questions, seq_len=64, doc_stride=16, max_query_tokens=16)
  assert len(w.question_W) > 2 * len(questions)   # longer than one window
  for qi, q in enumerate(questions):
    rows = np.flatnonzero(w.question_W == qi)
    hits = [r for r in rows if w.start_W[r] > 0]
    assert hits and len(hits) < len(rows)   # in some windows, CLS (0) in the others
    for r in hits:
      s, e = w.start_W[r], w.end_W[r]
      text = CONTEXT[w.begin_WxL[r, s]:w.end_WxL[r, e]]
      assert text.strip() == q.answers[0][0]
      assert w.begin_WxL[r, s] <= q.answers[0][1]
  # Predicted spans: logits peaked at the targets come back as the answer texts.
  start = np.where(np.arange(64)[None] == w.start_W[:, None], 10.0, 0.0)
  end = np.where(np.arange(64)[None] == w.end_W[:, None], 10.0, 0.0)
  predicted = qa_windows.best_spans(start, end, w, [q.context for q in questions],
                                    max_answer_tokens=30)
  assert predicted == [q.answers[0][0] for q in questions]


def test_sentencepiece_offsets_are_characters(spm_tokenizer):
  text = ' Frontenac ünïcode 日本 words\n x'
  ids, begin, end = spm_tokenizer.encode_offsets(text)
  np.testing.assert_array_equal(ids, spm_tokenizer.encode(text))
  assert np.all(begin < end) and begin[0] == 0 and end[-1] == len(text)
  assert np.all(np.diff(begin) >= 0)
  # Byte-fallback pieces of one character share its span.
  assert text[begin[-3]:end[-3]] in ('\n', ' ', 'x', ' x')
  # The distinct spans tile the text: every character is covered, once, in order.
  assert ''.join(text[b:e] for b, e in dict.fromkeys(zip(begin, end))) == text


def _write_squad(path, answer_start, text='Fort Frontenac', answers=True):
  qa_item = {'id': 'abc123', 'question': 'Where?',
             'answers': [{'text': text, 'answer_start': answer_start}] if answers else []}
  doc = {'version': '1.1', 'data': [{'title': 't', 'paragraphs': [
      {'context': CONTEXT, 'qas': [{'id': 'ok1', 'question': 'When?', 'answers': [
          {'text': '1350', 'answer_start': CONTEXT.index('1350')}]}]},
      {'context': CONTEXT, 'qas': [qa_item]}]}]}
  path.write_text(json.dumps(doc, indent=1))


def test_bad_answer_start_names_file_line_and_question(tmp_path):
  path = tmp_path / 'train.json'
  _write_squad(path, CONTEXT.index('Fort Frontenac') + 1)
  line = next(i for i, l in enumerate(path.read_text().splitlines(), 1) if '"abc123"' in l)
  with pytest.raises(ValueError, match=rf"{path}:{line}: question 'abc123', answer 0: "
                                       r"answer_start=\d+ points at 'ort Frontenac "):
    squad.read(str(path))
  _write_squad(path, 0, answers=False)
  with pytest.raises(ValueError, match=rf"{path}:{line}: question 'abc123' has no answers"):
    squad.read(str(path))
  path.write_text('{"data": [')
  with pytest.raises(ValueError, match=rf'{path}:1: not JSON'):
    squad.read(str(path))


def test_squad_folder_gives_splits_and_paragraph_text(tmp_path):
  for split in ('train', 'test'):
    _write_squad(tmp_path / f'{split}.json', CONTEXT.index('Fort Frontenac'))
  assert sorted(squad.split_files(str(tmp_path))) == ['test', 'train']
  assert len(squad.questions(str(tmp_path), 'test')) == 2
  from sslax.data import sources
  split = sources.open_split(f'squad:{tmp_path}', 'train', data_dir=str(tmp_path / 'tfds'))
  assert len(split) == 1 and split[0]['text'].item().decode() == CONTEXT   # one paragraph


def test_questions_of_a_folder_that_is_gone_say_so(tmp_path):
  # Not "no split 'train'; available: ." (a DataError listing nothing): the path is missing.
  gone = tmp_path / 'gone'
  with pytest.raises(errors.DataNotFoundError, match=rf'squad:{gone}: {gone} names no .json'):
    squad.questions(str(gone), 'train')


def test_too_short_windows_and_too_long_warmup_are_config_errors_naming_the_key():
  # Both were ValueErrors: after pretraining, a traceback instead of the one-line error.
  tokenizer = tokenizers.ByteTokenizer()
  questions = [_question('Fort Frontenac'), _question('Lake Ontario')] * 4
  key = 'config.evals.squad_qa'
  with pytest.raises(errors.ConfigError, match=r'config\.data\.seq_len=24 leaves 5 context tokens'
                                               rf'.* {key}\.doc_stride=16'):
    qa_windows.make(tokenizer, questions, seq_len=24, doc_stride=16, max_query_tokens=16, key=key)
  # Refused before anything compiles (no encoder needed to reach it).
  with pytest.raises(errors.ConfigError, match=rf'{key}\.warmup_steps=1000 must be in \[0, '):
    qa.evaluate(None, None, None, tokenizer, questions, questions, seq_len=64, epochs=1.0,
                batch_size=8, learning_rate=1e-3, warmup_steps=1000, doc_stride=16,
                max_query_tokens=16, key=key)


def test_qa_span_loss_on_eight_devices_equals_one(tmp_path):
  from sslax.configs import mlm_squad
  config = mlm_squad.get_config('smoke')
  config.data.tokenizer = 'byte'
  method = methods.get('mlm')(config)
  tokenizer = tokenizers.ByteTokenizer()
  w = qa_windows.make(tokenizer, [_question('Fort Frontenac'), _question('Lake Ontario')] * 4,
                      seq_len=64, doc_stride=32, max_query_tokens=16)
  idx = np.concatenate([np.flatnonzero(w.start_W > 0)[:4], np.flatnonzero(w.start_W == 0)[:4]])
  batch = {'tokens': w.tokens_WxL[idx], 'begin': w.begin_WxL[idx].astype(np.int32),
           'start': w.start_W[idx], 'end': w.end_W[idx]}
  params = method.init(jax.random.PRNGKey(0), batch)[0]
  params = jax.tree.map(lambda x: getattr(x, 'value', x), params,
                        is_leaf=lambda x: hasattr(x, 'value'))
  head = {'w_Dx2': 0.1 * jax.random.normal(jax.random.PRNGKey(1), (32, 2)),
          'b_2': np.zeros(2, np.float32)}
  variables = {'encoder': params, 'head': head}

  def loss(v, b):
    s, e = qa.span_logits(v, {}, b['tokens'], b['begin'], method.embed_sequence)
    return qa.span_loss(s, e, b['start'], b['end'])
  out = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = sharding.make_mesh(config.mesh, devices)
    fn = jax.jit(jax.value_and_grad(loss), in_shardings=(sharding.replicated(mesh),
                                                          sharding.batch_sharding(mesh)))
    out.append(jax.device_get(fn(variables, sharding.to_global(batch, mesh))))
  (l1, g1), (l8, g8) = out
  assert len(jax.devices()) == 8 and np.isfinite(l1)
  np.testing.assert_allclose(l8, l1, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g8, g1)
