"""The application service: operations on graphs beyond one layer (checkpoints, history)."""
