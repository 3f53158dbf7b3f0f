#!/opt/conda/bin/python
"""Start a JupyterHub single-user server as the docker-stacks images do,
with NOTEBOOK_ARGS and this script's arguments."""
import os
import shlex
import sys

command = ["jupyterhub-singleuser"]
command += shlex.split(os.environ.get("NOTEBOOK_ARGS", ""))
command += sys.argv[1:]
os.execvp(command[0], command)
