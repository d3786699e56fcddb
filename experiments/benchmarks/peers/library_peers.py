"""Library peers of the sslax benchmark workloads: what a user of lightly or Hugging Face
transformers would run, built from the libraries' own classes as their docs and examples
set them up, at the sizes of ../workloads.py (run inside the peer venv only, through
run_peer.py --impl library).

  simclr_resnet18  lightly ResNetGenerator('resnet-18') (its CIFAR ResNet: 3x3 stem, no
                   max-pool), SimCLRProjectionHead(512, 512, 128), NTXentLoss(0.2).
  byol_resnet18    the same backbone, BYOLProjectionHead(512, 512, 128),
                   BYOLPredictionHead(128, 512, 128), NegativeCosineSimilarity (both view
                   orders), momentum copies updated with lightly's update_momentum /
                   cosine_schedule.
  mocov3_resnet18  the same backbone, MoCoProjectionHead(512, 512, 128, num_layers=2,
                   batch_norm=True) (lightly's MoCo head, v3 setting), BYOLPredictionHead as
                   the predictor, the paper's InfoNCE (lightly has no MoCo v3 loss), momentum
                   copies as for BYOL.
  dino_resnet18    the same backbone, DINOProjectionHead(512, 512, 128, 4096) (its weight-
                   normalised last layer), DINOLoss(4096, teacher 0.04, student 0.1, centre
                   momentum 0.9), 2 global 32x32 + 4 local 16x16 crops, teacher on the global
                   ones.
  mae_vits4        timm VisionTransformer (32x32, patch 4, 384 wide, 12 deep, 6 heads) in
                   lightly's MaskedVisionTransformerTIMM, MAEDecoderTIMM (256 wide, 4 deep,
                   8 heads), lightly's random_token_mask / set_at_index / get_at_index,
                   as lightly's MAE example; per-patch normalised pixel target.
  bert_small_mlm   transformers BertForMaskedLM(BertConfig(...)) at 512 wide, 4 layers,
                   8 heads, MLP 2048, 128 positions, vocab 262 (sslax's byte tokenizer), no
                   dropout (sslax has none), random init (no download).

Every builder returns (model, loss_fn, optimiser kwargs, after_step or None) as run_peer.py's
plain-torch builders do; `after_step` runs after the optimiser step (the EMA updates).
Convolutional models and their inputs are channels-last (the faster memory format for
torch's CPU convolutions). Images arrive already augmented (a DataLoader's job); the
masking of MAE and BERT happens inside the step, as in sslax.
"""
import copy

import torch
from torch import nn
import torch.nn.functional as F


def _channels_last(module):
  return module.to(memory_format=torch.channels_last)


class LightlyResNet18(nn.Module):
  """lightly's CIFAR ResNet-18 without its classifier, global-average pooled to [B, 512].

  ResNet.forward ends in avg_pool2d(out, 4) + a Linear; adaptive pooling instead takes
  DINO's 16x16 local crops too (2x2 final maps), and is the same for 32x32 inputs.
  """

  def __init__(self, tiny):
    super().__init__()
    from lightly.models import ResNetGenerator   # pylint: disable=import-outside-toplevel
    # width 1/8 for the harness test: lightly's generator scales all stages by `width`.
    self.resnet = ResNetGenerator('resnet-18', width=0.125 if tiny else 1.0)
    self.out_dim = self.resnet.linear.in_features

  def forward(self, x):
    r = self.resnet
    out = F.relu(r.bn1(r.conv1(x)))
    out = r.layer4(r.layer3(r.layer2(r.layer1(out))))
    return out.mean(dim=(2, 3))


def _views(b, size=32, n=2):
  """n augmented views of b images stacked [n * b, 3, size, size], already in the model's
  range, channels-last."""
  return (torch.rand(n * b, 3, size, size) * 2 - 1).contiguous(memory_format=torch.channels_last)


