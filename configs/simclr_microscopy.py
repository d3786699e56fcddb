"""SimCLR pretraining on variable-size microscopy images, cropped on the host.

  python -m sslax.main --config configs/simclr_microscopy.py --workdir /tmp/dsb \
      --config.data.data_dir=/tmp/tfds_dev
  python -m sslax.main --config configs/simclr_microscopy.py:bccd --workdir /tmp/bccd \
      --config.data.data_dir=/tmp/tfds_dev

Data: `../shared/data/dsb2018` (532 train images, 256x256 to 1024x1024 PNG, nuclei in
fluorescence / brightfield / H&E; laid out as {split}/images/*.png, read as an unlabelled
`folder:.../{split}/images`) or, with `:bccd`, `../shared/data/bccd` (292 blood-smear JPEGs,
640x480, flat {split}/*.jpg). Neither has image-level labels, so no downstream evaluator runs:
the run shows the pretext task learning (loss, contrastive accuracy in metrics.jsonl) and
leaves an encoder for `sslax.embed` / `init_from`. The folder is stored encoded (the images'
own PNG/JPEG bytes) and every view is decoded, cropped and resized on the host.

Hardware and time: a 2-core CPU shared with other jobs, 100 steps of batch 64 at 64x64
(README, "Images at scale"). `:smoke`: 3 steps at 16x16.
"""
from configs import common_images

SOURCES = {
    'dsb2018': 'folder:../shared/data/dsb2018/{split}/images',
    'bccd': 'folder:../shared/data/bccd',
}


def get_config(arg: str = ''):
  data, _, smoke = (arg or 'dsb2018').partition(',')
  if arg == 'smoke':
    data, smoke = 'dsb2018', 'smoke'
  if data not in SOURCES or smoke not in ('', 'smoke'):
    raise ValueError(f'configs/simclr_microscopy.py: unknown argument {arg!r}; use one of '
                     f'{sorted(SOURCES)}, optionally followed by ",smoke", or "smoke".')
  c = common_images.images('simclr', '')
  c.simclr = dict(temperature=0.2, proj_hidden_dims=(256,), proj_dim=64)
  c.data.source = SOURCES[data]
  c.data.train_split = 'train'
  c.data.image_size = 64
  # Unlabelled: nothing to score downstream (see the docstring).
  c.eval.source = SOURCES[data]
  c.evals = {}
  c.eval.raw_input = False
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
