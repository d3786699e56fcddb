"""The paper-scale ViT configs (configs/paper/mocov3_vits16.py, dino_vits16.py) hold the
papers' numbers; their `smoke` variants run with resume in tests/test_paper_configs.py."""
import importlib

import pytest

from sslax import optim

def _config(name: str, arg: str = ''):
  return importlib.import_module(f'sslax.configs.paper.{name}').get_config(arg)


def test_full_configs_hold_the_papers_recipes():
  m = _config('mocov3_vits16')
  assert (m.batch_size, m.mocov3.temperature, m.optim.weight_decay) == (4096, 0.2, 0.1)
  assert optim.schedule(m)(m.optim.warmup_steps) == pytest.approx(1.5e-4 * 4096 / 256)
  assert m.total_steps == int(300 * 1_281_167 / 4096)
  assert (m.model.width, m.model.depth, m.model.num_heads, m.model.patch_size) == (384, 12, 6, 16)
  d = _config('dino_vits16')
  assert (d.batch_size, d.dino.num_local, d.dino.local_size, d.data.image_size) == (1024, 10, 96,
                                                                                    224)
  assert optim.schedule(d)(d.optim.warmup_steps) == pytest.approx(5e-4 * 1024 / 256)
  assert (d.dino.warmup_teacher_temperature, d.dino.teacher_temperature) == (0.04, 0.07)
  for c in (m, d):
    assert c.data.source == 'tfds:imagenet2012' and c.model.pool == 'cls'
    assert c.model.dtype == 'bfloat16'
