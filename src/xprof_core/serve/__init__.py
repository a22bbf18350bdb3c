"""Serving: the HTTP aggregator, the gRPC worker, the executors that run map tasks, capture,
the OpenAPI document and the wire format of partials."""
