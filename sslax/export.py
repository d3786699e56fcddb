"""A standalone encoder artefact: `python -m sslax.export --workdir W --out DIR [--step N]`.

DIR holds (sslax/artifacts.py names the files; format version FORMAT_VERSION, recorded in
MANIFEST):
- `weights.safetensors`: the method's `params` and `model_state`, one tensor per leaf, named
  by its '/'-joined pytree path under 'params/' or 'model_state/' (for example
  'params/encoder/Conv_0/kernel', 'model_state/batch_stats/encoder/BatchNorm_0/mean');
  Flax kernels are [..., in, out] (convolutions [kh, kw, in, out]);
- `embed.jax_export`: `jax.export` serialisation (StableHLO) of
  `embed(weights, batch) -> float32 [b, D]` with a symbolic batch dimension `b`, where
  `weights` is the flat {name: array} of the safetensors file and `batch` the model inputs of
  `input_spec` (the evaluators' preprocessing after the host step: eval crop, log-mel, mean
  pooling all inside). Any JAX >= 0.4.30 deserialises and calls it, without sslax;
- `config.json` (the run's resolved config), `input_spec.json`, the SentencePiece model under
  `tokenizer/` when the run used one, MANIFEST, and a README.md saying how to call it.

`sslax.load(DIR)` reads it back as an `Encoder` (encoder.py, through artifacts.py); `config.init_from=DIR` starts a run there.
"""
from __future__ import annotations

import json
import sys
from typing import Any

from absl import flags
from etils import epath
import jax
import numpy as np
from safetensors import numpy as safetensors_numpy

from sslax import artifacts
from sslax import callable_module
from sslax import cli
from sslax import encoder as encoder_lib
from sslax import storage
from sslax.data import tokenizers

# Lowered for every platform a user may call it on; a platform JAX cannot lower for here is
# left out and the manifest says which were kept.
PLATFORMS = ('cpu', 'cuda', 'tpu')


def export(encoder: encoder_lib.Encoder | str, out: str, *, step: int | None = None
           ) -> epath.Path:
  """Writes an encoder as a standalone directory `out` (local or gs://); returns its path.

  `sslax.export(workdir, out, step=None)`: `encoder` is a sslax.main workdir (checkpoint
  `step`, default the latest) or an `Encoder` that `sslax.load` gave.
  """
  if not isinstance(encoder, encoder_lib.Encoder):
    encoder = encoder_lib.load(encoder, step=step)
  out_dir = storage.path(out)   # local or gs://: every file goes through epath
  out_dir.mkdir(parents=True, exist_ok=True)
  weights = {**artifacts.flatten(encoder.params, 'params'),
             **artifacts.flatten(encoder.model_state, 'model_state')}
  (out_dir / artifacts.WEIGHTS).write_bytes(safetensors_numpy.save(weights, metadata={
      'format': artifacts.FORMAT, 'format_version': str(artifacts.FORMAT_VERSION)}))
  platforms = _export_function(encoder, weights, out_dir / artifacts.FUNCTION)
  config = encoder.config.to_dict()
  if encoder.config.data.get('tokenizer', '') == 'sentencepiece':
    (out_dir / 'tokenizer').mkdir(exist_ok=True)
    (out_dir / 'tokenizer' / tokenizers.SPM_MODEL).write_bytes(
        (storage.path(encoder.config.data.tokenizer_dir) / tokenizers.SPM_MODEL).read_bytes())
    config['data']['tokenizer_dir'] = 'tokenizer'   # relative to the export directory
  (out_dir / artifacts.CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
  (out_dir / artifacts.INPUT_SPEC).write_text(json.dumps(encoder.input_spec, indent=2))
  manifest = {'format': artifacts.FORMAT, 'format_version': artifacts.FORMAT_VERSION,
              'step': encoder.step,
              'method': encoder.config.method, 'modality': encoder.modality,
              'feature_dim': encoder.feature_dim, 'input_spec': encoder.input_spec,
              'platforms': platforms, 'jax_version': jax.__version__}
  (out_dir / 'README.md').write_text(_readme(manifest))
  # Last: a directory with a manifest is complete.
  (out_dir / artifacts.MANIFEST).write_text(json.dumps(manifest, indent=2))
  return out_dir


def _export_function(encoder: encoder_lib.Encoder, weights: dict[str, np.ndarray], path: epath.Path) -> list[str]:
  (b,) = jax.export.symbolic_shape('b')
  weights_spec = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in weights.items()}
  batch_spec = {k: jax.ShapeDtypeStruct((b, *s['shape']), s['dtype'])
                for k, s in encoder.input_spec.items()}
  embed = encoder.method.embed

  def fn(flat_weights, batch):
    return embed(*artifacts.trees(flat_weights), batch)

  platforms = list(PLATFORMS)
  while True:
    try:
      exported = jax.export.export(jax.jit(fn), platforms=platforms)(weights_spec, batch_spec)
      break
    except Exception as e:   # a platform without lowering rules for some op here
      if len(platforms) == 1:
        raise
      dropped = platforms.pop()
      print(f'sslax.export: not lowering for {dropped} ({type(e).__name__}: '
            f'{str(e).splitlines()[0][:120]}).', file=sys.stderr)
  path.write_bytes(bytes(exported.serialize()))
  return platforms