def simclr(b, tiny):
  from lightly.loss import NTXentLoss   # pylint: disable=import-outside-toplevel
  from lightly.models.modules import SimCLRProjectionHead   # pylint: disable=import-outside-toplevel
  hid, out = (16, 8) if tiny else (512, 128)
  backbone = LightlyResNet18(tiny)
  model = nn.Sequential(backbone, SimCLRProjectionHead(backbone.out_dim, hid, out))
  model = _channels_last(model)
  criterion = NTXentLoss(temperature=0.2)
  x = _views(b)

  def loss():
    z0, z1 = model(x).chunk(2)   # both views in one pass, as sslax (BatchNorm over 2N)
    return criterion(z0, z1)
  return model, loss, dict(lr=2e-3, weight_decay=1e-4), None


class _Momentum(nn.Module):
  """Online backbone + projection head + prediction head, and momentum copies of the first
  two (lightly's BYOL / MoCo examples), plus the step's EMA update."""

  def __init__(self, tiny, projection, prediction, base_momentum, total_steps=200):
    super().__init__()
    from lightly.models import utils   # pylint: disable=import-outside-toplevel
    self.utils = utils
    self.backbone = LightlyResNet18(tiny)
    self.projection_head = projection(self.backbone.out_dim)
    self.prediction_head = prediction
    self.backbone_momentum = copy.deepcopy(self.backbone)
    self.projection_head_momentum = copy.deepcopy(self.projection_head)
    utils.deactivate_requires_grad(self.backbone_momentum)
    utils.deactivate_requires_grad(self.projection_head_momentum)
    self.base_momentum, self.total_steps, self.step = base_momentum, total_steps, 0

  def forward(self, x):
    return self.prediction_head(self.projection_head(self.backbone(x)))

  def forward_momentum(self, x):
    with torch.no_grad():   # sslax also runs its EMA target in train mode (BatchNorm stats)
      return self.projection_head_momentum(self.backbone_momentum(x)).detach()

  def update(self):
    from lightly.utils.scheduler import cosine_schedule   # pylint: disable=import-outside-toplevel
    m = cosine_schedule(self.step, self.total_steps, self.base_momentum, 1.0)
    self.utils.update_momentum(self.backbone, self.backbone_momentum, m=m)
    self.utils.update_momentum(self.projection_head, self.projection_head_momentum, m=m)
    self.step += 1


def byol(b, tiny):
  from lightly.loss import NegativeCosineSimilarity   # pylint: disable=import-outside-toplevel
  from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead   # pylint: disable=import-outside-toplevel
  hid, out = (16, 8) if tiny else (512, 128)
  model = _Momentum(tiny, lambda d: BYOLProjectionHead(d, hid, out),
                    BYOLPredictionHead(out, hid, out), base_momentum=0.95, total_steps=450)
  model = _channels_last(model)
  criterion = NegativeCosineSimilarity()
  x = _views(b)

  def loss():
    p0, p1 = model(x).chunk(2)
    z0, z1 = model.forward_momentum(x).chunk(2)
    return 0.5 * (criterion(p0, z1) + criterion(p1, z0))
  return model, loss, dict(lr=2e-3, weight_decay=1e-4), model.update


def mocov3(b, tiny, temperature=0.2):
  from lightly.models.modules import BYOLPredictionHead, MoCoProjectionHead   # pylint: disable=import-outside-toplevel
  hid, out = (16, 8) if tiny else (512, 128)
  model = _Momentum(tiny, lambda d: MoCoProjectionHead(d, hid, out, num_layers=2,
                                                       batch_norm=True),
                    BYOLPredictionHead(out, hid, out), base_momentum=0.99)
  model = _channels_last(model)
  x = _views(b)

  def infonce(q, k):   # MoCo v3, Algorithm 1: the other keys of the batch are negatives
    logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(q.shape[0])) * 2 * temperature

  def loss():
    q0, q1 = model(x).chunk(2)
    k0, k1 = model.forward_momentum(x).chunk(2)
    return infonce(q0, k1) + infonce(q1, k0)
  return model, loss, dict(lr=2e-3, weight_decay=1e-4), model.update


