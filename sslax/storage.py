"""One path abstraction for every file a run reads or writes: `etils.epath`.

Orbax and TFDS already use epath, so a workdir (config.json, metrics.jsonl, TensorBoard events,
results.*, plots, the tokenizer, checkpoints with their data position) or a TFDS `data_dir` may
be a local path, a shared filesystem, or `gs://bucket/...` (gcsfs backs epath without
TensorFlow). Local paths are made absolute here, so a relative workdir means the same folder
to Orbax (which needs absolute paths) and to the rest of sslax.

Who writes what on a pod: only process 0 writes logs and reports (metrics.py, reports.py,
train.py); every process writes its shards of a checkpoint (Orbax).
"""
import io
import os

from etils import epath

from sslax import errors


def path(p: str | os.PathLike) -> epath.Path:
  """`p` as an epath.Path: URLs (gs://, s3://) as given, local paths absolute with ~ expanded."""
  text = os.fspath(p)
  if is_remote(text):
    return epath.Path(text)
  return epath.Path(os.path.abspath(os.path.expanduser(text)))


def is_remote(p: str | os.PathLike) -> bool:
  return '://' in os.fspath(p)


def make_dir(p: str | os.PathLike, flag: str = '--workdir') -> epath.Path:
  """`p` as a directory, created if missing; ConfigError naming `flag` when it cannot be one.

  mkdir's own FileExistsError (a file of that name) or NotADirectoryError (a file above it)
  would reach a user as a traceback, after the config and data checks passed.
  """
  root = path(p)
  try:
    if root.exists() and not root.is_dir():
      raise FileExistsError(f'{root} is a file')
    root.mkdir(parents=True, exist_ok=True)   # idempotent; a no-op on object stores
  except (FileExistsError, NotADirectoryError, PermissionError) as e:
    raise errors.ConfigError(
        f'{flag}={os.fspath(p)!r}: {root} cannot be a directory ({e}). Fix: pass {flag} a '
        'directory path that does not exist yet or is a directory you may write.') from None
  return root


def append_text(p: epath.Path, text: str) -> None:
  """Appends `text` to a file, creating it; closed per call, so readers see it at once.

  Object stores cannot append (gcsfs's mode 'a' silently starts a new object), so there the
  file is read and rewritten: fine for metrics.jsonl, one short row per log step.
  """
  if is_remote(p):
    old = p.read_text() if p.exists() else ''
    p.write_text(old + text)
    return
  with p.open('a') as f:
    f.write(text)


class _EpathRecordWriter:
  """TensorBoard's event-file sink for URLs, through epath.

  Object stores cannot append, so the whole (small: scalars only) event file is rewritten at
  each flush. tensorboardX's own 'gs' writer does the same through google-cloud-storage but
  flushes again from `__del__`, which can hang for minutes once the endpoint is gone.
  """

  def __init__(self, url: str):
    self._path = epath.Path(url)
    self._buffer = io.BytesIO()
    self._flushed = 0

  def write(self, data: bytes) -> None:
    self._buffer.write(data)

  def flush(self) -> None:
    if self._buffer.tell() != self._flushed:
      self._path.write_bytes(self._buffer.getvalue())
      self._flushed = self._buffer.tell()

  def close(self) -> None:
    self.flush()


class _EpathRecordWriterFactory:

  def open(self, url: str) -> _EpathRecordWriter:
    return _EpathRecordWriter(url)

  def directory_check(self, url: str) -> None:
    del url   # object stores have no directories to create


def tensorboard_writer(logdir: epath.Path):
  """A tensorboardX SummaryWriter for a local or URL `logdir`."""
  import tensorboardX   # imported here: tokenizers and sources use this module and stay light
  import tensorboardX.record_writer
  # tensorboardX picks a sink by URL prefix; sslax's gs:// (and s3://) event files go through
  # epath like every other file, with one set of credentials and endpoint settings (gcsfs's).
  for prefix in ('gs', 's3'):
    tensorboardX.record_writer.register_writer_factory(prefix, _EpathRecordWriterFactory())
  return tensorboardX.SummaryWriter(logdir=str(logdir))