def _readme(manifest: dict[str, Any]) -> str:
  spec = '\n'.join(f"- `{k}`: {s['dtype']} [b, {', '.join(map(str, s['shape']))}]"
                   for k, s in manifest['input_spec'].items())
  return f"""# sslax encoder export ({manifest['method']}, step {manifest['step']})

A {manifest['modality']} encoder pretrained with sslax's `{manifest['method']}`; features are
float32 [b, {manifest['feature_dim']}], the ones sslax's evaluators use. Format
`{artifacts.FORMAT}` version {artifacts.FORMAT_VERSION}; lowered for {', '.join(manifest['platforms'])}.

Inputs (`input_spec.json`), b any batch size:
{spec}

Without sslax (needs `jax` and `safetensors`):

```python
import jax, numpy as np
from safetensors.numpy import load_file
weights = load_file('{artifacts.WEIGHTS}')
embed = jax.export.deserialize(open('{artifacts.FUNCTION}', 'rb').read())
features = embed.call(weights, batch)   # batch: {{key: array}} as listed above
```

With sslax (raw inputs: uint8 images of any size, strings, waveforms and a sample rate):

```python
import sslax
encoder = sslax.load('THIS_DIRECTORY')
features = encoder.embed(inputs)
```

Weights are named '/'-joined pytree paths under `params/` and `model_state/`
(Flax layout: dense kernels [in, out], convolutions [kh, kw, in, out]). `config.json` is the
training config (model, data.image_size / seq_len / sample_rate); `tokenizer/` holds the
SentencePiece model when the run used one (byte-level text: token = 6 + UTF-8 byte).
"""


def main(argv: list[str]) -> None:
  cli.start(argv)
  f = flags.FLAGS
  out = export(f.workdir, f.out, step=f.step)
  print(f'Wrote {out}; {out / "README.md"} says how to call it.')


def define_flags(argv: list[str]) -> None:
  """The command's flags: defined when it runs, not on import (sslax.embed, imported beside
  it in one process, has a --workdir too)."""
  del argv
  flags.DEFINE_string('workdir', None, 'A sslax.main run directory.')
  flags.DEFINE_string('out', None, 'Directory to write the export to.')
  flags.DEFINE_integer('step', None, 'Checkpoint step; default: the latest.')
  flags.mark_flags_as_required(['workdir', 'out'])


callable_module.make_callable(__name__, export)   # sslax.export(workdir, out)


def command() -> None:
  """`python -m sslax.export` and the `sslax-export` script."""
  cli.run(main, define_flags=define_flags)


if __name__ == '__main__':
  command()
