"""Pure models and rules: incidents, updates, the severity policy, audiences, quiet hours, guardrail
rules, durations and the clock. No database, no network, no framework: everything above builds on it."""
