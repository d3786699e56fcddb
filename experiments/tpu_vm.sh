#!/usr/bin/env bash
# SimCLR on a Cloud TPU VM, one host or a pod slice. Usage:
#   ZONE=us-west4-a NAME=sslax TYPE=v5litepod-8  WORKDIR=gs://BUCKET/simclr bash experiments/tpu_vm.sh
#   ZONE=us-west4-a NAME=sslax TYPE=v5litepod-32 WORKDIR=gs://BUCKET/simclr bash experiments/tpu_vm.sh
# A pod slice has several hosts ("workers"); --worker=all runs the same command on each, and
# `--distributed` lets jax.distributed.initialize find the others from the TPU metadata.
set -euo pipefail
: "${ZONE:?}" "${NAME:?}" "${TYPE:?}" "${WORKDIR:?}"
CONFIG=${CONFIG:-configs/simclr_digits.py}
VERSION=${VERSION:-v2-alpha-tpuv5-lite}
REPO=${REPO:-https://github.com/YOUR_ORG/sslax.git}

# 1. Create (add --spot for a preemptible VM: sslax checkpoints on SIGTERM and resumes).
gcloud compute tpus tpu-vm create "$NAME" --zone="$ZONE" --accelerator-type="$TYPE" \
  --version="$VERSION" ${SPOT:+--spot}

# 2. Install on every worker: the pinned stack plus jax's TPU runtime.
gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command="
  set -e
  git clone -q $REPO sslax 2>/dev/null || git -C sslax pull -q
  cd sslax && python3 -m venv .venv && . .venv/bin/activate
  pip install -q -r requirements.txt 'jax[tpu]==0.10.2'"

# 3. Run on every worker at once (rerun this step after a preemption: it resumes).
gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all --command="
  cd sslax && . .venv/bin/activate &&
  python -m sslax.main --distributed --config $CONFIG --workdir $WORKDIR \
    --config.progress_bar=False"

# 4. Delete when done.
# gcloud compute tpus tpu-vm delete "$NAME" --zone="$ZONE"
