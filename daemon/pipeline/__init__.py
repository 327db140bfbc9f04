"""The core pipeline: outbox store (SQL side) and the runtime that publishes to Realtime."""
