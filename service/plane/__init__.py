"""The application service floor: graph cache, transactions, lifecycle, apply, records, programs,
checkpoints and the version history."""
