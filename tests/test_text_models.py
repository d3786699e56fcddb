"""Transformer causality and positions, BERT masking statistics, token losses."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sslax import losses
from sslax.augment import masking
from sslax.data import tokenizers
from sslax.models import text

TOK = tokenizers.ByteTokenizer()


def _model(causal, **kw):
  return text.Transformer(vocab_size=TOK.vocab_size, width=16, depth=2, num_heads=2,
                          mlp_dim=32, max_len=12, causal=causal, **kw)


def _tokens(key, b=2, l=10):
  return jax.random.randint(key, (b, l), TOK.NUM_SPECIAL, TOK.vocab_size)


def test_decoder_is_causal_and_encoder_is_not():
  tokens = _tokens(jax.random.PRNGKey(0))
  for causal in (True, False):
    model = _model(causal)
    params = model.init(jax.random.PRNGKey(1), tokens)['params']
    # Jacobian of position t's output w.r.t. every input embedding.
    x_BxLxD = params['token_embed']['embedding'][tokens]

    # A random readout, not a plain sum: the sum over D of a LayerNorm output (scale 1,
    # bias 0 at init) is identically zero, so its gradient would be round-off noise.
    w_D = jax.random.normal(jax.random.PRNGKey(2), (16,))

    def out_t(x, t):
      h = model.apply({'params': params}, tokens,
                      method=lambda m, tok: _from_embeddings(m, x, tok))
      return (h[:, t] @ w_D).sum()
    for t in (4,):   # one position checks both sides: positions <= t and > t
      g_LxD = jnp.abs(jax.grad(out_t)(x_BxLxD, t)[0]).sum(-1)
      after = g_LxD[t + 1:]
      if causal:
        assert float(after.max()) == 0.0 and float(g_LxD[:t + 1].min()) > 1e-3
      else:
        assert float(after.min()) > 1e-3


def _from_embeddings(m, x_BxLxD, tokens_BxL):
  """The model's forward pass from given token embeddings (to differentiate w.r.t. them)."""
  length = tokens_BxL.shape[1]
  h = x_BxLxD + m.pos_embed[:length]
  mask = jnp.ones((1, 1, length, length), bool)
  if m.causal:
    mask = jnp.tril(mask)
  for block in m.blocks:
    h = block(h, mask)
  return m.ln_final(h)


def test_forward_matches_from_embeddings_and_pads_are_ignored():
  tokens = _tokens(jax.random.PRNGKey(0))
  model = _model(False)
  params = model.init(jax.random.PRNGKey(1), tokens)['params']
  h = model.apply({'params': params}, tokens)
  x = params['token_embed']['embedding'][tokens]
  h2 = model.apply({'params': params}, tokens, method=lambda m, t: _from_embeddings(m, x, t))
  np.testing.assert_allclose(h, h2, atol=1e-5)
  # Appending PAD changes neither the real positions' states nor the mean-pooled features.
  padded = jnp.pad(tokens, ((0, 0), (0, 2)), constant_values=TOK.PAD)
  hp = model.apply({'params': params}, padded)
  np.testing.assert_allclose(hp[:, :10], h, atol=1e-5)
  np.testing.assert_allclose(text.mean_pool(hp, padded), text.mean_pool(h, tokens), atol=1e-5)


def test_untied_output_and_too_long_sequences_name_the_key():
  model = _model(False, tie_embeddings=False)
  params = model.init(jax.random.PRNGKey(1), _tokens(jax.random.PRNGKey(0)))['params']
  assert 'out_proj' in params
  with pytest.raises(ValueError, match=r'config.model.max_len=12'):
    model.apply({'params': params}, _tokens(jax.random.PRNGKey(0), l=13))


def _runs(chosen_BxL):
  """Lengths of the maximal runs of True in each row."""
  runs = []
  for row in chosen_BxL:
    edges = np.diff(np.concatenate([[0], row.astype(int), [0]]))
    runs.extend(np.nonzero(edges == -1)[0] - np.nonzero(edges == 1)[0])
  return np.array(runs)


