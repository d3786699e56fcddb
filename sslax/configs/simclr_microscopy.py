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
from sslax.configs import microscopy


def get_config(arg: str = ''):
  c, smoke = microscopy.microscopy('simclr', arg, 'configs/simclr_microscopy.py',
                                   total_steps=100, checkpoint_every=50)
  c.simclr = dict(temperature=0.2, proj_hidden_dims=(256,), proj_dim=64)
  # Microscopy has no canonical orientation and stains vary: flips stay, hue stays small.
  c.augment.update(crop_scale=(0.08, 1.0), blur_prob=0.0, hue=0.05)
  if smoke:
    c.model.update(stem_width=8, widths=(8, 16), blocks=(1, 1))
    c.simclr.update(proj_hidden_dims=(32,), proj_dim=16)
  return c
