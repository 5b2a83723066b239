"""What may be sent now: updates in order per address, superseded ones, the updates an address
missed (carried along), and the per-recipient cap."""