class _Dino(nn.Module):
  """Student and teacher backbone + DINOProjectionHead (lightly's DINO example)."""

  def __init__(self, tiny, hid, bottleneck, out):
    super().__init__()
    from lightly.models import utils   # pylint: disable=import-outside-toplevel
    from lightly.models.modules import DINOProjectionHead   # pylint: disable=import-outside-toplevel
    self.utils = utils
    self.student_backbone = LightlyResNet18(tiny)
    self.student_head = DINOProjectionHead(self.student_backbone.out_dim, hid, bottleneck, out,
                                           batch_norm=False)
    self.teacher_backbone = copy.deepcopy(self.student_backbone)
    # weight_norm's parameters do not deepcopy: a second head (lightly's example), started
    # equal to the student's.
    self.teacher_head = DINOProjectionHead(self.student_backbone.out_dim, hid, bottleneck, out,
                                           batch_norm=False)
    self.teacher_head.load_state_dict(self.student_head.state_dict())
    utils.deactivate_requires_grad(self.teacher_backbone)
    utils.deactivate_requires_grad(self.teacher_head)
    self.step = 0

  def forward(self, x):
    return self.student_head(self.student_backbone(x))

  def forward_teacher(self, x):
    with torch.no_grad():
      return self.teacher_head(self.teacher_backbone(x))

  def update(self):
    from lightly.utils.scheduler import cosine_schedule   # pylint: disable=import-outside-toplevel
    m = cosine_schedule(self.step, 200, 0.99, 1.0)
    self.utils.update_momentum(self.student_backbone, self.teacher_backbone, m=m)
    self.utils.update_momentum(self.student_head, self.teacher_head, m=m)
    self.step += 1


def dino(b, tiny, num_local=4):
  from lightly.loss import DINOLoss   # pylint: disable=import-outside-toplevel
  hid, bottleneck, out = (16, 8, 32) if tiny else (512, 128, 4096)
  model = _Dino(tiny, hid, bottleneck, out)
  model = _channels_last(model)
  criterion = DINOLoss(output_dim=out, warmup_teacher_temp=0.04, teacher_temp=0.04,
                       warmup_teacher_temp_epochs=0, student_temp=0.1, center_momentum=0.9)
  global_x = _views(b, 32, 2)
  local_x = _views(b, 16, num_local)

  def loss():
    # One pass per crop size (sslax does the same: the pooled encoder takes any size).
    student = model(global_x).chunk(2) + model(local_x).chunk(num_local)
    teacher = model.forward_teacher(global_x).chunk(2)
    return criterion(list(teacher), list(student), epoch=0)
  return model, loss, dict(lr=2e-3, weight_decay=1e-4), model.update


class _MAE(nn.Module):
  """lightly's MAE example (MaskedVisionTransformerTIMM + MAEDecoderTIMM) at ViT-S/4."""

  def __init__(self, width, depth, heads, dwidth, ddepth, dheads, patch=4, size=32,
               mask_ratio=0.75):
    super().__init__()
    from lightly.models import utils   # pylint: disable=import-outside-toplevel
    from lightly.models.modules import MAEDecoderTIMM, MaskedVisionTransformerTIMM   # pylint: disable=import-outside-toplevel
    from timm.models.vision_transformer import VisionTransformer   # pylint: disable=import-outside-toplevel
    self.utils, self.patch, self.mask_ratio = utils, patch, mask_ratio
    vit = VisionTransformer(img_size=size, patch_size=patch, embed_dim=width, depth=depth,
                            num_heads=heads, mlp_ratio=4.0, num_classes=0)
    self.backbone = MaskedVisionTransformerTIMM(vit=vit)
    self.sequence_length = self.backbone.sequence_length   # patches + the class token
    self.decoder = MAEDecoderTIMM(num_patches=vit.patch_embed.num_patches, patch_size=patch,
                                  embed_dim=width, decoder_embed_dim=dwidth,
                                  decoder_depth=ddepth, decoder_num_heads=dheads,
                                  mlp_ratio=4.0, proj_drop_rate=0.0, attn_drop_rate=0.0)

  def forward(self, images):
    u = self.utils
    b = images.shape[0]
    idx_keep, idx_mask = u.random_token_mask(size=(b, self.sequence_length),
                                             mask_ratio=self.mask_ratio, device=images.device)
    encoded = self.backbone.encode(images=images, idx_keep=idx_keep)
    decode_in = u.repeat_token(self.decoder.mask_token, (b, self.sequence_length))
    decode_in = u.set_at_index(decode_in, idx_keep, self.decoder.embed(encoded))
    pred = self.decoder.predict(u.get_at_index(self.decoder.decode(decode_in), idx_mask))
    patches = u.patchify(images, self.patch)
    target = u.get_at_index(patches, idx_mask - 1)   # idx_mask counts the class token
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
    return F.mse_loss(pred, (target - mean) / (var + 1e-6).sqrt())


