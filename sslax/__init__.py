"""sslax: self-supervised pretraining in JAX/Flax (README.md, docs/DESIGN.md).

`sslax.load(path)` gives a trained encoder (sslax/encoder.py). It is imported on first use,
so that `import sslax.<module>` stays free of JAX start-up work (tests set XLA flags first).
"""


def load(path: str, step: int | None = None):
  """The `Encoder` of a sslax.main workdir (checkpoint `step`, default latest) or of a
  sslax.export directory; `encoder.embed(inputs)` gives the evaluators' features."""
  from sslax import encoder
  return encoder.load(path, step=step)
