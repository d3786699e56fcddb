#!/usr/bin/env bash
# A paper-scale config (configs/paper/) on a Cloud TPU VM slice, workdir and data on gs://.
#   ZONE=us-central2-b NAME=sslax TYPE=v4-32 BUCKET=gs://my-bucket \
#     CONFIG=configs/paper/simclr_r50.py bash experiments/tpu_vm.sh
#   CONFIG=configs/paper/mae_vitb16.py | byol_r50.py | bert_base.py | cpc_librispeech.py
# SPOT=1 makes a Spot (preemptible) slice. Each config's docstring names the slice it is sized for.
# A slice has several hosts ("workers"); --worker=all runs the same command on each, and
# `--distributed` lets jax.distributed.initialize find the others from the TPU metadata.
# Every process writes its checkpoint shards to $WORKDIR; only process 0 writes logs/reports.
set -euo pipefail
: "${ZONE:?}" "${NAME:?}" "${TYPE:?}" "${BUCKET:?}"
CONFIG=${CONFIG:-configs/paper/simclr_r50.py}
RUN=${RUN:-$(basename "$CONFIG" .py)}
WORKDIR=${WORKDIR:-$BUCKET/runs/$RUN}
DATA_DIR=${DATA_DIR:-$BUCKET/tfds}
VERSION=${VERSION:-tpu-ubuntu2204-base}
REPO=${REPO:-https://github.com/YOUR_ORG/sslax.git}
EXTRA=${EXTRA:-}   # more flags, e.g. --config.data.source=folder:/mnt/imagenet256

# 1. Create. --spot: the slice may be preempted at any time; GCE sends SIGTERM first, sslax saves
# a checkpoint and exits 0, and rerunning step 3 (after recreating the slice) resumes from it.
gcloud compute tpus tpu-vm create "$NAME" --zone="$ZONE" --accelerator-type="$TYPE" \
  --version="$VERSION" ${SPOT:+--spot}

# 2. Install on every worker: the pinned stack (gcsfs for gs:// included) plus jax's TPU runtime.
gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command="
  set -e
  git clone -q $REPO sslax 2>/dev/null || git -C sslax pull -q
  cd sslax && python3 -m venv .venv && . .venv/bin/activate
  pip install -q -r requirements.txt 'jax[tpu]==0.10.2'"

# Data preparation, once, before step 3 (one worker, or any VM with the bucket mounted):
#  - ImageNet (simclr_r50, byol_r50, mae_vitb16): TFDS cannot download it. Put
#    ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (image-net.org) in
#    $DATA_DIR/downloads/manual/, then build:
#      python -c "import tensorflow_datasets as tfds; tfds.data_source('imagenet2012', data_dir='$DATA_DIR')"
#    Until issue #16 the pipeline needs one image size: also see configs/paper/imagenet.py.
#  - LibriSpeech and Speech Commands (cpc_librispeech): TFDS downloads and builds them:
#      python -c "import tensorflow_datasets as tfds; [tfds.data_source(n, data_dir='$DATA_DIR') for n in ('librispeech', 'speech_commands')]"
#  - BERT-base: a text corpus as UTF-8 files, --config.data.source='text:/PATH/*.txt' in EXTRA.
# gs:// checkpoints and logs work from every worker; a local folder does not (each worker
# would write its own disk).

# 3. Run on every worker at once. Rerun after a preemption or a crash: it resumes from the
# newest checkpoint in $WORKDIR (and the data position stored with it).
gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command="
  cd sslax && . .venv/bin/activate &&
  python -m sslax.main --distributed --config $CONFIG --workdir $WORKDIR \
    --config.data.data_dir=$DATA_DIR --config.progress_bar=False $EXTRA"

# Accelerator check (README table): N steps of every paper config on this slice.
#   python experiments/accelerator_check.py --data_dir $DATA_DIR --out $BUCKET/accelerator_check/$TYPE.json

# 4. Delete when done.
# gcloud compute tpus tpu-vm delete "$NAME" --zone="$ZONE"