# span_p=0: BERT's single tokens; 0.2: SpanBERT's geometric spans, same budget and rules.
@pytest.mark.parametrize('span_p', [0.0, 0.2])
def test_bert_mask_statistics(span_p):
  b, l, p = 512, 64, 16
  key = jax.random.PRNGKey(0)
  tokens = np.array(_tokens(key, b, l))
  lengths = np.random.RandomState(0).randint(8, l + 1, size=b)
  tokens[np.arange(l)[None] >= lengths[:, None]] = TOK.PAD
  tokens[:, 0] = TOK.CLS   # a special token that must never be chosen
  tokens[:, 30] = TOK.SEP   # and one mid-sequence, which spans must not cross
  kw = dict(num_special=TOK.NUM_SPECIAL, vocab_size=TOK.vocab_size, mask_id=TOK.MASK,
            max_predictions=p, span_p=span_p)
  m = masking.bert_mask(jax.random.PRNGKey(1), jnp.asarray(tokens), **kw)
  pos, w, tgt, inp = map(np.asarray, (m.positions_BxP, m.weights_BxP, m.targets_BxP,
                                      m.inputs_BxL))
  chosen = w > 0
  real = (tokens >= TOK.NUM_SPECIAL).sum(1)
  # float32 like the device, so x.5 budgets round the same way.
  np.testing.assert_array_equal(chosen.sum(1),
                                np.clip(np.round(np.float32(0.15) * real.astype(np.float32)), 1, p))
  rows = np.broadcast_to(np.arange(b)[:, None], pos.shape)
  assert (tokens[rows[chosen], pos[chosen]] >= TOK.NUM_SPECIAL).all()   # never PAD / CLS
  assert len(set(zip(rows[chosen], pos[chosen]))) == chosen.sum()       # no repeats
  np.testing.assert_array_equal(tgt[chosen], tokens[rows[chosen], pos[chosen]])
  new = inp[rows[chosen], pos[chosen]]
  chosen_BxL = np.zeros_like(tokens, bool)
  chosen_BxL[rows[chosen], pos[chosen]] = True
  runs = _runs(chosen_BxL)
  # Short rows here cut spans to small budgets (test_span_lengths checks the distribution).
  assert runs.mean() > 2.0 if span_p else runs.mean() < 1.3, runs.mean()
  # 80/10/10 is drawn once per span: independent draws are ~ one per run (fewer when runs
  # merge spans), so the tolerance uses the run count.
  n = len(runs)
  frac_mask = (new == TOK.MASK).mean()
  frac_same = (new == tgt[chosen]).mean()
  # ~10% random draws hit the original token with probability 1/256, hence the tolerance.
  assert abs(frac_mask - 0.8) < 4 / np.sqrt(n) and abs(frac_same - 0.1) < 4 * 0.3 / np.sqrt(n)
  assert (new >= TOK.NUM_SPECIAL).sum() == (new != TOK.MASK).sum()      # random ids: non-special
  # Positions that were not chosen keep their token.
  untouched = np.ones_like(tokens, bool)
  untouched[rows[chosen], pos[chosen]] = False
  np.testing.assert_array_equal(inp[untouched], tokens[untouched])
  # Per-example keys: example 3's mask does not depend on the rest of the batch.
  m3 = masking.bert_mask(jax.random.PRNGKey(1), jnp.asarray(tokens[:4]), **kw)
  np.testing.assert_array_equal(m3.inputs_BxL[3], inp[3])


def test_span_lengths_follow_the_clipped_geometric():
  # Long rows (budget 75 of 500 real tokens) so the budget cuts only each row's last span.
  b, l, p = 32, 512, 80
  tokens = np.array(_tokens(jax.random.PRNGKey(2), b, l))
  tokens[:, 500:] = TOK.PAD
  mean_run = {}
  for span_p in (0.2, 0.5):
    m = masking.bert_mask(jax.random.PRNGKey(3), jnp.asarray(tokens), num_special=TOK.NUM_SPECIAL,
                          vocab_size=TOK.vocab_size, mask_id=TOK.MASK, max_predictions=p,
                          span_p=span_p, span_max=10)
    chosen = np.zeros_like(tokens, bool)
    w = np.asarray(m.weights_BxP) > 0
    chosen[np.nonzero(w)[0], np.asarray(m.positions_BxP)[w]] = True
    assert (chosen.sum(1) == 75).all() and not chosen[:, 500:].any()
    mean_run[span_p] = _runs(chosen).mean()
  # Clipped geometric means: sum_k min(k, 10) p (1-p)^(k-1) = 3.79 (p=0.2), 2.00 (p=0.5).
  # Runs are spans, except that spans landing next to each other merge (+~15% here).
  expected = {q: sum(min(k, 10) * q * (1 - q) ** (k - 1) for k in range(1, 200)) for q in mean_run}
  for q, got in mean_run.items():
    assert expected[q] * 0.95 < got < expected[q] * 1.35, (q, got, expected[q])


def test_masked_xent_ignores_unmasked_positions():
  key1, key2 = jax.random.split(jax.random.PRNGKey(0))
  logits = jax.random.normal(key1, (3, 5, 11))
  targets = jax.random.randint(key2, (3, 5), 0, 11)
  mask = jnp.zeros((3, 5)).at[0, 1].set(1).at[2, 4].set(1)
  value, grads = jax.value_and_grad(losses.masked_token_xent)(logits, targets, mask)
  expected = optax.softmax_cross_entropy_with_integer_labels(
      logits[jnp.array([0, 2]), jnp.array([1, 4])], targets[jnp.array([0, 2]), jnp.array([1, 4])])
  np.testing.assert_allclose(value, expected.mean(), rtol=1e-6)
  assert float(jnp.abs(grads * (1 - mask)[..., None]).max()) == 0.0
  # Changing logits at unmasked positions changes nothing.
  other = logits.at[1].set(100.0)
  np.testing.assert_allclose(losses.masked_token_xent(other, targets, mask), value, rtol=1e-6)
  assert float(losses.masked_token_xent(logits, targets, jnp.zeros((3, 5)))) == 0.0


def test_next_token_xent_shifts_targets():
  logits = jnp.log(jax.nn.one_hot(jnp.array([[1, 2, 3, 0]]), 5) * 0.9 + 0.025)
  tokens = jnp.array([[7, 1, 2, 3]])
  valid = jnp.array([[True, True, True, False]])
  # Targets 1, 2 predicted with softmax p = 0.925 / 1.025; target 3 (PAD) ignored.
  np.testing.assert_allclose(losses.next_token_xent(logits, tokens, valid), -np.log(0.925 / 1.025),
                             rtol=1e-5)
  np.testing.assert_allclose(losses.token_accuracy(logits[:, :-1], tokens[:, 1:], valid[:, 1:]),
                             1.0)
