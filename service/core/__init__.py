"""Layer semantics without I/O: graphs, naming, variables, losses, updates, the data plane."""
