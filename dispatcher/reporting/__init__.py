"""What happened: ledger queries (who got what, who is missing), delivery status and Prometheus metrics."""
