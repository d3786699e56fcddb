#!/usr/bin/env bash
# A paper-scale config (configs/paper/) on a Cloud TPU VM slice; workdir (checkpoints, logs) on gs://.
#   ZONE=us-central2-b NAME=sslax TYPE=v4-32 BUCKET=gs://my-bucket \
#     CONFIG=configs/paper/simclr_r50.py bash experiments/tpu_vm.sh [STEP]
#   CONFIG=configs/paper/mae_vitb16.py | byol_r50.py | bert_base.py | cpc_librispeech.py
#   STEP: all (default: create, install, run) | create | install | run | logs | restart | delete
# SPOT=1 makes a Spot slice. Each config's docstring names the slice it is sized for.
# A slice has several hosts ("workers"); --worker=all runs the same command on each
# (cloud.google.com/tpu/docs/jax-pods), and `--distributed` lets jax.distributed.initialize find the
# others from the TPU metadata (docs.jax.dev/en/latest/multi_process.html).
# Every process writes its checkpoint shards to $WORKDIR; only process 0 writes logs/reports.
set -euo pipefail
: "${ZONE:?}" "${NAME:?}" "${TYPE:?}" "${BUCKET:?}"
STEP=${1:-all}
CONFIG=${CONFIG:-configs/paper/simclr_r50.py}
RUN=${RUN:-$(basename "$CONFIG" .py)}
WORKDIR=${WORKDIR:-$BUCKET/runs/$RUN}
REPO=${REPO:-https://github.com/YOUR_ORG/sslax.git}
EXTRA=${EXTRA:-}   # more flags, e.g. --config.data.source=folder:/mnt/disks/data/imagenet256
LOG=${LOG:-\$HOME/sslax-$RUN.log}   # one per worker, on that worker's disk
# Runtime image per TPU generation (cloud.google.com/tpu/docs/runtimes, "PyTorch and JAX").
case "$TYPE" in
  v6e-*) DEFAULT_VERSION=v2-alpha-tpuv6e ;;
  v5p-*) DEFAULT_VERSION=v2-alpha-tpuv5 ;;
  v5litepod-*|v5e-*) DEFAULT_VERSION=v2-alpha-tpuv5-lite ;;
  *) DEFAULT_VERSION=tpu-ubuntu2204-base ;;   # v4 and older
esac
VERSION=${VERSION:-$DEFAULT_VERSION}
# JAX devices the slice should show: v4-N and v5p-N count TensorCores, two per chip, one JAX
# device per chip (cloud.google.com/tpu/docs/v5p: cores vs chips); v5e and v6e count chips.
N=${TYPE##*-}
case "$TYPE" in v4-*|v5p-*) DEFAULT_DEVICES=$((N / 2)) ;; *) DEFAULT_DEVICES=$N ;; esac
EXPECT_DEVICES=${EXPECT_DEVICES:-$DEFAULT_DEVICES}

# Data. sslax reads data sets as array_record files through a folder path: local builds (folder:,
# text:, npz:, ...) are refused with a gs:// data_dir, and array_record's reader of a gs:// data_dir
# is untested here (github.com/google/array_record/issues/120). Serve the prepared TFDS folder to
# every worker as a folder, one of:
#  - DATA_DISK=NAME: a persistent disk holding it, attached read-only to all workers at create
#    (cloud.google.com/tpu/docs/setup-persistent-disk, read-only mode) and mounted at DATA_MOUNT;
#  - a Cloud Storage FUSE mount of the bucket on each worker (cloud.google.com/storage/docs/gcsfuse),
#    then DATA_DIR=that mount's tfds folder;
#  - nothing (DATA_DIR=''): no data_dir flag; local sources build into ~/tensorflow_datasets.
DATA_DISK=${DATA_DISK:-}
DATA_MOUNT=${DATA_MOUNT:-/mnt/disks/data}
DATA_DIR=${DATA_DIR-${DATA_DISK:+$DATA_MOUNT/tfds}}
DATA_FLAG=${DATA_DIR:+--config.data.data_dir=$DATA_DIR}   # only for tfds: sources: leave DATA_DIR empty otherwise
ssh_all() { gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command="$1"; }

