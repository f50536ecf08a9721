"""Persistence of graphs: the store interface and its implementations."""
