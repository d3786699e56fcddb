"""A standalone encoder artefact: `python -m sslax.export --workdir W --out DIR [--step N]`.

DIR holds (format version FORMAT_VERSION, recorded in MANIFEST):
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

`sslax.load(DIR)` reads it back as an `Encoder`; `config.init_from=DIR` starts a run there.
"""
from __future__ import annotations

import json
import sys
from typing import Any

from absl import app
from absl import flags
from absl import logging
from etils import epath
import jax
import numpy as np

from sslax import cli
from sslax import errors
from sslax import storage

MANIFEST = 'sslax_export.json'
FORMAT = 'sslax-encoder'
FORMAT_VERSION = 1
WEIGHTS = 'weights.safetensors'
FUNCTION = 'embed.jax_export'
# Lowered for every platform a user may call it on; a platform JAX cannot lower for here is
# left out and the manifest says which were kept.
PLATFORMS = ('cpu', 'cuda', 'tpu')


def flatten(tree: Any, prefix: str) -> dict[str, np.ndarray]:
  """{'prefix/a/b': leaf} of a nested dict (the safetensors naming convention)."""
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    name = '/'.join([prefix] + [str(getattr(k, 'key', k)) for k in path])
    out[name] = np.ascontiguousarray(np.asarray(leaf))
  return out


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
  """The nested dict of `flatten`'s names (inverse up to the prefix level)."""
  tree: dict[str, Any] = {}
  for name, leaf in flat.items():
    *parents, last = name.split('/')
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[last] = leaf
  return tree


def _trees(flat: dict[str, Any]) -> tuple[Any, Any]:
  """(params, model_state) of a flat weights dict; absent (e.g. stateless models): {}."""
  tree = unflatten(flat)
  return tree.get('params', {}), tree.get('model_state', {})


def export(encoder, out: str) -> epath.Path:
  """Writes `encoder` (an sslax.encoder.Encoder) as a standalone directory `out`."""
  from safetensors.numpy import save
  out_dir = storage.path(out)   # local or gs://: every file goes through epath
  out_dir.mkdir(parents=True, exist_ok=True)
  weights = {**flatten(encoder.params, 'params'), **flatten(encoder.model_state, 'model_state')}
  (out_dir / WEIGHTS).write_bytes(save(weights, metadata={'format': FORMAT,
                                                          'format_version': str(FORMAT_VERSION)}))
  platforms = _export_function(encoder, weights, out_dir / FUNCTION)
  config = encoder.config.to_dict()
  if encoder.config.data.get('tokenizer', '') == 'sentencepiece':
    from sslax.data import tokenizers
    (out_dir / 'tokenizer').mkdir(exist_ok=True)
    (out_dir / 'tokenizer' / tokenizers.SPM_MODEL).write_bytes(
        (storage.path(encoder.config.data.tokenizer_dir) / tokenizers.SPM_MODEL).read_bytes())
    config['data']['tokenizer_dir'] = 'tokenizer'   # relative to the export directory
  (out_dir / 'config.json').write_text(json.dumps(config, indent=2, sort_keys=True))
  (out_dir / 'input_spec.json').write_text(json.dumps(encoder.input_spec, indent=2))
  manifest = {'format': FORMAT, 'format_version': FORMAT_VERSION, 'step': encoder.step,
              'method': encoder.config.method, 'modality': encoder.modality,
              'feature_dim': encoder.feature_dim, 'input_spec': encoder.input_spec,
              'platforms': platforms, 'jax_version': jax.__version__}
  (out_dir / 'README.md').write_text(_readme(manifest))
  # Last: a directory with a manifest is complete.
  (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
  return out_dir


def _export_function(encoder, weights: dict[str, np.ndarray], path: epath.Path) -> list[str]:
  (b,) = jax.export.symbolic_shape('b')
  weights_spec = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in weights.items()}
  batch_spec = {k: jax.ShapeDtypeStruct((b, *s['shape']), s['dtype'])
                for k, s in encoder.input_spec.items()}
  embed = encoder.method.embed

  def fn(flat_weights, batch):
    return embed(*_trees(flat_weights), batch)

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
`{FORMAT}` version {FORMAT_VERSION}; lowered for {', '.join(manifest['platforms'])}.

Inputs (`input_spec.json`), b any batch size:
{spec}

Without sslax (needs `jax` and `safetensors`):

```python
import jax, numpy as np
from safetensors.numpy import load_file
weights = load_file('{WEIGHTS}')
embed = jax.export.deserialize(open('{FUNCTION}', 'rb').read())
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


def manifest(root: epath.Path) -> dict[str, Any]:
  """The export's manifest, after checking that this sslax reads its format version."""
  content = json.loads((root / MANIFEST).read_text())
  if content.get('format') != FORMAT or content.get('format_version') != FORMAT_VERSION:
    raise errors.ConfigError(
        f'{root / MANIFEST} is format {content.get("format")!r} version '
        f'{content.get("format_version")!r}; this sslax reads {FORMAT!r} version '
        f'{FORMAT_VERSION}. Re-export the workdir with this version of sslax.')
  return content


def read_weights(root: epath.Path) -> tuple[Any, Any]:
  """(params, model_state) of an export directory, as numpy arrays."""
  from safetensors.numpy import load
  manifest(root)
  return _trees(load((root / WEIGHTS).read_bytes()))


def load(root: epath.Path):
  """An `Encoder` from an export directory (see the module docstring)."""
  from sslax import encoder as encoder_lib
  from sslax import evaluate
  content = manifest(root)
  config = evaluate.load_config(str(root))
  if config.data.get('tokenizer', '') == 'sentencepiece':
    config.data.tokenizer_dir = str(root / config.data.tokenizer_dir)
  params, model_state = read_weights(root)
  return encoder_lib.Encoder(config, content['input_spec'], params, model_state,
                             content['step'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)   # Orbax logs every file it opens at INFO
  from sslax import encoder as encoder_lib
  f = flags.FLAGS
  out = export(encoder_lib.load(f.workdir, step=f.step), f.out)
  print(f'Wrote {out}; {out / "README.md"} says how to call it.')


if __name__ == '__main__':
  # Flags only when run as a command: sslax.evaluate, imported by `load`, has a --workdir too.
  flags.DEFINE_string('workdir', None, 'A sslax.main run directory.')
  flags.DEFINE_string('out', None, 'Directory to write the export to.')
  flags.DEFINE_integer('step', None, 'Checkpoint step; default: the latest.')
  flags.mark_flags_as_required(['workdir', 'out'])
  cli.run(main)
