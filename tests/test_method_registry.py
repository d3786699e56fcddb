"""The method registry (sslax/methods/__init__.py): names, lookup, and the host-crop hook."""
import pytest

from sslax.configs import dino_images
from sslax.configs import simclr_digits
from sslax import errors
from sslax import methods

# Every method DESIGN.md's Layout lists; a new one must be added here and there.
EXPECTED = ['apc', 'barlow', 'byol', 'clip_contrast', 'cpc', 'dino', 'lm', 'mae',
            'masked_audio', 'mlm', 'mocov3', 'next_frame_video', 'simclr', 'vicreg']


def test_available_lists_exactly_the_method_modules_sorted():
  names = methods.available()
  assert names == EXPECTED   # a list, sorted, without the shared `_siamese` module
  assert all(callable(methods.get(name)) for name in names)


def test_an_unknown_method_is_refused_naming_the_choices():
  with pytest.raises(errors.ConfigError, match=r"config.method='simclrr' is unknown; choose one "
                                               r'of apc, barlow, .*, vicreg\.'):
    methods.get('simclrr')


def test_host_crops_default_and_own():
  simclr = simclr_digits.get_config('smoke')
  (spec,) = methods.host_crops(simclr)   # the two-view default, from config.augment
  assert (spec.key, spec.count, spec.size) == ('image', 2, simclr.data.image_size)
  assert spec.scale == tuple(simclr.augment.crop_scale)
  dino = dino_images.get_config('smoke')
  assert [(s.key, s.count) for s in methods.host_crops(dino)] == [
      ('image', dino.dino.num_global), ('image_local', dino.dino.num_local)]
