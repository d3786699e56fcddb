"""SimCLR pretraining on variable-size microscopy images, cropped on the host.

  python -m sslax.main --config configs/simclr_microscopy.py --workdir /tmp/dsb \
      --config.data.data_dir=/tmp/tfds_dev
  python -m sslax.main --config configs/simclr_microscopy.py:bccd --workdir /tmp/bccd \
      --config.data.data_dir=/tmp/tfds_dev

Data: `../shared/data/dsb2018` (532 train images, 256x256 to 1024x1024 PNG, nuclei in
fluorescence / brightfield / H&E; laid out as {split}/images/*.png, read as an unlabelled
`folder:.../{split}/images`) or, with `:bccd`, `../shared/data/bccd` (292 blood-smear JPEGs,
640x480, flat {split}/*.jpg). Pretraining reads only the images (no labels). On dsb2018 the
nucleus masks then score the encoder with the `segmentation` evaluator (docs/dense.md):
`seg_linear` (frozen encoder, linear per-pixel classifier) and `seg_fine_tune` (encoder + FPN
decoder), mIoU and pixel accuracy against random init; on bccd (`:bccd`) the blood-cell boxes
score it with the `detection` evaluator (FCOS on an FPN, fine-tuned), COCO mAP and mAP@0.5.
The folder is stored encoded (the images' own PNG/JPEG bytes) and every view is decoded,
cropped and resized on the host.

Hardware and time: a 2-core CPU shared with other jobs, 100 steps of batch 64 at 64x64
(docs/vision.md): ~11 min on dsb2018, ~15 min on bccd. Expected (docs/dense.md): dsb2018
mIoU 0.584 vs 0.446 at random init (linear), 0.786 vs 0.730 (fine-tune); bccd mAP@0.5
0.607 vs 0.454; means of 3 seeds. The evaluators took 5 min (dsb2018, one seed) and 14 min
(bccd, three seeds). `:smoke`: 3 steps at 16x16.
"""
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
    raise ValueError(f'{config_file}: unknown argument {arg!r}; use one of '
                     f'{sorted(SOURCES)}, optionally followed by ",smoke", or "smoke".')
  return data, bool(smoke)


def microscopy(c, data: str, smoke: bool):
  """The data and downstream evaluators every microscopy config shares, in place."""
  c.data.source = SOURCES[data]
  c.data.train_split = 'train'
  c.data.image_size = 64
  # No image-level labels: only the dense evaluators score (see the docstring).
  c.eval.source = {**SEGMENTATION, **DETECTION}.get(data, SOURCES[data])
  c.eval.train_split = 'train'
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
  c.eval.raw_input = False
  if smoke:
    for ev in c.evals.values():
      ev.update(epochs=1, batch_size=8, image_size=16 if data in SEGMENTATION else 32,
                max_train=9, max_test=4, decoder_width=8)
  return c


def get_config(arg: str = ''):
  data, smoke = parse_arg(arg, 'configs/simclr_microscopy.py')
  c = common_images.images('simclr', '')
  c.simclr = dict(temperature=0.2, proj_hidden_dims=(256,), proj_dim=64)
  microscopy(c, data, smoke)
  c.total_steps = 100
  c.batch_size = 64
  c.log_every = 10
  c.checkpoint.every_steps = 50
  # Microscopy has no canonical orientation and stains vary: flips stay, hue stays small.
  c.augment.update(crop_scale=(0.08, 1.0), blur_prob=0.0, hue=0.05)
  if smoke:
    c.total_steps = 3
    c.batch_size = 8
    c.log_every = 1
    c.checkpoint.every_steps = 2
    c.data.image_size = 16
    c.model.update(stem_width=8, widths=(8, 16), blocks=(1, 1))
    c.simclr.update(proj_hidden_dims=(32,), proj_dim=16)
  return c
