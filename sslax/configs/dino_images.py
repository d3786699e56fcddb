"""DINO on CIFAR-10 (../shared/data/cifar10): 2 global 32x32 crops + 4 local 16x16 crops,
small ResNet student and EMA teacher.

  python -m sslax.main --config configs/dino_images.py --workdir /tmp/dino \
      --config.data.data_dir=/tmp/tfds_dev

Hardware and time: a 2-core CPU shared with other jobs, 200 steps of batch 128, 8.2 min
wall-clock including evaluation (an upper bound). Expected result: kNN@20 0.357 vs 0.313 at
random init, linear probe 0.422 vs 0.367 (README table). `configs/dino_images.py:smoke`: 4
steps on digits.
"""
from sslax.configs import common_images


def get_config(arg: str = ''):
  c = common_images.images('dino', arg)
  # Solo-learn's CIFAR settings, with a smaller head (K = 4096) for the CPU.
  c.dino = dict(num_global=2, num_local=4, local_size=16, global_scale=(0.3, 1.0),
                local_scale=(0.1, 0.3), head_hidden_dims=(512,), bottleneck_dim=128,
                out_dim=4096, student_temperature=0.1, teacher_temperature=0.04,
                warmup_teacher_temperature=0.04, warmup_teacher_temperature_steps=0,
                center_momentum=0.9, momentum_base=0.99)
  if arg == 'smoke':
    c.dino.update(num_local=2, local_size=8, global_scale=(0.5, 1.0), local_scale=(0.2, 0.5),
                  head_hidden_dims=(32,), bottleneck_dim=16, out_dim=64,
                  warmup_teacher_temperature=0.02, warmup_teacher_temperature_steps=2)
  return c
