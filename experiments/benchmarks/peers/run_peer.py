"""PyTorch peers of the sslax benchmark workloads (run inside the peer venv only).

  .peer-venv/bin/python experiments/benchmarks/peers/run_peer.py --workload simclr_resnet18 \
      --batch_size 32 --threads 2 [--impl library] [--compile]

--impl torch (default): the home-made peers below, for simclr_resnet18, mae_vits4,
bert_small_mlm and cpc_audio_1s. --impl library: library_peers.py (lightly, timm,
transformers as their docs set them up). --compile: torch.compile of the loss function
(model forward + loss; backward through AOTAutograd), default mode; the FLOPs are counted on
the eager step first (FlopCounterMode does not see inside compiled kernels), and the first
compiled call's time is reported as `compile_s`.

Plain PyTorch, written to match sslax's models layer for layer (see ../workloads.py), so the
FLOPs agree with XLA's count within a few percent (torch.utils.flop_counter counts matmuls
and convolutions; XLA also counts elementwise work). One step = forward, loss, backward,
AdamW; float32; `--threads` intra-op threads. sslax's step also contains its on-device
augmentation (random resized crop, flip, colour jitter; masking; audio crops, gain, log-mel):
the peers do the masking and log-mel on the batch in the step, but take images as already
augmented tensors, as a DataLoader would hand them over (its CPU workers are not timed).
Prints one JSON line; `peak_rss_mib` is the process's peak resident memory minus its
resident memory before the model was built (torch's CPU allocator keeps no peak statistic).
"""
import argparse
import importlib
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F


# ---- SimCLR: CIFAR-stem ResNet-18 + projector + NT-Xent ---------------------------------------
class BasicBlock(nn.Module):
  def __init__(self, cin, cout, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.short = None
    if stride != 1 or cin != cout:
      self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                 nn.BatchNorm2d(cout))

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return F.relu(y + (x if self.short is None else self.short(x)))


class ResNet18Cifar(nn.Module):
  def __init__(self, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), stem=64):
    super().__init__()
    self.stem = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem),
                              nn.ReLU())
    layers, cin = [], stem
    for stage, (w, n) in enumerate(zip(widths, blocks)):
      for i in range(n):
        layers.append(BasicBlock(cin, w, 2 if stage > 0 and i == 0 else 1))
        cin = w
    self.layers = nn.Sequential(*layers)
    self.out_dim = cin

  def forward(self, x):
    return self.layers(self.stem(x)).mean(dim=(2, 3))


def nt_xent(out0, out1, temperature):
  """NT-Xent as lightly.loss.NTXentLoss computes it without a memory bank (one device)."""
  out0, out1 = F.normalize(out0, dim=1), F.normalize(out1, dim=1)
  n = out0.shape[0]
  l00 = out0 @ out0.T / temperature
  l01 = out0 @ out1.T / temperature
  l10 = out1 @ out0.T / temperature
  l11 = out1 @ out1.T / temperature
  off_diag = ~torch.eye(n, dtype=torch.bool)
  l00 = l00[off_diag].view(n, -1)
  l11 = l11[off_diag].view(n, -1)
  logits = torch.cat([torch.cat([l01, l00], 1), torch.cat([l10, l11], 1)], 0)
  labels = torch.arange(n).repeat(2)
  return F.cross_entropy(logits, labels)


def simclr(b, tiny):
  widths, blocks, stem, hid, out = ((8, 16), (1, 1), 8, 16, 8) if tiny else (
      (64, 128, 256, 512), (2, 2, 2, 2), 64, 512, 128)
  enc = ResNet18Cifar(widths, blocks, stem)
  proj = nn.Sequential(nn.Linear(enc.out_dim, hid, bias=False), nn.BatchNorm1d(hid), nn.ReLU(),
                       nn.Linear(hid, out))
  model = nn.Sequential(enc, proj)
  x = torch.rand(2 * b, 3, 32, 32) * 2 - 1   # two augmented views, already in model range

  def loss():
    z0, z1 = model(x).chunk(2)
    return nt_xent(z0, z1, 0.2)
  return model, loss, dict(lr=2e-3, weight_decay=1e-4)


