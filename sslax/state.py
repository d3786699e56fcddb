"""The train state: everything a resumed run needs, as one pytree."""
from typing import Any

from flax import struct
import jax


@struct.dataclass
class TrainState:
  """A pure pytree, so Orbax saves it whole and jit can donate it.

  `rng` is the run's root key: the step key is `fold_in(rng, step)`, so the
  randomness of step s never depends on how many steps ran before a restart.
  """
  step: jax.Array            # int32 scalar
  params: Any
  opt_state: Any
  model_state: Any           # e.g. BatchNorm statistics
  extra: Any                 # method-owned: EMA targets, queues, centres
  rng: jax.Array             # uint32 [2] raw key data (checkpointable)
  probe: Any = None          # online linear probe's params and optimiser state, if enabled
