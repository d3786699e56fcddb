"""What the `asr` head starts from: frame features of a run's pretrained and random-init encoders.

  python experiments/asr_features.py --workdir /tmp/sslax-ljspeech [--clips 16]

Reads the run's config.json, latest checkpoint and `asr` source, embeds the first `--clips`
training clips with `embed_sequence` (the features the CTC head reads) and prints, per encoder,
as JSON: how much each feature varies within a clip over time (`within_clip_std`, mean over
dimensions), how alike neighbouring frames are (`neighbour_cosine`), how many directions the
features spread over (`participation_rank`: (sum s)^2 / sum s^2 of the singular values of the
centred frames), and the norm of the CTC gradient a zero head gets (`head_grad_norm`: how
strongly the characters pull on the head at the start, before any blank plateau). Features that barely change from frame to frame
leave a per-frame character head little to separate (docs/qa_asr.md).
"""
import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sslax import evaluate  # noqa: E402
from sslax.evaluators import asr  # noqa: E402
from sslax.evaluators import suite  # noqa: E402


def frame_stats(h_BxFxD: np.ndarray, mask_BxF: np.ndarray) -> dict[str, float]:
  """Statistics of the real frames' features (float64)."""
  clips = [np.asarray(h, np.float64)[np.asarray(m, bool)] for h, m in zip(h_BxFxD, mask_BxF)]
  unit = [c / np.maximum(np.linalg.norm(c, axis=-1, keepdims=True), 1e-12) for c in clips]
  frames = np.concatenate(clips)
  s = np.linalg.svd(frames - frames.mean(0), compute_uv=False)
  return {'within_clip_std': float(np.mean([c.std(0).mean() for c in clips])),
          'neighbour_cosine': float(np.mean([np.sum(u[1:] * u[:-1], -1).mean() for u in unit])),
          'participation_rank': float(s.sum() ** 2 / max((s ** 2).sum(), 1e-30))}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--clips', type=int, default=16)
  args = parser.parse_args()
  config = evaluate.load_config(args.workdir)
  names = [n for n, ev in config.evals.items() if ev.type == 'asr']
  if not names:
    raise SystemExit(f'{args.workdir}: its config has no asr evaluator.')
  config = evaluate.select(config, names[:1])
  config.eval.num_seeds = 1
  config, method, mesh, state, random_init = evaluate.restore(config, args.workdir)
  evaluators = suite.Suite(config, method.embed, mesh, embed_sequence=method.embed_sequence)
  train, text = evaluators._open_sequence(names[0])['train']   # noqa: SLF001 (the Suite's reader)
  batch = {k: train[k][:args.clips] for k in ('audio', 'audio_len')}
  labels, paddings = asr.encode(text[:args.clips])
  embed = jax.jit(method.embed_sequence)
  out = {}
  for name, (params, model_state) in (('pretrained', (state.params, state.model_state)),
                                      ('random_init', random_init[0])):
    h_BxFxD, mask_BxF = embed(params, model_state, batch)
    head = {'w_DxV': jnp.zeros((h_BxFxD.shape[-1], asr.VOCAB)), 'b_V': jnp.zeros((asr.VOCAB,))}
    grad = jax.grad(lambda hd: asr.ctc_loss(h_BxFxD.astype(jnp.float32) @ hd['w_DxV'] + hd['b_V'],
                                            mask_BxF, labels, paddings))(head)
    out[name] = {**frame_stats(np.asarray(h_BxFxD), np.asarray(mask_BxF)),
                 'head_grad_norm': float(optax.global_norm(grad))}
  print(json.dumps(out))


if __name__ == '__main__':
  main()