# ---- Transformer pieces (pre-norm, tanh GELU as flax's nn.gelu) -------------------------------
class Block(nn.Module):
  def __init__(self, d, heads, mlp):
    super().__init__()
    self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
    self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
    self.fc1, self.fc2 = nn.Linear(d, mlp), nn.Linear(mlp, d)

  def forward(self, x, attn_mask=None):
    y = self.ln1(x)
    x = x + self.attn(y, y, y, attn_mask=attn_mask, need_weights=False)[0]
    return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate='tanh'))


class Stack(nn.Module):
  def __init__(self, d, depth, heads, mlp):
    super().__init__()
    self.blocks = nn.ModuleList(Block(d, heads, mlp) for _ in range(depth))
    self.ln = nn.LayerNorm(d)

  def forward(self, x, attn_mask=None):
    for blk in self.blocks:
      x = blk(x, attn_mask)
    return self.ln(x)


def sincos_2d(grid, d):
  omega = 1.0 / 10000 ** (torch.arange(d // 4, dtype=torch.float64) / (d // 4))
  rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing='ij')
  out = [f(torch.outer(a.reshape(-1).double(), omega)) for a in (rows, cols)
         for f in (torch.sin, torch.cos)]
  return torch.cat(out, 1).float()


def patchify(x_BxHxWxC, p):
  b, h, w, c = x_BxHxWxC.shape
  x = x_BxHxWxC.reshape(b, h // p, p, w // p, p, c).permute(0, 1, 3, 2, 4, 5)
  return x.reshape(b, (h // p) * (w // p), p * p * c)


# ---- MAE ViT-S/4 --------------------------------------------------------------------------------
class MAE(nn.Module):
  def __init__(self, d, depth, heads, dd, ddepth, dheads, p=4, size=32):
    super().__init__()
    self.p, self.grid = p, size // p
    self.embed = nn.Linear(p * p * 3, d)
    self.register_buffer('pos', sincos_2d(self.grid, d))
    self.encoder = Stack(d, depth, heads, 4 * d)
    self.dec_embed = nn.Linear(d, dd)
    self.mask_token = nn.Parameter(torch.zeros(dd))
    self.register_buffer('dec_pos', sincos_2d(self.grid, dd))
    self.decoder = Stack(dd, ddepth, dheads, 4 * dd)
    self.pred = nn.Linear(dd, p * p * 3)

  def forward(self, x_BxHxWxC, mask_ratio=0.75):
    patches = patchify(x_BxHxWxC, self.p)
    b, l, _ = patches.shape
    k = int(round(l * (1 - mask_ratio)))
    keep = torch.rand(b, l).argsort(1)[:, :k]
    tokens = self.embed(patches) + self.pos
    vis = torch.gather(tokens, 1, keep[..., None].expand(-1, -1, tokens.shape[-1]))
    y = self.dec_embed(self.encoder(vis))
    full = self.mask_token.expand(b, l, -1).clone()
    full = full.scatter(1, keep[..., None].expand(-1, -1, y.shape[-1]), y)
    pred = self.pred(self.decoder(full + self.dec_pos))
    mean, var = patches.mean(-1, keepdim=True), patches.var(-1, keepdim=True)
    target = (patches - mean) / (var + 1e-6).sqrt()
    mask = torch.ones(b, l).scatter(1, keep, 0.0)
    return (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()


def mae(b, tiny):
  args = (16, 1, 2, 16, 1, 2) if tiny else (384, 12, 6, 256, 4, 8)
  model = MAE(*args)
  x = torch.rand(b, 32, 32, 3) * 2 - 1
  return model, lambda: model(x), dict(lr=1.5e-3, weight_decay=0.05, betas=(0.9, 0.95))


# ---- BERT-small MLM -----------------------------------------------------------------------------
class BertMLM(nn.Module):
  def __init__(self, vocab, d, depth, heads, mlp, length):
    super().__init__()
    self.tok = nn.Embedding(vocab, d)
    self.pos = nn.Parameter(torch.randn(length, d) * 0.02)
    self.stack = Stack(d, depth, heads, mlp)

  def forward(self, tokens, positions, targets):
    h = self.stack(self.tok(tokens) + self.pos)
    h = torch.gather(h, 1, positions[..., None].expand(-1, -1, h.shape[-1]))
    logits = h @ self.tok.weight.T     # tied output embedding
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def bert(b, tiny, vocab=262, length=128, predictions=20, num_special=6, mask_id=1):
  d, depth, heads, mlp = (16, 1, 2, 32) if tiny else (512, 4, 8, 2048)
  model = BertMLM(vocab, d, depth, heads, mlp, length)
  tokens = torch.randint(num_special, vocab, (b, length))

  def loss():
    # BERT's corruption on the fly: 20 positions, 80% [MASK], 10% random, 10% kept (sslax's
    # byte tokenizer: 6 special ids, [MASK] = 1, vocab 262).
    positions = torch.rand(b, length).argsort(1)[:, :predictions]
    targets = torch.gather(tokens, 1, positions)
    u = torch.rand(b, predictions)
    new = torch.where(u < 0.8, torch.full_like(targets, mask_id),
                      torch.where(u < 0.9, torch.randint_like(targets, num_special, vocab),
                                  targets))
    inputs = tokens.scatter(1, positions, new)
    return model(inputs, positions, targets)
  return model, loss, dict(lr=2e-3, weight_decay=0.01, betas=(0.9, 0.98))


# ---- CPC on 1 s of 16 kHz audio -----------------------------------------------------------------
class CPC(nn.Module):
  def __init__(self, d, depth, heads, mlp, n_mels=40, frames=128, ks=(1, 2, 3, 4), kernel=3):
    super().__init__()
    self.kernel = kernel
    self.conv0 = nn.Conv1d(n_mels, d, kernel)
    self.conv1 = nn.Conv1d(d, d, kernel)
    self.ln_in = nn.LayerNorm(d)
    self.pos = nn.Parameter(torch.randn(frames, d) * 0.02)
    self.stack = Stack(d, depth, heads, mlp)
    self.heads = nn.ModuleList(nn.Linear(d, d) for _ in ks)
    self.ks = ks

  def forward(self, x_BxFxM):
    f = x_BxFxM.shape[1]
    causal = lambda t: F.pad(t, (self.kernel - 1, 0))   # noqa: E731
    h = F.gelu(self.conv0(causal(x_BxFxM.transpose(1, 2))), approximate='tanh')
    z = F.gelu(self.conv1(causal(h)), approximate='tanh').transpose(1, 2)
    mask = torch.triu(torch.ones(f, f, dtype=torch.bool), 1)
    c = self.stack(self.ln_in(z) + self.pos[:f], attn_mask=mask)
    values = []
    for k, head in zip(self.ks, self.heads):
      pred = F.normalize(head(c)[:, :-k].reshape(-1, z.shape[-1]), dim=1)
      fut = F.normalize(z[:, k:].reshape(-1, z.shape[-1]), dim=1)
      logits = pred @ fut.T / 0.1
      values.append(F.cross_entropy(logits, torch.arange(logits.shape[0])))
    return torch.stack(values).mean()


def log_mel(audio_BxT, fb, n_fft=400, hop=160):
  spec = torch.stft(audio_BxT, n_fft, hop, window=torch.hann_window(n_fft), center=False,
                    return_complex=True).abs() ** 2
  x = torch.log(fb @ spec + 1e-6).transpose(1, 2)      # [B, F, M]
  return (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-5)


def cpc(b, tiny):
  d, depth, heads, mlp = (16, 1, 2, 32) if tiny else (64, 2, 4, 128)
  model = CPC(d, depth, heads, mlp)
  audio = 0.1 * torch.randn(b, 16000)
  fb = torch.rand(40, 201)   # a mel filterbank's shape; its values do not change the cost
  return model, lambda: model(log_mel(audio, fb)), dict(lr=1e-3, weight_decay=1e-4)


WORKLOADS = {'simclr_resnet18': simclr, 'mae_vits4': mae, 'bert_small_mlm': bert,
             'cpc_audio_1s': cpc}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--workload', required=True)
  parser.add_argument('--impl', default='torch', choices=('torch', 'library'),
                      help='torch: the home-made peer; library: library_peers.py')
  parser.add_argument('--compile', action='store_true', help='torch.compile the loss function')
  parser.add_argument('--batch_size', type=int, required=True)
  parser.add_argument('--threads', type=int, required=True)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--repeats', type=int, default=10)
  parser.add_argument('--tiny', action='store_true')
  parser.add_argument('--phases', action='store_true',
                      help='also time forward (loss) and forward + backward alone')
  parser.add_argument('--conv_layers', default='',
                      help='instead: time forward + both gradients of 3x3 convolutions '
                           '"hw,cin,cout,stride;..." on --batch_size images (NCHW)')
  args = parser.parse_args()
  torch.manual_seed(0)
  torch.set_num_threads(args.threads)
  if args.conv_layers:
    print(json.dumps(conv_layers(args)))
    return
  if args.impl == 'library':
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import library_peers   # pylint: disable=import-outside-toplevel
    builders, library, versions = (library_peers.WORKLOADS, library_peers.LIBRARY,
                                   library_peers.versions())
  else:
    builders, library, versions = WORKLOADS, {}, {'torch': torch.__version__}
  if args.workload not in builders:
    raise SystemExit(f'no --impl {args.impl} peer for {args.workload}; '
                     f'choose one of {sorted(builders)}')
  if args.impl == 'library' and args.workload in builders:
    library_peers.preload(args.workload)
  # Imported before the memory baseline (the flop counter pulls in sympy; the optimiser's
  # first step or the libraries import torch._dynamo, ~75 MiB): only the model and step count.
  importlib.import_module('torch._dynamo')
  from torch.utils.flop_counter import FlopCounterMode   # pylint: disable=import-outside-toplevel
  rss_before = rss_mib()
  built = builders[args.workload](args.batch_size, args.tiny)
  model, loss_fn, opt_kwargs = built[:3]
  after_step = built[3] if len(built) > 3 else None
  model.train()
  params = [p for p in model.parameters() if p.requires_grad]   # not the EMA copies
  opt = torch.optim.AdamW(params, **opt_kwargs)
  compiled = {'loss': loss_fn}

  def step():
    opt.zero_grad(set_to_none=True)
    value = compiled['loss']()
    value.backward()
    torch.nn.utils.clip_grad_norm_(params, math.inf)   # sslax logs the grad norm
    opt.step()
    if after_step is not None:
      after_step()
    return value

  with FlopCounterMode(display=False) as counter:
    step()
  flops = counter.get_total_flops()
  compile_s = None
  if args.compile:
    compiled['loss'] = torch.compile(loss_fn)
    start = time.perf_counter()
    step().item()
    compile_s = time.perf_counter() - start
  for _ in range(args.warmup):
    step()
  row = {'workload': args.workload, 'batch_size': args.batch_size, 'impl': args.impl,
         'library': library.get(args.workload, 'torch'), 'compile': args.compile,
         'step_s': median_s(lambda: step().item(), args.repeats), 'flops_per_step': float(flops),
         'compile_s': compile_s, 'threads': torch.get_num_threads(), 'torch': torch.__version__,
         'versions': versions, 'params': sum(p.numel() for p in params),
         'peak_rss_mib': peak_rss_mib() - rss_before}
  if args.phases:
    def grad():
      opt.zero_grad(set_to_none=True)
      value = loss_fn()
      value.backward()
      return value
    row['forward_s'] = median_s(lambda: loss_fn().item(), args.repeats)
    row['grad_s'] = median_s(lambda: grad().item(), args.repeats)
  print(json.dumps(row))


def rss_mib():
  """Resident memory now, MiB (Linux /proc)."""
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmRSS:'):
        return int(line.split()[1]) / 1024
  return 0.0


def peak_rss_mib():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux


def median_s(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def conv_layers(args):
  """{'hw,cin,cout,stride': seconds} for forward + input and weight gradients of each layer."""
  out = {}
  for spec in args.conv_layers.split(';'):
    hw, cin, cout, stride = (int(v) for v in spec.split(','))
    conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    x = torch.randn(args.batch_size, cin, hw, hw, requires_grad=True)

    def once():
      x.grad, conv.weight.grad = None, None
      (conv(x) ** 2).sum().backward()
    for _ in range(args.warmup):
      once()
    out[spec] = median_s(once, args.repeats)
  return out


if __name__ == '__main__':
  main()