# 1. Create. --spot: the slice may be preempted at any time; sslax saves on the SIGTERM and exits 0.
# A preempted Spot slice is not restarted in place: delete and recreate it, which gives bare
# workers (cloud.google.com/tpu/docs/spot), so `restart` below reinstalls before resuming.
create() {
  local disk=()
  if [[ -n "$DATA_DISK" ]]; then
    local project=${PROJECT:-$(gcloud config get-value project 2>/dev/null)}
    disk=(--data-disk="source=projects/$project/zones/$ZONE/disks/$DATA_DISK,mode=read-only")
  fi
  gcloud compute tpus tpu-vm create "$NAME" --zone="$ZONE" --accelerator-type="$TYPE" \
    --version="$VERSION" ${SPOT:+--spot} "${disk[@]}"
}

# 2. Install on every worker. The runtime images ship Ubuntu 22.04's Python 3.10; jax 0.10.2 needs
# >= 3.11: uv installs a standalone 3.11 and makes the venv with it (docs.astral.sh/uv/
# getting-started/installation; docs.astral.sh/uv/concepts/python-versions). Then the runtime
# requirements (no test tools) and JAX's TPU wheel (docs.jax.dev/en/latest/installation.html).
install() {
  ssh_all "
    set -e
    git clone -q $REPO sslax 2>/dev/null || git -C sslax pull -q
    command -v uv >/dev/null || [ -x ~/.local/bin/uv ] || curl -LsSf https://astral.sh/uv/install.sh | sh
    cd sslax && ~/.local/bin/uv venv --python 3.11 .venv
    ~/.local/bin/uv pip install --python .venv/bin/python -r requirements.txt 'jax[tpu]==0.10.2'
    if [ -n '$DATA_DISK' ]; then   # read-only, so no journal replay (noload)
      sudo mkdir -p $DATA_MOUNT && (mountpoint -q $DATA_MOUNT || sudo mount -o ro,noload /dev/sdb $DATA_MOUNT)
    fi"
}

# Data preparation, once, before step 3 (one worker or any VM, into a folder you then put on the
# data disk, or straight into the bucket through a gcsfuse mount):
#  - ImageNet (simclr_r50, byol_r50, mae_vitb16): TFDS cannot download it. Put
#    ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (image-net.org) in
#    PREP/downloads/manual/, then build:
#      python -c "import tensorflow_datasets as tfds; tfds.data_source('imagenet2012', data_dir='PREP')"
#  - LibriSpeech and Speech Commands (cpc_librispeech): TFDS downloads and builds them:
#      python -c "import tensorflow_datasets as tfds; [tfds.data_source(n, data_dir='PREP') for n in ('librispeech', 'speech_commands')]"
#  - BERT-base: a text corpus as UTF-8 files on every worker, --config.data.source='text:/PATH/*.txt'
#    in EXTRA and DATA_DIR='' (sslax builds it on each worker's own disk).

# 3. Run on every worker: first the live preflight (devices, processes, config, workdir), then the
# run itself detached from the ssh session (setsid + nohup: it survives the ssh session's hangup;
# man7.org/linux/man-pages/man1/setsid.1.html, man1/nohup.1.html), logging to $LOG on each worker.
# Rerun after a preemption or a crash: it resumes from the newest checkpoint in $WORKDIR.
run() {
  local flags="--distributed --config $CONFIG --workdir $WORKDIR $DATA_FLAG $EXTRA"
  ssh_all "
    set -e
    cd sslax && . .venv/bin/activate
    python -m sslax.preflight $flags --expect_devices $EXPECT_DEVICES
    setsid nohup python -m sslax.main $flags --config.progress_bar=False > $LOG 2>&1 < /dev/null &
    echo \"worker \$(hostname): training, log in $LOG\""
}

# Follow it: worker 0's log (process 0 prints the metrics); --worker=N for another worker's.
# metrics.jsonl in $WORKDIR has the same numbers.
logs() { gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=0 --command="tail -n 50 -f $LOG"; }

# 4. Delete when done.
delete() { gcloud compute tpus tpu-vm delete "$NAME" --zone="$ZONE" --quiet; }

case "$STEP" in
  all) create; install; run ;;
  create|install|run|logs|delete) "$STEP" ;;
  # After a Spot preemption (the slice shows PREEMPTED): recreate, reinstall, resume.
  restart) delete || true; create; install; run ;;
  *) echo "unknown step: $STEP" >&2; exit 2 ;;
esac

# Accelerator check (README table), on the slice after `install`:
#   gcloud compute tpus tpu-vm ssh $NAME --zone=$ZONE --worker=all --command="cd sslax && \
#     . .venv/bin/activate && python experiments/accelerator_check.py --data_dir $DATA_DIR \
#     --out $BUCKET/accelerator_check/$TYPE.json"
