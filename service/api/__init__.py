"""HTTP transport only: routes decode a request, call the data plane, encode the answer."""
