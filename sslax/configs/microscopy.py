"""What the microscopy configs (simclr_microscopy, mae_microscopy) share: the data sets, the
dense evaluators that score them, the run's size and the `smoke` variant of all three.

Not an experiment itself: `microscopy(method, arg, ...)` is the base each of them starts
from. The data sets and what the evaluators measure are in configs/simclr_microscopy.py's
docstring and docs/dense.md.
"""
import ml_collections

from sslax import errors
from sslax.configs import common_images

SOURCES = {
    'dsb2018': 'folder:../shared/data/dsb2018/{split}/images',
    'bccd': 'folder:../shared/data/bccd',
}
# Labelled forms of the same folders for the dense evaluators.
SEGMENTATION = {'dsb2018': 'segfolder:../shared/data/dsb2018'}
DETECTION = {'bccd': 'coco:../shared/data/bccd'}


def parse_arg(arg: str, config_file: str) -> tuple[str, bool]:
  """'' | 'smoke' | 'bccd' | 'dsb2018,smoke' ... -> (data set, smoke)."""
  data, _, smoke = (arg or 'dsb2018').partition(',')
  if arg == 'smoke':
    data, smoke = 'dsb2018', 'smoke'
  if data not in SOURCES or smoke not in ('', 'smoke'):
    raise errors.ConfigError(f'{config_file}: unknown argument {arg!r}; use one of '
                             f'{sorted(SOURCES)}, optionally followed by ",smoke", or "smoke".')
  return data, bool(smoke)


def _evals(c: ml_collections.ConfigDict, data: str, smoke: bool) -> None:
  """The dense evaluators of `data`: segmentation on dsb2018, detection on bccd."""
  c.evals = {}
  if data in SEGMENTATION:
    # 1 epoch = 479 crops (532 less the held-out 10%). Learning rates: the linear head alone
    # takes a larger one than encoder + decoder.
    seg = dict(type='segmentation', source='', every_steps=0, enabled=True, epochs=4,
               batch_size=16, weight_decay=1e-4, image_size=64, scale_range=(0.5, 2.0),
               decoder_width=32)
    c.evals.seg_linear = dict(seg, mode='linear', learning_rate=1e-2)
    c.evals.seg_fine_tune = dict(seg, mode='fine_tune', learning_rate=1e-3)
  if data in DETECTION:
    # 1 epoch = 263 crops (292 less the held-out 10%); 128x128 crops of the 640x480 smears
    # keep platelets (~30 px there) a few positions wide at stride 2-4.
    c.evals.detection = dict(type='detection', source='', every_steps=0, enabled=True,
                             epochs=6, batch_size=16, learning_rate=1e-3, weight_decay=1e-4,
                             image_size=128, scale_range=(0.8, 1.25), decoder_width=32)
  if smoke:
    for ev in c.evals.values():
      ev.update(epochs=1, batch_size=8, image_size=16 if data in SEGMENTATION else 32,
                max_train=9, max_test=4, decoder_width=8)


def microscopy(method: str, arg: str, config_file: str, *, total_steps: int,
               checkpoint_every: int) -> tuple[ml_collections.ConfigDict, bool]:
  """The base config of `method` on the data set that `arg` names, at 64x64 in batches of 64,
  and whether `arg` asks for `smoke` (3 steps at 16x16): the config adds its model's and
  method's settings, and their smoke sizes."""
  data, smoke = parse_arg(arg, config_file)
  c = common_images.images(method, '')
  c.data.source = SOURCES[data]
  c.data.train_split = 'train'
  c.data.image_size = 64
  # No image-level labels: only the dense evaluators score (see the docstring).
  c.eval.source = {**SEGMENTATION, **DETECTION}.get(data, SOURCES[data])
  c.eval.train_split = 'train'
  c.eval.raw_input = False
  c.eval.label_budgets = ()   # no class labels to budget
  _evals(c, data, smoke)
  c.total_steps = total_steps
  c.batch_size = 64
  c.log_every = 10
  c.checkpoint.every_steps = checkpoint_every
  if smoke:
    c.total_steps = 3
    c.batch_size = 8
    c.log_every = 1
    c.checkpoint.every_steps = 2
    c.data.image_size = 16
  return c, smoke
