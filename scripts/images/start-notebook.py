#!/opt/conda/bin/python
"""Start Jupyter as the docker-stacks images do: `jupyter lab` unless
DOCKER_STACKS_JUPYTER_CMD names another (notebook, server, nbclassic),
with NOTEBOOK_ARGS and this script's arguments; under JupyterHub (when
JUPYTERHUB_API_TOKEN is set) start-singleuser.py instead."""
import os
import shlex
import sys

if "JUPYTERHUB_API_TOKEN" in os.environ:
    os.execvp("start-singleuser.py", ["start-singleuser.py", *sys.argv[1:]])

command = ["jupyter", os.environ.get("DOCKER_STACKS_JUPYTER_CMD", "lab")]
command += shlex.split(os.environ.get("NOTEBOOK_ARGS", ""))
command += sys.argv[1:]
os.execvp(command[0], command)
