#!/bin/bash
# The entrypoint's second stage, after tini, as in the Jupyter docker-stacks
# images (reduced to what spinbook's test image needs): run the command as
# NB_USER. Started as root, it drops to NB_UID:NB_GID with HOME set, as
# docker-stacks' start.sh does; started as NB_USER (the image's default), it
# runs the command as it is.
set -euo pipefail
if [ "$(id -u)" = 0 ]; then
  exec setpriv --reuid="${NB_UID:-1000}" --regid="${NB_GID:-100}" --init-groups \
    env HOME="/home/${NB_USER:-jovyan}" USER="${NB_USER:-jovyan}" "$@"
fi
exec "$@"