def mae(b, tiny):
  model = _MAE(*((16, 1, 2, 16, 1, 2) if tiny else (384, 12, 6, 256, 4, 8)))
  x = torch.rand(b, 3, 32, 32) * 2 - 1   # one augmented view per image
  return model, lambda: model(x), dict(lr=1.5e-3, weight_decay=0.05, betas=(0.9, 0.95)), None


def bert(b, tiny, vocab=262, length=128, predictions=20, num_special=6, mask_id=1):
  from transformers import BertConfig, BertForMaskedLM   # pylint: disable=import-outside-toplevel
  d, depth, heads, mlp = (16, 1, 2, 32) if tiny else (512, 4, 8, 2048)
  config = BertConfig(vocab_size=vocab, hidden_size=d, num_hidden_layers=depth,
                      num_attention_heads=heads, intermediate_size=mlp,
                      max_position_embeddings=length, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0, pad_token_id=0)
  model = BertForMaskedLM(config)
  tokens = torch.randint(num_special, vocab, (b, length))

  def loss():
    # BERT's corruption on the fly (as sslax): 20 positions, 80% [MASK], 10% random, 10% kept;
    # labels -100 elsewhere (transformers' convention: ignored by the loss).
    positions = torch.rand(b, length).argsort(1)[:, :predictions]
    targets = torch.gather(tokens, 1, positions)
    u = torch.rand(b, predictions)
    new = torch.where(u < 0.8, torch.full_like(targets, mask_id),
                      torch.where(u < 0.9, torch.randint_like(targets, num_special, vocab),
                                  targets))
    labels = torch.full_like(tokens, -100).scatter(1, positions, targets)
    return model(input_ids=tokens.scatter(1, positions, new), labels=labels).loss
  return model, loss, dict(lr=2e-3, weight_decay=0.01, betas=(0.9, 0.98)), None


WORKLOADS = {'simclr_resnet18': simclr, 'byol_resnet18': byol, 'mocov3_resnet18': mocov3,
             'dino_resnet18': dino, 'mae_vits4': mae, 'bert_small_mlm': bert}
# The library each peer comes from, for the tables.
LIBRARY = {'simclr_resnet18': 'lightly', 'byol_resnet18': 'lightly',
           'mocov3_resnet18': 'lightly', 'dino_resnet18': 'lightly', 'mae_vits4': 'lightly',
           'bert_small_mlm': 'transformers'}


def preload(name):
  """Imports the libraries of workload `name`'s peer (so run_peer.py's memory baseline
  includes them and only the model and the step count)."""
  import lightly.loss, lightly.models   # noqa: F401,E401 pylint: disable=import-outside-toplevel,multiple-imports
  if name == 'mae_vits4':
    import timm  # noqa: F401 pylint: disable=import-outside-toplevel
    import lightly.models.modules.masked_autoencoder_timm  # noqa: F401 pylint: disable=import-outside-toplevel
  if name == 'bert_small_mlm':
    import transformers  # noqa: F401 pylint: disable=import-outside-toplevel
    transformers.BertForMaskedLM   # pylint: disable=pointless-statement  (lazy module)


def versions():
  import importlib.metadata as md   # pylint: disable=import-outside-toplevel
  out = {}
  for pkg in ('torch', 'torchvision', 'lightly', 'timm', 'transformers'):
    try:
      out[pkg] = md.version(pkg)
    except md.PackageNotFoundError:
      pass
  return out

