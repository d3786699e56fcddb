"""Host input pipeline for full-size JPEGs: sslax vs torchvision, views per second per core.

  python experiments/benchmarks/input_pipeline.py [--images ../shared/data/bccd/train] \
      [--workers 2] [--batch 64] [--seconds 20] [--torch_python /work/venv-torch/bin/python] \
      [--sslax 2x1,0x2]

One run, one CPU, the same files, the same work per view: decode a JPEG, random-resized-crop
(scale 0.08-1, aspect 3/4-4/3), resize to 224x224, random horizontal flip, uint8 batch.
- sslax: `folder:` build of the images (encoded storage), then `host_views.host_view_batches`
  (grain worker processes, simplejpeg reduced-scale decode, OpenCV resize), once per
  `--sslax` setting WORKERSxTHREADS (config.data.num_workers x config.data.read_threads;
  default: `--workers` processes of one thread). Each setting is compared with torchvision
  at the same `--workers`: the same cores, since both decode with every core given.
- torchvision: `ImageFolder` + `RandomResizedCrop(224)` + `RandomHorizontalFlip()` +
  `PILToTensor()` (uint8, as sslax hands over) + `DataLoader(shuffle=True)`, same worker count
  and batch, run by `--torch_python` (a separate venv; torch is never an sslax dependency).
Both are timed after a warm-up batch, over `--seconds`, epochs repeating. Also reported: the
build's stored bytes / source bytes, build seconds per 1,000 images, and sslax's CPU per view
on one thread, split into decode and crop/resize/flip/copy.

Prints one JSON line per pipeline and a Markdown table (the README's "Images at scale").
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

VIEW = 224

TORCH_SCRIPT = r'''
import json, sys, time
import torch
from torchvision import datasets, transforms
folder, workers, batch, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
torch.set_num_threads(1)
transform = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                transforms.PILToTensor()])
data = datasets.ImageFolder(folder, transform=transform)
loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, num_workers=workers,
                                     drop_last=True, persistent_workers=workers > 0,
                                     prefetch_factor=2 if workers else None)
def batches():
  while True:
    yield from loader
it = batches()
next(it)   # warm-up: workers started, first files read
views, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
  x, _ = next(it)
  assert x.shape[1:] == (3, 224, 224) and x.dtype == torch.uint8
  views += x.shape[0]
print(json.dumps({'views': views, 'seconds': time.perf_counter() - start}))
'''


def class_tree(images: pathlib.Path, root: pathlib.Path) -> pathlib.Path:
  """root/train/images/*.jpg as symlinks: a one-class ImageFolder both pipelines read."""
  target = root / 'train' / 'images'
  target.mkdir(parents=True)
  for path in sorted(images.glob('*.jp*g')):
    (target / path.name).symlink_to(path.resolve())
  return root


def sslax_run(tree: pathlib.Path, workers: int, threads: int, batch: int,
              seconds: float) -> dict:
  from sslax.data import host_crops
  from sslax.data import host_views
  from sslax.data import sources
  data_dir = tempfile.mkdtemp(prefix='sslax_bench_tfds_')
  try:
    start = time.perf_counter()
    info = sources.info(f'folder:{tree}', data_dir=data_dir)
    build = time.perf_counter() - start
    stored = sum(f.stat().st_size for f in pathlib.Path(data_dir).rglob('*.array_record*'))
    src = sources.open_split(f'folder:{tree}', 'train', data_dir=data_dir)
    spec = [host_crops.CropSpec('image', 1, VIEW, (0.08, 1.0), (3 / 4, 4 / 3), 0.5)]
    views = host_views.HostViews(src, spec, info.image_shape[-1], 0, 0, 0, f'folder:{tree}')
    it = host_views.host_view_batches(src, views, batch=batch, seed=0, start_step=0,
                                      workers=workers, prefetch=2, threads=threads)
    next(it)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
      x = next(it)['image']
      assert x.shape[1:] == (1, VIEW, VIEW, 3)
      count += x.shape[0]
    elapsed = time.perf_counter() - start
  finally:
    shutil.rmtree(data_dir, ignore_errors=True)
  return {'views': count, 'seconds': elapsed, 'build_seconds': build,
          'stored_bytes': stored, 'images': len(src)}


def view_cpu(images: pathlib.Path, rounds: int = 5) -> dict:
  """CPU ms per view in this process, one thread, split into sslax's two costs: the
  reduced-scale decode, and the crop + resize + flip + copy into the batch (crop_resize)."""
  import numpy as np
  from sslax.data import host_crops
  rng = np.random.default_rng(0)
  datas = [p.read_bytes() for p in sorted(images.glob('*.jp*g'))[:64]]
  jobs = []
  for data in datas:
    height, width = host_crops.image_size(data)
    box = host_crops.sample_box(rng, height, width, (0.08, 1.0), (3 / 4, 4 / 3))
    jobs.append((data, (height, width), box, max(VIEW / box[2], VIEW / box[3]),
                 bool(rng.random() < 0.5)))
  out = np.empty((VIEW, VIEW, 3), np.uint8)
  decode = resize = 0.0
  for _ in range(rounds):
    for data, hw, box, need, flip in jobs:
      t0 = time.process_time()
      # pylint: disable-next=protected-access
      pixels, sy, sx = host_crops._scaled_decode(data, 3, need, hw)
      t1 = time.process_time()
      top, left, h, w = box
      out[...] = host_crops.crop_resize(pixels, top * sy, left * sx, h * sy, w * sx, VIEW, flip)
      decode, resize = decode + t1 - t0, resize + time.process_time() - t1
  n = rounds * len(jobs)
  return {'decode_ms': 1e3 * decode / n, 'crop_resize_ms': 1e3 * resize / n, 'views': n}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--images', default=str(ROOT.parent / 'shared/data/bccd/train'))
  parser.add_argument('--workers', type=int, default=os.cpu_count())
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--seconds', type=float, default=20.0)
  parser.add_argument('--torch_python', default='/work/venv-torch/bin/python')
  parser.add_argument('--sslax', default='',
                      help='comma-separated WORKERSxTHREADS settings (default: --workers x 1)')
  args = parser.parse_args()
  settings = [tuple(int(n) for n in v.split('x')) for v in args.sslax.split(',') if v] or [
      (args.workers, 1)]
  images = pathlib.Path(args.images)
  source_bytes = sum(p.stat().st_size for p in images.glob('*.jp*g'))
  with tempfile.TemporaryDirectory(prefix='sslax_bench_') as tmp:
    tree = class_tree(images, pathlib.Path(tmp) / 'tree')
    rows = {}
    if os.path.exists(args.torch_python):
      out = subprocess.run([args.torch_python, '-c', TORCH_SCRIPT, str(tree / 'train'),
                            str(args.workers), str(args.batch), str(args.seconds)],
                           check=True, capture_output=True, text=True)
      rows['torchvision'] = dict(json.loads(out.stdout.strip().splitlines()[-1]),
                                 workers=args.workers, threads=1)
    for workers, threads in settings:
      rows[f'sslax {workers}x{threads}'] = dict(
          sslax_run(tree, workers, threads, args.batch, args.seconds), workers=workers,
          threads=threads)
  cores = max(1, args.workers)   # the cores every pipeline is given
  for name, row in rows.items():
    row.update(pipeline=name, batch=args.batch, views_per_sec=row['views'] / row['seconds'],
               views_per_sec_per_core=row['views'] / row['seconds'] / cores)
    print(json.dumps(row))
  print(f'\n| pipeline | workers x threads | 224² views/s | per core ({cores}) | vs torchvision |')
  print('| --- | --- | --- | --- | --- |')
  for name, row in rows.items():
    ratio = (row['views_per_sec'] / rows['torchvision']['views_per_sec']
             if 'torchvision' in rows else float('nan'))
    print(f"| {name} | {row['workers']}x{row['threads']} | {row['views_per_sec']:.0f} | "
          f"{row['views_per_sec_per_core']:.0f} | {ratio:.2f}x |")
  cpu = view_cpu(images)
  print(f"\nsslax CPU per view, one thread ({cpu['views']} views): decode "
        f"{cpu['decode_ms']:.2f} ms + crop/resize/flip/copy {cpu['crop_resize_ms']:.2f} ms")
  s = rows[next(k for k in rows if k.startswith('sslax'))]
  print(f"\nstored / source bytes: {s['stored_bytes'] / source_bytes:.3f} "
        f"({s['stored_bytes'] / 2**20:.1f} MiB / {source_bytes / 2**20:.1f} MiB); build: "
        f"{1000 * s['build_seconds'] / s['images']:.1f} s per 1,000 images "
        f"({s['images']} images, {s['build_seconds']:.1f} s)")


if __name__ == '__main__':
  main()
