"""The domain without I/O: graphs, layers' TF semantics, naming and name rules, variables, losses, updates."""
