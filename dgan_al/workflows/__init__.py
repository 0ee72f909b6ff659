"""The workflows behind the commands: init, next-round, import, export, build-dataset, evaluate, simulate."""
